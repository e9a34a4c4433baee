"""PKU-SafeRLHF: one prompt, two responses, and separate "better" (help) and "safer" (harm) labels.

The same rows give both aspects, which is why the aspect picks the label column; an aspect with no label column
here (any but help and harm) cannot take its pairs from this format.
"""

from __future__ import annotations

from collections.abc import Iterable
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
    iter_hub_rows,
    load_rows_file,
    make_pair,
    required,
    required_text,
    response_text,
)
from peo.data.records import Message, PreferencePair

SOURCE = "pku-saferlhf"
HUB_NAME = "PKU-Alignment/PKU-SafeRLHF"
ID_FIELD: dict[str, str] = {"help": "better_response_id", "harm": "safer_response_id"}
ASPECTS: tuple[str, ...] = tuple(ID_FIELD)  # the aspects this format has a label for


def check_pku_aspect(aspect: str) -> str:
    """An aspect this format labels: its rows say only which answer is better (help) and which is safer (harm)."""
    check_aspect(aspect)
    if aspect not in ID_FIELD:
        raise DataSpecError(f"format pku labels only aspects {', '.join(ASPECTS)} "
                            f"({', '.join(ID_FIELD.values())}); got aspect {aspect!r}")
    return aspect


def _response_id(obj: dict[str, Any], field: str) -> int:
    value = required(obj, field)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value not in (0, 1):
        raise DataError(None, field=field, expected="0 or 1", got=describe(value))
    return int(value)


def parse_pku_row(obj: dict[str, Any], aspect: str, source: str = SOURCE) -> list[PreferencePair] | Drop:
    prompt = required_text(obj, "prompt")
    responses = (response_text(obj, "response_0"), response_text(obj, "response_1"))
    better = _response_id(obj, ID_FIELD[aspect])
    if not all(responses):
        return Drop(EMPTY_RESPONSE)
    return [make_pair((Message("user", prompt),), responses[better], responses[1 - better], aspect, source)]


def load_pku_saferlhf(path: str | Path, *, aspect: str, skip_bad: bool = False) -> LoadResult:
    """Load a PKU-SafeRLHF `.jsonl(.gz)` export; aspect 'help' uses better_response_id, 'harm' safer_response_id."""
    asp = check_pku_aspect(aspect)
    return load_rows_file(path, "pku", asp, lambda obj: parse_pku_row(obj, asp), skip_bad)


def load_rows(rows: Iterable[tuple[int, dict[str, Any]]], label: str, *, aspect: str,
              skip_bad: bool = False) -> LoadResult:
    """Same as `load_pku_saferlhf`, from already-read (row number, object) pairs."""
    asp = check_pku_aspect(aspect)
    collector = PairCollector(LoadSummary(label, "pku", asp), skip_bad)
    collector.feed(rows, lambda obj: parse_pku_row(obj, asp), label)
    return collector.result()


def load_pku_saferlhf_hub(name: str = HUB_NAME, split: str = "train", *, aspect: str,
                          skip_bad: bool = False) -> LoadResult:
    """Load PKU-SafeRLHF from the Hugging Face hub (needs network access or a local datasets cache)."""
    return load_rows(iter_hub_rows(name, split), f"hub:{name}[{split}]", aspect=aspect, skip_bad=skip_bad)
