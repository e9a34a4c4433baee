"""Exact tests of the N-objective Pareto math (peo/pareto_n.py)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from peo import pareto
from peo.pareto_n import (
    bootstrap_hypervolume_difference_n,
    bootstrap_hypervolume_n,
    dominates_n,
    hypervolume_n,
    pareto_front_n,
    reference_point_n,
)

MIN3 = (False, False, False)
DIRECTIONS_2D = list(itertools.product((True, False), repeat=2))


def _brute_front(values: np.ndarray, hib) -> list[int]:
    """O(n²) reference: a point is kept unless another dominates it or an earlier index equals it."""
    front = []
    for i, p in enumerate(values):
        dominated = any(dominates_n(q, p, hib) for q in values)
        duplicate = any(np.array_equal(values[k], p) for k in range(i))
        if not dominated and not duplicate:
            front.append(i)
    return front


def _lattice_volume(points: np.ndarray, ref: np.ndarray) -> int:
    """Exact union volume of the boxes [p, ref) for integer points to minimise: count the unit cells [g, g+1)
    of the lattice below ref whose lower corner g some point p reaches with p ≤ g on every axis."""
    axes = [np.arange(lo, hi) for lo, hi in zip(points.min(axis=0), ref)]
    cells = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, len(ref))
    covered = np.any(np.all(points[None, :, :] <= cells[:, None, :], axis=2), axis=1)
    return int(covered.sum())


# ---------------------------------------------------------------- dominates_n


def test_dominates_n_all_lower_better():
    assert dominates_n((0, 0, 0), (1, 1, 1), MIN3)
    assert dominates_n((0, 1, 1), (1, 1, 1), MIN3)  # strictly better on one axis only
    assert not dominates_n((1, 1, 1), (0, 1, 1), MIN3)
    assert not dominates_n((1, 1, 1), (1, 1, 1), MIN3)  # equal points do not dominate


def test_dominates_n_trade_off():
    a, b = (0, 2, 1), (1, 1, 1)
    assert not dominates_n(a, b, MIN3) and not dominates_n(b, a, MIN3)


def test_dominates_n_mixed_directions():
    hib = (True, False, True)  # reward ↑, cost ↓, humour ↑
    assert dominates_n((2, 0, 1), (1, 0, 1), hib)
    assert dominates_n((1, 0, 2), (1, 0, 1), hib)
    assert not dominates_n((1, 1, 1), (1, 0, 1), hib)  # more cost is worse
    assert not dominates_n((1, 0, 0), (1, 0, 1), hib)  # less humour is worse
    assert dominates_n((1, -1, 1), (1, 0, 1), hib)


def test_dominates_n_2d_equals_pareto_dominates():
    rng = np.random.default_rng(1)
    for _ in range(200):
        a, b = rng.integers(0, 3, size=2), rng.integers(0, 3, size=2)
        assert dominates_n(a, b, (True, False)) == pareto.dominates(a, b)
        assert dominates_n(a, b, (False, True)) == pareto.dominates(-a, -b)
        assert dominates_n(a, b, (False, False)) == pareto.dominates((-a[0], a[1]), (-b[0], b[1]))


# ---------------------------------------------------------------- pareto_front_n


def test_front_3d_hand_computed():
    values = [(1, 1, 1), (0, 2, 2), (2, 2, 2), (1, 1, 0), (3, 0, 3)]
    # (1,1,1) dominated by (1,1,0); (2,2,2) dominated by (1,1,0); the other three trade off
    assert pareto_front_n(values, MIN3).tolist() == [1, 3, 4]


def test_front_3d_mixed_directions():
    hib = (True, False, True)
    values = [(1, 0, 1), (2, 0, 1), (2, 1, 3), (0, 0, 0), (2, 1, 2)]
    # (1,0,1) and (0,0,0) dominated by (2,0,1); (2,1,2) dominated by (2,1,3)
    assert pareto_front_n(values, hib).tolist() == [1, 2]


def test_front_3d_duplicates_keep_first():
    values = [(1, 2, 3), (3, 2, 1), (1, 2, 3), (3, 2, 1), (4, 4, 4)]
    assert pareto_front_n(values, MIN3).tolist() == [0, 1]


def test_front_empty():
    assert pareto_front_n(np.zeros((0, 3)), MIN3).tolist() == []
    assert pareto_front_n([], MIN3).tolist() == []


@pytest.mark.parametrize("n_objectives", [3, 4, 5])
def test_front_matches_brute_force(n_objectives):
    rng = np.random.default_rng(n_objectives)
    for _ in range(30):
        values = rng.integers(0, 4, size=(int(rng.integers(1, 25)), n_objectives)).astype(float)
        hib = tuple(bool(h) for h in rng.integers(0, 2, size=n_objectives))
        assert pareto_front_n(values, hib).tolist() == _brute_front(values, hib)


# ---------------------------------------------------------------- 2-D: identical to peo.pareto


def _random_2d(rng: np.random.Generator) -> np.ndarray:
    n = int(rng.integers(1, 30))
    v = rng.normal(size=(n, 2))
    if rng.random() < 0.5:
        v = np.round(v, 1)  # ties and duplicates
    return v


@pytest.mark.parametrize("hib", DIRECTIONS_2D)
def test_2d_equals_peo_pareto_on_random_sets(hib):
    sign = np.where(np.array(hib) == np.array([True, False]), 1.0, -1.0)
    rng = np.random.default_rng(7)
    for _ in range(200):
        v = _random_2d(rng)
        r, c = (v * sign).T
        assert np.array_equal(pareto_front_n(v, hib), pareto.pareto_front(r, c))
        ref_r, ref_c = pareto.reference_point(r, c)
        ref = reference_point_n(v, hib)
        assert ref.tolist() == (np.array([ref_r, ref_c]) * sign).tolist()
        assert hypervolume_n(v, hib, ref) == pareto.hypervolume(r, c, ref_r, ref_c)
        shifted = ref + rng.normal(size=2)  # a reference that some points may not beat
        sr, sc = shifted * sign
        assert hypervolume_n(v, hib, shifted) == pareto.hypervolume(r, c, float(sr), float(sc))


def test_2d_hand_computed_reward_cost():
    # front (1,1), (2,2), (3,3) against ref (0, 4): cost strips [1,2), [2,3), [3,4) of reward height 1, 2, 3
    values = [(1.0, 1.0), (2.0, 2.0), (3.0, 3.0)]
    assert hypervolume_n(values, (True, False), (0.0, 4.0)) == 1 * 1 + 2 * 1 + 3 * 1


# ---------------------------------------------------------------- hypervolume_n, 3-D and more


def test_hv_unit_cube():
    assert hypervolume_n([(0, 0, 0)], MIN3, (1, 1, 1)) == 1.0
    assert hypervolume_n([(0, 0, 0)], (True, True, True), (-1, -2, -3)) == 6.0


def test_hv_two_boxes_inclusion_exclusion():
    # A = [0,1]×[.5,1]×[.5,1] = .25, B = [.5,1]×[0,1]×[0,1] = .5, A∩B = [.5,1]^3 = .125 → .625
    assert hypervolume_n([(0, 0.5, 0.5), (0.5, 0, 0)], MIN3, (1, 1, 1)) == 0.625


def test_hv_three_boxes_inclusion_exclusion():
    # boxes [p, (2,2,2)) of volume 4, 4, 4; each pair meets in a 2×1×1 box (e.g. from (0,1,1)), all three in the
    # unit cube from (1,1,1) → 12 − 3·2 + 1
    values = [(0, 0, 1), (0, 1, 0), (1, 0, 0)]
    assert hypervolume_n(values, MIN3, (2, 2, 2)) == 7.0


def test_hv_mixed_directions():
    hib = (True, False, True)  # reward ↑, cost ↓, humour ↑
    assert hypervolume_n([(1, 0, 1)], hib, (0, 1, 0)) == 1.0
    # minimised: (−1,0,−.5) → .5, (−.5,.5,−1) → .25, overlap from (−.5,.5,−.5) → .125
    assert hypervolume_n([(1, 0, 0.5), (0.5, 0.5, 1)], hib, (0, 1, 0)) == 0.625


def test_hv_dominated_and_duplicate_points_add_nothing():
    base = hypervolume_n([(0, 0.5, 0.5), (0.5, 0, 0)], MIN3, (1, 1, 1))
    more = [(0, 0.5, 0.5), (0.5, 0, 0), (0.5, 0.5, 0.5), (0, 0.5, 0.5), (0.9, 0.9, 0.9)]
    assert hypervolume_n(more, MIN3, (1, 1, 1)) == base


def test_hv_points_not_strictly_better_than_reference_contribute_nothing():
    ref = (1, 1, 1)
    assert hypervolume_n([(1, 0, 0)], MIN3, ref) == 0.0  # equal to the reference on one axis
    assert hypervolume_n([(-10, -10, 2)], MIN3, ref) == 0.0  # worse on one axis, however good on the others
    assert hypervolume_n([(0, 0, 0), (-10, -10, 2), (1, -5, -5)], MIN3, ref) == 1.0
    assert hypervolume_n(np.zeros((0, 3)), MIN3, ref) == 0.0
    # mixed directions: the higher-better axis must be strictly above its reference
    assert hypervolume_n([(0, 0, 5)], (True, False, True), (0, 1, 0)) == 0.0


@pytest.mark.parametrize("n_objectives", [3, 4])
def test_hv_matches_exact_lattice_union(n_objectives):
    rng = np.random.default_rng(10 + n_objectives)
    for _ in range(25):
        pts = rng.integers(0, 5, size=(int(rng.integers(1, 12)), n_objectives))
        ref = np.full(n_objectives, 5)
        expected = _lattice_volume(pts, ref)
        assert hypervolume_n(pts, (False,) * n_objectives, ref) == expected
        # the same points with every axis flipped to higher-better, reference flipped too
        assert hypervolume_n(-pts, (True,) * n_objectives, -ref) == expected


def test_hv_lattice_with_some_points_outside_the_reference():
    rng = np.random.default_rng(3)
    for _ in range(25):
        pts = rng.integers(0, 6, size=(10, 3))
        ref = np.array([4, 5, 3])
        inside = pts[np.all(pts < ref, axis=1)]
        expected = _lattice_volume(inside, ref) if len(inside) else 0
        assert hypervolume_n(pts, MIN3, ref) == expected


# ---------------------------------------------------------------- reference_point_n


def test_reference_point_n_rule_per_axis():
    values = [(0.0, 1.0, 5.0), (10.0, 3.0, 5.0)]
    hib = (True, False, True)
    # reward ↑: 0 − .05·10; cost ↓: 3 + .05·2; humour ↑ with zero range: 5 − .05·max(5, 1)
    assert reference_point_n(values, hib).tolist() == [0.0 - 0.05 * 10.0, 3.0 + 0.05 * 2.0, 5.0 - 0.05 * 5.0]
    assert reference_point_n([(0.0, 0.0, 0.0)], MIN3, margin=0.1).tolist() == [0.1, 0.1, 0.1]


def test_reference_point_n_each_axis_pair_matches_peo_pareto():
    rng = np.random.default_rng(5)
    for _ in range(50):
        v = rng.normal(size=(int(rng.integers(1, 20)), 3))
        ref = reference_point_n(v, (True, False, False))
        assert (ref[0], ref[1]) == pareto.reference_point(v[:, 0], v[:, 1])
        assert (ref[0], ref[2]) == pareto.reference_point(v[:, 0], v[:, 2])


def test_reference_point_n_is_strictly_worse_so_every_point_counts():
    v = np.array([(0.0, 0.0, 1.0), (1.0, 1.0, 0.0)])
    hib = (True, False, True)
    ref = reference_point_n(v, hib)
    for p in v:  # each point alone has a positive volume
        assert hypervolume_n(p[None, :], hib, ref) > 0.0


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: pareto_front_n([(0, 0, 0)], (False, False)), "higher_is_better has 2 entries but there are 3"),
        (lambda: pareto_front_n([0, 1, 2], MIN3), "must be a 2-D array"),
        (lambda: pareto_front_n([(0, np.nan, 0)], MIN3), "finite"),
        (lambda: pareto_front_n([(0, np.inf, 0)], MIN3), "finite"),
        (lambda: pareto_front_n([(0,)], (False,)), "at least two objectives"),
        (lambda: pareto_front_n([(0, 0)], ("up", "down")), "must hold bools"),
        (lambda: pareto_front_n([(0, 0)], (1, 0)), "must hold bools"),
        (lambda: hypervolume_n([(0, 0, 0)], MIN3, (1, 1)), "reference must be a 1-D vector of 3"),
        (lambda: hypervolume_n([(0, 0, 0)], MIN3, (1, np.nan, 1)), "reference must be finite"),
        (lambda: hypervolume_n([(0, 0)], (True, False), (1, 1, 1)), "reference must be a 1-D vector of 2"),
        (lambda: reference_point_n(np.zeros((0, 3)), MIN3), "at least one point"),
        (lambda: reference_point_n([(0, 0, 0)], MIN3, margin=0.0), "margin must be finite and positive"),
        (lambda: reference_point_n([(0, 0, 0)], MIN3, margin=np.nan), "margin must be finite and positive"),
        (lambda: dominates_n((0, 0), (0, 0, 0), MIN3), "a must be a 1-D vector of 3"),
        (lambda: dominates_n((0, 0, 0), (0, 0), MIN3), "b must be a 1-D vector of 3"),
        (lambda: dominates_n((0, 0, np.inf), (0, 0, 0), MIN3), "a must be finite"),
    ],
)
def test_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# ---------------------------------------------------------------- stratified bootstrap over prompts


def _brute_bootstrap(sets: list[list[np.ndarray]], hib, ref, n_boot: int, seed: int, ci: float = 0.95):
    """The stratified scheme spelled out for n_boot ≤ 256 (one chunk): per objective, n_boot draws of its own
    prompt columns with replacement, the same columns for every set; each set's hypervolume of the drawn means.
    `sets`: per set, one (models, prompts) matrix per objective. Returns the draws' hv per set, (n_boot, n_sets)."""
    rng = np.random.default_rng(seed)
    n_obj = len(sets[0])
    cols = [rng.integers(0, sets[0][j].shape[1], size=(n_boot, sets[0][j].shape[1])) for j in range(n_obj)]
    return np.array([[hypervolume_n(np.stack([s[j][:, cols[j][i]].mean(axis=1) for j in range(n_obj)], axis=1),
                                    hib, ref) for s in sets] for i in range(n_boot)])


def _quantiles(draws: np.ndarray, ci: float = 0.95) -> list[float]:
    return list(np.quantile(draws, [(1 - ci) / 2, 1 - (1 - ci) / 2]))


def test_bootstrap_hypervolume_n_one_prompt_per_objective_is_the_hand_volume():
    """Two models, three objectives (max, min, max), one prompt each: every draw is the observed means. Boxes up to
    the reference (0, 4, 0): A = (2, 1, 1) spans 2·3·1 = 6, B = (1, 2, 3) spans 1·2·3 = 6, their overlap
    (1, 2, 1) spans 1·2·1 = 2: the union is 10."""
    hib, ref = (True, False, True), (0.0, 4.0, 0.0)
    matrices = [np.array([[2.0], [1.0]]), np.array([[1.0], [2.0]]), np.array([[1.0], [3.0]])]
    assert bootstrap_hypervolume_n(matrices, hib, ref, n_boot=20, seed=3) == pytest.approx((10.0, 10.0, 10.0))
    diff = bootstrap_hypervolume_difference_n(matrices, [m[1:] for m in matrices], hib, ref, n_boot=20, seed=3)
    assert diff == pytest.approx((4.0, 4.0, 4.0))  # {A, B} − {B} = 10 − 6


def test_bootstrap_hypervolume_n_resamples_each_objectives_prompts_on_their_own():
    """Three objectives over different numbers of prompts (3, 5, 4): the draws are those of the stratified scheme
    spelled out (each objective's columns drawn on their own, the same for every model), hv their percentiles."""
    rng = np.random.default_rng(7)
    hib, n_models = (True, False, True), 4
    matrices = [rng.normal(size=(n_models, n)) for n in (3, 5, 4)]
    ref = reference_point_n(np.stack([m.mean(axis=1) for m in matrices], axis=1), hib, margin=0.3)
    hv, lo, hi = bootstrap_hypervolume_n(matrices, hib, ref, n_boot=60, seed=11)
    assert hv == pytest.approx(hypervolume_n(np.stack([m.mean(axis=1) for m in matrices], axis=1), hib, ref))
    draws = _brute_bootstrap([matrices], hib, ref, 60, 11)[:, 0]
    assert [lo, hi] == pytest.approx(_quantiles(draws))
    assert lo < hi  # the prompts do vary


def test_bootstrap_hypervolume_difference_n_is_paired_over_the_same_draws():
    rng = np.random.default_rng(8)
    hib = (True, False, True)
    a = [rng.normal(size=(3, n)) for n in (4, 6, 5)]
    b = [rng.normal(size=(2, n)) for n in (4, 6, 5)]
    every = np.concatenate([np.stack([m.mean(axis=1) for m in s], axis=1) for s in (a, b)])
    ref = reference_point_n(every, hib, margin=0.3)
    diff, lo, hi = bootstrap_hypervolume_difference_n(a, b, hib, ref, n_boot=50, seed=5)
    means = [np.stack([m.mean(axis=1) for m in s], axis=1) for s in (a, b)]
    assert diff == pytest.approx(hypervolume_n(means[0], hib, ref) - hypervolume_n(means[1], hib, ref))
    draws = _brute_bootstrap([a, b], hib, ref, 50, 5)
    assert [lo, hi] == pytest.approx(_quantiles(draws[:, 0] - draws[:, 1]))


@pytest.mark.parametrize("hib", DIRECTIONS_2D)
def test_bootstrap_n_with_two_objectives_is_peo_paretos_stratified_bootstrap(hib):
    """Two objectives: exactly peo.pareto's stratified bootstrap, the columns mapped to (reward ↑, cost ↓)."""
    rng = np.random.default_rng(9)
    a, b = [rng.normal(size=(3, 6)), rng.normal(size=(3, 4))], [rng.normal(size=(2, 6)), rng.normal(size=(2, 4))]
    ref = reference_point_n(np.concatenate([np.stack([m.mean(axis=1) for m in s], axis=1) for s in (a, b)]), hib)
    sign = [1.0 if h else -1.0 for h in hib]  # reward: higher better as is; cost: lower better
    sign[1] = -sign[1]
    rc = [[m * s for m, s in zip(ms, sign)] for ms in (a, b)]
    ref_rc = [r * s for r, s in zip(ref, sign)]
    assert bootstrap_hypervolume_n(a, list(hib), ref, n_boot=40, seed=2) == pareto.bootstrap_hypervolume(
        *rc[0], *ref_rc, n_boot=40, seed=2, stratified=True)
    assert bootstrap_hypervolume_difference_n(a, b, list(hib), ref, n_boot=40, seed=2) == \
        pareto.bootstrap_hypervolume_difference(*rc[0], *rc[1], *ref_rc, n_boot=40, seed=2, stratified=True)


def test_bootstrap_n_rejects_inputs_that_do_not_fit():
    hib, ref = MIN3, (1.0, 1.0, 1.0)
    ok = [np.zeros((2, 3))] * 3
    with pytest.raises(ValueError, match="3 objectives"):
        bootstrap_hypervolume_n(ok[:2], hib, ref)
    with pytest.raises(ValueError, match="same models"):
        bootstrap_hypervolume_n([np.zeros((2, 3)), np.zeros((3, 3)), np.zeros((2, 3))], hib, ref)
    with pytest.raises(ValueError, match="NaN"):
        bootstrap_hypervolume_n([np.full((2, 3), np.nan)] * 3, hib, ref)
    with pytest.raises(ValueError, match="share their prompts"):
        bootstrap_hypervolume_difference_n(ok, [np.zeros((2, 4))] * 3, hib, ref)
