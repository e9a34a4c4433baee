"""The precompute pipeline: prepare-data → train-evaluators → train-aspects → sweep-dev → sweep-test → report.

Each stage (one module each, registered in STAGE_FUNCTIONS) reads what earlier stages wrote, writes its own
outputs atomically and records them in a manifest; a stage whose recorded outputs are intact and were made with
the same settings is skipped, so a killed run picks up where it stopped.

Under `accelerate launch --num_processes N` (precompute/processes.py) train-aspects and the sweeps run on every
process; the other stages, the manifests and meta.json are rank 0's alone, the others waiting at a barrier.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import torch

from peo.config import RunConfig, config_to_dict
from peo.model_source import resolve_base_model
from precompute.processes import Processes
from precompute.run_context import RunContext, resolve_path
from precompute.run_meta import write_meta
from precompute.stage_prepare_data import prepare_data
from precompute.stage_report import report
from precompute.stage_sweep import sweep_dev, sweep_test
from precompute.stage_train_aspects import train_aspects
from precompute.stage_train_evaluators import train_evaluators

log = logging.getLogger("precompute")

STAGE_FUNCTIONS: dict[str, Callable[[RunContext], list[Path]]] = {
    "prepare-data": prepare_data,
    "train-evaluators": train_evaluators,
    "train-aspects": train_aspects,
    "sweep-dev": sweep_dev,
    "sweep-test": sweep_test,
    "report": report,
}
STAGES = tuple(STAGE_FUNCTIONS)
# The stages that use every process (DPO data-parallel, sweep chunks split); the others run on rank 0 only.
ALL_PROCESS_STAGES = ("train-aspects", "sweep-dev", "sweep-test")

# The config sections each stage's outputs depend on (its own and every earlier stage's).
STAGE_CONFIG = {
    "prepare-data": ("seed", "base_model", "data"),
    "train-evaluators": ("seed", "base_model", "data", "evaluator"),
    "train-aspects": ("seed", "base_model", "data", "evaluator", "lora", "dpo"),
    "sweep-dev": ("seed", "base_model", "data", "evaluator", "lora", "dpo", "sweep"),
    "sweep-test": ("seed", "base_model", "data", "evaluator", "lora", "dpo", "sweep"),
    "report": ("seed", "base_model", "data", "evaluator", "lora", "dpo", "sweep", "report"),
}


# Config fields added after assets were shipped, whose empty value changes nothing: left out of the hash when
# empty, so the shipped stages stay done (a non-empty value is hashed and reruns what depends on it).
UNHASHED_WHEN_EMPTY = (("data", "extra_pairs"),)


def stage_settings(cfg: RunConfig, stage: str) -> str:
    """A hash of the config sections `stage` depends on: a stage made with other settings is not done."""
    full = config_to_dict(cfg)
    for section, key in UNHASHED_WHEN_EMPTY:  # added after runs were shipped: empty means what absent meant
        if not full[section].get(key):
            full[section].pop(key, None)
    picked = {key: full[key] for key in STAGE_CONFIG[stage]}
    return hashlib.sha256(json.dumps(picked, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_pipeline(cfg: RunConfig, out: Path | None = None, only: str | None = None, force: bool = False) -> RunContext:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    procs = Processes.start()
    ctx = RunContext(cfg=cfg, out=out or resolve_path(cfg.out, cfg.name), work=resolve_path(cfg.work_dir, cfg.name),
                     procs=procs)
    if procs.count > 1:
        log.info("process %d of %d", procs.index + 1, procs.count)
    ctx.base_model = procs.from_main(lambda: resolve_base_model(cfg.base_model))  # a GGUF converted once, by rank 0
    for stage in [only] if only else STAGES:
        manifest = ctx.manifest_for(stage)
        settings = stage_settings(cfg, stage)
        if procs.from_main(lambda: not force and manifest.is_done(stage, settings)):
            log.info("stage %s: outputs present and valid, skipped", stage)
            continue
        runs_here = procs.is_main or stage in ALL_PROCESS_STAGES
        log.info("stage %s: %s", stage, "starting" if runs_here else "runs on rank 0; waiting")
        start = time.time()
        outputs = STAGE_FUNCTIONS[stage](ctx) if runs_here else []
        procs.wait()  # every process's share is written before rank 0 records the stage
        seconds = time.time() - start
        ctx.timings[stage] = round(seconds, 1)
        if procs.is_main:
            manifest.record(stage, outputs, seconds, settings)
            write_meta(ctx)
        procs.wait()  # the next stage's skip decision reads what rank 0 just recorded
        log.info("stage %s: done in %.1f s", stage, seconds)
    return ctx
