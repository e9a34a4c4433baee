"""Stages sweep-dev and sweep-test: generate every planned model's answers, score them, check them for loops.

sweep-dev runs every grid model on the dev prompts (what the fronts are chosen from); sweep-test runs the
models any reported figure needs (peo.sweep_plan.test_models) on the test prompts and writes answers.parquet
and grid.csv. Work is cut into chunks of whole batches; a finished chunk is saved with a key per answer, so a
killed sweep resumes and a grown grid (new λ/ϕ, ExPO α) generates only what is new.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from peo.adapter_mix import AdapterMix
from peo.answer_checks import answer_signals
from peo.aspects import Aspects
from peo.assets import default_device
from peo.atomic import sha256, write_with
from peo.config import RunConfig
from peo.digest import digest
from peo.evasion import last_user_message
from peo.generation import GenerationSettings, Row, generate_rows_counted
from peo.grid_table import grid_table, with_evasion
from peo.model_source import load_causal_lm, load_tokenizer
from peo.names import ANSWERS_FILE, GRID_FILE, MANIFEST_FILE
from peo.scoring import Evaluators
from peo.sweep_plan import Scales, is_joint_model, sweep_models, test_models
from precompute.manifest import Manifest, files_under
from precompute.pair_files import data_path, read_pairs
from precompute.run_context import RunContext
from precompute.stage_train_aspects import SETTINGS_FILE

log = logging.getLogger("precompute")
# which generation loop made an answer: transformers' `generate` over fixed batches made the answers before it
# (their keys lack this entry), peo.running_batch the ones with it; answers of one are not reused as the other's
DECODER = "running-batch"


def generated_columns(aspects: Aspects) -> tuple[str, ...]:
    """What a sweep generates and scores per answer (saved parts and reused answers alike), one score per
    evaluator; answers.parquet adds the coefficients, the split and the per-answer checks."""
    return ("model_id", "prompt_id", "prompt_kind", "prompt", "answer", "new_tokens", *aspects.evaluators)


def sweep_prompts(ctx: RunContext, split: str) -> list[dict]:
    """The dev prompts (`dev` pairs) or the test prompts (`test_prompts`, one pair per prompt of the test split)
    of every aspect, in the aspects' order; a prompt's kind is the aspect whose data it comes from."""
    name = "dev" if split == "dev" else "test_prompts"
    return [{"prompt_id": pair.prompt_id, "prompt_kind": aspect, "messages": pair.prompt_messages()}
            for aspect in ctx.cfg.aspect_set.names for pair in read_pairs(data_path(ctx.work, aspect, name))]


def sweep_settings(cfg: RunConfig) -> GenerationSettings:
    """Greedy decoding with the profile's repetition controls: the sweep's and the app's default."""
    return GenerationSettings(max_new_tokens=cfg.sweep.max_new_tokens, temperature=0.0, seed=cfg.seed,
                              repetition_penalty=cfg.sweep.repetition_penalty,
                              no_repeat_ngram_size=cfg.sweep.no_repeat_ngram_size)


def sweep_fingerprint(ctx: RunContext, settings: GenerationSettings) -> str:
    """What every answer of this sweep depends on besides its model's scales and its prompt: decoding, batch
    size, dtype, base model, and the adapter and evaluator files (by checksum). With the default two aspects
    these are the inputs the fingerprint always had, so answers made before aspects were data are reused."""
    aspects = ctx.cfg.aspect_set
    models = ([ctx.out / "adapters" / n for n in aspects.adapters]
              + [ctx.out / "evaluators" / k for k in aspects.evaluators])
    inputs = {
        "decoder": DECODER,
        "settings": settings.model_dump(),
        "batch_size": ctx.cfg.sweep.batch_size,
        **({"score_batch_size": ctx.cfg.sweep.score_batch_size} if ctx.cfg.sweep.score_batch_size else {}),
        "dtype": ctx.cfg.sweep.dtype,
        "base_model": ctx.cfg.base_model,
        # an adapter's training record (settings.json, added after answers were first keyed) is left out: it
        # says how the weights were made, and the weights' own checksum is here already
        "files": {str(f.relative_to(ctx.out)): sha256(f) for f in files_under([m for m in models if m.exists()])
                  if f.name != SETTINGS_FILE},
    }
    return digest(inputs)


def row_key(fingerprint: str, scales: Scales, messages: list[dict]) -> str:
    """One answer's identity: the same key means the same model, prompt and inputs, so the answer can be reused."""
    return digest([fingerprint, sorted(scales.items()), messages], ensure_ascii=False)[:24]


def saved_rows(parts_dir: Path) -> pd.DataFrame:
    """Every answer saved by earlier runs in this folder (parts of other inputs too: their keys never match)."""
    parts = sorted(parts_dir.glob("part-*.parquet"))
    frames = [pd.read_parquet(part) for part in parts]
    frames = [f for f in frames if {"row_key", "new_tokens"} <= set(f.columns)]  # older layouts are not reused
    return pd.concat(frames, ignore_index=True).drop_duplicates("row_key") if frames else pd.DataFrame()


def answers_from_out(ctx: RunContext, split: str, fingerprint: str, models: dict[str, Scales]) -> pd.DataFrame:
    """The out folder's answers of `split` that this sweep would make itself: those whose recorded `row_key`
    equals the key this run computes (same model, prompt, decoding, decoder, adapter and evaluator files).

    The work folder is not kept between machines; the assets are. The key is the answer's own record of its
    inputs: meta.json is rewritten by every stage, so it says what the latest stage ran with, not what
    answers.parquet was made with (a re-run with longer answers once reused the old short ones that way).
    Answers without a recorded key (made before keys were kept) are generated again.
    """
    manifest = Manifest(ctx.out / MANIFEST_FILE, ctx.out)
    answers_file = ctx.out / ANSWERS_FILE
    if not answers_file.is_file():
        return pd.DataFrame()
    recorded = manifest.stages.get("sweep-test", {}).get("files", {})
    if recorded.get(ANSWERS_FILE) != sha256(answers_file):  # not the file a sweep wrote
        return pd.DataFrame()
    old = pd.read_parquet(answers_file)
    columns = [*generated_columns(ctx.cfg.aspect_set), "row_key"]
    if not set(columns) <= set(old.columns):  # made before keys were kept, or scored by other evaluators
        return pd.DataFrame()
    old = old[(old["split"] == split) & old["model_id"].isin(list(models))]
    keys = [row_key(fingerprint, models[m], json.loads(p)) for m, p in zip(old["model_id"], old["prompt"])]
    old = old[old["row_key"].to_numpy() == pd.Series(keys, dtype=object).to_numpy()]
    return old[columns].reset_index(drop=True)


@dataclass(frozen=True)
class Job:
    """One row of a sweep: a model (its id and adapter scales) on a prompt, under the key its answer is saved by."""

    model_id: str
    scales: Scales
    prompt: dict
    row_key: str


def plan_jobs(models: dict[str, Scales], prompts: list[dict], fingerprint: str) -> list[Job]:
    """Every model × every prompt, model-major: the order of the sweep's answers."""
    return [Job(mid, scales, p, row_key(fingerprint, scales, p["messages"])) for mid, scales in models.items()
            for p in prompts]


def done_rows(ctx: RunContext, jobs: list[Job], models: dict[str, Scales], parts_dir: Path, split: str,
              fingerprint: str) -> pd.DataFrame:
    """The answers already saved in `parts_dir`; when none is this sweep's, rank 0 first seeds a part with the
    assets' answers of the same row_keys (the work folder is not kept between machines, the assets are).

    Every process gets the same frame: under N processes all wait for rank 0's seed before listing the parts.
    """
    procs = ctx.procs
    done = saved_rows(parts_dir) if procs.is_main else pd.DataFrame()
    needed = {job.row_key for job in jobs}
    # nothing here for this sweep: the assets may hold its answers (rank 0 alone looks and saves them)
    if procs.is_main and not set(done.get("row_key", [])) & needed:
        seeded = answers_from_out(ctx, split, fingerprint, models)
        seeded = seeded[seeded["row_key"].isin(needed)] if len(seeded) else seeded
        if len(seeded):
            n = len(list(parts_dir.glob("part-*.parquet")))
            write_with(parts_dir / f"part-{n:04d}.parquet", lambda tmp: seeded.to_parquet(tmp, index=False))
            log.info("sweep-%s: reusing %d answers from %s (same adapters, evaluators and decoding)", split,
                     len(seeded), ctx.out / ANSWERS_FILE)
            done = saved_rows(parts_dir)
    if procs.count > 1:
        procs.wait()  # rank 0's reused answers are saved before every process lists what is left
        done = saved_rows(parts_dir)
    return done


def generate_chunk(mix: AdapterMix, tokenizer: Any, evaluators: Evaluators, chunk: list[Job],
                   settings: GenerationSettings, batch_size: int, progress: Callable[[int], object]) -> pd.DataFrame:
    """One chunk's answers, generated in mixed batches (per-row adapter scales) and scored by every evaluator: a
    part file's rows (generated_columns, then row_key)."""
    rows = [Row(messages=job.prompt["messages"], scales=job.scales) for job in chunk]
    counted = generate_rows_counted(mix, tokenizer, rows, settings, batch_size, progress)
    answers = [text for text, _ in counted]
    scores = evaluators.score([r.messages for r in rows], answers)
    return pd.DataFrame({
        "model_id": [job.model_id for job in chunk],
        "prompt_id": [job.prompt["prompt_id"] for job in chunk],
        "prompt_kind": [job.prompt["prompt_kind"] for job in chunk],
        "prompt": [json.dumps(job.prompt["messages"], ensure_ascii=False) for job in chunk],
        "answer": answers,
        "new_tokens": [n for _, n in counted],
        **scores,
        "row_key": [job.row_key for job in chunk],
    })


def generate_share(ctx: RunContext, mine: list[tuple[int, list[Job]]], first: int, parts_dir: Path, split: str,
                   settings: GenerationSettings, initial: int) -> None:
    """This process's chunks, each saved as part-{first + its global number}: the model and evaluators are
    loaded once, and only by a process that has chunks to make."""
    if not mine:
        return
    cfg = ctx.cfg
    tokenizer = load_tokenizer(ctx.base_model)
    device = ctx.procs.device(default_device())
    model = load_causal_lm(ctx.base_model, cfg.sweep.dtype).to(device)
    aspects = cfg.aspect_set
    mix = AdapterMix(model, {name: ctx.out / "adapters" / name for name in aspects.adapters})
    evaluators = Evaluators.load(ctx.base_model, ctx.out, aspects, device=device,
                                 batch_size=cfg.sweep.score_batch_size)
    total = initial + sum(len(chunk) for _, chunk in mine)
    with tqdm(total=total, desc=f"sweep-{split} rows", unit="row", initial=initial) as bar:
        for i, chunk in mine:
            frame = generate_chunk(mix, tokenizer, evaluators, chunk, settings, cfg.sweep.batch_size, bar.update)
            write_with(parts_dir / f"part-{first + i:04d}.parquet",
                       lambda tmp, f=frame: f.to_parquet(tmp, index=False))


def assemble(jobs: list[Job], done: pd.DataFrame, models: dict[str, Scales], split: str,
             settings: GenerationSettings, aspects: Aspects) -> pd.DataFrame:
    """The sweep's answers in plan order, gathered by row_key from the saved rows, with the coefficients (c_<aspect>
    per aspect, after model_id), the split (after prompt), the per-answer checks and `cut` (the columns
    answers.parquet has)."""
    by_key = done.set_index("row_key")
    answers = by_key.loc[[job.row_key for job in jobs]].reset_index(drop=True)
    answers["model_id"] = [job.model_id for job in jobs]  # a shared model's rows are listed under each of its ids
    answers = answers[list(generated_columns(aspects))].assign(row_key=[job.row_key for job in jobs])
    coefficient = lambda m, a: None if is_joint_model(models[m]) else models[m].get(a)  # noqa: E731
    for i, (column, aspect) in enumerate(zip(aspects.coefficient_columns, aspects.names), start=1):
        answers.insert(i, column, [coefficient(m, aspect) for m in answers["model_id"]])
    answers.insert(answers.columns.get_loc("prompt") + 1, "split", split)
    signals = pd.DataFrame([answer_signals(a, last_user_message(p))
                            for a, p in zip(answers["answer"], answers["prompt"])])
    signals["cut"] = answers["new_tokens"] >= settings.max_new_tokens  # stopped by the limit, not by EOS
    return pd.concat([answers, signals], axis=1)


def run_sweep(ctx: RunContext, models: dict[str, Scales], prompts: list[dict], parts_dir: Path,
              split: str) -> pd.DataFrame:
    """Every model × every prompt, generated in mixed batches (per-row adapter scales), scored and checked.

    Each answer is saved under a key of its model, prompt and inputs (row_key), so a killed sweep resumes, a
    grown grid generates only its new models, and answers made from other inputs are never mixed in.
    """
    procs = ctx.procs
    settings = sweep_settings(ctx.cfg)
    fingerprint = sweep_fingerprint(ctx, settings)
    jobs = plan_jobs(models, prompts, fingerprint)
    parts_dir.mkdir(parents=True, exist_ok=True)
    done = done_rows(ctx, jobs, models, parts_dir, split, fingerprint)
    have = set(done.get("row_key", []))
    todo = [job for job in jobs if job.row_key not in have]
    chunk_rows = ctx.cfg.sweep.batch_size * 4
    chunks = [todo[i:i + chunk_rows] for i in range(0, len(todo), chunk_rows)]
    log.info("sweep-%s: %d models × %d prompts = %d rows, %d saved, %d to generate in %d chunks", split,
             len(models), len(prompts), len(jobs), len(jobs) - len(todo), len(todo), len(chunks))
    first = len(list(parts_dir.glob("part-*.parquet")))
    procs.wait()  # every process has listed the saved parts before any writes a new one
    # Under N processes each takes its contiguous share of the chunks; a chunk keeps its global number in its
    # file name, so no two processes write the same part and rank 0 gathers them all below.
    mine = procs.share(list(enumerate(chunks)))
    if procs.count > 1:
        log.info("sweep-%s: process %d of %d generates %d of the %d chunks", split, procs.index + 1, procs.count,
                 len(mine), len(chunks))
    generate_share(ctx, mine, first, parts_dir, split, settings,
                   initial=len(jobs) - len(todo) if procs.count == 1 else 0)
    procs.wait()  # every process's parts are written: gather them
    if todo:
        done = saved_rows(parts_dir)
    return assemble(jobs, done, models, split, settings, ctx.cfg.aspect_set)


def dev_answers_path(ctx: RunContext) -> Path:
    return ctx.work / "sweep-dev" / ANSWERS_FILE


def sweep_dev(ctx: RunContext) -> list[Path]:
    """Every grid model on the dev prompts: what the front is chosen from."""
    _, models = sweep_models(ctx.cfg.sweep, ctx.cfg.aspect_set)
    answers = run_sweep(ctx, models, sweep_prompts(ctx, "dev"), ctx.work / "sweep-dev", "dev")
    path = dev_answers_path(ctx)
    if ctx.procs.is_main:
        write_with(path, lambda tmp: answers.to_parquet(tmp, index=False))
    return [path]


def sweep_test(ctx: RunContext) -> list[Path]:
    """The models that any reported figure needs, on the test prompts; then answers.parquet and grid.csv."""
    max_loop, max_evasion = ctx.cfg.sweep.max_loop_share, ctx.cfg.sweep.max_benign_evasion_excess
    aspects = ctx.cfg.aspect_set
    grid_rows, models = sweep_models(ctx.cfg.sweep, aspects)
    dev = with_evasion(pd.read_parquet(dev_answers_path(ctx)))
    chosen = test_models(grid_table(grid_rows, dev, max_loop, max_evasion, aspects=aspects), models, max_loop,
                         max_evasion, aspects=aspects)
    test = run_sweep(ctx, chosen, sweep_prompts(ctx, "test"), ctx.work / "sweep-test", "test")
    answers = pd.concat([dev, test], ignore_index=True)
    grid = grid_table(grid_rows, answers, max_loop, max_evasion, aspects=aspects)
    answers_path, grid_path = ctx.out / ANSWERS_FILE, ctx.out / GRID_FILE
    if ctx.procs.is_main:  # rank 0 alone writes the assets
        write_with(answers_path, lambda tmp: answers.to_parquet(tmp, index=False))
        write_with(grid_path, lambda tmp: grid.to_csv(tmp, index=False))
    return [answers_path, grid_path]
