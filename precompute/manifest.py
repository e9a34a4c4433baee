"""Which stages are done: each finished stage records its output files with sha256 checksums.

A stage counts as done only if every recorded file still exists with the same checksum, so a file that was
cut short or corrupted after the fact sends the stage round again instead of being trusted, and only if it was
made with the same settings (a hash of the config sections it depends on), so that a changed profile is never
answered with outputs of the old one, and only if the earlier stages' outputs are the ones it was made from
(`upstream`: a digest of their recorded checksums), so that a stage rerun upstream with other outputs (`--force`,
new data) sends every later stage round again. Entries recorded before `upstream` existed lack it and are
judged by their files and settings alone.
"""

from __future__ import annotations

import json
from pathlib import Path

from peo.atomic import sha256, write_json


def files_under(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        files.extend(sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path])
    return files


class Manifest:
    def __init__(self, path: Path, root: Path):
        self.path = path
        self.root = root  # recorded paths are relative to this
        self.stages: dict[str, dict] = json.loads(path.read_text()) if path.is_file() else {}

    def is_done(self, stage: str, settings: str, upstream: str | None = None) -> bool:
        entry = self.stages.get(stage)
        if not entry or entry.get("settings") != settings:
            return False
        if upstream is not None and entry.get("upstream", upstream) != upstream:
            return False
        for rel, digest in entry["files"].items():
            file = self.root / rel
            if not file.is_file() or sha256(file) != digest:
                return False
        return True

    def files(self, stage: str) -> dict[str, str] | None:
        """The recorded checksums of `stage`'s outputs (None when it was never recorded here)."""
        return (self.stages.get(stage) or {}).get("files")

    def record(self, stage: str, outputs: list[Path], seconds: float, settings: str,
               upstream: str | None = None) -> None:
        files = {str(f.resolve().relative_to(self.root.resolve())): sha256(f) for f in files_under(outputs)}
        self.stages[stage] = {"files": files, "seconds": round(seconds, 1), "settings": settings}
        if upstream is not None:
            self.stages[stage]["upstream"] = upstream
        write_json(self.path, self.stages)
