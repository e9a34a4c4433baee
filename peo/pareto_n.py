"""Pareto math for N objectives, each with its own direction (higher or lower is better).

peo/pareto.py is exact for the two aspects (reward ↑, cost ↓). A model can be judged on more aspects, e.g. a
third objective such as humour or concision, so fronts and hypervolumes must work for N objectives.

Values are an (n_points, n_objectives) array and `higher_is_better` holds one bool per objective; internally every
objective is minimised (higher-better columns are negated, which is exact in floating point).
- Two objectives: every function delegates to peo/pareto.py's exact 2-D code (columns mapped to (reward ↑, cost ↓)
  by negation), so the results are those of that code.
- Three or more: the maintained library moocore (https://multi-objective.github.io/moocore/python/) computes the
  hypervolume (moocore.hypervolume) and the non-dominated filter (moocore.is_nondominated).

Bootstrap over prompts (bootstrap_hypervolume_n, bootstrap_hypervolume_difference_n): each objective is scored on
its own prompts (split-aware scoring: an aspect's evaluator on that aspect's prompts), so a draw resamples each
objective's prompts on their own, the same prompts for every model (stratified, as peo.pareto's `stratified=True`).
Two objectives: peo.pareto's bootstrap itself, so the draws and the interval are those of that code.

Dominance: a dominates b when it is at least as good on every objective and strictly better on one. The
hypervolume is the volume dominated by the points and bounded by a reference point; points not strictly better than
the reference on every objective contribute nothing (as in peo.pareto.hypervolume).
"""

from __future__ import annotations

from collections.abc import Sequence

import moocore
import numpy as np

from peo import pareto

ArrayLike = Sequence[Sequence[float]] | np.ndarray


def _directions(higher_is_better: Sequence[bool], n_objectives: int | None = None) -> np.ndarray:
    """higher_is_better as a bool array, checked: bools only, at least two, and n_objectives of them if given."""
    hib = list(higher_is_better)
    if not all(isinstance(h, bool | np.bool_) for h in hib):
        raise ValueError(f"higher_is_better must hold bools (True: higher is better), got {hib!r}")
    if len(hib) < 2:
        raise ValueError(f"need at least two objectives, got {len(hib)} in higher_is_better")
    if n_objectives is not None and len(hib) != n_objectives:
        raise ValueError(f"higher_is_better has {len(hib)} entries but there are {n_objectives} objectives")
    return np.asarray(hib, dtype=bool)


def _as_values(values: ArrayLike, higher_is_better: Sequence[bool]) -> tuple[np.ndarray, np.ndarray]:
    """(values as a finite float (n_points, n_objectives) array, directions). An empty list means no points."""
    v = np.asarray(values, dtype=float)
    hib = _directions(higher_is_better)
    if v.ndim == 1 and v.size == 0:
        v = v.reshape(0, hib.size)
    if v.ndim != 2:
        raise ValueError(f"values must be a 2-D array (n_points, n_objectives), got shape {v.shape}")
    _directions(hib, v.shape[1])
    if not np.all(np.isfinite(v)):
        raise ValueError("values must be finite (no NaN or inf)")
    return v, hib


def _as_vector(x: Sequence[float] | np.ndarray, name: str, n_objectives: int) -> np.ndarray:
    """A finite 1-D float vector of n_objectives entries."""
    v = np.asarray(x, dtype=float)
    if v.ndim != 1 or v.size != n_objectives:
        raise ValueError(f"{name} must be a 1-D vector of {n_objectives} values, got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return v


def _minimised(v: np.ndarray, hib: np.ndarray) -> np.ndarray:
    """The same points with every objective to minimise: higher-better columns (last axis) negated."""
    return np.where(hib, -v, v)


def _as_reward_cost(v: np.ndarray, hib: np.ndarray) -> np.ndarray:
    """Two objectives mapped to peo.pareto's (reward ↑, cost ↓) by negating the columns with the other direction."""
    return v * np.where(hib == np.array([True, False]), 1.0, -1.0)


def dominates_n(a: Sequence[float], b: Sequence[float], higher_is_better: Sequence[bool]) -> bool:
    """True when point a dominates b: at least as good on every objective and strictly better on one."""
    hib = _directions(higher_is_better)
    pa, pb = _as_vector(a, "a", hib.size), _as_vector(b, "b", hib.size)
    if hib.size == 2:
        return pareto.dominates(_as_reward_cost(pa, hib), _as_reward_cost(pb, hib))
    ma, mb = _minimised(pa, hib), _minimised(pb, hib)
    return bool(np.all(ma <= mb) and np.any(ma < mb))


def pareto_front_n(values: ArrayLike, higher_is_better: Sequence[bool]) -> np.ndarray:
    """Indices of the non-dominated points; exact duplicates keep one index, the first.

    Order: for two objectives, that of peo.pareto.pareto_front (the second objective from best to worst, e.g. cost
    ascending); for three or more, ascending index (input order).
    """
    v, hib = _as_values(values, higher_is_better)
    if v.shape[0] == 0:
        return np.zeros(0, dtype=np.intp)
    if hib.size == 2:
        rc = _as_reward_cost(v, hib)
        return pareto.pareto_front(rc[:, 0], rc[:, 1])
    keep = moocore.is_nondominated(_minimised(v, hib), maximise=False, keep_weakly=False)
    return np.flatnonzero(keep).astype(np.intp)


def reference_point_n(values: ArrayLike, higher_is_better: Sequence[bool], margin: float = 0.05) -> np.ndarray:
    """A reference point worse than every point on each objective, by the rule of peo.pareto.reference_point.

    Per objective: worst − margin·range when higher is better, worst + margin·range when lower is better; an
    objective with zero range uses max(|worst|, 1) as its range. Pass every point of every method so that
    hypervolumes of different fronts are comparable.
    """
    v, hib = _as_values(values, higher_is_better)
    if v.shape[0] == 0:
        raise ValueError("reference_point_n needs at least one point")
    if not (np.isfinite(margin) and margin > 0):
        raise ValueError(f"margin must be finite and positive, got {margin!r}")
    ref = np.empty(hib.size)
    for j in range(hib.size):
        col = v[:, j]
        worst = float(col.min()) if hib[j] else float(col.max())
        span = float(col.max() - col.min()) or max(abs(worst), 1.0)
        ref[j] = worst - margin * span if hib[j] else worst + margin * span
    return ref


def hypervolume_n(values: ArrayLike, higher_is_better: Sequence[bool], reference: Sequence[float]) -> float:
    """Volume dominated by the points and bounded by `reference` (one value per objective).

    Points not strictly better than the reference on every objective contribute nothing; with none left, 0.0.
    Two objectives: peo.pareto.hypervolume; three or more: moocore.hypervolume on the minimised points.
    """
    v, hib = _as_values(values, higher_is_better)
    ref = _as_vector(reference, "reference", hib.size)
    if hib.size == 2:
        rc, ref_rc = _as_reward_cost(v, hib), _as_reward_cost(ref, hib)
        return pareto.hypervolume(rc[:, 0], rc[:, 1], float(ref_rc[0]), float(ref_rc[1]))
    m, ref_m = _minimised(v, hib), _minimised(ref, hib)
    m = m[np.all(m < ref_m, axis=1)]
    if m.shape[0] == 0:
        return 0.0
    return float(moocore.hypervolume(m, ref=ref_m, maximise=False))


# ---------------------------------------------------------------- stratified bootstrap over prompts


def _objective_matrices(matrices: Sequence, hib: np.ndarray, what: str) -> list[np.ndarray]:
    """One (models, prompts) matrix per objective, finite, every one with the same models."""
    ms = [pareto._check_matrix(m, f"{what}[{j}]") for j, m in enumerate(matrices)]
    if len(ms) != hib.size:
        raise ValueError(f"{what} has {len(ms)} matrices but there are {hib.size} objectives")
    if len({m.shape[0] for m in ms}) != 1:
        raise ValueError(f"{what}: every objective's matrix must have the same models (rows), got "
                         f"{[m.shape[0] for m in ms]}")
    return ms


def _means(ms: Sequence[np.ndarray]) -> np.ndarray:
    """Per-model means, (models, objectives)."""
    return np.stack([m.mean(axis=1) for m in ms], axis=1)


def _as_reward_cost_matrices(ms: Sequence[np.ndarray], hib: np.ndarray) -> list[np.ndarray]:
    """Two objectives' matrices mapped to peo.pareto's (reward ↑, cost ↓), as _as_reward_cost maps points."""
    signs = np.where(hib == np.array([True, False]), 1.0, -1.0)
    return [ms[0] * signs[0], ms[1] * signs[1]]


def bootstrap_hypervolume_n(matrices: Sequence, higher_is_better: Sequence[bool], reference: Sequence[float],
                            n_boot: int = 1000, seed: int = 0, ci: float = 0.95) -> tuple[float, float, float]:
    """(hv, lo, hi): hypervolume of the front of per-model means, and a percentile bootstrap interval.

    `matrices`: one (models, prompts) matrix per objective, each over its own prompts (the models in the same row
    order). Each draw resamples every objective's prompt columns on their own (stratified), the same columns for
    every model, and recomputes the means, the front and its hypervolume; the reference point is fixed.
    """
    hib = _directions(higher_is_better)
    ms = _objective_matrices(matrices, hib, "matrices")
    ref = _as_vector(reference, "reference", hib.size)
    if hib.size == 2:
        rc, ref_rc = _as_reward_cost_matrices(ms, hib), _as_reward_cost(ref, hib)
        return pareto.bootstrap_hypervolume(*rc, float(ref_rc[0]), float(ref_rc[1]), n_boot=n_boot, seed=seed,
                                            ci=ci, stratified=True)
    hv = hypervolume_n(_means(ms), hib, ref)
    draws = []
    for means in pareto._boot_means([[m] for m in ms], n_boot, seed):
        draws.extend(hypervolume_n(np.stack([mj[i] for mj in means], axis=1), hib, ref)
                     for i in range(means[0].shape[0]))
    return (hv, *pareto._interval(np.asarray(draws), ci))


def bootstrap_hypervolume_difference_n(matrices_a: Sequence, matrices_b: Sequence, higher_is_better: Sequence[bool],
                                       reference: Sequence[float], n_boot: int = 1000, seed: int = 0,
                                       ci: float = 0.95) -> tuple[float, float, float]:
    """(diff, lo, hi) for hv(a) − hv(b): two sets of models scored on the same prompts (same columns per objective).

    Each draw resamples every objective's prompts on their own and uses the same columns for both sets, so the
    interval accounts for the two fronts sharing their prompts (paired, stratified).
    """
    hib = _directions(higher_is_better)
    ma, mb = _objective_matrices(matrices_a, hib, "matrices_a"), _objective_matrices(matrices_b, hib, "matrices_b")
    if [m.shape[1] for m in ma] != [m.shape[1] for m in mb]:
        raise ValueError(f"the two sets must share their prompts: {[m.shape[1] for m in ma]} vs "
                         f"{[m.shape[1] for m in mb]} columns")
    ref = _as_vector(reference, "reference", hib.size)
    if hib.size == 2:
        (ra, ca), (rb, cb) = _as_reward_cost_matrices(ma, hib), _as_reward_cost_matrices(mb, hib)
        ref_rc = _as_reward_cost(ref, hib)
        return pareto.bootstrap_hypervolume_difference(ra, ca, rb, cb, float(ref_rc[0]), float(ref_rc[1]),
                                                       n_boot=n_boot, seed=seed, ci=ci, stratified=True)
    diff = hypervolume_n(_means(ma), hib, ref) - hypervolume_n(_means(mb), hib, ref)
    draws = []
    for means in pareto._boot_means([[a, b] for a, b in zip(ma, mb)], n_boot, seed):
        # means: per objective, its a-means then its b-means, each (k, models)
        a_means, b_means = means[0::2], means[1::2]
        for i in range(a_means[0].shape[0]):
            draws.append(hypervolume_n(np.stack([m[i] for m in a_means], axis=1), hib, ref)
                         - hypervolume_n(np.stack([m[i] for m in b_means], axis=1), hib, ref))
    return (diff, *pareto._interval(np.asarray(draws), ci))
