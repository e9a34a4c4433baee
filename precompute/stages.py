"""The precompute pipeline: prepare-data → train-evaluators → train-aspects → sweep-dev → sweep-test → report.

Each stage (one module each, registered in REGISTRY as a `Stage` record) reads what earlier stages wrote, writes its own
outputs atomically and records them in a manifest; a stage whose recorded outputs are intact and were made with
the same settings from the same earlier outputs is skipped, so a killed run picks up where it stopped and a stage
rerun upstream sends the later ones round again.

Under `accelerate launch --num_processes N` (precompute/processes.py) train-aspects and the sweeps run on every
process; the other stages, the manifests and meta.json are rank 0's alone, the others waiting at a barrier.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from peo.config import RunConfig, config_to_dict
from peo.digest import digest
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

@dataclass(frozen=True)
class Stage:
    """One stage of the pipeline and the facts the runner needs about it."""

    name: str
    run: Callable[[RunContext], list[Path]]
    config: tuple[str, ...]  # the config sections its outputs depend on (its own and every earlier stage's)
    all_processes: bool = False  # runs on every process (DPO data-parallel, sweep chunks split); else rank 0 only
    in_work_dir: bool = False  # its outputs are recorded in the work dir's manifest, not the assets'


_DATA = ("aspects", "seed", "base_model", "data")
_TRAINED = (*_DATA, "evaluator", "lora", "dpo")
REGISTRY: dict[str, Stage] = {stage.name: stage for stage in (
    Stage("prepare-data", prepare_data, _DATA, in_work_dir=True),
    Stage("train-evaluators", train_evaluators, (*_DATA, "evaluator")),
    Stage("train-aspects", train_aspects, _TRAINED, all_processes=True),
    Stage("sweep-dev", sweep_dev, (*_TRAINED, "sweep"), all_processes=True, in_work_dir=True),
    Stage("sweep-test", sweep_test, (*_TRAINED, "sweep"), all_processes=True),
    Stage("report", report, (*_TRAINED, "sweep", "report")),
)}
STAGES = tuple(REGISTRY)


# Config fields added after assets were shipped, whose empty value changes nothing: left out of the hash when
# empty, so the shipped stages stay done (a non-empty value is hashed and reruns what depends on it).
UNHASHED_WHEN_EMPTY = (("data", "extra_pairs"), ("data", "splits", "fractions_per_aspect"),
                       ("evaluator", "reward_models"), ("sweep", "score_batch_size"), ("report", "votes_dir"))


def hashed_view(full: dict) -> dict:
    """The config as stage hashes read it: the shape the shipped runs were hashed in. Aspect-keyed sections are
    flattened as they were written before aspects were data (data.<aspect>, sweep.phi_<aspect>), the default
    aspects are left out, and the fields of UNHASHED_WHEN_EMPTY are left out when empty."""
    full = {**full, "data": dict(full["data"]), "sweep": dict(full["sweep"])}
    full["data"].update(full["data"].pop("sources"))
    full["sweep"].update({f"phi_{aspect}": values for aspect, values in full["sweep"].pop("phi").items()})
    if full["aspects"] == RunConfig().model_dump()["aspects"]:
        full.pop("aspects")
    for *parents, key in UNHASHED_WHEN_EMPTY:
        holder = full
        for name in parents:
            holder = holder.get(name) or {}
        if not holder.get(key):
            holder.pop(key, None)
    return full


def stage_settings(cfg: RunConfig, stage: str) -> str:
    """A hash of the config sections `stage` depends on: a stage made with other settings is not done."""
    full = hashed_view(config_to_dict(cfg))
    picked = {key: full[key] for key in REGISTRY[stage].config if key in full}
    return digest(picked)[:16]


def upstream_digest(ctx: RunContext, stage: str) -> str:
    """A digest of every earlier stage's recorded outputs: what `stage` is made from."""
    earlier = STAGES[:STAGES.index(stage)]
    return digest({name: ctx.manifest_for(REGISTRY[name].in_work_dir).files(name) for name in earlier})[:16]


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
    for stage in [REGISTRY[only]] if only else REGISTRY.values():
        name, manifest = stage.name, ctx.manifest_for(stage.in_work_dir)
        settings = stage_settings(cfg, name)
        upstream = procs.from_main(lambda: upstream_digest(ctx, name))
        if procs.from_main(lambda: not force and manifest.is_done(name, settings, upstream)):
            log.info("stage %s: outputs present and valid, skipped", name)
            continue
        runs_here = procs.is_main or stage.all_processes
        log.info("stage %s: %s", name, "starting" if runs_here else "runs on rank 0; waiting")
        start = time.time()
        outputs = stage.run(ctx) if runs_here else []
        procs.wait()  # every process's share is written before rank 0 records the stage
        seconds = time.time() - start
        ctx.timings[name] = round(seconds, 1)
        if procs.is_main:
            manifest.record(name, outputs, seconds, settings, upstream)
            write_meta(ctx)
        procs.wait()  # the next stage's skip decision reads what rank 0 just recorded
        log.info("stage %s: done in %.1f s", name, seconds)
    return ctx
