"""Config files are checked up front, with the dotted key that is wrong."""

from __future__ import annotations

import pytest

from peo.config import ConfigError, load_config

from conftest import REPO

PROFILES = ["tiny", "cpu", "gpu"]


@pytest.mark.parametrize("profile", PROFILES)
def test_shipped_profiles_load(profile):
    cfg = load_config(REPO / "precompute" / "configs" / f"{profile}.yaml")
    assert cfg.name == profile


@pytest.mark.parametrize("overrides,message", [
    ({"sweep.lambdas": [0.0, 1.5]}, "'sweep.lambdas' must be a non-empty list of values in [0, 1]"),
    ({"sweep.phi.help": [-1.0]}, "'sweep.phi.help' must be a non-empty list of values in [0, 10]"),
    ({"sweep.phi": {"help": [0.0]}}, "'sweep.phi' must name exactly the aspects (help, harm); got help"),
    ({"data.sources": {"help": {"format": "hh", "path": "x"}, "humour": {"format": "hh", "path": "y"}}},
     "'data.sources' must name exactly the aspects (help, harm); got help, humour"),
    ({"aspects": {"help": {"evaluator": "cost", "better": "higher"}, "harm": {"evaluator": "cost", "better": "lower"}}},
     "aspect and evaluator names must all differ; repeated: cost"),
    ({"aspects": {"help": {"evaluator": "reward", "better": "more"}, "harm": {"evaluator": "cost", "better": "lower"}}},
     "'aspects.help.better' must be higher or lower, got 'more'"),
    ({"aspects": {"help": {"evaluator": "reward", "better": "higher"}}}, "needs at least two aspects"),
    ({"aspects.joint": {"evaluator": "j", "better": "higher"}}, "'joint' is reserved"),
    ({"dpo.epochs_per_policy": {"humour": 2}}, "'dpo.epochs_per_policy' names humour; the run's policies are help, "
                                               "harm, joint"),
    ({"evaluator.reward_models.score": {"hf_model": "a/b"}}, "'evaluator.reward_models' names score; the run's "
                                                             "evaluators are reward, cost"),
    ({"dpo.betaa": 0.1}, "unknown key 'dpo.betaa'"),
    ({"data.splits.policy_pairs": 0}, "'data.splits.policy_pairs' must be >= 1, got 0"),
    ({"data.splits.fractions": {"evaluator": 0.5, "policy": 0.5, "dev": 0.5, "test": 0.5}}, "sum to 1"),
    ({"sweep.lambdas": [i / 100 for i in range(101)], "sweep.phi.help": [0, 1, 2], "sweep.phi.harm": [0, 1, 2]},
     "more than sweep.max_models"),
    ({"dpo.learning_rate": "fast"}, "'dpo.learning_rate' must be a finite number"),
    ({"data.sources.help.format": "csv"}, "'data.sources.help.format' must be one of"),
    ({"data.splits.policy_pairs_per_aspect": {"joint": 8}},
     "'data.splits.policy_pairs_per_aspect' names joint; the run's aspects are help, harm"),
    ({"data.splits.policy_pairs_per_aspect": {"harm": 0}}, "with at least 1 pair"),
    ({"data.splits.fractions_per_aspect": {"help": {"evaluator": 0.5, "policy": 0.5, "dev": 0.1, "test": 0.1}}},
     "'data.splits.fractions_per_aspect.help' must be positive and sum to 1"),
    ({"data.splits.fractions_per_aspect": {"joint": {"evaluator": 0.4, "policy": 0.2, "dev": 0.1, "test": 0.3}}},
     "'data.splits.fractions_per_aspect' names joint; the run's aspects are help, harm"),
])
def test_bad_values_name_the_key(overrides, message):
    with pytest.raises(ConfigError) as err:
        load_config(REPO / "precompute" / "configs" / "tiny.yaml", overrides)
    assert message in str(err.value)
    assert "tiny.yaml" in str(err.value)


RM = "evaluator.reward_models"


@pytest.mark.parametrize("overrides,message", [
    ({f"{RM}.cost": {"higher_is": "worse"}}, f"'{RM}.cost.hf_model' is required"),
    ({f"{RM}.cost": {"hf_model": "a/b", "higher_is": "lower"}}, f"'{RM}.cost.higher_is' must be better, worse"),
    ({f"{RM}.reward": {"hf_model": "a/b", "dtype": "float16"}}, f"'{RM}.reward.dtype' must be float32 or"),
    ({f"{RM}.reward": {"hf_model": "a/b", "batch_size": 0}}, f"'{RM}.reward.batch_size' must be >= 1"),
    ({f"{RM}.reward": {"hf_model": "a/b", "max_length": 0}}, f"'{RM}.reward.max_length' must be >= 1"),
    ({f"{RM}.reward": {"hf_model": "a/b", "label": -1}}, f"'{RM}.reward.label' must be a label index"),
    ({f"{RM}.reward": {"hf_model": "a/b", "sign": -1}}, f"unknown key '{RM}.reward.sign'"),
    ({"evaluator.reward_models.reward": {"hf_model": 7}}, "'evaluator.reward_models.reward.hf_model' must be a string"),
    ({f"{RM}.cost": "PKU-Alignment/beaver-7b-v1.0-cost"}, f"'{RM}.cost' must be a mapping"),
])
def test_bad_hf_evaluator_values_name_the_key(overrides, message):
    with pytest.raises(ConfigError) as err:
        load_config(REPO / "precompute" / "configs" / "tiny.yaml", overrides)
    assert message in str(err.value)


def test_hf_evaluators_default_to_the_built_in_heads_and_leave_stage_hashes_alone():
    import json

    from peo.config import config_to_dict
    from precompute.stages import REGISTRY, hashed_view, stage_settings

    tiny = REPO / "precompute" / "configs" / "tiny.yaml"
    cfg = load_config(tiny)
    assert cfg.evaluator.reward_models == {}
    hf = load_config(tiny, {"evaluator.reward_models.cost": {"hf_model": "PKU-Alignment/beaver-7b-v1.0-cost"}})
    assert hf.evaluator.reward_models["cost"].hf_model == "PKU-Alignment/beaver-7b-v1.0-cost"
    cost = hf.evaluator.reward_models["cost"]
    assert cost.higher_is is None and cost.center and cost.max_length == 512
    for stage in REGISTRY:  # set, they rerun train-evaluators and every stage after it
        same = stage_settings(cfg, stage) == stage_settings(hf, stage)
        assert same == (stage == "prepare-data"), stage
    # unset, they are left out of the hash, and aspect-keyed sections hash as they did before aspects were data:
    # the shipped assets' stages, made before either, stay done
    shipped = json.loads((REPO / "assets" / "manifest.json").read_text())
    cpu = load_config(REPO / "precompute" / "configs" / "cpu.yaml")
    recorded = {stage: entry["settings"] for stage, entry in shipped.items() if isinstance(entry, dict)
                and "settings" in entry}
    assert set(recorded) >= {"train-evaluators", "train-aspects", "sweep-test", "report"}
    assert {stage: stage_settings(cpu, stage) for stage in recorded} == recorded
    assert "aspects" not in hashed_view(config_to_dict(cpu))


def test_a_nested_key_added_later_is_hashed_only_when_set():
    """data.splits.fractions_per_aspect came after the cpu assets were trained: empty, the training stages stay done;
    set, they rerun."""
    from precompute.stages import stage_settings

    tiny = REPO / "precompute" / "configs" / "tiny.yaml"
    plain = load_config(tiny)
    per_aspect = load_config(tiny, {"data.splits.fractions_per_aspect": {
        "help": {"evaluator": 0.4, "policy": 0.2, "dev": 0.1, "test": 0.3}}})
    assert plain.data.splits.fractions_per_aspect == {}
    assert stage_settings(plain, "train-evaluators") != stage_settings(per_aspect, "train-evaluators")


def test_a_scoring_batch_below_one_is_refused_with_its_key():
    tiny = REPO / "precompute" / "configs" / "tiny.yaml"
    with pytest.raises(ConfigError, match=r"'sweep.score_batch_size' must be >= 1, got 0"):
        load_config(tiny, {"sweep.score_batch_size": 0})
