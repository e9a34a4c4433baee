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
    ({"data.splits.policy_pairs": 0}, "'data.splits.policy_pairs' must be at least 1"),
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
