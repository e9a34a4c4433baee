"""Bradley-Terry heads: the fit is right on data with a known answer; sign and offset give reward and cost."""

from __future__ import annotations

import torch

from peo.scoring import BradleyTerryHead, Evaluator
from peo.train.evaluator import choose_l2, fit_bradley_terry, pairwise_accuracy


def synthetic_pairs(n=200, dim=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    direction = torch.zeros(dim)
    direction[2] = 1.0
    chosen = torch.randn(n, dim, generator=g) + 0.8 * direction
    rejected = torch.randn(n, dim, generator=g) - 0.8 * direction
    return chosen, rejected


def test_fit_recovers_the_preferred_direction():
    chosen, rejected = synthetic_pairs()
    head = fit_bradley_terry(chosen, rejected, l2=1e-3)
    assert int(head.w.abs().argmax()) == 2 and head.w[2] > 0
    test_chosen, test_rejected = synthetic_pairs(seed=1)
    assert pairwise_accuracy(head, test_chosen, test_rejected) > 0.8
    # Swapping the sides flips the preference.
    flipped = fit_bradley_terry(rejected, chosen, l2=1e-3)
    assert pairwise_accuracy(flipped, test_chosen, test_rejected) < 0.2


def test_choose_l2_prefers_regularization_on_noise():
    g = torch.Generator().manual_seed(3)
    chosen, rejected = torch.randn(60, 40, generator=g), torch.randn(60, 40, generator=g)
    l2, scores = choose_l2(chosen, rejected, [1e-4, 10.0], seed=0)
    assert set(scores) == {1e-4, 10.0}
    assert all(0.0 <= s <= 1.0 for s in scores.values())
    assert l2 in scores and scores[l2] == max(scores.values())


def test_reward_and_cost_signs_and_offset():
    head = BradleyTerryHead(w=torch.tensor([2.0, 0.0]), b=0.0, mu=torch.zeros(2), sigma=torch.ones(2))
    features = torch.tensor([[1.0, 5.0], [-1.0, 5.0]])
    assert Evaluator(head, sign=1.0, offset=0.5).scores(features) == [1.5, -2.5]
    assert Evaluator(head, sign=-1.0, offset=0.5).scores(features) == [-1.5, 2.5]
