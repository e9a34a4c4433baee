"""Stages sweep-dev and sweep-test: generate every planned model's answers, score them, check them for loops.

sweep-dev runs every grid model on the dev prompts (what the fronts are chosen from); sweep-test runs the
models any reported figure needs (peo.sweep_plan.test_models) on the test prompts and writes answers.parquet
and grid.csv. Work is cut into chunks of whole batches; a finished chunk is saved, so a killed sweep resumes.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from peo.adapter_mix import AdapterMix
from peo.answer_checks import answer_signals
from peo.assets import default_device
from peo.atomic import sha256, write_text, write_with
from peo.config import RunConfig
from peo.generation import GenerationSettings, Row, generate_rows
from peo.grid_table import grid_table
from peo.model_source import load_causal_lm, load_tokenizer
from peo.names import ADAPTERS, ANSWERS_FILE, ASPECTS, EVALUATOR_KINDS, GRID_FILE, JOINT
from peo.scoring import Evaluators
from peo.sweep_plan import Scales, sweep_models, test_models
from precompute.manifest import files_under
from precompute.pair_files import data_path, read_pairs
from precompute.run_context import RunContext

log = logging.getLogger("precompute")


def sweep_prompts(ctx: RunContext, split: str) -> list[dict]:
    """The dev prompts (`dev` pairs) or the test prompts (`test_prompts`, one pair per prompt of the test split)."""
    name = "dev" if split == "dev" else "test_prompts"
    return [{"prompt_id": pair.prompt_id, "prompt_kind": aspect, "messages": pair.prompt_messages()}
            for aspect in ASPECTS for pair in read_pairs(data_path(ctx.work, aspect, name))]


def sweep_settings(cfg: RunConfig) -> GenerationSettings:
    """Greedy decoding with the profile's repetition controls: the sweep's and the app's default."""
    return GenerationSettings(max_new_tokens=cfg.sweep.max_new_tokens, temperature=0.0, seed=cfg.seed,
                              repetition_penalty=cfg.sweep.repetition_penalty,
                              no_repeat_ngram_size=cfg.sweep.no_repeat_ngram_size)


def reuse_parts_only_if_same_inputs(ctx: RunContext, parts_dir: Path, jobs: list,
                                    settings: GenerationSettings) -> None:
    """Saved chunks are reused only for the same work: same rows, settings, adapters and evaluators.

    Otherwise (a changed grid or max_new_tokens, retrained adapters) they are deleted, so a rerun or `--force`
    never mixes answers of another configuration into this one.
    """
    models = [ctx.out / "adapters" / n for n in ADAPTERS] + [ctx.out / "evaluators" / k for k in EVALUATOR_KINDS]
    inputs = {
        "jobs": [[mid, scales, p["messages"]] for mid, scales, p in jobs],
        "settings": asdict(settings),
        "batch_size": ctx.cfg.sweep.batch_size,
        "dtype": ctx.cfg.sweep.dtype,
        "base_model": ctx.cfg.base_model,
        "files": {str(f.relative_to(ctx.out)): sha256(f) for f in files_under([m for m in models if m.exists()])},
    }
    key = hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()
    key_file = parts_dir / "inputs.sha256"
    if key_file.is_file() and key_file.read_text().strip() == key:
        return
    stale = sorted(parts_dir.glob("part-*.parquet"))
    if stale:
        log.info("sweep: %d saved chunk(s) were made from other inputs; discarded", len(stale))
    for part in stale:
        part.unlink()
    write_text(key_file, key + "\n")


def run_sweep(ctx: RunContext, models: dict[str, Scales], prompts: list[dict], parts_dir: Path,
              split: str) -> pd.DataFrame:
    """Every model × every prompt, generated in mixed batches (per-row adapter scales), scored and checked."""
    cfg = ctx.cfg
    tokenizer = load_tokenizer(ctx.base_model)
    jobs = [(mid, scales, p) for mid, scales in models.items() for p in prompts]
    chunk_rows = cfg.sweep.batch_size * 4
    chunks = [jobs[i:i + chunk_rows] for i in range(0, len(jobs), chunk_rows)]
    parts_dir.mkdir(parents=True, exist_ok=True)
    settings = sweep_settings(cfg)
    reuse_parts_only_if_same_inputs(ctx, parts_dir, jobs, settings)
    todo = [i for i in range(len(chunks)) if not (parts_dir / f"part-{i:04d}.parquet").is_file()]
    log.info("sweep-%s: %d models × %d prompts = %d rows, %d chunks (%d left)", split, len(models), len(prompts),
             len(jobs), len(chunks), len(todo))
    if todo:
        device = default_device()
        model = load_causal_lm(ctx.base_model, cfg.sweep.dtype).to(device)
        mix = AdapterMix(model, {name: ctx.out / "adapters" / name for name in ADAPTERS})
        evaluators = Evaluators.load(ctx.base_model, ctx.out, device=device)
        with tqdm(total=len(jobs), desc=f"sweep-{split} rows", unit="row",
                  initial=sum(len(chunks[i]) for i in range(len(chunks)) if i not in todo)) as bar:
            for i in todo:
                chunk = chunks[i]
                rows = [Row(messages=p["messages"], scales=scales) for _, scales, p in chunk]
                answers = generate_rows(mix, tokenizer, rows, settings, cfg.sweep.batch_size, bar.update)
                rewards, costs = evaluators.score([r.messages for r in rows], answers)
                frame = pd.DataFrame({
                    "model_id": [mid for mid, _, _ in chunk],
                    "prompt_id": [p["prompt_id"] for _, _, p in chunk],
                    "prompt_kind": [p["prompt_kind"] for _, _, p in chunk],
                    "prompt": [json.dumps(p["messages"], ensure_ascii=False) for _, _, p in chunk],
                    "answer": answers,
                    "reward": rewards,
                    "cost": costs,
                })
                write_with(parts_dir / f"part-{i:04d}.parquet", lambda tmp, f=frame: f.to_parquet(tmp, index=False))
    answers = pd.concat([pd.read_parquet(parts_dir / f"part-{i:04d}.parquet") for i in range(len(chunks))],
                        ignore_index=True)
    answers.insert(1, "c_help", [models[m].get("help") if m != JOINT else None for m in answers["model_id"]])
    answers.insert(2, "c_harm", [models[m].get("harm") if m != JOINT else None for m in answers["model_id"]])
    answers.insert(6, "split", split)
    signals = pd.DataFrame([answer_signals(a) for a in answers["answer"]])
    return pd.concat([answers, signals], axis=1)


def dev_answers_path(ctx: RunContext) -> Path:
    return ctx.work / "sweep-dev" / ANSWERS_FILE


def sweep_dev(ctx: RunContext) -> list[Path]:
    """Every grid model on the dev prompts: what the front is chosen from."""
    _, models = sweep_models(ctx.cfg.sweep)
    answers = run_sweep(ctx, models, sweep_prompts(ctx, "dev"), ctx.work / "sweep-dev", "dev")
    path = dev_answers_path(ctx)
    write_with(path, lambda tmp: answers.to_parquet(tmp, index=False))
    return [path]


def sweep_test(ctx: RunContext) -> list[Path]:
    """The models that any reported figure needs, on the test prompts; then answers.parquet and grid.csv."""
    max_loop = ctx.cfg.sweep.max_loop_share
    grid_rows, models = sweep_models(ctx.cfg.sweep)
    dev = pd.read_parquet(dev_answers_path(ctx))
    chosen = test_models(grid_table(grid_rows, dev, max_loop), models, max_loop)
    test = run_sweep(ctx, chosen, sweep_prompts(ctx, "test"), ctx.work / "sweep-test", "test")
    answers = pd.concat([dev, test], ignore_index=True)
    grid = grid_table(grid_rows, answers, max_loop)
    answers_path, grid_path = ctx.out / ANSWERS_FILE, ctx.out / GRID_FILE
    write_with(answers_path, lambda tmp: answers.to_parquet(tmp, index=False))
    write_with(grid_path, lambda tmp: grid.to_csv(tmp, index=False))
    return [answers_path, grid_path]
