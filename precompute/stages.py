"""The precompute pipeline: prepare-data → train-evaluators → train-aspects → sweep → report.

Each stage reads what earlier stages wrote, writes its own outputs atomically and records them in a manifest;
a stage whose recorded outputs are intact is skipped, so a killed run picks up where it stopped.
"""

from __future__ import annotations

import json
import logging
import platform
import random
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from peo.atomic import write_json, write_text, write_with
from peo.coefficients import grid_points, model_id, soup_points, unique_models
from peo.config import RunConfig, config_to_dict
from peo.data.records import ASPECTS, Message, PreferencePair
from peo.data.sources import load_source
from peo.data.splits import cap, filter_by_length, split_pairs
from peo.model_source import REPO_ROOT, load_causal_lm, load_tokenizer, resolve_base_model
from precompute.manifest import Manifest

log = logging.getLogger("precompute")

STAGES = ("prepare-data", "train-evaluators", "train-aspects", "sweep-dev", "sweep-test", "report")
WORK_STAGES = ("prepare-data", "sweep-dev")  # their outputs live in the work dir, not in the assets


@dataclass
class RunContext:
    cfg: RunConfig
    out: Path
    work: Path
    base_model: str = ""
    timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        self.work.mkdir(parents=True, exist_ok=True)
        self.out_manifest = Manifest(self.out / "manifest.json", self.out)
        self.work_manifest = Manifest(self.work / "manifest.json", self.work)

    def manifest_for(self, stage: str) -> Manifest:
        return self.work_manifest if stage in WORK_STAGES else self.out_manifest


def resolve_path(path: str, name: str = "") -> Path:
    path = Path(path.format(name=name))
    return path if path.is_absolute() else REPO_ROOT / path


# ---------------------------------------------------------------- pair files (work dir only, never assets)

def pair_to_json(pair: PreferencePair) -> dict:
    return {"prompt": pair.prompt_messages(), "chosen": pair.chosen, "rejected": pair.rejected,
            "aspect": pair.aspect, "source": pair.source, "prompt_id": pair.prompt_id}


def pair_from_json(obj: dict) -> PreferencePair:
    return PreferencePair(prompt=tuple(Message(m["role"], m["content"]) for m in obj["prompt"]),
                          chosen=obj["chosen"], rejected=obj["rejected"], aspect=obj["aspect"],
                          source=obj["source"], prompt_id=obj["prompt_id"])


def write_pairs(path: Path, pairs: list[PreferencePair]) -> None:
    text = "".join(json.dumps(pair_to_json(p), ensure_ascii=False) + "\n" for p in pairs)
    write_with(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def read_pairs(path: Path) -> list[PreferencePair]:
    with open(path, encoding="utf-8") as handle:
        return [pair_from_json(json.loads(line)) for line in handle if line.strip()]


# ---------------------------------------------------------------- stages

def prepare_data(ctx: RunContext) -> list[Path]:
    cfg = ctx.cfg
    tokenizer = load_tokenizer(ctx.base_model)
    data_root = resolve_path(cfg.data.root)
    sizes = cfg.data.splits
    summary: dict = {}
    outputs: list[Path] = []
    for aspect in ASPECTS:
        source = getattr(cfg.data, aspect)
        spec = {k: v for k, v in asdict(source).items() if v is not None}
        spec["aspect"] = aspect
        result = load_source(spec, base_dir=data_root, skip_bad=cfg.data.skip_bad_rows)
        kept, too_long = filter_by_length(result.pairs, tokenizer, cfg.data.max_prompt_tokens,
                                          cfg.data.max_response_tokens)
        parts = split_pairs(kept, cfg.data.splits.fractions, cfg.seed)
        per_prompt = sizes.pairs_per_prompt
        chosen = {
            "evaluator": cap(parts["evaluator"], sizes.evaluator_pairs, sizes.evaluator_pairs_per_prompt),
            "policy": cap(parts["policy"], sizes.policy_pairs, per_prompt),
            "test": cap(parts["test"], sizes.evaluator_test_pairs, sizes.test_pairs_per_prompt),
            "dev": cap(parts["dev"], sizes.dev_prompts, 1),  # one pair per prompt: the prompt is what counts
            "test_prompts": cap(parts["test"], sizes.test_prompts, 1),
        }
        for split, pairs in chosen.items():
            if not pairs:
                raise ValueError(f"data.{aspect}: the '{split}' split is empty after filtering; "
                                 f"give more data or change data.splits")
            path = ctx.work / "data" / f"{aspect}_{split}.jsonl"
            write_pairs(path, pairs)
            outputs.append(path)
        summary[aspect] = {
            "source": spec,
            "load": asdict(result.summary) if hasattr(result.summary, "__dataclass_fields__") else result.summary,
            "dropped_too_long": too_long,
            "after_length_filter": len(kept),
            "available_per_split": {k: len(v) for k, v in parts.items()},
            "used_per_split": {k: len(v) for k, v in chosen.items()},
            "distinct_prompts_used": {k: len({p.prompt_id for p in v}) for k, v in chosen.items()},
        }
    summary_path = ctx.work / "data" / "summary.json"
    write_json(summary_path, summary)
    outputs.append(summary_path)
    return outputs


def data_path(ctx: RunContext, aspect: str, split: str) -> Path:
    return ctx.work / "data" / f"{aspect}_{split}.jsonl"


def train_evaluators(ctx: RunContext) -> list[Path]:
    from peo.scoring import FeatureExtractor
    from peo.train.evaluator import train_evaluator

    from peo.assets import default_device

    extractor = FeatureExtractor.load(ctx.base_model, default_device(), max_length=ctx.cfg.evaluator.max_length,
                                      batch_size=ctx.cfg.evaluator.batch_size)
    extractor.layers = tuple(dict.fromkeys(x for layers in ctx.cfg.evaluator.layer_sets for x in layers))
    outputs = []
    for kind, aspect in EVALUATOR_ASPECT.items():
        target = ctx.out / "evaluators" / kind
        meta, ref_logps = train_evaluator(extractor, read_pairs(data_path(ctx, aspect, "evaluator")),
                                          read_pairs(data_path(ctx, aspect, "test")), target, ctx.cfg.evaluator,
                                          ctx.cfg.seed, kind)
        write_json(target / REF_LOGPS, ref_logps)
        log.info("%s evaluator: held-out accuracy %.3f on %d pairs (layers %s)", kind, meta["held_out_accuracy"],
                 meta["held_out_pairs"], meta["layers"])
        outputs.append(target)
    return outputs


EVALUATOR_ASPECT = {"reward": "help", "cost": "harm"}
REF_LOGPS = "heldout_ref_logps.json"  # the reference's log-probs of the held-out pairs, for the policy check


def joint_pairs(help_pairs: list[PreferencePair], harm_pairs: list[PreferencePair], n: int,
                seed: int) -> list[PreferencePair]:
    """The scalarized baseline's data: n pairs, half from each aspect, shuffled: the budget of one aspect policy."""
    mixed = help_pairs[: (n + 1) // 2] + harm_pairs[: n // 2]
    random.Random(seed).shuffle(mixed)
    return mixed


def finished_policy(work_dir: Path, target: Path) -> dict | None:
    """Metrics of a policy whose training finished and whose published adapter is intact, else None."""
    from peo.train.common import last_checkpoint
    from precompute.manifest import sha256

    final, published = work_dir / "final" / "adapter_model.safetensors", target / "adapter_model.safetensors"
    if not (final.is_file() and published.is_file() and sha256(final) == sha256(published)):
        return None
    metrics_file = work_dir / "final" / "metrics.json"
    if metrics_file.is_file():
        return json.loads(metrics_file.read_text())
    checkpoint = last_checkpoint(work_dir)  # older runs: read what the Trainer logged
    if checkpoint is None:
        return {}
    state = json.loads((Path(checkpoint) / "trainer_state.json").read_text())
    logged = [h for h in state["log_history"] if "loss" in h][-3:]
    mean = lambda key: sum(h.get(key, 0.0) for h in logged) / len(logged) if logged else None  # noqa: E731
    return {"steps": state["global_step"], "final_loss": mean("loss"),
            "final_reward_accuracy": mean("rewards/accuracies"), "final_reward_margin": mean("rewards/margins")}


def drop_unreadable_checkpoints(work_dir: Path) -> None:
    """Delete Trainer checkpoints whose trainer_state.json (written last) is cut short: never resume from them."""
    import shutil

    for folder in work_dir.glob("checkpoint-*"):
        state = folder / "trainer_state.json"
        if not state.is_file():
            continue  # incomplete, and already ignored by last_checkpoint
        try:
            json.loads(state.read_text(encoding="utf-8"))
        except (ValueError, OSError):
            log.info("train-aspects: %s was cut short (unreadable trainer_state.json); removed", folder.name)
            shutil.rmtree(folder)


def train_aspects(ctx: RunContext) -> list[Path]:
    from peo.train.common import last_checkpoint
    from peo.train.dpo import train_dpo

    cfg = ctx.cfg
    help_pairs = read_pairs(data_path(ctx, "help", "policy"))
    harm_pairs = read_pairs(data_path(ctx, "harm", "policy"))
    policies = {"help": help_pairs, "harm": harm_pairs,
                "joint": joint_pairs(help_pairs, harm_pairs, len(help_pairs), cfg.seed)}
    max_length = cfg.data.max_prompt_tokens + cfg.data.max_response_tokens + 16
    metrics = {}
    outputs = []
    for name, pairs in policies.items():
        dpo_cfg = replace(cfg.dpo, epochs=cfg.dpo.epochs_per_policy.get(name, cfg.dpo.epochs))
        target, work_dir = ctx.out / "adapters" / name, ctx.work / f"train-dpo-{name}"
        done = finished_policy(work_dir, target)
        if done is not None:
            log.info("train-aspects: %s already trained, skipped", name)
            metrics[name] = done
        else:
            drop_unreadable_checkpoints(work_dir)
            checkpoint = last_checkpoint(work_dir)
            if checkpoint:
                log.info("train-aspects: %s resumes from %s", name, Path(checkpoint).name)
            metrics[name] = train_dpo(ctx.base_model, pairs, target, work_dir, dpo_cfg, cfg.lora, cfg.seed,
                                      max_length, name)
        outputs.append(target)
    for name, by_aspect in check_aspect_policies(ctx).items():
        metrics[name]["heldout"] = by_aspect
    metrics_path = ctx.out / "adapters" / "training.json"
    write_json(metrics_path, metrics)
    outputs.append(metrics_path)
    return outputs


def check_aspect_policies(ctx: RunContext) -> dict[str, dict]:
    """Each aspect policy's implicit-reward accuracy on held-out pairs of its aspect: policy → aspect → figures.

    implicit reward r(y) = β·(log π(y|x) − log π_ref(y|x)); a pair counts as right when r(chosen) > r(rejected).
    The reference's log-probs come from the evaluator stage's pass over the same held-out pairs (same
    truncation); only the policy's are computed here.
    """
    from peo.adapter_mix import AdapterMix
    from peo.assets import default_device
    from peo.pareto import mean_and_se
    from peo.scoring import FeatureExtractor
    from peo.train.evaluator import pair_features

    cfg = ctx.cfg
    model = load_causal_lm(ctx.base_model, "float32").to(default_device())
    mix = AdapterMix(model, {name: ctx.out / "adapters" / name for name in ADAPTERS})
    extractor = FeatureExtractor(mix.model.base_model.model, load_tokenizer(ctx.base_model),
                                 max_length=cfg.evaluator.max_length, batch_size=cfg.evaluator.batch_size)
    results = {}
    for kind, aspect in EVALUATOR_ASPECT.items():
        n = cfg.dpo.heldout_pairs
        pairs = read_pairs(data_path(ctx, aspect, "test"))[:n]
        ref = json.loads((ctx.out / "evaluators" / kind / REF_LOGPS).read_text())
        ref_chosen, ref_rejected = torch.tensor(ref["chosen"][:n]), torch.tensor(ref["rejected"][:n])
        for policy in (aspect,):
            mix.set_scales({policy: 1.0})
            (_, chosen), (_, rejected) = pair_features(extractor, pairs, f"check {policy} on {aspect} pairs",
                                                       with_logps=True)
            margin = cfg.dpo.beta * ((chosen - ref_chosen) - (rejected - ref_rejected))
            correct = (margin > 0).double().numpy()
            accuracy, se = mean_and_se(correct)
            results.setdefault(policy, {})[aspect] = {"aspect": aspect, "pairs": len(pairs), "prompts": len({p.prompt_id for p in pairs}),
                            "accuracy": accuracy, "accuracy_se": se,
                            "interval": [accuracy - 1.96 * se, accuracy + 1.96 * se],
                            "mean_margin": float(margin.mean())}
            log.info("train-aspects: %s implicit-reward accuracy on %d held-out %s pairs: %.3f ± %.3f", policy,
                     len(pairs), aspect, accuracy, se)
    mix.set_scales({})
    return results


ADAPTERS = ("help", "harm", "joint")


def sweep_models(cfg: RunConfig) -> tuple[list[dict], dict[str, dict[str, float]]]:
    """Grid rows (a row per point and method) and the distinct models they need (model_id → adapter scales)."""
    sweep = cfg.sweep
    rows: list[dict] = []
    for method, points in (("peo", grid_points(sweep.lambdas, sweep.phi_help, sweep.phi_harm)),
                           ("soup", soup_points(sweep.lambdas))):
        for p in points:
            c_help, c_harm = p.coefficients
            rows.append({"model_id": model_id(c_help, c_harm), "method": method, "lambda_help": p.lambda_help,
                         "phi_help": p.phi_help, "phi_harm": p.phi_harm, "c_help": c_help, "c_harm": c_harm})
    for method, (c_help, c_harm) in (("ref", (0.0, 0.0)), ("help", (1.0, 0.0)), ("harm", (0.0, 1.0))):
        rows.append({"model_id": model_id(c_help, c_harm), "method": method, "lambda_help": None, "phi_help": None,
                     "phi_harm": None, "c_help": c_help, "c_harm": c_harm})
    rows.append({"model_id": "joint", "method": "joint", "lambda_help": None, "phi_help": None, "phi_harm": None,
                 "c_help": None, "c_harm": None})
    models: dict[str, dict[str, float]] = {}
    for row in rows:
        if row["model_id"] == "joint":
            models.setdefault("joint", {"joint": 1.0})
        else:
            models.setdefault(row["model_id"], {"help": row["c_help"], "harm": row["c_harm"]})
    return rows, models


def sweep_prompts(ctx: RunContext, split: str) -> list[dict]:
    """The dev prompts (`dev` pairs) or the test prompts (`test_prompts`, one pair per prompt of the test split)."""
    name = "dev" if split == "dev" else "test_prompts"
    prompts = []
    for aspect in ASPECTS:
        for pair in read_pairs(data_path(ctx, aspect, name)):
            prompts.append({"prompt_id": pair.prompt_id, "prompt_kind": aspect, "messages": pair.prompt_messages()})
    return prompts


def sweep_settings(cfg: RunConfig):
    from peo.generation import GenerationSettings

    return GenerationSettings(max_new_tokens=cfg.sweep.max_new_tokens, temperature=0.0, seed=cfg.seed,
                              repetition_penalty=cfg.sweep.repetition_penalty,
                              no_repeat_ngram_size=cfg.sweep.no_repeat_ngram_size)


def reuse_parts_only_if_same_inputs(ctx: RunContext, parts_dir: Path, jobs: list, settings) -> None:
    """Saved chunks are reused only for the same work: same rows, settings, adapters and evaluators.

    Otherwise (a changed grid or max_new_tokens, retrained adapters) they are deleted, so a rerun or `--force`
    never mixes answers of another configuration into this one.
    """
    import hashlib

    from precompute.manifest import files_under, sha256

    models = [ctx.out / "adapters" / n for n in ADAPTERS]
    models += [ctx.out / "evaluators" / k for k in ("reward", "cost")]
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
    if stale and not key_file.is_file():  # saved before inputs were recorded: kept, as earlier versions did
        log.info("sweep: %d saved chunk(s) without recorded inputs; kept", len(stale))
        stale = []
    if stale:
        log.info("sweep: %d saved chunk(s) were made from other inputs; discarded", len(stale))
    for part in stale:
        part.unlink()
    write_text(key_file, key + "\n")


def run_sweep(ctx: RunContext, models: dict[str, dict[str, float]], prompts: list[dict], parts_dir: Path,
              split: str) -> pd.DataFrame:
    """Every model × every prompt, generated in mixed batches (per-row adapter scales), scored and checked.

    Work is cut into chunks of whole batches; each finished chunk is saved, so a killed sweep resumes.
    """
    from peo.adapter_mix import AdapterMix
    from peo.answer_checks import answer_signals
    from peo.assets import default_device
    from peo.generation import Row, generate_rows
    from peo.scoring import Evaluators

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
    answers.insert(1, "c_help", [models[m].get("help") if m != "joint" else None for m in answers["model_id"]])
    answers.insert(2, "c_harm", [models[m].get("harm") if m != "joint" else None for m in answers["model_id"]])
    answers.insert(6, "split", split)
    signals = pd.DataFrame([answer_signals(a) for a in answers["answer"]])
    return pd.concat([answers, signals], axis=1)


def dev_answers_path(ctx: RunContext) -> Path:
    return ctx.work / "sweep-dev" / "answers.parquet"


def sweep_dev(ctx: RunContext) -> list[Path]:
    """Every grid model on the dev prompts: what the front is chosen from."""
    _, models = sweep_models(ctx.cfg)
    answers = run_sweep(ctx, models, sweep_prompts(ctx, "dev"), ctx.work / "sweep-dev", "dev")
    path = dev_answers_path(ctx)
    write_with(path, lambda tmp: answers.to_parquet(tmp, index=False))
    return [path]


def test_models(grid_dev: pd.DataFrame, models: dict[str, dict[str, float]],
                max_loop_share: float) -> dict[str, dict[str, float]]:
    """What the test prompts are spent on: the baselines, every soup point, and PEO's dev fronts with and
    without the loop filter."""
    from peo.grid_table import dev_front

    keep = set(grid_dev.loc[grid_dev["method"].isin(["ref", "help", "harm", "joint", "soup"]), "model_id"])
    keep |= set(dev_front(grid_dev, "peo", max_loop_share)) | set(dev_front(grid_dev, "peo", None))
    return {mid: scales for mid, scales in models.items() if mid in keep}


def sweep_test(ctx: RunContext) -> list[Path]:
    """The models that any reported figure needs, on the test prompts; then answers.parquet and grid.csv."""
    from peo.grid_table import grid_table

    max_loop = ctx.cfg.sweep.max_loop_share
    grid_rows, models = sweep_models(ctx.cfg)
    dev = pd.read_parquet(dev_answers_path(ctx))
    chosen = test_models(grid_table(grid_rows, dev, max_loop), models, max_loop)
    test = run_sweep(ctx, chosen, sweep_prompts(ctx, "test"), ctx.work / "sweep-test", "test")
    answers = pd.concat([dev, test], ignore_index=True)
    grid = grid_table(grid_rows, answers, max_loop)
    answers_path, grid_path = ctx.out / "answers.parquet", ctx.out / "grid.csv"
    write_with(answers_path, lambda tmp: answers.to_parquet(tmp, index=False))
    write_with(grid_path, lambda tmp: grid.to_csv(tmp, index=False))
    return [answers_path, grid_path]


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def report(ctx: RunContext) -> list[Path]:
    from precompute.report import write_report

    grid = pd.read_csv(ctx.out / "grid.csv")
    answers = pd.read_parquet(ctx.out / "answers.parquet")
    meta = json.loads((ctx.out / "meta.json").read_text()) if (ctx.out / "meta.json").is_file() else {}
    write_report(grid, answers, ctx.out / "report", n_boot=ctx.cfg.report.n_boot, seed=ctx.cfg.seed, meta=meta,
                 max_loop_share=ctx.cfg.sweep.max_loop_share, training=_read_json(ctx.out / "adapters" / "training.json"))
    return [ctx.out / "report"]


STAGE_FUNCTIONS = {
    "prepare-data": prepare_data,
    "train-evaluators": train_evaluators,
    "train-aspects": train_aspects,
    "sweep-dev": sweep_dev,
    "sweep-test": sweep_test,
    "report": report,
}


# ---------------------------------------------------------------- meta.json

def versions() -> dict[str, str]:
    import importlib.metadata as md

    names = ("torch", "transformers", "peft", "trl", "safetensors", "datasets", "pandas", "gradio")
    found = {}
    for name in names:
        try:
            found[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return {"python": platform.python_version(), **found}


def write_meta(ctx: RunContext) -> None:
    meta_path = ctx.out / "meta.json"
    old = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    timings = {**old.get("timings_seconds", {}), **ctx.timings}
    meta = {
        "profile": ctx.cfg.name,
        "base_model": ctx.cfg.base_model,
        "seed": ctx.cfg.seed,
        "grid": {"lambda_help": ctx.cfg.sweep.lambdas, "phi_help": ctx.cfg.sweep.phi_help,
                 "phi_harm": ctx.cfg.sweep.phi_harm},
        "generation": {**asdict(sweep_settings(ctx.cfg)), "greedy": True, "dtype": ctx.cfg.sweep.dtype},
        "timings_seconds": timings,
        "versions": versions(),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "torch_threads": torch.get_num_threads(),
                    "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"},
        "config": config_to_dict(ctx.cfg),
    }
    summary = ctx.work / "data" / "summary.json"
    if summary.is_file():
        meta["data"] = json.loads(summary.read_text())
    for kind in ("reward", "cost"):
        ev = ctx.out / "evaluators" / kind / "evaluator.json"
        if ev.is_file():
            meta.setdefault("evaluators", {})[kind] = json.loads(ev.read_text())
    training = ctx.out / "adapters" / "training.json"
    if training.is_file():
        meta["training"] = json.loads(training.read_text())
    write_json(meta_path, meta)


# The config sections each stage's outputs depend on (its own and every earlier stage's).
STAGE_CONFIG = {
    "prepare-data": ("seed", "base_model", "data"),
    "train-evaluators": ("seed", "base_model", "data", "evaluator"),
    "train-aspects": ("seed", "base_model", "data", "evaluator", "lora", "dpo"),
    "sweep-dev": ("seed", "base_model", "data", "evaluator", "lora", "dpo", "sweep"),
    "sweep-test": ("seed", "base_model", "data", "evaluator", "lora", "dpo", "sweep"),
    "report": ("seed", "base_model", "data", "evaluator", "lora", "dpo", "sweep", "report"),
}


def stage_settings(cfg: RunConfig, stage: str) -> str:
    """A hash of the config sections `stage` depends on: a stage made with other settings is not done."""
    import hashlib

    full = config_to_dict(cfg)
    picked = {key: full[key] for key in STAGE_CONFIG[stage]}
    return hashlib.sha256(json.dumps(picked, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_pipeline(cfg: RunConfig, out: Path | None = None, only: str | None = None, force: bool = False) -> RunContext:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    ctx = RunContext(cfg=cfg, out=out or resolve_path(cfg.out, cfg.name), work=resolve_path(cfg.work_dir, cfg.name))
    ctx.base_model = resolve_base_model(cfg.base_model)
    stages = [only] if only else list(STAGES)
    for stage in stages:
        manifest = ctx.manifest_for(stage)
        settings = stage_settings(cfg, stage)
        if not force and manifest.is_done(stage, settings):
            log.info("stage %s: outputs present and valid, skipped", stage)
            continue
        log.info("stage %s: starting", stage)
        start = time.time()
        outputs = STAGE_FUNCTIONS[stage](ctx)
        seconds = time.time() - start
        ctx.timings[stage] = round(seconds, 1)
        manifest.record(stage, outputs, seconds, settings)
        write_meta(ctx)
        log.info("stage %s: done in %.1f s", stage, seconds)
    return ctx
