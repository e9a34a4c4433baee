"""Hypervolumes on one split's scores: the reference point, a set's hypervolume, and a paired difference.

A set of models counts by its non-dominated means over the run's N evaluators, each with its direction
(peo.pareto_n; the exact 2-D code of peo.pareto for two aspects); every bootstrap resamples each aspect's prompts on
their own (stratified), and a difference of two sets is paired over the same draws, so its interval and verdict
("PEO better", "soup better", "not distinguishable") say whether the gap is more than chance.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from peo.names import PEO, SOUP
from peo.pareto_n import bootstrap_hypervolume_difference_n, bootstrap_hypervolume_n, reference_point_n
from precompute.report_scores import SplitScores
from precompute.report_words import CI, METHOD_WORDS

MARGIN = 0.05


def hypervolume_reference(scores: SplitScores) -> tuple[float, ...]:
    """The hypervolume reference point, one value per evaluator: the worst means of every scored model, pushed
    out by MARGIN."""
    means = np.array([scores.means(m) for m in scores.model_ids])
    return tuple(float(x) for x in reference_point_n(means, scores.aspects.higher_is_better, margin=MARGIN))


def reference_json(ref: tuple[float, ...], scores: SplitScores) -> dict[str, float]:
    """fronts.json's reference_point: evaluator → its value, and the margin."""
    return {**dict(zip(scores.aspects.evaluators, ref)), "margin": MARGIN}


def set_hypervolume(scores: SplitScores, mids: list[str], ref: tuple[float, ...], n_boot: int, seed: int,
                    what: str) -> tuple[float, float, float]:
    """(hv, lo, hi) of a set of models (its non-dominated means count); an empty set has 0."""
    if not mids:
        return 0.0, 0.0, 0.0
    return bootstrap_hypervolume_n(scores.matrices(mids, what), scores.aspects.higher_is_better, ref, n_boot=n_boot,
                                   seed=seed, ci=CI)


def hypervolume_difference(scores: SplitScores, a_ids: list[str], b_ids: list[str], ref: tuple[float, ...],
                           n_boot: int, seed: int, a: str = PEO, b: str = SOUP) -> dict[str, Any]:
    """hv(a) − hv(b), paired over prompts. An empty set has hypervolume 0 in every draw (same seed, same draws)."""
    if a_ids and b_ids:
        value, lo, hi = bootstrap_hypervolume_difference_n(
            scores.matrices(a_ids, f"{METHOD_WORDS[a]} models"), scores.matrices(b_ids, f"{METHOD_WORDS[b]} models"),
            scores.aspects.higher_is_better, ref, n_boot=n_boot, seed=seed, ci=CI)
    elif b_ids:
        hv, lo_b, hi_b = set_hypervolume(scores, b_ids, ref, n_boot, seed, f"{METHOD_WORDS[b]} models")
        value, lo, hi = -hv, -hi_b, -lo_b
    else:
        value, lo, hi = set_hypervolume(scores, a_ids, ref, n_boot, seed, f"{METHOD_WORDS[a]} models")
    verdict = f"{a}_better" if lo > 0 else f"{b}_better" if hi < 0 else "not_distinguishable"
    return {"a": a, "b": b, "value": float(value), "interval": [float(lo), float(hi)],
            "excludes_zero": bool(lo > 0 or hi < 0), "verdict": verdict}
