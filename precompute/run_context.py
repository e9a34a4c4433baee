"""What every stage is handed: the profile, where the assets and the work dir are, the resolved base model."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from peo.config import RunConfig
from peo.layout import AssetLayout
from peo.names import MANIFEST_FILE
from peo.project_root import project_root
from precompute.manifest import Manifest
from precompute.processes import Processes


@dataclass
class RunContext:
    cfg: RunConfig
    out: Path   # the assets folder: what the app serves
    work: Path  # pair files, checkpoints, sweep chunks: never shipped
    base_model: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    procs: Processes = field(default_factory=Processes)  # one process unless launched by accelerate

    def __post_init__(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        self.work.mkdir(parents=True, exist_ok=True)
        self.out_manifest = Manifest(self.layout.manifest, self.out)
        self.work_manifest = Manifest(self.work / MANIFEST_FILE, self.work)

    @property
    def layout(self) -> AssetLayout:
        """Where each asset file lies under `out`."""
        return AssetLayout(self.out)

    def manifest_for(self, in_work_dir: bool) -> Manifest:
        """Where a stage's outputs are recorded (precompute.stages.Stage.in_work_dir)."""
        return self.work_manifest if in_work_dir else self.out_manifest


def resolve_path(path: str, name: str = "") -> Path:
    """A config path: `{name}` becomes the profile's name; relative paths are relative to the repository."""
    path = Path(path.format(name=name))
    return path if path.is_absolute() else project_root() / path
