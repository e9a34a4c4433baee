"""peo/model_names.py: the served model names, parsed exactly, and refused outside the assets' range."""

from __future__ import annotations

import re

import pytest

from peo.model_names import FamilyRange, ModelNameError, catalog, number, parse_model
from peo.records import RunMeta

META = RunMeta(base_model="tiny", grid={"lambda_help": [0.0, 0.25, 0.5, 0.75, 1.0], "phi_help": [0.0, 0.5, 1.0],
                                        "phi_harm": [0.0, 0.5, 1.0]},
               config={"sweep": {"expo_alphas": [0.5, 1.0, 1.5, 2.0]}})
FAMILY = FamilyRange.from_run_meta(META)


def test_a_point_by_lambda_and_phi():
    p = parse_model("peo:lambda=0.25,phi_help=1,phi_harm=0.5", FAMILY)
    assert p.method == "peo" and p.point == (0.25, 1.0, 0.5)
    assert p.coefficients == (1.25, 1.25) and p.scales == {"help": 1.25, "harm": 1.25}
    assert p.model_id == "c+1.250_+1.250" and p.name == "peo:lambda=0.25,phi_help=1,phi_harm=0.5"


def test_phi_left_out_is_zero_and_spaces_and_order_do_not_matter():
    p = parse_model(" peo: phi_harm = 0.5 , lambda=.5 ", FAMILY)
    assert p.point == (0.5, 0.0, 0.5) and p.coefficients == (0.5, 1.0)
    assert p.name == "peo:lambda=0.5,phi_help=0,phi_harm=0.5"


def test_a_point_by_coefficients_is_the_same_model():
    by_c = parse_model("peo:c_help=1.25,c_harm=0.75", FAMILY)
    by_lam = parse_model("peo:lambda=0.25,phi_help=1,phi_harm=0", FAMILY)
    assert by_c.scales == by_lam.scales == {"help": 1.25, "harm": 0.75}
    assert by_c.model_id == by_lam.model_id and by_c.point is None
    assert by_c.name == "peo:c_help=1.25,c_harm=0.75"


@pytest.mark.parametrize("name, method, scales, model_id", [
    ("reference", "ref", {}, "c+0.000_+0.000"),
    ("dpo-help", "help", {"help": 1.0}, "c+1.000_+0.000"),
    ("dpo-harm", "harm", {"harm": 1.0}, "c+0.000_+1.000"),
    ("joint", "joint", {"joint": 1.0}, "joint"),
    ("soup:lambda=0.5", "soup", {"help": 0.5, "harm": 0.5}, "c+0.500_+0.500"),
    ("soup:lambda=0.25", "soup", {"help": 0.25, "harm": 0.75}, "c+0.250_+0.750"),
    ("expo:alpha=1.5", "expo", {"joint": 1.5}, "joint+1.500"),
    ("expo:alpha=1", "expo", {"joint": 1.0}, "joint"),  # α = 1 is joint DPO itself, as in the sweep
])
def test_baselines(name, method, scales, model_id):
    p = parse_model(name, FAMILY)
    assert (p.method, p.scales, p.model_id) == (method, scales, model_id)


@pytest.mark.parametrize("model_id, same_as", [
    ("c+1.250_+0.750", "peo:c_help=1.25,c_harm=0.75"),
    ("c+0.500_+0.500", "soup:lambda=0.5"),
    ("c+0.000_+0.000", "reference"),  # grid.csv's reference row: a baseline, though not in PEO's family
    ("c+1.000_+0.000", "dpo-help"),
    ("c+0.000_+1.000", "dpo-harm"),
    ("joint+1.500", "expo:alpha=1.5"),
    ("joint+1.000", "joint"),
])
def test_grid_model_ids_name_the_same_models(model_id, same_as):
    by_id, by_name = parse_model(model_id, FAMILY), parse_model(same_as, FAMILY)
    assert by_id.scales == by_name.scales and by_id.model_id == by_name.model_id and by_id.name == model_id
    assert "," not in model_id and "=" not in model_id  # lm-eval's --model_args splits on both


def test_grid_model_ids_are_range_checked_too():
    with pytest.raises(ModelNameError, match="outside the family"):
        parse_model("c+3.000_+0.000", FAMILY)
    with pytest.raises(ModelNameError, match="alpha=5 is outside"):
        parse_model("joint+5.000", FAMILY)


def test_the_joint_adapters_models_have_no_coefficients():
    assert parse_model("joint", FAMILY).coefficients is None
    assert parse_model("expo:alpha=2", FAMILY).alpha == 2.0


@pytest.mark.parametrize("name, reason", [
    ("peo:lambda=1.5", "lambda=1.5 is outside the range these assets support: [0, 1]"),
    ("peo:lambda=-0.1", "lambda=-0.1 is outside the range"),
    ("peo:lambda=0.5,phi_help=1.5", "phi_help=1.5 is outside the range these assets support: [0, 1]"),
    ("peo:lambda=0.5,phi_harm=-1", "phi_harm=-1 is outside"),
    ("soup:lambda=2", "lambda=2 is outside"),
    ("expo:alpha=3", "alpha=3 is outside the range these assets support: [0.5, 2]"),
    ("expo:alpha=0", "alpha=0 is outside"),
    # c_help = 0, c_harm = 0 (the reference) is not PEO's family: λ = 0 gives c_harm ≥ 1
    ("peo:c_help=0,c_harm=0", "outside the family these assets support"),
    ("peo:c_help=2.5,c_harm=1", "outside the family"),
    ("peo:c_help=2,c_harm=2", "outside the family"),  # each within [0, 2], but ϕ_help + ϕ_harm would be 3
])
def test_out_of_range_names_say_why(name, reason):
    with pytest.raises(ModelNameError, match=re.escape(reason)):
        parse_model(name, FAMILY)


@pytest.mark.parametrize("name, reason", [
    ("gpt-4o", "unknown model 'gpt-4o'"),
    ("", "non-empty string"),
    (None, "non-empty string"),
    ("peo:", "names no values"),
    ("peo:lambda", "is not key=value"),
    ("peo:lambda=0.5,lambda=0.5", "lambda is given twice"),
    ("peo:lambda=0.5,c_help=1", "not a mix"),
    ("peo:c_help=1", "not a mix"),
    ("peo:phi_help=0.5", "lambda is required"),
    ("peo:lambda=nan", "not a finite decimal number"),
    ("peo:lambda=inf", "not a finite decimal number"),
    ("peo:lambda=0x1", "not a finite decimal number"),
    ("peo:lambda=1_0", "not a finite decimal number"),
    ("peo:alpha=1", "unknown key 'alpha'"),
    ("soup:lambda=0.5,phi_help=1", "unknown key 'phi_help'"),
    ("expo:lambda=1", "unknown key 'lambda'"),
    ("Reference", "unknown model"),
    ("ref", "unknown model"),
])
def test_malformed_names_say_why(name, reason):
    with pytest.raises(ModelNameError, match=re.escape(reason)):
        parse_model(name, FAMILY)


def test_edges_of_the_range_are_in_it():
    assert parse_model("peo:lambda=1,phi_help=1,phi_harm=1", FAMILY).coefficients == (2.0, 1.0)
    assert parse_model("peo:c_help=0,c_harm=1", FAMILY).coefficients == (0.0, 1.0)  # λ = 0, ϕ = 0
    assert parse_model("peo:c_help=2,c_harm=1", FAMILY).coefficients == (2.0, 1.0)  # λ = 1, ϕ = (1, 1)
    assert parse_model("peo:lambda=1.0000000000001", FAMILY).point[0] == 1.0  # typed decimals: clamped, not refused


def test_the_range_comes_from_the_assets_meta():
    small = FamilyRange.from_run_meta(RunMeta(base_model="tiny", grid={"lambda_help": [0.0, 0.5], "phi_help": [0.0],
                                                                        "phi_harm": [0.0]}))
    assert small.expo_alpha == ()
    with pytest.raises(ModelNameError, match="phi_help=0.5 is outside the range these assets support: \\[0, 0\\]"):
        parse_model("peo:lambda=0.5,phi_help=0.5", small)
    with pytest.raises(ModelNameError, match="no expo_alpha range"):
        parse_model("expo:alpha=1.5", small)
    assert FAMILY.describe()["c_help"] == {"min": 0.0, "max": 2.0}
    assert FAMILY.describe()["expo_alpha"]["swept"] == [0.5, 1.0, 1.5, 2.0]


def test_catalog_lists_the_baselines_and_every_grid_point_by_a_name_that_parses_back():
    names = [p.name for p in catalog(FAMILY)]
    assert names[:4] == ["reference", "dpo-help", "dpo-harm", "joint"]
    assert "soup:lambda=0.75" in names and "expo:alpha=1.5" in names
    assert "peo:lambda=0.25,phi_help=0.5,phi_harm=1" in names
    assert len(names) == 4 + 5 + 4 + 5 * 3 * 3 and len(set(names)) == len(names)
    assert all(parse_model(n, FAMILY).name == n for n in names)


def test_numbers_are_written_short_and_exact():
    assert [number(x) for x in ("1", "1.0", "0.25", ".5", "-0", "1e-7", "2.50")] == \
        ["1", "1", "0.25", "0.5", "0", "1e-07", "2.5"]
