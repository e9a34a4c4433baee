"""Check a data file before training on it: load it leniently and report what would be kept and why not."""

from __future__ import annotations

from pathlib import Path

from peo.data.errors import DataSpecError
from peo.data.loading import LoadSummary
from peo.data.sources import DEFAULT_ASPECT, FORMATS, LOADERS, detect_format


def validate_file(path: str | Path, fmt: str | None = None, skip_bad: bool = True,
                  aspect: str | None = None) -> LoadSummary:
    """Load `path` as `fmt` (sniffed when None) and return its summary.

    With skip_bad=True bad rows are counted; with False the first one raises DataError. PKU files
    are checked for aspect 'harm' (safer_response_id) unless `aspect` says otherwise. File-level
    problems (missing file, gzip cut short) raise DataError; an unknown `fmt` raises ValueError.
    """
    fmt = fmt or detect_format(path)
    if fmt not in FORMATS:
        raise DataSpecError(f"format {fmt!r}; allowed: {', '.join(FORMATS)}")
    asp = aspect or DEFAULT_ASPECT.get(fmt, "harm")
    return LOADERS[fmt].read_file(path, aspect=asp, skip_bad=skip_bad).summary


def format_summary(summary: LoadSummary) -> str:
    """A few human-readable lines: rows read, pairs kept, and each drop reason with its count."""
    lines = [
        f"{summary.path} (format {summary.format}, aspect {summary.aspect})",
        f"  rows read:     {summary.rows}",
        f"  pairs kept:    {summary.kept}" + (f" (of which {summary.derived} derived)" if summary.derived else ""),
        f"  prompts:       {summary.prompts}",
        f"  dropped:       {summary.dropped_total}",
    ]
    for reason, n in sorted(summary.dropped.items(), key=lambda kv: (-kv[1], kv[0])):
        lines.append(f"    {n:>6}  {reason}")
    return "\n".join(lines)
