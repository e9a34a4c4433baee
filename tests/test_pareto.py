"""Exact tests of the Pareto math: reward higher is better, cost lower is better."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from peo.pareto import (
    bootstrap_hypervolume,
    bootstrap_hypervolume_difference,
    dominates,
    hypervolume,
    mean_and_se,
    pareto_front,
    reference_point,
)

# ---------------------------------------------------------------- dominates


def test_dominates_strict_on_both():
    assert dominates((2.0, 1.0), (1.0, 2.0))
    assert not dominates((1.0, 2.0), (2.0, 1.0))


def test_dominates_strict_on_one_axis_only():
    assert dominates((2.0, 1.0), (1.0, 1.0))  # same cost, more reward
    assert dominates((1.0, 0.5), (1.0, 1.0))  # same reward, less cost
    assert not dominates((1.0, 1.0), (2.0, 1.0))
    assert not dominates((1.0, 1.0), (1.0, 0.5))


def test_equal_points_do_not_dominate():
    assert not dominates((1.0, 1.0), (1.0, 1.0))


def test_trade_off_points_do_not_dominate_each_other():
    a, b = (2.0, 2.0), (1.0, 1.0)  # more reward but more cost
    assert not dominates(a, b) and not dominates(b, a)


def test_cost_direction_is_lower_better():
    assert dominates((0.0, -1.0), (0.0, 0.0))
    assert not dominates((0.0, 1.0), (0.0, 0.0))


# ---------------------------------------------------------------- pareto_front


def test_front_hand_computed():
    rewards = [1.0, 3.0, 2.0, 0.5, 2.5]
    costs = [1.0, 3.0, 2.0, 2.0, 3.5]
    # (0.5, 2) dominated by (1, 1) and (2, 2); (2.5, 3.5) dominated by (3, 3)
    assert pareto_front(rewards, costs).tolist() == [0, 2, 1]


def test_front_sorted_by_cost_ascending():
    rewards = [3.0, 1.0, 2.0]
    costs = [3.0, 1.0, 2.0]
    idx = pareto_front(rewards, costs)
    assert idx.tolist() == [1, 2, 0]
    assert np.all(np.diff(np.asarray(costs)[idx]) > 0)


def test_front_duplicates_keep_first():
    rewards = [1.0, 2.0, 2.0, 1.0]
    costs = [1.0, 2.0, 2.0, 1.0]
    assert pareto_front(rewards, costs).tolist() == [0, 1]


def test_front_ties_on_one_axis():
    # equal cost: only the higher reward survives; equal reward: only the lower cost survives
    assert pareto_front([1.0, 2.0], [1.0, 1.0]).tolist() == [1]
    assert pareto_front([1.0, 1.0], [2.0, 1.0]).tolist() == [1]


def test_front_single_and_empty():
    assert pareto_front([5.0], [5.0]).tolist() == [0]
    assert pareto_front([], []).tolist() == []


def test_front_one_point_dominates_all():
    assert pareto_front([1.0, 5.0, 2.0, 3.0], [2.0, 0.0, 1.0, 3.0]).tolist() == [1]


def test_front_rejects_nan_and_length_mismatch():
    with pytest.raises(ValueError):
        pareto_front([1.0, float("nan")], [1.0, 2.0])
    with pytest.raises(ValueError):
        pareto_front([1.0, 2.0], [1.0])


# ---------------------------------------------------------------- hypervolume


def test_hypervolume_single_point_rectangle():
    assert hypervolume([2.0], [1.0], 0.0, 4.0) == pytest.approx(6.0)


def test_hypervolume_three_point_staircase():
    # points (r, c): (1, 1), (2, 2), (3, 3); reference (0, 4)
    # [1, 2)·1 + [2, 3)·2 + [3, 4)·3 = 6
    assert hypervolume([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], 0.0, 4.0) == 6.0


def test_hypervolume_order_and_dominated_points_do_not_matter():
    base = hypervolume([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], 0.0, 4.0)
    more = hypervolume([3.0, 0.5, 1.0, 2.0, 1.5, 2.0], [3.0, 3.0, 1.0, 2.0, 2.5, 2.0], 0.0, 4.0)
    assert more == base


def test_hypervolume_points_behind_reference_add_nothing():
    assert hypervolume([5.0], [5.0], 0.0, 4.0) == 0.0  # cost worse than reference
    assert hypervolume([-1.0], [1.0], 0.0, 4.0) == 0.0  # reward worse than reference
    assert hypervolume([0.0], [1.0], 0.0, 4.0) == 0.0  # on the reference reward: not strictly better
    assert hypervolume([2.0], [4.0], 0.0, 4.0) == 0.0  # on the reference cost
    # a point behind the reference does not shadow a useful one
    assert hypervolume([10.0, 2.0], [5.0, 1.0], 0.0, 4.0) == pytest.approx(6.0)


def test_hypervolume_empty():
    assert hypervolume([], [], 0.0, 1.0) == 0.0


def test_hypervolume_with_negative_coordinates():
    # (r, c) = (-1, -2), (0, 0) with reference (-3, 1): [-2, 0)·2 + [0, 1)·3 = 7
    assert hypervolume([-1.0, 0.0], [-2.0, 0.0], -3.0, 1.0) == pytest.approx(7.0)


# ---------------------------------------------------------------- reference_point, mean_and_se


def test_reference_point():
    ref_r, ref_c = reference_point([0.0, 10.0], [-1.0, 1.0], margin=0.05)
    assert ref_r == pytest.approx(-0.5)
    assert ref_c == pytest.approx(1.1)


def test_reference_point_zero_range_still_strictly_worse():
    ref_r, ref_c = reference_point([2.0, 2.0], [3.0, 3.0])
    assert ref_r < 2.0 and ref_c > 3.0
    assert hypervolume([2.0, 2.0], [3.0, 3.0], ref_r, ref_c) > 0


def test_mean_and_se():
    mean, se = mean_and_se([1.0, 2.0, 3.0, 4.0])
    assert mean == 2.5
    assert se == pytest.approx(np.std([1, 2, 3, 4], ddof=1) / 2.0)
    assert mean_and_se([7.0]) == (7.0, 0.0)
    m, s = mean_and_se([])
    assert math.isnan(m) and s == 0.0


# ---------------------------------------------------------------- bootstrap


def _noisy_matrices(seed=1, models=5, prompts=40):
    rng = np.random.default_rng(seed)
    centers_r = np.linspace(0.0, 2.0, models)
    centers_c = np.linspace(0.0, 2.0, models) ** 2 / 2
    rm = centers_r[:, None] + rng.normal(0, 0.3, (models, prompts))
    cm = centers_c[:, None] + rng.normal(0, 0.3, (models, prompts))
    return rm, cm


def test_bootstrap_point_estimate_is_hypervolume_of_means():
    rm, cm = _noisy_matrices()
    ref = reference_point(rm.mean(1), cm.mean(1))
    hv, lo, hi = bootstrap_hypervolume(rm, cm, *ref, n_boot=200, seed=3)
    assert hv == hypervolume(rm.mean(1), cm.mean(1), *ref)
    assert lo <= hv <= hi
    assert lo < hi


def test_bootstrap_is_deterministic_with_seed():
    rm, cm = _noisy_matrices()
    ref = reference_point(rm.mean(1), cm.mean(1))
    a = bootstrap_hypervolume(rm, cm, *ref, n_boot=300, seed=7)
    b = bootstrap_hypervolume(rm, cm, *ref, n_boot=300, seed=7)
    c = bootstrap_hypervolume(rm, cm, *ref, n_boot=300, seed=8)
    assert a == b
    assert a[1:] != c[1:]


def test_bootstrap_chunking_does_not_change_draws():
    # n_boot above the internal chunk size uses several chunks; the first draws are the same stream
    rm, cm = _noisy_matrices(prompts=10)
    ref = reference_point(rm.mean(1), cm.mean(1))
    hv, lo, hi = bootstrap_hypervolume(rm, cm, *ref, n_boot=600, seed=0)
    assert lo <= hv <= hi


def test_bootstrap_constant_columns_give_zero_width():
    # every prompt column identical: any resample has the same means
    rm = np.tile(np.array([[1.0], [2.0], [3.0]]), (1, 8))
    cm = np.tile(np.array([[1.0], [2.0], [3.0]]), (1, 8))
    assert bootstrap_hypervolume(rm, cm, 0.0, 4.0, n_boot=50, seed=0) == (6.0, 6.0, 6.0)


def test_bootstrap_rejects_nan_and_bad_shapes():
    rm, cm = _noisy_matrices()
    bad = rm.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError):
        bootstrap_hypervolume(bad, cm, 0.0, 1.0, n_boot=10)
    with pytest.raises(ValueError):
        bootstrap_hypervolume(rm, cm[:, :-1], 0.0, 1.0, n_boot=10)
    with pytest.raises(ValueError):
        bootstrap_hypervolume(rm, cm, 0.0, 1.0, n_boot=0)


def test_difference_matches_separate_bootstraps_with_same_seed():
    rm, cm = _noisy_matrices(models=6)
    a, b = slice(0, 6), slice(0, 6, 2)
    ref = reference_point(rm.mean(1), cm.mean(1))
    diff, lo, hi = bootstrap_hypervolume_difference(rm[a], cm[a], rm[b], cm[b], *ref, n_boot=200, seed=5)
    hv_a = bootstrap_hypervolume(rm[a], cm[a], *ref, n_boot=200, seed=5)[0]
    hv_b = bootstrap_hypervolume(rm[b], cm[b], *ref, n_boot=200, seed=5)[0]
    assert diff == pytest.approx(hv_a - hv_b)
    # a ⊇ b, and both see the same columns in each draw: no draw can have a negative difference
    assert lo >= 0.0
    assert lo <= diff <= hi


def test_difference_of_a_set_with_itself_is_exactly_zero():
    rm, cm = _noisy_matrices()
    ref = reference_point(rm.mean(1), cm.mean(1))
    assert bootstrap_hypervolume_difference(rm, cm, rm, cm, *ref, n_boot=100, seed=0) == (0.0, 0.0, 0.0)


def test_difference_needs_shared_prompts():
    rm, cm = _noisy_matrices()
    with pytest.raises(ValueError):
        bootstrap_hypervolume_difference(rm, cm, rm[:, :-1], cm[:, :-1], 0.0, 1.0, n_boot=10)


# ---------------------------------------------------------------- properties

coord = st.floats(min_value=-100, max_value=100, allow_nan=False, allow_infinity=False)
# few distinct values so that ties and duplicates are common
small = st.integers(min_value=-4, max_value=4).map(float)
points = st.lists(st.tuples(st.one_of(coord, small), st.one_of(coord, small)), min_size=0, max_size=40)


@settings(max_examples=200, deadline=None)
@given(points)
def test_front_points_are_mutually_non_dominated_and_cover_the_rest(pts):
    rewards = [p[0] for p in pts]
    costs = [p[1] for p in pts]
    idx = pareto_front(rewards, costs).tolist()
    assert len(set(idx)) == len(idx)
    for i in idx:
        for j in idx:
            assert not dominates(pts[i], pts[j])
    front_pts = {pts[i] for i in idx}
    assert len(front_pts) == len(idx)  # no duplicate points on the front
    for k, p in enumerate(pts):
        if k in idx:
            continue
        # either dominated by a front point, or an exact duplicate of one (whose first index was kept)
        assert any(dominates(pts[i], p) for i in idx) or (p in front_pts and pts.index(p) in idx)
    # sorted by cost ascending
    assert all(pts[idx[i]][1] < pts[idx[i + 1]][1] for i in range(len(idx) - 1))


@settings(max_examples=200, deadline=None)
@given(points, points)
def test_hypervolume_is_monotone_under_supersets(sub, extra):
    sup = sub + extra
    ref_r, ref_c = -101.0, 101.0
    hv_sub = hypervolume([p[0] for p in sub], [p[1] for p in sub], ref_r, ref_c)
    hv_sup = hypervolume([p[0] for p in sup], [p[1] for p in sup], ref_r, ref_c)
    assert hv_sup >= hv_sub - 1e-9 * max(1.0, hv_sub)


@settings(max_examples=200, deadline=None)
@given(points)
def test_hypervolume_equals_area_of_its_front(pts):
    rewards = np.array([p[0] for p in pts])
    costs = np.array([p[1] for p in pts])
    idx = pareto_front(rewards, costs)
    full = hypervolume(rewards, costs, -101.0, 101.0)
    assert full == pytest.approx(hypervolume(rewards[idx], costs[idx], -101.0, 101.0))
    assert full >= 0.0
    # never more than the bounding box of the reference and the best corner
    if len(pts):
        assert full <= (rewards.max() + 101.0) * (101.0 - costs.min()) + 1e-6


def test_stratified_bootstrap_resamples_reward_and_cost_prompts_each_on_their_own():
    # rewards over 4 benign prompts, costs over 3 harmful ones: shapes differ, which only stratified allows
    rng = np.random.default_rng(0)
    rm, cm = rng.normal(1, 0.3, (3, 4)), rng.normal(0, 0.3, (3, 3))
    ref = (-1.0, 2.0)
    hv, lo, hi = bootstrap_hypervolume(rm, cm, *ref, n_boot=200, seed=1, stratified=True)
    assert hv == pytest.approx(hypervolume(rm.mean(1), cm.mean(1), *ref)) and lo <= hv <= hi
    with pytest.raises(ValueError):
        bootstrap_hypervolume(rm, cm, *ref, n_boot=10, seed=1)
    # a cost matrix with identical columns: its draws never move, so the interval is the reward side's alone
    flat = np.repeat(cm.mean(1, keepdims=True), 3, axis=1)
    d, dlo, dhi = bootstrap_hypervolume_difference(rm, flat, rm[:1], flat[:1], *ref, n_boot=100, seed=2,
                                                   stratified=True)
    assert dlo <= d <= dhi
    # one group (unstratified) gives the draws the older code gave: same seed, same columns for both matrices
    sq = rng.normal(0, 1, (3, 4))
    assert bootstrap_hypervolume(rm, sq, *ref, n_boot=50, seed=3) == bootstrap_hypervolume(rm, sq, *ref, n_boot=50,
                                                                                           seed=3)
