"""The stages before the sweep take any number of aspects: tiny3.yaml (help, harm, brief) trains one evaluator and
one DPO policy per aspect and a joint policy on all three aspects' pairs."""

from __future__ import annotations

import json

import pytest

from peo.aspects import Aspect
from peo.data.joint_pairs import joint_pairs
from peo.data.records import Message, PreferencePair
from peo.digest import digest
from peo.hf_evaluator import direction_sign
from peo.layout import AssetLayout
from precompute.pair_files import data_path, pair_to_json, read_pairs
from precompute.stages import run_pipeline

from conftest import tiny_config

TRAINING_STAGES = ("prepare-data", "train-evaluators", "train-aspects")


def pairs_of(aspect: str, n: int) -> list[PreferencePair]:
    return [PreferencePair((Message("user", f"{aspect} {i}"),), "good", "bad", aspect, "test", f"{aspect}{i}")
            for i in range(n)]


@pytest.mark.parametrize("n", [16, 17])
def test_joint_pairs_of_two_aspects_are_what_they_were(n):
    """Two aspects: the first ⌈n/2⌉ help pairs and the first ⌊n/2⌋ harm pairs, shuffled with the seed."""
    import random

    help_pairs, harm_pairs = pairs_of("help", 20), pairs_of("harm", 20)
    before = help_pairs[: (n + 1) // 2] + harm_pairs[: n // 2]
    random.Random(3).shuffle(before)
    assert joint_pairs([help_pairs, harm_pairs], n, seed=3) == before


def test_joint_pairs_share_the_budget_between_every_aspect():
    mixed = joint_pairs([pairs_of("help", 20), pairs_of("harm", 20), pairs_of("brief", 20)], 17, seed=0)
    assert len(mixed) == 17
    assert [sum(p.aspect == a for p in mixed) for a in ("help", "harm", "brief")] == [6, 6, 5]
    assert {p.prompt_id for p in mixed if p.aspect == "brief"} == {f"brief{i}" for i in range(5)}  # the first ones


@pytest.mark.parametrize("better, higher_is, sign", [
    ("higher", "better", 1.0), ("higher", "worse", -1.0), ("lower", "worse", 1.0), ("lower", "better", -1.0)])
def test_a_reward_models_sign_follows_its_aspects_direction(better, higher_is, sign):
    assert direction_sign(better, higher_is) == sign


def test_an_aspects_sign_is_the_evaluators_direction():
    assert Aspect("brief", "brevity", "higher", "brevity").sign == 1.0
    assert Aspect("harm", "cost", "lower", "harmlessness").sign == -1.0


def test_three_aspects_train_an_evaluator_and_a_policy_each_and_a_joint_policy(tmp_path):
    cfg = tiny_config(tmp_path, profile="tiny3.yaml")
    aspects = cfg.aspect_set
    assert aspects.names == ("help", "harm", "brief")
    for stage in TRAINING_STAGES:
        ctx = run_pipeline(cfg, only=stage)
    layout = AssetLayout(ctx.out)

    for name in aspects.names:  # prepare-data wrote every aspect's pair files, labelled with the aspect
        for split in ("evaluator", "policy", "dev", "test", "test_prompts"):
            pairs = read_pairs(data_path(ctx.work, name, split))
            assert pairs and {p.aspect for p in pairs} == {name}, (name, split)
    summary = json.loads((ctx.work / "data" / "summary.json").read_text())
    assert list(summary) == list(aspects.names)
    assert summary["brief"]["source"] == {"format": "pairs", "path": "brief.jsonl", "aspect": "brief"}

    for aspect in aspects:  # one evaluator per aspect, named by its evaluator, signed by its direction
        meta = json.loads(layout.evaluator_meta(aspect.evaluator).read_text())
        assert (meta["kind"], meta["sign"]) == (aspect.evaluator, aspect.sign)
        assert layout.evaluator_head(aspect.evaluator).is_file() and layout.ref_logps(aspect.evaluator).is_file()
    brevity = json.loads(layout.evaluator_meta("brevity").read_text())
    assert 0.0 <= brevity["held_out_accuracy"] <= 1.0
    assert brevity["held_out_pairs"] == len(read_pairs(data_path(ctx.work, "brief", "test")))
    assert sorted(p.name for p in layout.evaluators.iterdir()) == sorted(aspects.evaluators)

    for name in aspects.adapters:  # help, harm, brief, joint
        assert (layout.adapter(name) / "adapter_model.safetensors").is_file(), name
    training = json.loads(layout.training.read_text())
    assert list(training) == list(aspects.adapters)
    for name in aspects.names:  # each aspect policy checked on its own aspect's held-out pairs
        check = training[name]["heldout"][name]
        assert check["aspect"] == name and check["pairs"] == min(cfg.dpo.heldout_pairs, len(
            read_pairs(data_path(ctx.work, name, "test"))))
        assert 0.0 <= check["accuracy"] <= 1.0
    assert "heldout" not in training["joint"]

    meta = json.loads(layout.meta.read_text())
    assert [a["name"] for a in meta["aspects"]] == ["help", "harm", "brief"]
    assert meta["aspects"] == aspects.to_json()
    assert list(meta["evaluators"]) == ["reward", "cost", "brevity"]

    # the joint policy was trained on a mix of all three aspects' policy pairs, one aspect policy's budget
    policy = [read_pairs(data_path(ctx.work, name, "policy")) for name in aspects.names]
    mixed = joint_pairs(policy, len(policy[0]), cfg.seed)
    recorded = json.loads((layout.adapter("joint") / "settings.json").read_text())["training"]
    assert recorded["pairs"] == digest([pair_to_json(p) for p in mixed]) and recorded["n_pairs"] == len(policy[0])
    assert {p.aspect for p in mixed} == {"help", "harm", "brief"}
    assert sum(p.aspect == "brief" for p in mixed) == len(policy[0]) // 3
