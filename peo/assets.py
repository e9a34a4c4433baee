"""Reading what precompute wrote (see assets/FORMAT.md): tables, adapter folders, the served policy mix."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from peo.adapter_files import ADAPTER_CONFIG
from peo.adapter_mix import AdapterMix
from peo.errors import AssetsError
from peo.layout import AssetLayout
from peo.model_source import load_causal_lm, load_tokenizer, resolve_base_model
from peo.names import ANSWERS_FILE, GRID_FILE, META_FILE
from peo.project_root import project_root
from peo.records import RunMeta

DEFAULT_ASSETS = "assets"  # relative to peo.project_root.project_root()


@dataclass
class Assets:
    root: Path
    meta: dict  # meta.json as read, for the readers that still take it by key (`run_meta` is the typed view)
    grid: pd.DataFrame
    answers: pd.DataFrame
    run_meta: RunMeta = field(init=False)  # meta.json, validated once here (RecordError names a bad field)

    def __post_init__(self) -> None:
        self.run_meta = RunMeta.from_json(self.meta, self.layout.meta)

    @property
    def base_model_spec(self) -> str:
        return self.run_meta.base_model

    @property
    def layout(self) -> AssetLayout:
        return AssetLayout(self.root)

    def adapter(self, name: str) -> Path:
        return self.layout.adapter(name)

    def adapters(self) -> dict[str, Path]:
        """The policy adapters present: each of the run's aspects' (meta.json; help, harm by default) and joint, in
        that order."""
        return {name: self.adapter(name) for name in self.run_meta.aspect_set.adapters
                if (self.adapter(name) / ADAPTER_CONFIG).is_file()}

    def evaluator(self, kind: str) -> Path:
        return self.layout.evaluator(kind)

    @property
    def grid_values(self) -> dict[str, list[float]]:
        return self.run_meta.grid


def load_assets(root: str | Path | None = None) -> Assets:
    layout = AssetLayout(Path(root) if root else project_root() / DEFAULT_ASSETS)
    for part, path in ((META_FILE, layout.meta), (GRID_FILE, layout.grid), (ANSWERS_FILE, layout.answers)):
        if not path.is_file():
            raise AssetsError(f"{layout.root}: missing {part}; run `python -m precompute run` to produce assets")
    meta = json.loads(layout.meta.read_text(encoding="utf-8"))
    grid = pd.read_csv(layout.grid)
    answers = pd.read_parquet(layout.answers)
    return Assets(root=layout.root, meta=meta, grid=grid, answers=answers)


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_policy_mix(assets: Assets, device: str | None = None, dtype: str = "float32", fused: bool = True):
    """(AdapterMix with the aspects' and the joint adapters side by side, tokenizer) on `device`."""
    base = resolve_base_model(assets.base_model_spec)
    tokenizer = load_tokenizer(base)
    model = load_causal_lm(base, dtype).to(device or default_device())
    return AdapterMix(model, assets.adapters(), fused=fused), tokenizer
