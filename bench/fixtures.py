"""The assets, prompts, points and generation settings the benchmarks run on."""

from __future__ import annotations

import json
import logging
import shutil
from contextlib import contextmanager
from pathlib import Path

import torch

from bench.common import REPO
from peo.assets import Assets, load_assets
from peo.coefficients import coefficients
from peo.generation import GenerationSettings
from peo.model_source import cache_dir, resolve_base_model

log = logging.getLogger("bench")


def tiny_assets() -> Path:
    """Assets of the tiny profile (random 2-layer model), built once by the real pipeline into the cache."""
    target = cache_dir() / "bench" / "tiny-assets"
    if (target / "assets" / "meta.json").is_file() and (target / "assets" / "answers.parquet").is_file():
        return target / "assets"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    log.info("building tiny assets in %s (the tiny precompute profile, about a minute)", target)
    from peo.config import load_config
    from precompute.stages import run_pipeline

    data_root = _write_tiny_data(target / "data")
    cfg = load_config(REPO / "precompute" / "configs" / "tiny.yaml",
                      {"out": str(target / "assets"), "work_dir": str(target / "work"), "data.root": str(data_root)})
    run_pipeline(cfg)
    return target / "assets"


def _write_tiny_data(root: Path) -> Path:
    """The small generated data set the tests use (tests/conftest.py::write_tiny_data)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_peo_tests_conftest", REPO / "tests" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.write_tiny_data(root)


def open_assets(path: str | None, quick: bool) -> Assets:
    if path is None and quick:
        return load_assets(tiny_assets())
    return load_assets(path)


def base_model(assets: Assets) -> str:
    return resolve_base_model(assets.base_model_spec)


def dev_prompts(assets: Assets, n: int) -> list[list[dict]]:
    """The first n distinct development prompts (chat messages) of the sweep, the run's aspects' prompts alternating
    (help and harm with the default aspects)."""
    frame = assets.answers.drop_duplicates("prompt_id")
    by_kind = [list(frame[frame["prompt_kind"] == kind]["prompt"]) for kind in assets.run_meta.aspect_set.names]
    mixed = [p for pair in zip(*by_kind) for p in pair] + [p for group in by_kind for p in group]
    seen: list[str] = []
    for p in mixed:
        if p not in seen:
            seen.append(p)
    if not seen:
        raise RuntimeError(f"{assets.root}: answers.parquet has no prompts")
    prompts = [json.loads(p) for p in seen]
    return [prompts[i % len(prompts)] for i in range(n)]  # repeat when the assets have fewer


def sweep_points(n: int) -> list[tuple[float, float]]:
    """n distinct (c_help, c_harm) of the cpu profile's grid, λ varying fastest."""
    lambdas = [round(0.1 * i, 1) for i in range(11)]
    out: list[tuple[float, float]] = []
    for phi_help in (0.0, 0.5, 1.0):
        for phi_harm in (0.0, 0.5, 1.0):
            for lam in lambdas:
                c = coefficients((lam,), (phi_help, phi_harm))
                if c not in out:
                    out.append(c)
    if n > len(out):
        raise ValueError(f"at most {len(out)} distinct grid points, asked for {n}")
    return out[:n]


class FixedLength(GenerationSettings):
    """Greedy decoding that always makes exactly max_new_tokens tokens (EOS suppressed until then), so every
    variant of a comparison generates the same number of tokens."""

    def generate_kwargs(self) -> dict:
        return {**super().generate_kwargs(), "min_new_tokens": self.max_new_tokens}


def fixed(tokens: int) -> FixedLength:
    return FixedLength(max_new_tokens=tokens, temperature=0.0)


class PlainModel:
    """A plain HF model dressed as an AdapterMix for peo.generation (no adapters: row scales are ignored)."""

    def __init__(self, model: torch.nn.Module):
        self.model = model.eval()

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @contextmanager
    def row_scales(self, rows):
        yield

    def set_row_scales(self, rows) -> None:
        """Scales are ignored: the plain model has no adapters (what peo.running_batch sets per step)."""
