"""Exact tests of the report's small statistics: Wilson intervals, accuracy by confidence, answers that differ."""

from __future__ import annotations

import math

import pytest

from peo.evaluation_stats import (
    Z95,
    accuracy_by_confidence,
    differ_share,
    paired_bootstrap_difference,
    wilson_interval,
)


def test_wilson_published_value():
    # 8 of 10: the textbook Wilson 95% interval (e.g. Newcombe 1998) is [0.4902, 0.9433]
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.4901624, abs=1e-6)
    assert hi == pytest.approx(0.9433178, abs=1e-6)


def test_wilson_at_the_edges_is_closed_form():
    # p = 0: [0, z²/(n + z²)]; p = 1: [n/(n + z²), 1]; the normal interval would collapse to a point
    z2 = Z95 ** 2
    assert wilson_interval(0, 10) == pytest.approx((0.0, z2 / (10 + z2)), abs=1e-12)
    assert wilson_interval(10, 10) == pytest.approx((10 / (10 + z2), 1.0), abs=1e-12)
    assert wilson_interval(0, 10)[1] == pytest.approx(0.2775328, abs=1e-6)


def test_wilson_is_symmetric_and_centred_at_half():
    lo, hi = wilson_interval(50, 100)
    assert lo + hi == pytest.approx(1.0)
    assert lo == pytest.approx(0.5 - Z95 / (1 + Z95 ** 2 / 100) * math.sqrt(0.25 / 100 + Z95 ** 2 / 40000))


def test_wilson_empty_and_bad_input():
    assert all(math.isnan(v) for v in wilson_interval(0, 0))
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


def test_accuracy_by_confidence_hand_computed():
    margin = [0.9, 0.1, 0.5, 0.3, 0.7, 0.2, 0.8, 0.4]
    correct = [1, 0, 1, 0, 1, 1, 1, 0]
    # ranked by margin: 0.1(0) 0.2(1) | 0.3(0) 0.4(0) | 0.5(1) 0.7(1) | 0.8(1) 0.9(1)
    groups = accuracy_by_confidence(correct, margin)
    assert [g["n"] for g in groups] == [2, 2, 2, 2]
    assert [g["accuracy"] for g in groups] == [0.5, 0.0, 1.0, 1.0]
    assert [g["correct"] for g in groups] == [1, 0, 2, 2]
    assert [(g["margin_min"], g["margin_max"]) for g in groups] == [(0.1, 0.2), (0.3, 0.4), (0.5, 0.7), (0.8, 0.9)]
    assert [g["group"] for g in groups] == [1, 2, 3, 4]


def test_accuracy_by_confidence_uneven_and_ties():
    # 5 pairs in 4 groups: sizes 2, 1, 1, 1; equal margins keep their input order
    groups = accuracy_by_confidence([1, 0, 0, 1, 1], [0.5, 0.5, 0.5, 0.2, 0.9])
    assert [g["n"] for g in groups] == [2, 1, 1, 1]
    assert [g["accuracy"] for g in groups] == [1.0, 0.0, 0.0, 1.0]  # (0.2→1, 0.5→1) (0.5→0) (0.5→0) (0.9→1)
    assert accuracy_by_confidence([], []) == []
    with pytest.raises(ValueError):
        accuracy_by_confidence([1, 0], [0.1])


def test_differ_share_strips_whitespace():
    assert differ_share(["a", " b ", "c", "d"], ["a", "b", "x", "d\n"]) == (1, 0.25)
    n, share = differ_share([], [])
    assert n == 0 and math.isnan(share)
    with pytest.raises(ValueError):
        differ_share(["a"], [])


def test_paired_difference_of_a_constant_shift_is_exact():
    a = [1.0, 5.0, -2.0, 0.5]
    b = [x - 0.25 for x in a]
    assert paired_bootstrap_difference(a, b, n_boot=200, seed=0) == pytest.approx((0.25, 0.25, 0.25))


def test_paired_difference_flips_sign_and_brackets_its_mean():
    a, b = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0], [2.0, 7.0, 1.0, 8.0, 2.0, 8.0]
    mean, lo, hi = paired_bootstrap_difference(a, b, n_boot=500, seed=1)
    assert mean == pytest.approx(sum(x - y for x, y in zip(a, b)) / 6) and lo <= mean <= hi
    assert paired_bootstrap_difference(b, a, n_boot=500, seed=1) == pytest.approx((-mean, -hi, -lo))
    with pytest.raises(ValueError):
        paired_bootstrap_difference([1.0, float("nan")], [0.0, 0.0], n_boot=10, seed=0)
