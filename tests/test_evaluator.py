"""Bradley-Terry heads: the fit is right on data with a known answer; sign and offset give reward and cost."""

from __future__ import annotations

import math

import torch

from peo.scoring import BradleyTerryHead, Evaluator
from peo.train.evaluator import choose_l2, fit_bradley_terry, grouped_folds, pairwise_accuracy


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


def test_grouped_folds_keep_each_prompts_pairs_together_and_cover_every_pair_once():
    groups = ["a", "a", "b", "c", "c", "c", "d", "e", "f", "g", "a"]
    folds = grouped_folds(groups, 5, seed=0)
    rows = sorted(int(i) for fold in folds for i in fold)
    assert rows == list(range(len(groups)))
    fold_of = {int(i): f for f, fold in enumerate(folds) for i in fold}
    for g in set(groups):
        assert len({fold_of[i] for i, name in enumerate(groups) if name == g}) == 1
    assert all(len(fold) > 0 for fold in folds)  # 7 groups dealt round-robin over 5 folds
    assert [f.tolist() for f in grouped_folds(groups, 5, seed=0)] == [f.tolist() for f in folds]


def test_reward_and_cost_signs_and_offset():
    head = BradleyTerryHead(w=torch.tensor([2.0, 0.0]), b=0.0, mu=torch.zeros(2), sigma=torch.ones(2))
    features = {-1: torch.tensor([[1.0, 5.0], [-1.0, 5.0]])}
    assert Evaluator(head, sign=1.0, offset=0.5).scores(features) == [1.5, -2.5]
    assert Evaluator(head, sign=-1.0, offset=0.5).scores(features) == [-1.5, 2.5]


def test_an_evaluator_reads_its_layers_side_by_side():
    head = BradleyTerryHead(w=torch.tensor([1.0, 0.0, 0.0, 10.0]), b=0.0, mu=torch.zeros(4), sigma=torch.ones(4))
    features = {-1: torch.tensor([[1.0, 2.0]]), 20: torch.tensor([[3.0, 4.0]]), 10: torch.tensor([[9.0, 9.0]])}
    assert Evaluator(head, sign=1.0, offset=0.0, layers=(-1, 20)).scores(features) == [41.0]


def test_feature_set_and_l2_are_chosen_by_cross_validation_only():
    """A layer that carries the preference wins over one that is noise; ties go to fewer layers."""
    from peo.train.evaluator import choose_features

    gen = torch.Generator().manual_seed(0)
    n = 60
    signal = torch.randn(n, 4, generator=gen)
    chosen = {-1: torch.randn(n, 4, generator=gen), 5: signal + 1.0}
    rejected = {-1: torch.randn(n, 4, generator=gen), 5: signal - 1.0}
    layers, l2, cv = choose_features(chosen, rejected, [[-1], [5], [-1, 5]], [0.01, 0.1], seed=0)
    assert layers == [5] and l2 in (0.01, 0.1)
    assert cv["5"][str(l2)] == 1.0 and cv["-1"]["0.01"] < 0.8


def test_evaluators_on_the_policy_score_exactly_like_their_own_reference_copy(tiny_assets, tiny_adapters):
    """The app's adapters form scores with the policy's weights, adapters disabled: same scores as a separate
    copy of the reference, while the adapters (random, non-zero) are active at non-zero scales, and the
    policy is unchanged afterwards."""
    from peo.adapter_mix import AdapterMix
    from peo.assets import load_assets
    from peo.model_source import load_causal_lm, load_tokenizer, resolve_base_model
    from peo.scoring import Evaluators

    assets = load_assets(tiny_assets)
    base = resolve_base_model(assets.base_model_spec)
    tokenizer = load_tokenizer(base)
    mix = AdapterMix(load_causal_lm(base), tiny_adapters)
    mix.set_scales({"help": 1.5, "harm": -0.7, "joint": 1.0})
    prompts = [[{"role": "user", "content": f"question {i}"}] for i in range(5)]
    answers = ["yes", "no, never", "maybe so " * 5, "", "an answer"]
    ids = tokenizer("hello there", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        policy_before = mix.model(input_ids=ids).logits
        with mix.model.disable_adapter():
            reference = mix.model(input_ids=ids).logits
    assert not torch.allclose(policy_before, reference)  # the adapters do change the model: the test has teeth

    shared = Evaluators.on_policy(mix.model, tokenizer, tiny_assets, assets.run_meta.aspect_set).score(prompts, answers)
    separate = Evaluators.load(base, tiny_assets, assets.run_meta.aspect_set).score(prompts, answers)
    assert list(shared) == list(separate) == ["reward", "cost"]
    for got, want in zip(shared.values(), separate.values()):
        assert torch.allclose(torch.tensor(got), torch.tensor(want), atol=1e-5), (got, want)
    with torch.no_grad():
        assert torch.equal(mix.model(input_ids=ids).logits, policy_before)  # adapters back on, same scales


def test_top_layers_on_cached_states_continue_the_reference_exactly(tiny_base):
    """The top-layers experiment (experiments/evaluator_experiments.py) runs layers K.. by hand on cached layer-K
    states of right-padded batches: before any training it must reproduce the model's own final states, so what
    it learns starts from the reference and not from a mis-wired copy (rotary positions, causal mask)."""
    from experiments.evaluator_experiments import TopLayers
    from peo.model_source import load_causal_lm

    model = load_causal_lm(tiny_base, "float32").eval()
    k = model.config.num_hidden_layers // 2
    ids = torch.randint(3, model.config.vocab_size, (2, 9), generator=torch.Generator().manual_seed(0))
    lengths = [9, 6]  # the second row is right-padded
    with torch.no_grad():
        out = model.model(input_ids=ids, output_hidden_states=True)
        states = [out.hidden_states[k][i, :n] for i, n in enumerate(lengths)]
        top = TopLayers(model, k)
        torch.nn.init.normal_(top.head.weight, generator=torch.Generator().manual_seed(1))
        scores = top(states, [3, 2])
        final = out.last_hidden_state
        expected = [top.head(torch.cat([final[i, n - 1], final[i, n - a:n].mean(0)]))
                    for i, (n, a) in enumerate(zip(lengths, [3, 2]))]
    assert torch.allclose(scores, torch.cat(expected), atol=1e-5)


def test_token_states_pool_to_the_features(tiny_base):
    """token_states (the experiments' input) and features (what the evaluators read) share one encoding and one
    batching: pooling the per-token states gives the features, with padding and truncation in play."""
    from peo.model_source import load_causal_lm, load_tokenizer
    from peo.scoring import FeatureExtractor

    extractor = FeatureExtractor(load_causal_lm(tiny_base), load_tokenizer(tiny_base), max_length=64, batch_size=2,
                                 layers=(-1, 1))
    prompts = [[{"role": "user", "content": f"question {i} " * (i + 1)}] for i in range(5)]
    answers = ["yes", "no, never", "maybe so " * 40, "", "an answer"]  # the third is cut to 32 tokens
    features = extractor.features(prompts, answers)
    for layer in (-1, 1):
        states = extractor.token_states(prompts, answers, layer)
        assert max(len(x) for x, _ in states) == 64 and len({len(x) for x, _ in states}) > 2
        pooled = torch.stack([torch.cat([x[-1], x[-n:].mean(0)]) for x, n in states])
        assert torch.allclose(pooled, features[layer], atol=1e-5), layer


def test_log_linear_trend_gives_the_gain_per_doubling_exactly():
    """The learning-curve experiment's extrapolation: accuracy = a + b·log2(pairs), least squares."""
    from experiments.evaluator_experiments import log_linear_trend

    a, b = log_linear_trend([100, 200, 400, 800], [0.60, 0.62, 0.64, 0.66])
    assert abs(b - 0.02) < 1e-12 and abs(a - (0.60 - 0.02 * math.log2(100))) < 1e-12
    _, flat = log_linear_trend([100, 200, 100, 200], [0.6, 0.6, 0.7, 0.7])
    assert flat == 0.0


def test_the_sweeps_scoring_batch_changes_how_many_answers_a_pass_reads_not_the_scores(tiny_assets):
    """sweep.score_batch_size: the gpu profile scores 256 answers a forward pass instead of the extractor's 16."""
    from peo.assets import load_assets
    from peo.model_source import resolve_base_model
    from peo.scoring import Evaluators

    assets = load_assets(tiny_assets)
    base, aspects = resolve_base_model(assets.base_model_spec), assets.run_meta.aspect_set
    prompts = [[{"role": "user", "content": f"question {i}"}] for i in range(20)]
    answers = [("word " * (i % 7)).strip() or "ok" for i in range(20)]
    default, wide = Evaluators.load(base, tiny_assets, aspects), Evaluators.load(base, tiny_assets, aspects,
                                                                                 batch_size=256)
    assert (default.extractor.batch_size, wide.extractor.batch_size) == (16, 256)
    for got, want in zip(wide.score(prompts, answers).values(), default.score(prompts, answers).values()):
        assert torch.allclose(torch.tensor(got), torch.tensor(want), atol=1e-5)


def test_an_unset_scoring_batch_leaves_the_sweep_hash_alone_and_a_set_one_reruns_the_sweeps():
    from pathlib import Path

    from peo.config import load_config
    from precompute.stages import stage_settings

    tiny = Path(__file__).resolve().parents[1] / "precompute" / "configs" / "tiny.yaml"
    plain, wide = load_config(tiny), load_config(tiny, {"sweep.score_batch_size": 256})
    assert plain.sweep.score_batch_size is None
    for stage, reruns in (("train-aspects", False), ("sweep-dev", True), ("sweep-test", True), ("report", True)):
        assert (stage_settings(plain, stage) != stage_settings(wide, stage)) == reruns, stage
