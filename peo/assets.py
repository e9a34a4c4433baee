"""Reading what precompute wrote (see assets/FORMAT.md): tables, adapter folders, the served policy mix."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from peo.adapter_files import ADAPTER_CONFIG
from peo.adapter_mix import AdapterMix
from peo.errors import PeoError
from peo.model_source import load_causal_lm, load_tokenizer, resolve_base_model
from peo.names import ADAPTERS, ADAPTERS_DIR, ANSWERS_FILE, EVALUATORS_DIR, GRID_FILE, META_FILE
from peo.project_root import project_root

DEFAULT_ASSETS = "assets"  # relative to peo.project_root.project_root()


class AssetsError(PeoError, RuntimeError):
    """The assets folder is missing a part or was not produced by precompute."""


@dataclass
class Assets:
    root: Path
    meta: dict
    grid: pd.DataFrame
    answers: pd.DataFrame

    @property
    def base_model_spec(self) -> str:
        return self.meta["base_model"]

    def adapter(self, name: str) -> Path:
        return self.root / ADAPTERS_DIR / name

    def adapters(self) -> dict[str, Path]:
        """The policy adapters present (help, harm, joint), in that order."""
        return {name: self.adapter(name) for name in ADAPTERS if (self.adapter(name) / ADAPTER_CONFIG).is_file()}

    def evaluator(self, kind: str) -> Path:
        return self.root / EVALUATORS_DIR / kind

    @property
    def grid_values(self) -> dict[str, list[float]]:
        return self.meta["grid"]


def load_assets(root: str | Path | None = None) -> Assets:
    root = Path(root) if root else project_root() / DEFAULT_ASSETS
    for part in (META_FILE, GRID_FILE, ANSWERS_FILE):
        if not (root / part).is_file():
            raise AssetsError(f"{root}: missing {part}; run `python -m precompute run` to produce assets")
    meta = json.loads((root / META_FILE).read_text(encoding="utf-8"))
    grid = pd.read_csv(root / GRID_FILE)
    answers = pd.read_parquet(root / ANSWERS_FILE)
    return Assets(root=root, meta=meta, grid=grid, answers=answers)


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_policy_mix(assets: Assets, device: str | None = None, dtype: str = "float32", fused: bool = True):
    """(AdapterMix with help, harm and joint adapters side by side, tokenizer) on `device`."""
    base = resolve_base_model(assets.base_model_spec)
    tokenizer = load_tokenizer(base)
    model = load_causal_lm(base, dtype).to(device or default_device())
    return AdapterMix(model, assets.adapters(), fused=fused), tokenizer
