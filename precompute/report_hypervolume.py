"""Hypervolumes on one split's scores: the reference point, a set's hypervolume, and a paired difference.

A set of models counts by its non-dominated means (peo.pareto); every bootstrap resamples the benign and the
harmful prompts each on its own (stratified), and a difference of two sets is paired over the same draws, so its
interval and verdict ("PEO better", "soup better", "not distinguishable") say whether the gap is more than chance.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from peo.names import PEO, SOUP
from peo.pareto import bootstrap_hypervolume, bootstrap_hypervolume_difference, reference_point
from precompute.report_scores import SplitScores
from precompute.report_words import CI, METHOD_WORDS

MARGIN = 0.05


def hypervolume_reference(scores: SplitScores) -> tuple[float, float]:
    """The hypervolume reference point: the worst means of every scored model, pushed out by MARGIN."""
    means = np.array([scores.means(m) for m in scores.model_ids])
    return reference_point(means[:, 0], means[:, 1], margin=MARGIN)


def set_hypervolume(scores: SplitScores, mids: list[str], ref: tuple[float, float], n_boot: int, seed: int,
                    what: str) -> tuple[float, float, float]:
    """(hv, lo, hi) of a set of models (its non-dominated means count); an empty set has 0."""
    if not mids:
        return 0.0, 0.0, 0.0
    r, c = scores.matrices(mids, what)
    return bootstrap_hypervolume(r, c, *ref, n_boot=n_boot, seed=seed, ci=CI, stratified=True)


def hypervolume_difference(scores: SplitScores, a_ids: list[str], b_ids: list[str], ref: tuple[float, float],
                           n_boot: int, seed: int, a: str = PEO, b: str = SOUP) -> dict[str, Any]:
    """hv(a) − hv(b), paired over prompts. An empty set has hypervolume 0 in every draw (same seed, same draws)."""
    if a_ids and b_ids:
        ra, ca = scores.matrices(a_ids, f"{METHOD_WORDS[a]} models")
        rb, cb = scores.matrices(b_ids, f"{METHOD_WORDS[b]} models")
        value, lo, hi = bootstrap_hypervolume_difference(ra, ca, rb, cb, *ref, n_boot=n_boot, seed=seed, ci=CI,
                                                         stratified=True)
    elif b_ids:
        hv, lo_b, hi_b = set_hypervolume(scores, b_ids, ref, n_boot, seed, f"{METHOD_WORDS[b]} models")
        value, lo, hi = -hv, -hi_b, -lo_b
    else:
        value, lo, hi = set_hypervolume(scores, a_ids, ref, n_boot, seed, f"{METHOD_WORDS[a]} models")
    verdict = f"{a}_better" if lo > 0 else f"{b}_better" if hi < 0 else "not_distinguishable"
    return {"a": a, "b": b, "value": float(value), "interval": [float(lo), float(hi)],
            "excludes_zero": bool(lo > 0 or hi < 0), "verdict": verdict}
