"""Anthropic HH-RLHF: two whole transcripts a row, turned into a chat prompt and two final answers.

The two transcripts share every turn but the last Assistant turn; that shared part becomes the
prompt (Human -> user, Assistant -> assistant) and the two final Assistant texts are the pair.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from peo.data.errors import DataError
from peo.data.loading import EMPTY_RESPONSE, Drop, LoadResult, check_aspect, load_rows_file, make_pair, required_text
from peo.data.records import Message, PreferencePair

SOURCE = "hh-rlhf"
_TURN = re.compile(r"(?:\A\s*|\n\n)(Human|Assistant):")
_ROLES = {"Human": "user", "Assistant": "assistant"}


def parse_transcript(text: str, field: str) -> list[Message]:
    """The turns of one `\\n\\nHuman: ...\\n\\nAssistant: ...` transcript, each stripped.

    Consecutive turns of the same speaker (rare in HH) are joined, so prompts alternate as chat
    templates require.
    """
    parts = _TURN.split(text)
    if parts[0].strip() or len(parts) < 3:
        raise DataError(None, field=field, expected="a transcript starting with 'Human:'",
                        got="text before the first turn" if len(parts) >= 3 else "no 'Human:'/'Assistant:' turns")
    turns: list[Message] = []
    for speaker, content in zip(parts[1::2], parts[2::2]):
        role, content = _ROLES[speaker], content.strip()
        if turns and turns[-1].role == role:
            turns[-1] = Message(role, f"{turns[-1].content}\n\n{content}".strip())
        else:
            turns.append(Message(role, content))
    return turns


def _split_final(text: str, field: str) -> tuple[tuple[Message, ...], str]:
    turns = parse_transcript(text, field)
    if turns[-1].role != "assistant" or len(turns) < 2:
        raise DataError(None, field=field, expected="a final Assistant turn after a Human turn",
                        got="a transcript ending with a Human turn" if turns[-1].role != "assistant"
                        else "an Assistant turn only")
    return tuple(turns[:-1]), turns[-1].content


def parse_hh_row(obj: dict[str, Any], aspect: str, source: str = SOURCE) -> list[PreferencePair] | Drop:
    """One row's pair. An empty final Assistant turn (3 rows of the real test file) is a dropped
    row, not a format error: the transcript is well-formed, it just has nothing to learn from."""
    prompt, chosen = _split_final(required_text(obj, "chosen"), "chosen")
    prompt_r, rejected = _split_final(required_text(obj, "rejected"), "rejected")
    if prompt != prompt_r:
        turn = next((i + 1 for i, (a, b) in enumerate(zip(prompt, prompt_r)) if a != b),
                    min(len(prompt), len(prompt_r)) + 1)
        raise DataError(None, field="rejected", expected="the same turns as 'chosen' before the final Assistant turn",
                        got=f"a different prompt (first difference at turn {turn})")
    if any(not m.content for m in prompt):
        raise DataError(None, field="chosen", expected="non-empty prompt turns", got="an empty turn")
    if not chosen or not rejected:
        return Drop(EMPTY_RESPONSE)
    return [make_pair(prompt, chosen, rejected, aspect, source)]


def load_hh_rlhf(path: str | Path, *, aspect: str = "harm", skip_bad: bool = False) -> LoadResult:
    """Load an HH-RLHF `.jsonl(.gz)` file of `{"chosen", "rejected"}` transcripts."""
    asp = check_aspect(aspect)
    return load_rows_file(path, "hh", asp, lambda obj: parse_hh_row(obj, asp), skip_bad)
