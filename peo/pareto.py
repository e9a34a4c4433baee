"""Pareto-front math for (reward, cost) points: reward is better when HIGHER, cost is better when LOWER.

Pure numpy. A point is dominated when another is at least as good on both and strictly better on one.
Hypervolume is the exact 2-D area dominated by a front and bounded by a reference point that is worse than
every point on both axes (worst reward, worst cost).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

ArrayLike = Sequence[float] | np.ndarray


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """True when point a = (reward, cost) dominates b: reward ≥, cost ≤, and at least one strictly."""
    ra, ca = float(a[0]), float(a[1])
    rb, cb = float(b[0]), float(b[1])
    return ra >= rb and ca <= cb and (ra > rb or ca < cb)


def _as_points(rewards: ArrayLike, costs: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    r = np.asarray(rewards, dtype=float).ravel()
    c = np.asarray(costs, dtype=float).ravel()
    if r.shape != c.shape:
        raise ValueError(f"rewards and costs differ in length: {r.shape[0]} vs {c.shape[0]}")
    if not (np.all(np.isfinite(r)) and np.all(np.isfinite(c))):
        raise ValueError("rewards and costs must be finite (no NaN or inf)")
    return r, c


def pareto_front(rewards: ArrayLike, costs: ArrayLike) -> np.ndarray:
    """Indices of the non-dominated points, sorted by cost ascending (so reward ascending too).

    Exact duplicates keep one index, the first. O(n log n): sort by (cost ↑, reward ↓, index ↑) and keep
    each point whose reward beats every cheaper-or-equal point seen before it.
    """
    r, c = _as_points(rewards, costs)
    if r.size == 0:
        return np.zeros(0, dtype=np.intp)
    order = np.lexsort((np.arange(r.size), -r, c))  # last key is the primary one
    front = []
    best = -np.inf
    for i in order:
        if r[i] > best:
            front.append(i)
            best = r[i]
    return np.asarray(front, dtype=np.intp)


def hypervolume(rewards: ArrayLike, costs: ArrayLike, ref_reward: float, ref_cost: float) -> float:
    """Area of {(cost, reward): some point has cost ≤ that cost < ref_cost and ref_reward < reward ≤ its reward}.

    Points not strictly better than the reference on both axes add nothing.
    """
    r, c = _as_points(rewards, costs)
    keep = (r > ref_reward) & (c < ref_cost)
    r, c = r[keep], c[keep]
    if r.size == 0:
        return 0.0
    idx = pareto_front(r, c)
    fr, fc = r[idx], c[idx]  # cost ascending, reward ascending
    widths = np.diff(np.append(fc, ref_cost))  # on [c_i, c_{i+1}) the best reachable reward is r_i
    return float(np.sum(widths * (fr - ref_reward)))


def reference_point(rewards: ArrayLike, costs: ArrayLike, margin: float = 0.05) -> tuple[float, float]:
    """(ref_reward, ref_cost): worst reward − margin·range, worst cost + margin·range.

    Pass every point of every method so that hypervolumes of different fronts are comparable. An axis with zero
    range uses max(|worst|, 1) as its range, so the points still sit strictly inside the reference.
    """
    r, c = _as_points(rewards, costs)
    if r.size == 0:
        raise ValueError("reference_point needs at least one point")
    r_span = float(r.max() - r.min()) or max(abs(float(r.min())), 1.0)
    c_span = float(c.max() - c.min()) or max(abs(float(c.max())), 1.0)
    return float(r.min()) - margin * r_span, float(c.max()) + margin * c_span


def mean_and_se(values: ArrayLike) -> tuple[float, float]:
    """Mean and standard error std(ddof=1)/√n; the error is 0 when n < 2 (mean is NaN when n = 0)."""
    v = np.asarray(values, dtype=float).ravel()
    if v.size == 0:
        return float("nan"), 0.0
    mean = float(v.mean())
    if v.size < 2:
        return mean, 0.0
    return mean, float(v.std(ddof=1) / np.sqrt(v.size))


# ---------------------------------------------------------------- bootstrap over prompts

def _check_matrix(m: np.ndarray | Sequence, name: str) -> np.ndarray:
    m = np.asarray(m, dtype=float)
    if m.ndim != 2 or m.shape[0] == 0 or m.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array (models, prompts), got shape {m.shape}")
    if not np.all(np.isfinite(m)):
        raise ValueError(f"{name} has NaN or inf: use only prompts every model answered")
    return m


def _boot_means(groups: list[list[np.ndarray]], n_boot: int, seed: int, chunk: int = 256):
    """Yield, chunk by chunk, per-model means of each matrix under resampled prompt columns.

    The matrices of one group share their prompt columns and get the same resampled columns in a draw; each group
    is resampled on its own (a stratified bootstrap: e.g. reward over benign prompts, cost over harmful ones).
    Each draw picks a group's n_prompts columns with replacement; the mean over them is counts @ M.T / n_prompts.
    Yields a list of (k, models) arrays in the groups' order, flattened.
    """
    if n_boot < 1:
        raise ValueError("n_boot must be at least 1")
    rng = np.random.default_rng(seed)
    done = 0
    while done < n_boot:
        k = min(chunk, n_boot - done)
        out = []
        for group in groups:
            n_prompts = group[0].shape[1]
            cols = rng.integers(0, n_prompts, size=(k, n_prompts))
            counts = np.zeros((k, n_prompts))
            np.add.at(counts, (np.repeat(np.arange(k), n_prompts), cols.ravel()), 1.0)
            out += [counts @ m.T / n_prompts for m in group]  # each (k, models)
        yield out
        done += k


def _groups(reward_matrices: list[np.ndarray], cost_matrices: list[np.ndarray], stratified: bool):
    """Reward and cost matrices as resampling groups: one group (the same prompts score both) or, stratified,
    the reward matrices and the cost matrices each on their own prompts. Returned order: rewards, then costs."""
    if stratified:
        for ms, what in ((reward_matrices, "reward"), (cost_matrices, "cost")):
            if len({m.shape[1] for m in ms}) != 1:
                raise ValueError(f"the {what} matrices must share their prompts (same number of columns)")
        return [list(reward_matrices), list(cost_matrices)]
    if len({m.shape[1] for m in (*reward_matrices, *cost_matrices)}) != 1:
        raise ValueError("unstratified, every matrix must be over the same prompts (same number of columns)")
    return [[*reward_matrices, *cost_matrices]]


def _interval(draws: np.ndarray, ci: float) -> tuple[float, float]:
    if not 0.0 < ci < 1.0:
        raise ValueError("ci must be in (0, 1)")
    lo, hi = np.quantile(draws, [(1.0 - ci) / 2.0, 1.0 - (1.0 - ci) / 2.0])
    return float(lo), float(hi)


def bootstrap_hypervolume(reward_matrix, cost_matrix, ref_reward: float, ref_cost: float, n_boot: int = 1000,
                          seed: int = 0, ci: float = 0.95, stratified: bool = False) -> tuple[float, float, float]:
    """(hv, lo, hi): hypervolume of the front of per-model means, and a percentile bootstrap interval.

    Matrices are (models, prompts). Each draw resamples prompt columns with replacement (the same columns for
    every model), recomputes each model's means, the front and its hypervolume. The reference point is fixed.
    `stratified`: reward and cost are over different prompt sets (split-aware scoring: reward on benign, cost on
    harmful prompts), each resampled on its own; otherwise both share their columns and are resampled together.
    """
    rm, cm = _check_matrix(reward_matrix, "reward_matrix"), _check_matrix(cost_matrix, "cost_matrix")
    if rm.shape[0] != cm.shape[0] or (not stratified and rm.shape != cm.shape):
        raise ValueError(f"reward and cost matrices differ in shape: {rm.shape} vs {cm.shape}")
    hv = hypervolume(rm.mean(axis=1), cm.mean(axis=1), ref_reward, ref_cost)
    draws = []
    for r_means, c_means in _boot_means(_groups([rm], [cm], stratified), n_boot, seed):
        draws.extend(hypervolume(r, c, ref_reward, ref_cost) for r, c in zip(r_means, c_means))
    return (hv, *_interval(np.asarray(draws), ci))


def bootstrap_hypervolume_difference(reward_matrix_a, cost_matrix_a, reward_matrix_b, cost_matrix_b,
                                     ref_reward: float, ref_cost: float, n_boot: int = 1000, seed: int = 0,
                                     ci: float = 0.95, stratified: bool = False) -> tuple[float, float, float]:
    """(diff, lo, hi) for hv(a) − hv(b): two sets of models scored on the same prompts (same column order).

    diff is the difference of the hypervolumes of the observed means; each draw resamples the same prompt
    columns for both sets, so the interval accounts for the two fronts sharing their prompts. `stratified`: the
    reward matrices are over one prompt set and the cost matrices over another, each resampled on its own.
    """
    ra, ca = _check_matrix(reward_matrix_a, "reward_matrix_a"), _check_matrix(cost_matrix_a, "cost_matrix_a")
    rb, cb = _check_matrix(reward_matrix_b, "reward_matrix_b"), _check_matrix(cost_matrix_b, "cost_matrix_b")
    if ra.shape[0] != ca.shape[0] or rb.shape[0] != cb.shape[0] or (
            not stratified and (ra.shape != ca.shape or rb.shape != cb.shape)):
        raise ValueError("each set's reward and cost matrices must have the same shape")
    if ra.shape[1] != rb.shape[1] or ca.shape[1] != cb.shape[1]:
        raise ValueError(f"the two sets must share their prompts: {ra.shape[1]} vs {rb.shape[1]} columns")
    diff = (hypervolume(ra.mean(axis=1), ca.mean(axis=1), ref_reward, ref_cost)
            - hypervolume(rb.mean(axis=1), cb.mean(axis=1), ref_reward, ref_cost))
    draws = []
    for mra, mrb, mca, mcb in _boot_means(_groups([ra, rb], [ca, cb], stratified), n_boot, seed):
        for i in range(mra.shape[0]):
            draws.append(hypervolume(mra[i], mca[i], ref_reward, ref_cost)
                         - hypervolume(mrb[i], mcb[i], ref_reward, ref_cost))
    return (diff, *_interval(np.asarray(draws), ci))
