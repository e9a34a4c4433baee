"""Stage train-evaluators: one evaluator per aspect, named by the aspect's evaluator: a Bradley-Terry head on that
aspect's pairs (the reward head on helpfulness pairs, the cost head on harmlessness pairs, …), signed by the
aspect's direction, or, for an evaluator that config sets to a Hugging Face reward model
(`evaluator.reward_models`), no head: that model is measured on the same held-out pairs and recorded
(evaluator.json: where it is, its weights' sha256 where local, its direction and offset).

The same forward pass over the held-out pairs also gives the reference's log-probs of their answers, which the
train-aspects stage needs for its implicit-reward check (so it only runs the policies).
"""

from __future__ import annotations

import logging
from pathlib import Path

from peo.aspects import Aspect
from peo.assets import default_device
from peo.atomic import write_json
from peo.names import HEAD_META, HEAD_WEIGHTS
from peo.scoring import FeatureExtractor
from peo.train.evaluator import pair_features, train_evaluator
from precompute.pair_files import data_path, read_pairs
from precompute.run_context import RunContext

log = logging.getLogger("precompute")


def train_evaluators(ctx: RunContext) -> list[Path]:
    cfg = ctx.cfg.evaluator
    device = default_device()
    extractor = FeatureExtractor.load(ctx.base_model, device, max_length=cfg.max_length,
                                      batch_size=cfg.batch_size)
    extractor.layers = tuple(dict.fromkeys(x for layers in cfg.layer_sets for x in layers))
    outputs, layout = [], ctx.layout
    for aspect in ctx.cfg.aspect_set:
        kind = aspect.evaluator
        target = layout.evaluator(kind)
        pairs = read_pairs(data_path(ctx.work, aspect.name, "evaluator"))
        test_pairs = read_pairs(data_path(ctx.work, aspect.name, "test"))
        settings = cfg.reward_models.get(kind)
        if settings is None:
            meta, ref_logps = train_evaluator(extractor, pairs, test_pairs, target, cfg, ctx.cfg.seed, aspect)
            log.info("%s evaluator: held-out accuracy %.3f on %d pairs (layers %s)", kind,
                     meta["held_out_accuracy"], meta["held_out_pairs"], meta["layers"])
        else:
            meta, ref_logps = _use_hf_model(extractor, settings, aspect, pairs, test_pairs, target, device)
            log.info("%s evaluator: %s (%s), held-out accuracy %.3f on %d pairs", kind, meta["name"],
                     meta["model_class"], meta["held_out_accuracy"], meta["held_out_pairs"])
        write_json(layout.ref_logps(kind), ref_logps)
        outputs.append(target)
    return outputs


def _use_hf_model(extractor: FeatureExtractor, settings, aspect: Aspect, pairs, test_pairs, target: Path,
                  device: str) -> tuple[dict, dict]:
    """Record a Hugging Face reward model as `aspect`'s evaluator (nothing is trained): its held-out accuracy, its
    offset (`center`), and the reference's log-probs of the held-out pairs for the train-aspects stage."""
    import torch

    from peo.hf_evaluator import build_hf_evaluator, measure

    kind = aspect.evaluator
    if not test_pairs:
        raise ValueError(f"{kind} evaluator: no held-out pairs to measure {settings.hf_model} on")
    (_, ref_chosen), (_, ref_rejected) = pair_features(extractor, test_pairs, f"{kind}: reference log-probs "
                                                       "(held out)", with_logps=True)
    evaluator, meta = build_hf_evaluator(settings, kind, extractor.tokenizer, device, better=aspect.better)
    meta = measure(evaluator, meta, pairs, test_pairs, settings.center)
    target.mkdir(parents=True, exist_ok=True)
    (target / HEAD_WEIGHTS).unlink(missing_ok=True)  # a head trained by an earlier run is not this evaluator
    write_json(target / HEAD_META, meta)
    del evaluator
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return meta, {"chosen": ref_chosen.tolist(), "rejected": ref_rejected.tolist()}
