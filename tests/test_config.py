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
    ({"sweep.phi_help": [-1.0]}, "'sweep.phi_help'"),
    ({"dpo.betaa": 0.1}, "unknown key 'dpo.betaa'"),
    ({"data.splits.policy_pairs": 0}, "'data.splits.policy_pairs' must be >= 1, got 0"),
    ({"data.splits.fractions": {"evaluator": 0.5, "policy": 0.5, "dev": 0.5, "test": 0.5}}, "sum to 1"),
    ({"sweep.lambdas": [i / 100 for i in range(101)], "sweep.phi_help": [0, 1, 2], "sweep.phi_harm": [0, 1, 2]},
     "more than sweep.max_models"),
    ({"dpo.learning_rate": "fast"}, "'dpo.learning_rate' must be a finite number"),
    ({"data.help.format": "csv"}, "'data.help.format' must be one of"),
    ({"data.splits.policy_pairs_per_aspect": {"joint": 8}}, "'data.splits.policy_pairs_per_aspect' names help or harm"),
    ({"data.splits.policy_pairs_per_aspect": {"harm": 0}}, "with at least 1 pair"),
    ({"data.splits.fractions_per_aspect": {"help": {"evaluator": 0.5, "policy": 0.5, "dev": 0.1, "test": 0.1}}},
     "'data.splits.fractions_per_aspect.help' must be positive and sum to 1"),
    ({"data.splits.fractions_per_aspect": {"joint": {"evaluator": 0.4, "policy": 0.2, "dev": 0.1, "test": 0.3}}},
     "'data.splits.fractions_per_aspect' names help or harm"),
])
def test_bad_values_name_the_key(overrides, message):
    with pytest.raises(ConfigError) as err:
        load_config(REPO / "precompute" / "configs" / "tiny.yaml", overrides)
    assert message in str(err.value)
    assert "tiny.yaml" in str(err.value)


@pytest.mark.parametrize("overrides,message", [
    ({"evaluator.cost": {"higher_is": "worse"}}, "'evaluator.cost.hf_model' is required"),
    ({"evaluator.cost": {"hf_model": "a/b", "higher_is": "lower"}}, "'evaluator.cost.higher_is' must be better, worse"),
    ({"evaluator.reward": {"hf_model": "a/b", "dtype": "float16"}}, "'evaluator.reward.dtype' must be float32 or"),
    ({"evaluator.reward": {"hf_model": "a/b", "batch_size": 0}}, "'evaluator.reward.batch_size' must be >= 1"),
    ({"evaluator.reward": {"hf_model": "a/b", "max_length": 0}}, "'evaluator.reward.max_length' must be >= 1"),
    ({"evaluator.reward": {"hf_model": "a/b", "label": -1}}, "'evaluator.reward.label' must be a label index"),
    ({"evaluator.reward": {"hf_model": "a/b", "sign": -1}}, "unknown key 'evaluator.reward.sign'"),
    ({"evaluator.reward": {"hf_model": 7}}, "'evaluator.reward.hf_model' must be a string"),
    ({"evaluator.cost": "PKU-Alignment/beaver-7b-v1.0-cost"}, "'evaluator.cost' must be a mapping"),
])
def test_bad_hf_evaluator_values_name_the_key(overrides, message):
    with pytest.raises(ConfigError) as err:
        load_config(REPO / "precompute" / "configs" / "tiny.yaml", overrides)
    assert message in str(err.value)


def test_hf_evaluators_default_to_the_built_in_heads_and_leave_stage_hashes_alone():
    import hashlib
    import json

    from peo.config import config_to_dict
    from precompute.stages import REGISTRY, stage_settings

    tiny = REPO / "precompute" / "configs" / "tiny.yaml"
    cfg = load_config(tiny)
    assert cfg.evaluator.reward is None and cfg.evaluator.cost is None
    hf = load_config(tiny, {"evaluator.cost": {"hf_model": "PKU-Alignment/beaver-7b-v1.0-cost"}})
    assert hf.evaluator.cost.hf_model == "PKU-Alignment/beaver-7b-v1.0-cost"
    assert hf.evaluator.cost.higher_is is None and hf.evaluator.cost.center and hf.evaluator.cost.max_length == 512
    for stage in REGISTRY:  # set, they rerun train-evaluators and every stage after it
        same = stage_settings(cfg, stage) == stage_settings(hf, stage)
        assert same == (stage == "prepare-data"), stage
    # unset, they are left out of the hash: assets made before these keys existed stay done
    full = config_to_dict(cfg)
    for section, key in (("evaluator", "reward"), ("evaluator", "cost"), ("data", "extra_pairs")):
        del full[section][key]
    del full["data"]["splits"]["fractions_per_aspect"]  # nested, empty in tiny: left out as well
    picked = {key: full[key] for key in REGISTRY["train-evaluators"].config}
    before = hashlib.sha256(json.dumps(picked, sort_keys=True, default=str).encode()).hexdigest()[:16]
    assert stage_settings(cfg, "train-evaluators") == before


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
