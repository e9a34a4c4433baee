"""Generic preference pairs in TRL's two layouts, so users can bring any data set they like.

Standard: `prompt`, `chosen`, `rejected` are strings. Conversational: `prompt` is a list of
{role, content} ending with a user message; `chosen`/`rejected` a one-message assistant list
(or a plain string).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from peo.data.errors import DataError, describe
from peo.data.loading import (
    EMPTY_RESPONSE,
    Drop,
    LoadResult,
    LoadSummary,
    PairCollector,
    check_aspect,
    iter_hub_rows,
    load_rows_file,
    make_pair,
    required,
    text_value,
)
from peo.data.records import Message, PreferencePair

SOURCE = "pairs"
ROLES = ("system", "user", "assistant")
_RESPONSE_EXPECTED = "a non-empty string or a list with one assistant message"


def parse_prompt(value: Any) -> tuple[Message, ...]:
    if isinstance(value, str):
        return (Message("user", text_value(value, "prompt")),)
    expected = "a string or a list of {role, content} messages ending with a user message"
    if not isinstance(value, list) or not value:
        raise DataError(None, field="prompt", expected=expected, got=describe(value))
    messages = []
    for i, m in enumerate(value):
        if not isinstance(m, dict):
            raise DataError(None, field=f"prompt[{i}]", expected="an object with 'role' and 'content'", got=describe(m))
        role = m.get("role")
        if role not in ROLES:
            raise DataError(None, field=f"prompt[{i}].role", expected=f"one of {', '.join(ROLES)}",
                            got=repr(role)[:40] if isinstance(role, str) else describe(role))
        messages.append(Message(role, text_value(m.get("content"), f"prompt[{i}].content")))
    if messages[-1].role != "user":
        raise DataError(None, field="prompt", expected=expected,
                        got=f"a list ending with a '{messages[-1].role}' message")
    return tuple(messages)


def parse_response(value: Any, field: str) -> str:
    """The response text; "" when blank (the row is then dropped, not failed)."""
    if isinstance(value, list):
        if len(value) != 1 or not isinstance(value[0], dict) or value[0].get("role") != "assistant":
            raise DataError(None, field=field, expected=_RESPONSE_EXPECTED,
                            got=(f"a list of {len(value)} items" if len(value) != 1
                                 else "a list without one assistant message"))
        value = value[0].get("content")
        field = f"{field}[0].content"
    if isinstance(value, str):
        return value.strip() and text_value(value, field)
    raise DataError(None, field=field, expected=_RESPONSE_EXPECTED, got=describe(value))


def parse_pairs_row(obj: dict[str, Any], aspect: str, source: str = SOURCE) -> list[PreferencePair] | Drop:
    prompt = parse_prompt(required(obj, "prompt"))
    chosen = parse_response(required(obj, "chosen"), "chosen")
    rejected = parse_response(required(obj, "rejected"), "rejected")
    if not chosen or not rejected:
        return Drop(EMPTY_RESPONSE)
    return [make_pair(prompt, chosen, rejected, aspect, source)]


def load_pairs_jsonl(path: str | Path, *, aspect: str, skip_bad: bool = False) -> LoadResult:
    """Load a `.jsonl(.gz)` of TRL standard or conversational preference rows (both may be mixed)."""
    asp = check_aspect(aspect)
    return load_rows_file(path, "pairs", asp, lambda obj: parse_pairs_row(obj, asp), skip_bad)


def load_pairs_rows(rows: Iterable[tuple[int, dict[str, Any]]], label: str, *, aspect: str,
                    skip_bad: bool = False) -> LoadResult:
    asp = check_aspect(aspect)
    collector = PairCollector(LoadSummary(label, "pairs", asp), skip_bad)
    collector.feed(rows, lambda obj: parse_pairs_row(obj, asp), label)
    return collector.result()


def load_pairs_hub(name: str, split: str = "train", *, aspect: str, skip_bad: bool = False) -> LoadResult:
    """TRL-form preference data set from the Hugging Face hub (needs network access or a cache)."""
    return load_pairs_rows(iter_hub_rows(name, split), f"hub:{name}[{split}]", aspect=aspect, skip_bad=skip_bad)
