"""meta.json: how the assets were made (profile, grid, decoding, per-stage times, versions, machine, data)."""

from __future__ import annotations

import importlib.metadata as md
import json
import platform

import torch

from peo.atomic import write_json
from peo.config import config_to_dict
from precompute.pair_files import summary_path
from precompute.run_context import RunContext
from precompute.stage_sweep import DECODER, sweep_settings

VERSIONED = ("torch", "transformers", "peft", "trl", "safetensors", "datasets", "pandas", "gradio")


def versions() -> dict[str, str]:
    found = {}
    for name in VERSIONED:
        try:
            found[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return {"python": platform.python_version(), **found}


def write_meta(ctx: RunContext) -> None:
    """Rewritten after every stage; earlier stages' timings are kept."""
    layout, aspects = ctx.layout, ctx.cfg.aspect_set
    meta_path = layout.meta
    old = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    meta = {
        "profile": ctx.cfg.name,
        "base_model": ctx.cfg.base_model,
        "seed": ctx.cfg.seed,
        "aspects": aspects.to_json(),
        "grid": {**{column: ctx.cfg.sweep.lambdas for column in aspects.lambda_columns},
                 **{f"phi_{aspect}": ctx.cfg.sweep.phi[aspect] for aspect in aspects.names}},
        "generation": {**sweep_settings(ctx.cfg).model_dump(), "greedy": True, "dtype": ctx.cfg.sweep.dtype,
                       "decoder": DECODER},
        "timings_seconds": {**old.get("timings_seconds", {}), **ctx.timings},
        "versions": versions(),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "torch_threads": torch.get_num_threads(),
                    "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"},
        "config": config_to_dict(ctx.cfg),
    }
    summary = summary_path(ctx.work)
    if summary.is_file():
        meta["data"] = json.loads(summary.read_text())
    for kind in aspects.evaluators:
        evaluator = layout.evaluator_meta(kind)
        if evaluator.is_file():
            meta.setdefault("evaluators", {})[kind] = json.loads(evaluator.read_text())
    training = layout.training
    if training.is_file():
        meta["training"] = json.loads(training.read_text())
    write_json(meta_path, meta)
