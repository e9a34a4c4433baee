"""The report stage on a small synthetic grid: files, numbers that match peo.pareto, honest wording."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from peo.coefficients import grid_points, model_id, soup_points
from peo.pareto import (
    bootstrap_hypervolume,
    bootstrap_hypervolume_difference,
    mean_and_se,
    pareto_front,
    reference_point,
)
from precompute.report import fmt, write_report

LAMBDAS = [0.0, 0.5, 1.0]
PHIS = [0.0, 0.5]
N_PROMPTS = 10


def synthetic(peo_bonus: float = 1.0, noise: float = 0.2, seed: int = 0, drop: tuple[str, int] | None = None):
    """Grid rows as the sweep writes them and answers whose means follow a known shape.

    reward ≈ c_help + peo_bonus·ϕ_help-ish, cost ≈ c_harm-free-ish: more c_help → more reward and more cost, more
    c_harm → less cost. With peo_bonus > 0, ϕ ≠ 0 points sit up-left of the soup line.
    """
    rows = []
    for method, points in (("peo", grid_points(LAMBDAS, PHIS, PHIS)), ("soup", soup_points(LAMBDAS))):
        for p in points:
            c_help, c_harm = p.coefficients
            rows.append({"model_id": model_id(c_help, c_harm), "method": method, "lambda_help": p.lambda_help,
                         "phi_help": p.phi_help, "phi_harm": p.phi_harm, "c_help": c_help, "c_harm": c_harm})
    for method, (c_help, c_harm) in (("ref", (0.0, 0.0)), ("help", (1.0, 0.0)), ("harm", (0.0, 1.0))):
        rows.append({"model_id": model_id(c_help, c_harm), "method": method, "lambda_help": None, "phi_help": None,
                     "phi_harm": None, "c_help": c_help, "c_harm": c_harm})
    rows.append({"model_id": "joint", "method": "joint", "lambda_help": None, "phi_help": None, "phi_harm": None,
                 "c_help": None, "c_harm": None})
    models = {}
    for r in rows:
        models.setdefault(r["model_id"], (r["c_help"], r["c_harm"]))
    rng = np.random.default_rng(seed)
    prompt_effect_r = rng.normal(0, 0.5, N_PROMPTS)
    prompt_effect_c = rng.normal(0, 0.5, N_PROMPTS)
    answers = []
    for mid, (c_help, c_harm) in models.items():
        if mid == "joint":
            mu_r, mu_c = 0.7, 0.1
        else:
            extra = max(c_help + c_harm - 1.0, 0.0)  # ϕ pushes the sum above 1
            mu_r = c_help + peo_bonus * extra
            mu_c = c_help - c_harm - peo_bonus * extra
        for j in range(N_PROMPTS):
            if drop and drop == (mid, j):
                continue
            answers.append({"model_id": mid, "c_help": c_help, "c_harm": c_harm, "prompt_id": f"p{j:02d}",
                            "prompt_kind": "help" if j % 2 else "harm", "prompt": "[]", "answer": "a",
                            "reward": mu_r + prompt_effect_r[j] + rng.normal(0, noise),
                            "cost": mu_c + prompt_effect_c[j] + rng.normal(0, noise)})
    answers = pd.DataFrame(answers)
    grid = pd.DataFrame(rows)
    stats = {}
    for mid, g in answers.groupby("model_id"):
        rm, rs = mean_and_se(g["reward"].to_numpy())
        cm, cs = mean_and_se(g["cost"].to_numpy())
        stats[mid] = {"reward_mean": rm, "reward_se": rs, "cost_mean": cm, "cost_se": cs,
                      "safe_share": float((g["cost"] <= 0).mean()), "n": len(g)}
    grid = pd.DataFrame([{**r, **stats[r["model_id"]]} for r in rows])
    return grid, answers


def matrices(answers: pd.DataFrame, mids: list[str], prompts: list[str]):
    r = answers.pivot(index="model_id", columns="prompt_id", values="reward").loc[mids, prompts].to_numpy()
    c = answers.pivot(index="model_id", columns="prompt_id", values="cost").loc[mids, prompts].to_numpy()
    return r, c


META = {"profile": "synthetic", "base_model": "tiny",
        "evaluators": {"reward": {"held_out_accuracy": 0.8125, "held_out_pairs": 16, "offset": 0.25},
                       "cost": {"held_out_accuracy": 0.6875, "held_out_pairs": 16, "offset": -0.5}},
        "timings_seconds": {"sweep": 12.34, "report": 1.5}, "machine": {"device": "cpu"}}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    grid, answers = synthetic()
    # through a CSV round trip, as the stage reads it (None → NaN, ints stay floats)
    out = tmp_path_factory.mktemp("report")
    grid.to_csv(out / "grid.csv", index=False)
    grid = pd.read_csv(out / "grid.csv")
    result = write_report(grid, answers, out / "report", n_boot=200, seed=3, meta=META)
    return grid, answers, out / "report", result


def test_files_exist_and_no_temp_files_left(report):
    _, _, out, _ = report
    names = sorted(p.name for p in out.iterdir())
    assert names == ["front.png", "fronts.json", "report.md"]
    assert (out / "front.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_fronts_json_is_the_returned_dict(report):
    _, _, out, result = report
    assert json.loads((out / "fronts.json").read_text()) == json.loads(json.dumps(result))


def test_numbers_match_peo_pareto(report):
    grid, answers, _, result = report
    all_ids = list(dict.fromkeys(grid["model_id"]))
    prompts = sorted(answers["prompt_id"].unique())
    rm, cm = matrices(answers, all_ids, prompts)
    ref = reference_point(rm.mean(1), cm.mean(1), margin=0.05)
    assert result["reference_point"]["reward"] == pytest.approx(ref[0])
    assert result["reference_point"]["cost"] == pytest.approx(ref[1])
    assert result["n_prompts"] == N_PROMPTS and result["n_prompts_dropped"] == 0
    sets = {}
    for method in ("peo", "soup"):
        mids = list(dict.fromkeys(grid.loc[grid["method"] == method, "model_id"]))
        r, c = matrices(answers, mids, prompts)
        sets[method] = (r, c)
        front = pareto_front(r.mean(1), c.mean(1))
        got = result["fronts"][method]
        assert got["model_ids"] == [mids[k] for k in front]
        assert got["indices"] == front.tolist()
        assert got["n_models"] == len(mids)
        hv, lo, hi = bootstrap_hypervolume(r, c, *ref, n_boot=200, seed=3)
        assert got["hypervolume"] == pytest.approx(hv)
        assert got["interval"] == pytest.approx([lo, hi])
        costs = [p["cost_mean"] for p in got["points"]]
        assert costs == sorted(costs)
        for p, k in zip(got["points"], front):
            assert p["reward_mean"] == pytest.approx(r[k].mean())
            assert p["cost_se"] == pytest.approx(mean_and_se(c[k])[1])
            assert grid.loc[p["grid_row"], "model_id"] == p["model_id"]
            assert grid.loc[p["grid_row"], "method"] == method
    diff, lo, hi = bootstrap_hypervolume_difference(*sets["peo"], *sets["soup"], *ref, n_boot=200, seed=3)
    assert result["difference"]["value"] == pytest.approx(diff)
    assert result["difference"]["interval"] == pytest.approx([lo, hi])
    assert result["difference"]["soup_models_within_peo"] is True


def test_front_points_carry_coordinates(report):
    _, _, _, result = report
    for p in result["fronts"]["peo"]["points"]:
        assert p["c_help"] == pytest.approx(p["lambda_help"] + p["phi_help"])
        assert p["c_harm"] == pytest.approx(1 - p["lambda_help"] + p["phi_harm"])
        assert 0.0 <= p["safe_share"] <= 1.0
    for p in result["fronts"]["soup"]["points"]:
        assert p["phi_help"] == 0 and p["phi_harm"] == 0


def test_baselines(report):
    _, _, _, result = report
    assert set(result["baselines"]) == {"ref", "help", "harm", "joint"}
    assert result["baselines"]["joint"]["c_help"] is None
    assert result["baselines"]["help"]["model_id"] == model_id(1.0, 0.0)
    assert set(result["baselines"]["ref"]["dominated_by_front"]) == {"peo", "soup"}


def test_markdown_has_the_numbers(report):
    _, _, out, result = report
    md = (out / "report.md").read_text()
    for method in ("peo", "soup"):
        front = result["fronts"][method]
        assert fmt(front["hypervolume"]) in md
        assert f"[{fmt(front['interval'][0])}, {fmt(front['interval'][1])}]" in md
        for p in front["points"]:
            assert p["model_id"] in md
    d = result["difference"]
    assert fmt(d["value"]) in md
    assert "81.2%" in md and "68.8%" in md  # evaluator accuracies
    assert "12.3" in md  # a timing
    assert "front.png" in md


def test_clear_gain_is_reported_as_excluding_zero(report):
    _, _, out, result = report
    d = result["difference"]
    assert d["verdict"] == "peo_better" and d["excludes_zero"]
    assert d["interval"][0] > 0
    md = (out / "report.md").read_text()
    assert "excludes 0" in md
    assert "do not show" not in md


def test_no_gain_is_not_claimed(tmp_path):
    # ϕ points sit on (or below) the soup trade-off: PEO's front is soup's, the difference is exactly 0
    grid, answers = synthetic(peo_bonus=-1.0)
    result = write_report(grid, answers, tmp_path, n_boot=100, seed=0)
    d = result["difference"]
    assert d["verdict"] == "not_distinguishable" and not d["excludes_zero"]
    md = (tmp_path / "report.md").read_text()
    assert "do not show that PEO's front beats soup's" in md
    assert "excludes 0" not in md
    assert "## Evaluators" not in md  # no meta given


def test_only_prompts_every_model_answered(tmp_path):
    grid, answers = synthetic(drop=(model_id(0.5, 0.5), 3))
    result = write_report(grid, answers, tmp_path, n_boot=50, seed=0)
    assert result["n_prompts"] == N_PROMPTS - 1
    assert result["n_prompts_dropped"] == 1
    prompts = [f"p{j:02d}" for j in range(N_PROMPTS) if j != 3]
    mids = list(dict.fromkeys(grid.loc[grid["method"] == "soup", "model_id"]))
    r, c = matrices(answers, mids, prompts)
    front = pareto_front(r.mean(1), c.mean(1))
    assert result["fronts"]["soup"]["model_ids"] == [mids[k] for k in front]
    assert "left out" in (tmp_path / "report.md").read_text()


def test_missing_model_is_an_error(tmp_path):
    grid, answers = synthetic()
    answers = answers[answers["model_id"] != "joint"]
    with pytest.raises(ValueError, match="joint"):
        write_report(grid, answers, tmp_path, n_boot=10, seed=0)


def test_rewrite_replaces_files(tmp_path: Path):
    grid, answers = synthetic()
    write_report(grid, answers, tmp_path, n_boot=20, seed=0)
    first = (tmp_path / "fronts.json").read_text()
    write_report(grid, answers, tmp_path, n_boot=20, seed=1)
    assert (tmp_path / "fronts.json").read_text() != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["front.png", "fronts.json", "report.md"]
