"""Which stages are done: each finished stage records its output files with sha256 checksums.

A stage counts as done only if every recorded file still exists with the same checksum, so a file that was
cut short or corrupted after the fact sends the stage round again instead of being trusted, and only if it was
made with the same settings (a hash of the config sections it depends on), so that a changed profile is never
answered with outputs of the old one.
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

    def is_done(self, stage: str, settings: str) -> bool:
        entry = self.stages.get(stage)
        if not entry or entry.get("settings") != settings:
            return False
        for rel, digest in entry["files"].items():
            file = self.root / rel
            if not file.is_file() or sha256(file) != digest:
                return False
        return True

    def record(self, stage: str, outputs: list[Path], seconds: float, settings: str) -> None:
        files = {str(f.resolve().relative_to(self.root.resolve())): sha256(f) for f in files_under(outputs)}
        self.stages[stage] = {"files": files, "seconds": round(seconds, 1), "settings": settings}
        write_json(self.path, self.stages)
