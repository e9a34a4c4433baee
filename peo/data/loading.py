"""What every loader shares: the result and summary types, field checks and the row loop.

Each format only writes a row parser (object -> pairs, or a drop reason); the loop here does the
counting, the duplicate removal and the skip-or-raise choice the same way for all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from peo.aspects import NAME, RESERVED
from peo.data.errors import DataError, DataSpecError, describe
from peo.data.jsonl import iter_jsonl
from peo.data.records import Message, PreferencePair, prompt_id_of

DUPLICATE = "duplicate"
SAME_TEXT = "chosen equals rejected"


@dataclass
class LoadSummary:
    """What happened to the rows of one source: how many were read, kept and dropped, and why."""

    path: str
    format: str
    aspect: str
    rows: int = 0  # non-blank lines (or hub rows) read
    kept: int = 0  # pairs returned (derived pairs included)
    derived: int = 0  # of `kept`, pairs derived rather than read (AlpacaEval cross-model)
    prompts: int = 0  # distinct prompts among the kept pairs
    dropped: dict[str, int] = field(default_factory=dict)

    def drop(self, reason: str, n: int = 1) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + n

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())


@dataclass
class LoadResult:
    pairs: list[PreferencePair]
    summary: LoadSummary


@dataclass(frozen=True)
class Drop:
    """A row parser's answer for a well-formed row that carries no usable pair (e.g. no preference)."""

    reason: str


RowParser = Callable[[dict[str, Any]], "list[PreferencePair] | Drop"]


# ---------------------------------------------------------------- field checks (raise DataError without location)

ASPECT_NAME_RULE = "an aspect's name: lowercase letters and digits, starting with a letter, not a reserved word"


def is_aspect_name(aspect: object) -> bool:
    """A name any run may give an aspect (peo.aspects): loaders label pairs with it, whatever the run's aspects."""
    return isinstance(aspect, str) and bool(NAME.match(aspect)) and aspect not in RESERVED


def check_aspect(aspect: str) -> str:
    if not is_aspect_name(aspect):
        raise DataSpecError(f"aspect must be {ASPECT_NAME_RULE}; got {aspect!r}")
    return aspect


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates from JSON escapes like "\ud800"
        return False
    return True


def text_value(value: Any, field: str) -> str:
    """A non-empty string, stripped of surrounding whitespace."""
    if not isinstance(value, str):
        raise DataError(None, field=field, expected="a non-empty string", got=describe(value))
    if not value.strip():
        raise DataError(None, field=field, expected="a non-empty string", got="an empty string")
    if not _encodable(value):
        raise DataError(None, field=field, expected="valid Unicode text", got="a lone surrogate escape")
    return value.strip()


def required(obj: dict[str, Any], field: str) -> Any:
    if field not in obj:
        raise DataError(None, field=field, expected="the field to be present", got="no such field")
    return obj[field]


def required_text(obj: dict[str, Any], field: str) -> str:
    return text_value(required(obj, field), field)


EMPTY_RESPONSE = "empty response"


def response_text(obj: dict[str, Any], field: str) -> str:
    """A response: a string, stripped; "" when blank, which callers drop (real data has a few
    empty answers; they are well-formed rows that carry nothing to learn from, not format errors)."""
    value = required(obj, field)
    if isinstance(value, str) and not value.strip():
        return ""
    return text_value(value, field)


def make_pair(prompt: tuple[Message, ...], chosen: str, rejected: str, aspect: str, source: str) -> PreferencePair:
    return PreferencePair(prompt=prompt, chosen=chosen, rejected=rejected, aspect=aspect, source=source,
                          prompt_id=prompt_id_of(prompt))


# ---------------------------------------------------------------- the row loop

class PairCollector:
    """Counts rows, applies a row parser, removes exact duplicates, raises or skips bad rows."""

    def __init__(self, summary: LoadSummary, skip_bad: bool) -> None:
        self.summary = summary
        self.skip_bad = skip_bad
        self.pairs: list[PreferencePair] = []
        self._seen: set[tuple[Any, ...]] = set()

    def bad(self, err: DataError) -> None:
        if not self.skip_bad:
            raise err
        self.summary.drop(err.reason)

    def add(self, pair: PreferencePair, derived: bool = False) -> bool:
        if pair.chosen == pair.rejected:
            self.summary.drop(SAME_TEXT)
            return False
        key = (pair.prompt, pair.chosen, pair.rejected)
        if key in self._seen:
            self.summary.drop(DUPLICATE)
            return False
        self._seen.add(key)
        self.pairs.append(pair)
        if derived:
            self.summary.derived += 1
        return True

    def feed(self, rows: Iterable[tuple[int, dict[str, Any]]], parse: RowParser, path: str | Path) -> None:
        for line_no, obj in rows:
            self.summary.rows += 1
            try:
                out = parse(obj)
            except DataError as err:
                self.bad(err.located(path, line_no))
                continue
            if isinstance(out, Drop):
                self.summary.drop(out.reason)
                continue
            for pair in out:
                self.add(pair)

    def feed_file(self, path: str | Path, parse: RowParser) -> None:
        rows = iter_jsonl(path, on_error=self._count_line_error if self.skip_bad else None)
        self.feed(rows, parse, path)

    def _count_line_error(self, err: DataError) -> None:
        self.summary.rows += 1
        self.summary.drop(err.reason)

    def result(self) -> LoadResult:
        self.summary.kept = len(self.pairs)
        self.summary.prompts = len({p.prompt_id for p in self.pairs})
        return LoadResult(self.pairs, self.summary)


def load_rows_file(path: str | Path, fmt: str, aspect: str, parse: RowParser, skip_bad: bool) -> LoadResult:
    collector = PairCollector(LoadSummary(str(path), fmt, aspect), skip_bad)
    collector.feed_file(path, parse)
    return collector.result()


def iter_hub_rows(name: str, split: str, **kwargs: Any) -> Iterator[tuple[int, dict[str, Any]]]:
    """Rows of a Hugging Face hub dataset, numbered from 1 like file lines (needs network or a cache)."""
    from datasets import load_dataset

    dataset = load_dataset(name, split=split, **kwargs)
    for index, row in enumerate(dataset):
        yield index + 1, dict(row)
