"""Line-by-line reading of `.jsonl` and `.jsonl.gz`, turning every way a file can be broken into DataError.

Lines are read as bytes and decoded here, so non-UTF-8 bytes are reported with their line
number instead of surfacing as a UnicodeDecodeError from deep inside the gzip reader.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from peo.data.errors import DataError, describe

GZIP_MAGIC = b"\x1f\x8b"


def _open(path: Path) -> BinaryIO:
    """Open plain or gzip by content (magic bytes), not by name, so a misnamed file still reads."""
    try:
        with open(path, "rb") as raw:
            magic = raw.read(2)
    except FileNotFoundError:
        raise DataError(path, expected="an existing file", got="no such file") from None
    except IsADirectoryError:
        raise DataError(path, expected="a file", got="a directory") from None
    except OSError as exc:
        raise DataError(path, expected="a readable file", got=f"{type(exc).__name__}: {exc.strerror or exc}") from None
    if magic == GZIP_MAGIC:
        return gzip.open(path, "rb")  # type: ignore[return-value]
    if path.name.endswith(".gz"):
        raise DataError(path, expected="a gzip file (name ends in .gz)", got="no gzip header")
    return open(path, "rb")


def parse_line(raw: bytes, path: str | Path, line_no: int) -> dict[str, Any] | None:
    """One line's JSON object; None for a blank line; DataError for anything else."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(path, line_no, expected="UTF-8 text",
                        got=f"byte 0x{raw[exc.start]:02x} at column {exc.start + 1}") from None
    if text.startswith("\ufeff") and line_no == 1:
        text = text[1:]  # a UTF-8 byte-order mark some editors write
    if not text.strip():
        return None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(path, line_no, expected="valid JSON", got=f"{exc.msg} at column {exc.colno}") from None
    except (ValueError, RecursionError) as exc:  # e.g. ints over Python's digit limit, absurd nesting
        raise DataError(path, line_no, expected="valid JSON", got=type(exc).__name__) from None
    if not isinstance(obj, dict):
        raise DataError(path, line_no, expected="a JSON object", got=describe(obj))
    return obj


def iter_jsonl(path: str | Path, *, on_error: Callable[[DataError], None] | None = None
               ) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (1-based line number, object) for each non-blank line.

    A bad line raises DataError, unless `on_error` is given: then it is passed the error and the
    line is skipped. File-level problems (missing file, gzip cut short or corrupt) always raise.
    """
    path = Path(path)
    last_good = 0
    line_no = 0
    with _open(path) as stream:
        lines = iter(stream)
        while True:
            try:
                raw = next(lines)
            except StopIteration:
                return
            except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as exc:
                detail = "the stream is cut short" if isinstance(exc, EOFError) else f"{type(exc).__name__}: {exc}"
                raise DataError(path, expected="a complete gzip file",
                                got=f"{detail} after line {last_good} (the last good line)") from None
            line_no += 1
            try:
                obj = parse_line(raw, path, line_no)
            except DataError as err:
                if on_error is None:
                    raise
                on_error(err)
                continue
            if obj is None:
                continue
            last_good = line_no
            yield line_no, obj


def first_record(path: str | Path) -> tuple[int, dict[str, Any]]:
    """The first record of a file (for format sniffing); DataError if there is none."""
    for line_no, obj in iter_jsonl(path):
        return line_no, obj
    raise DataError(path, expected="at least one JSON record", got="an empty file")
