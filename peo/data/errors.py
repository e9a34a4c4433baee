"""One exception for every problem found in a data file, so the CLI can print it and exit 2.

The message always says where (file, line, field), what was expected and what was found, so a
user can open the file at that line and fix it without reading our code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from peo.errors import PeoError


def describe(value: Any) -> str:
    """A short, safe description of a value for an error message (its type, never its whole text)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        if not value.strip():
            return "an empty string"
        return "a string"
    if isinstance(value, int):
        return f"int {value}" if abs(value) < 10**12 else "int"
    if isinstance(value, float):
        return f"float {value!r}"
    if isinstance(value, list):
        return "a list" if value else "an empty list"
    if isinstance(value, dict):
        return "an object" if value else "an empty object"
    return type(value).__name__


class DataError(PeoError):
    """A data file (or one of its rows) is not what its format requires.

    `line` is 1-based (None for file-level problems); `field` is the JSON key at fault (or None).
    """

    def __init__(self, path: str | Path | None, line: int | None = None, field: str | None = None,
                 expected: str = "", got: str | None = None) -> None:
        self.path = None if path is None else str(path)
        self.line = line
        self.field = field
        self.expected = expected
        self.got = got
        super().__init__(self._message())

    def _message(self) -> str:
        where = [p for p in (
            self.path,
            None if self.line is None else f"line {self.line}",
            None if self.field is None else f"field '{self.field}'",
        ) if p]
        what = f"expected {self.expected}" if self.expected else "invalid data"
        if self.got is not None:
            what += f", got {self.got}"
        return f"{', '.join(where)}: {what}" if where else what

    def located(self, path: str | Path | None, line: int | None) -> "DataError":
        """The same problem, with the file and line filled in (row parsers don't know them)."""
        return DataError(path if self.path is None else self.path,
                         line if self.line is None else self.line, self.field, self.expected, self.got)

    @property
    def reason(self) -> str:
        """A line-independent reason, so a summary can count rows dropped for the same cause."""
        field = f"field '{self.field}': " if self.field else ""
        return f"bad row: {field}expected {self.expected}"


class DataSpecError(PeoError, ValueError):
    """A data spec (a profile's `data.*` section, or a command's flags) that cannot be used: the key and what
    it allows."""
