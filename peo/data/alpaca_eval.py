"""AlpacaEval annotations: each row judges a model's answer (output_2) against a reference (output_1).

Rows become (chosen, rejected) by the judge's preference. Because every instruction has ~20
answers judged against the same reference, pairs between two compared answers can be derived:
one that beat the reference is preferred to one that lost to it.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from peo.data.errors import DataError, DataSpecError, describe
from peo.data.loading import (
    EMPTY_RESPONSE,
    Drop,
    LoadResult,
    LoadSummary,
    PairCollector,
    check_aspect,
    make_pair,
    required,
    required_text,
    response_text,
)
from peo.data.records import Message, PreferencePair

SOURCE = "alpaca_eval"
NO_PREFERENCE = "no preference"
TIE = "tie (preference 1.5)"
PREFERENCE_EXPECTED = "1, 2, 0 or null"


def parse_preference(value: Any) -> int | None:
    """1 or 2 (ints or floats like 2.0); None for no decision (0, null, or AlpacaEval's 1.5 tie)."""
    if value is None:
        return None
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or (isinstance(value, float) and not math.isfinite(value))):
        raise DataError(None, field="preference", expected=PREFERENCE_EXPECTED, got=describe(value))
    if value in (1, 2):
        return int(value)
    if value == 0 or value == 1.5:
        return None
    raise DataError(None, field="preference", expected=PREFERENCE_EXPECTED, got=describe(value))


def alpaca_files(paths: str | Path | Sequence[str | Path]) -> list[Path]:
    """A file, a folder of `*.jsonl`/`*.jsonl.gz` (sorted by name), or a list of either."""
    items = [paths] if isinstance(paths, (str, Path)) else list(paths)
    files: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.iterdir()
                           if f.is_file() and (f.name.endswith(".jsonl") or f.name.endswith(".jsonl.gz")))
            if not found:
                raise DataError(p, expected="a folder with *.jsonl or *.jsonl.gz files", got="none")
            files.extend(found)
        else:
            files.append(p)
    if not files:
        raise DataError(None, expected="at least one AlpacaEval file", got="an empty list")
    return files


def _row(obj: dict[str, Any], aspect: str, source: str) -> tuple[PreferencePair, str, int] | Drop:
    instruction = required_text(obj, "instruction")
    preference = parse_preference(required(obj, "preference"))
    if preference is None:
        return Drop(TIE if obj.get("preference") == 1.5 else NO_PREFERENCE)
    output_1 = response_text(obj, "output_1")
    output_2 = response_text(obj, "output_2")
    generator = obj.get("generator_2")
    if generator is not None and not isinstance(generator, str):
        raise DataError(None, field="generator_2", expected="a string or null", got=describe(generator))
    if not output_1 or not output_2:
        return Drop(EMPTY_RESPONSE)
    prompt = (Message("user", instruction),)
    chosen, rejected = (output_1, output_2) if preference == 1 else (output_2, output_1)
    return make_pair(prompt, chosen, rejected, aspect, source), output_2, preference


def _order_key(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode("utf-8")).hexdigest()


def load_alpaca_eval(paths: str | Path | Sequence[str | Path], *, aspect: str = "help", skip_bad: bool = False,
                     derive_cross_model_pairs: bool = False, max_derived_per_prompt: int = 4) -> LoadResult:
    """Load AlpacaEval annotation files; optionally add derived pairs between compared answers.

    Derived pairs (source `alpaca_eval:derived`): for each instruction, an output_2 that beat the
    reference (chosen) against one that lost to it (rejected); at most `max_derived_per_prompt`
    per instruction, picked by a content hash so the choice does not depend on file order.
    """
    asp = check_aspect(aspect)
    if max_derived_per_prompt < 0:
        raise DataSpecError(f"max_derived_per_prompt must be >= 0; got {max_derived_per_prompt}")
    files = alpaca_files(paths)
    label = str(paths) if isinstance(paths, (str, Path)) else ", ".join(str(f) for f in files)
    collector = PairCollector(LoadSummary(label, "alpaca_eval", asp), skip_bad)
    winners: dict[str, set[str]] = {}
    losers: dict[str, set[str]] = {}
    prompts: dict[str, tuple[Message, ...]] = {}

    def parse(obj: dict[str, Any]) -> list[PreferencePair] | Drop:
        out = _row(obj, asp, SOURCE)
        if isinstance(out, Drop):
            return out
        pair, output_2, preference = out
        prompts[pair.prompt_id] = pair.prompt
        (winners if preference == 2 else losers).setdefault(pair.prompt_id, set()).add(output_2)
        return [pair]

    for f in files:
        collector.feed_file(f, parse)

    if derive_cross_model_pairs and max_derived_per_prompt > 0:
        for prompt_id in sorted(prompts):
            candidates = sorted(
                ((_order_key(prompt_id, w, loser), w, loser)
                 for w in winners.get(prompt_id, ()) for loser in losers.get(prompt_id, ()) if w != loser),
            )
            taken = 0
            for _, w, loser in candidates:
                if taken >= max_derived_per_prompt:
                    break
                if collector.add(make_pair(prompts[prompt_id], w, loser, asp, f"{SOURCE}:derived"), derived=True):
                    taken += 1
    return collector.result()
