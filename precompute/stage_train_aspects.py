"""Stage train-aspects: one DPO policy per aspect (DPO-Help, DPO-Harm, …) and the joint DPO baseline on a mix of
every aspect's pairs (LoRA on the reference), then a held-out check that each aspect policy learned its aspect.

A policy whose training finished and whose published adapter is intact is not trained again; an interrupted
one resumes from its last readable Trainer checkpoint.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import torch

from peo.adapter_files import ADAPTER_WEIGHTS
from peo.adapter_mix import AdapterMix
from peo.assets import default_device
from peo.atomic import sha256, write_json
from peo.config import DPOSettings, LoraSettings
from peo.data.joint_pairs import joint_pairs
from peo.digest import digest
from peo.model_source import load_causal_lm, load_tokenizer
from peo.names import JOINT
from peo.pareto import mean_and_se
from peo.scoring import FeatureExtractor
from peo.train.common import last_checkpoint
from peo.train.dpo import METRICS_FILE, train_dpo
from peo.train.evaluator import pair_features
from precompute.pair_files import data_path, pair_to_json, read_pairs
from precompute.run_context import RunContext

log = logging.getLogger("precompute")


SETTINGS_FILE = "settings.json"  # in each policy's work dir and published adapter: what it was trained with


def policy_settings(pairs: list, dpo: DPOSettings, lora: LoraSettings, seed: int, max_length: int,
                    processes: int = 1) -> dict:
    """What one policy's training depends on (as JSON): its pairs, its effective DPO settings (this policy's
    epochs; not the other policies' or the held-out check's), LoRA, seed and sequence length, and the number of
    data-parallel processes when more than one (dpo.batch_size is per process, so N processes train on N× the
    global batch: their checkpoints are not a single process's)."""
    training = {k: v for k, v in dpo.model_dump().items() if k not in ("epochs_per_policy", "heldout_pairs")}
    settings = {"pairs": digest([pair_to_json(p) for p in pairs]), "n_pairs": len(pairs), "dpo": training,
                "lora": lora.model_dump(), "seed": seed, "max_length": max_length}
    if processes > 1:
        settings["processes"] = processes
    return json.loads(json.dumps(settings))  # tuples become lists: compared with what was read back


def forget_other_settings(work_dir: Path, settings: dict) -> None:
    """A policy's work dir made with other settings (pairs, epochs, β, …), or with none recorded, is removed,
    so neither its final adapter nor its checkpoints are reused; then this training's settings are recorded."""
    recorded = work_dir / SETTINGS_FILE
    if work_dir.exists() and (not recorded.is_file() or json.loads(recorded.read_text()) != settings):
        log.info("train-aspects: %s was made with other settings; starting over", work_dir.name)
        shutil.rmtree(work_dir)
    if not recorded.is_file():
        write_json(recorded, settings)


def published_record(settings: dict, weights: Path) -> dict:
    """What a published adapter's settings.json holds: the settings it was trained with and its weights' sha256,
    so that a copy cut short or changed after publishing is not taken for a finished training."""
    return {"training": settings, "weights_sha256": sha256(weights)}


def finished_policy(work_dir: Path, target: Path, settings: dict) -> dict | None:
    """Metrics of a policy already trained with `settings`, else None: either its training here finished and
    the published adapter is intact, or the published adapter records these very settings and its intact
    weights (assets shipped or copied without their work dir, e.g. a re-run that changes only the evaluators)."""
    final, published = work_dir / "final" / ADAPTER_WEIGHTS, target / ADAPTER_WEIGHTS
    metrics_file = work_dir / "final" / METRICS_FILE
    if final.is_file() and published.is_file() and metrics_file.is_file() and sha256(final) == sha256(published):
        return json.loads(metrics_file.read_text())
    recorded, published_metrics = target / SETTINGS_FILE, target / METRICS_FILE
    if published.is_file() and published_metrics.is_file() and recorded.is_file() \
            and json.loads(recorded.read_text()) == published_record(settings, published):
        return json.loads(published_metrics.read_text())
    return None


def drop_unreadable_checkpoints(work_dir: Path) -> None:
    """Delete Trainer checkpoints whose trainer_state.json (written last) is cut short: never resume from them."""
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
    """Every process trains each policy together (the Trainer's data parallelism); rank 0 alone writes."""
    cfg, procs = ctx.cfg, ctx.procs
    policies = {aspect: read_pairs(data_path(ctx.work, aspect, "policy")) for aspect in cfg.aspect_set.names}
    first = policies[cfg.aspect_set.names[0]]  # the joint policy has one aspect policy's budget: the first's
    policies[JOINT] = joint_pairs(list(policies.values()), len(first), cfg.seed)
    max_length = cfg.data.max_prompt_tokens + cfg.data.max_response_tokens + 16
    metrics = {}
    outputs = []
    layout = ctx.layout
    for name, pairs in policies.items():
        dpo_cfg = cfg.dpo.model_copy(update={"epochs": cfg.dpo.epochs_per_policy.get(name, cfg.dpo.epochs)})
        target, work_dir = layout.adapter(name), ctx.work / f"train-dpo-{name}"
        settings = policy_settings(pairs, dpo_cfg, cfg.lora, cfg.seed, max_length, procs.count)
        if procs.is_main:  # only rank 0 removes or records; the others wait, then all decide alike
            forget_other_settings(work_dir, settings)
        done = procs.from_main(lambda: finished_policy(work_dir, target, settings))
        if done is not None:
            log.info("train-aspects: %s already trained, skipped", name)
            metrics[name] = done
        else:
            if procs.is_main:
                drop_unreadable_checkpoints(work_dir)
            procs.wait()
            checkpoint = last_checkpoint(work_dir)
            if checkpoint:
                log.info("train-aspects: %s resumes from %s", name, Path(checkpoint).name)
            metrics[name] = train_dpo(ctx.base_model, pairs, target, work_dir, dpo_cfg, cfg.lora, cfg.seed,
                                      max_length, name)
            if procs.is_main:  # the published adapter says what it was trained with (see finished_policy)
                write_json(target / SETTINGS_FILE, published_record(settings, target / ADAPTER_WEIGHTS))
        outputs.append(target)
    metrics_path = layout.training
    outputs.append(metrics_path)
    if not procs.is_main:  # the held-out check and training.json are rank 0's (run_pipeline waits for it)
        return outputs
    for name, by_aspect in check_aspect_policies(ctx).items():
        metrics[name]["heldout"] = by_aspect
    write_json(metrics_path, metrics)
    return outputs


def check_aspect_policies(ctx: RunContext) -> dict[str, dict]:
    """Each aspect policy's implicit-reward accuracy on held-out pairs of its aspect: policy → aspect → figures.

    implicit reward r(y) = β·(log π(y|x) − log π_ref(y|x)); a pair counts as right when r(chosen) > r(rejected).
    The reference's log-probs come from the evaluator stage's pass over the same held-out pairs (same
    truncation); only the policy's are computed here.
    """
    cfg, aspects = ctx.cfg, ctx.cfg.aspect_set
    model = load_causal_lm(ctx.base_model, "float32").to(ctx.procs.device(default_device()))
    mix = AdapterMix(model, ctx.layout.adapter_folders(aspects.adapters))
    extractor = FeatureExtractor(mix.model.base_model.model, load_tokenizer(ctx.base_model),
                                 max_length=cfg.evaluator.max_length, batch_size=cfg.evaluator.batch_size)
    n = cfg.dpo.heldout_pairs
    results = {}
    for aspect in aspects.names:
        pairs = read_pairs(data_path(ctx.work, aspect, "test"))[:n]
        ref = json.loads(ctx.layout.ref_logps(aspects[aspect].evaluator).read_text())
        ref_chosen, ref_rejected = torch.tensor(ref["chosen"][:n]), torch.tensor(ref["rejected"][:n])
        mix.set_scales({aspect: 1.0})  # the aspect policy is the adapter of the same name
        (_, chosen), (_, rejected) = pair_features(extractor, pairs, f"check {aspect} on {aspect} pairs",
                                                   with_logps=True)
        margin = cfg.dpo.beta * ((chosen - ref_chosen) - (rejected - ref_rejected))
        accuracy, se = mean_and_se((margin > 0).double().numpy())
        results[aspect] = {aspect: {"aspect": aspect, "pairs": len(pairs),
                                    "prompts": len({p.prompt_id for p in pairs}),
                                    "accuracy": accuracy, "accuracy_se": se,
                                    "interval": [accuracy - 1.96 * se, accuracy + 1.96 * se],
                                    "mean_margin": float(margin.mean())}}
        log.info("train-aspects: %s implicit-reward accuracy on %d held-out %s pairs: %.3f ± %.3f", aspect,
                 len(pairs), aspect, accuracy, se)
    mix.set_scales({})
    return results
