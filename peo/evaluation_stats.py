"""Small statistics for the report: intervals for accuracies, accuracy by confidence, how often answers differ.

Pure Python/numpy, no model code, so each figure the report prints can be checked by hand.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile


def finite_or_none(x: object) -> float | None:
    """A JSON-safe float: NaN / None / anything not a number → None (JSON has no NaN)."""
    if x is None:
        return None
    try:
        x = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x


def wilson_interval(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion successes/n: stays in [0, 1] and behaves at 0 % and 100 %,
    where the usual p ± z·se collapses to a point. (nan, nan) when n = 0."""
    if n <= 0:
        return float("nan"), float("nan")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in [0, n], got {successes} of {n}")
    p = successes / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1.0 - p) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def accuracy_by_confidence(correct: Sequence[float], margin: Sequence[float], groups: int = 4) -> list[dict]:
    """Accuracy within groups of pairs ranked by the evaluator's own confidence |score difference|.

    Pairs are sorted by margin (stable, so ties keep their order) and split by rank into `groups` near-equal
    groups (numpy.array_split: the first groups get one more pair when n does not divide). An evaluator whose
    confident calls are no more accurate than its unsure ones is guessing. Each group: group (1 = least
    confident), n, correct, accuracy, margin_min, margin_max.
    """
    c = np.asarray(correct, dtype=float).ravel()
    m = np.asarray(margin, dtype=float).ravel()
    if c.shape != m.shape:
        raise ValueError(f"correct and margin differ in length: {c.size} vs {m.size}")
    if c.size == 0:
        return []
    order = np.argsort(m, kind="stable")
    out = []
    for k, idx in enumerate(np.array_split(order, min(groups, c.size)), start=1):
        out.append({"group": k, "n": int(idx.size), "correct": int(c[idx].sum()),
                    "accuracy": float(c[idx].mean()), "margin_min": float(m[idx].min()),
                    "margin_max": float(m[idx].max())})
    return out


def differ_share(a: Sequence[str], b: Sequence[str]) -> tuple[int, float]:
    """(how many, share) of paired answers that differ after stripping whitespace; share is nan when empty.

    A merge whose answers equal its parent's on every prompt did nothing that the evaluators could score.
    """
    if len(a) != len(b):
        raise ValueError(f"the two answer lists differ in length: {len(a)} vs {len(b)}")
    n_differ = sum(str(x).strip() != str(y).strip() for x, y in zip(a, b))
    return n_differ, (n_differ / len(a) if len(a) else float("nan"))


def paired_bootstrap_difference(a: Sequence[float], b: Sequence[float], n_boot: int, seed: int,
                                ci: float = 0.95) -> tuple[float, float, float]:
    """mean(a − b) over paired items (prompts) and its percentile bootstrap interval, resampling the items.

    Pairing removes what the prompts share (a hard prompt is hard for both models), so the interval is that
    of the difference, not of two separate means.
    """
    d = np.asarray(a, dtype=float).ravel() - np.asarray(b, dtype=float).ravel()
    if d.size == 0 or not np.isfinite(d).all():
        raise ValueError(f"need paired finite values, got {d.size} differences")
    if n_boot < 1 or not 0.0 < ci < 1.0:
        raise ValueError(f"n_boot must be >= 1 and ci in (0, 1), got {n_boot}, {ci}")
    rng = np.random.default_rng(seed)
    draws = d[rng.integers(0, d.size, size=(n_boot, d.size))].mean(axis=1)
    lo, hi = np.quantile(draws, [(1.0 - ci) / 2.0, (1.0 + ci) / 2.0])
    return float(d.mean()), float(lo), float(hi)
