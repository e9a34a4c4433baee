"""Stage train-evaluators: a Bradley-Terry reward head on helpfulness pairs, a cost head on harmlessness pairs.

The same forward pass over the held-out pairs also gives the reference's log-probs of their answers, which the
train-aspects stage needs for its implicit-reward check (so it only runs the policies).
"""

from __future__ import annotations

import logging
from pathlib import Path

from peo.assets import default_device
from peo.atomic import write_json
from peo.names import EVALUATOR_OF_ASPECT
from peo.scoring import FeatureExtractor
from peo.train.evaluator import train_evaluator
from precompute.pair_files import data_path, read_pairs
from precompute.run_context import RunContext

log = logging.getLogger("precompute")

REF_LOGPS = "heldout_ref_logps.json"  # in each evaluator's folder: the reference's log-probs of the held-out pairs


def train_evaluators(ctx: RunContext) -> list[Path]:
    cfg = ctx.cfg.evaluator
    extractor = FeatureExtractor.load(ctx.base_model, default_device(), max_length=cfg.max_length,
                                      batch_size=cfg.batch_size)
    extractor.layers = tuple(dict.fromkeys(x for layers in cfg.layer_sets for x in layers))
    outputs = []
    for aspect, kind in EVALUATOR_OF_ASPECT.items():
        target = ctx.out / "evaluators" / kind
        meta, ref_logps = train_evaluator(extractor, read_pairs(data_path(ctx.work, aspect, "evaluator")),
                                          read_pairs(data_path(ctx.work, aspect, "test")), target, cfg,
                                          ctx.cfg.seed, kind)
        write_json(target / REF_LOGPS, ref_logps)
        log.info("%s evaluator: held-out accuracy %.3f on %d pairs (layers %s)", kind, meta["held_out_accuracy"],
                 meta["held_out_pairs"], meta["layers"])
        outputs.append(target)
    return outputs
