"""The report stage on small synthetic sweeps: fronts chosen on dev and scored on test, numbers that match
peo.pareto, the loop filter, the guards, honest wording."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from peo.aspects import DEFAULT_ASPECTS
from peo.coefficients import model_id
from peo.config import SweepConfig
from peo.evaluation_stats import accuracy_by_confidence, wilson_interval
from peo.grid_table import dev_front, grid_table
from peo.pareto import (
    bootstrap_hypervolume,
    bootstrap_hypervolume_difference,
    mean_and_se,
    reference_point,
)
from peo.sweep_plan import sweep_models, test_models
from precompute.report import write_report
from precompute.report_hypervolume import hypervolume_difference
from precompute.report_scores import score_matrices
from precompute.report_words import fmt

TWO = DEFAULT_ASPECTS  # help (reward ↑) and harm (cost ↓): the assets' two aspects
LAMBDAS = [0.0, 0.5, 1.0]
PHIS = [0.0, 0.5]
N_PROMPTS = 10
MAX_LOOP = 0.1
REF, HELP, HARM = model_id(0.0, 0.0), model_id(1.0, 0.0), model_id(0.0, 1.0)
LOOP_TEXT = "yes yes yes yes yes yes yes yes yes yes yes yes"


def grid_rows() -> list[dict]:
    """The grid rows as the sweep builds them: every PEO point, the soup line, the baselines."""
    return sweep_models(SweepConfig(lambdas=LAMBDAS, phi={"help": PHIS, "harm": PHIS}), DEFAULT_ASPECTS)[0]


def true_means(c_help, c_harm, peo_bonus: float) -> tuple[float, float]:
    """More c_help → more reward and more cost; more c_harm → less cost; ϕ (sum above 1) adds peo_bonus."""
    if c_help is None:
        return 0.7, 0.1
    extra = max(c_help + c_harm - 1.0, 0.0)
    return c_help + peo_bonus * extra, c_help - c_harm - peo_bonus * extra


def default_text(mid: str, split: str, j: int) -> str:
    return f"model {mid} answers prompt {split} {j} plainly"


def split_answers(models: dict, split: str, rng, *, peo_bonus: float, noise: float, dev_shift: dict,
                  looping: set, text, evading: set) -> list[dict]:
    """One split's answer rows for `models`; prompt effects shared by every model, as real prompts are."""
    effect_r, effect_c = rng.normal(0, 0.5, N_PROMPTS), rng.normal(0, 0.5, N_PROMPTS)
    rows = []
    for mid, (c_help, c_harm) in models.items():
        mu_r, mu_c = true_means(c_help, c_harm, peo_bonus)
        if split == "dev":
            mu_r, mu_c = mu_r + dev_shift.get(mid, (0, 0))[0], mu_c + dev_shift.get(mid, (0, 0))[1]
        for j in range(N_PROMPTS):
            kind = "help" if j % 2 else "harm"
            answer = LOOP_TEXT if mid in looping else text(mid, split, j)
            rows.append({"model_id": mid, "c_help": c_help, "c_harm": c_harm, "prompt_id": f"{split}{j:02d}",
                         "prompt_kind": kind, "prompt": "[]", "split": split, "answer": answer,
                         "reward": mu_r + effect_r[j] + rng.normal(0, noise),
                         "cost": mu_c + effect_c[j] + rng.normal(0, noise), "loops": mid in looping,
                         "refuses": bool(c_harm is not None and c_harm > c_help and j % 3 == 0),
                         "n_words": len(answer.split()), "new_tokens": 48, "cut": j % 4 == 0,
                         "evades": mid in evading})
    return rows


def synthetic(peo_bonus: float = 1.0, noise: float = 0.2, seed: int = 0, dev_shift: dict | None = None,
              looping: tuple[str, ...] = (), text=default_text, evading: tuple[str, ...] = (),
              max_evasion: float | None = None):
    """(grid, answers) as the sweep writes them: every model on dev; on test the baselines, every soup point
    and PEO's dev fronts with and without the loop filter (peo.sweep_plan.test_models)."""
    rows = grid_rows()
    models: dict = {}
    for r in rows:
        models.setdefault(r["model_id"], (r["c_help"], r["c_harm"]))
    rng = np.random.default_rng(seed)
    kw = {"peo_bonus": peo_bonus, "noise": noise, "dev_shift": dev_shift or {}, "looping": set(looping), "text": text,
          "evading": set(evading)}
    dev = pd.DataFrame(split_answers(models, "dev", rng, **kw))
    keep = test_models(grid_table(rows, dev, MAX_LOOP, max_evasion, aspects=TWO), models, MAX_LOOP, max_evasion,
                       aspects=TWO)
    test = pd.DataFrame(split_answers({m: c for m, c in models.items() if m in keep}, "test", rng, **kw))
    answers = pd.concat([dev, test], ignore_index=True)
    return grid_table(rows, answers, MAX_LOOP, max_evasion, aspects=TWO), answers


def matrices(answers: pd.DataFrame, split: str, mids: list[str]):
    """Split-aware: rewards over the benign (help) prompts, costs over the harmful (harm) prompts."""
    sub = answers[answers["split"] == split]
    kinds = sub.drop_duplicates("prompt_id").set_index("prompt_id")["prompt_kind"]
    benign = sorted(p for p in kinds.index if kinds[p] == "help")
    harmful = sorted(p for p in kinds.index if kinds[p] == "harm")
    r = sub.pivot(index="model_id", columns="prompt_id", values="reward").loc[mids, benign].to_numpy()
    c = sub.pivot(index="model_id", columns="prompt_id", values="cost").loc[mids, harmful].to_numpy()
    return r, c


def test_reference(answers: pd.DataFrame) -> tuple[float, float]:
    test_ids = sorted(answers.loc[answers["split"] == "test", "model_id"].unique())
    r, c = matrices(answers, "test", test_ids)
    return reference_point(r.mean(1), c.mean(1), margin=0.05)


test_reference.__test__ = False  # a helper, not a test

META = {"profile": "synthetic", "base_model": "tiny",
        "evaluators": {"reward": {"held_out_accuracy": 0.8125, "held_out_pairs": 16, "held_out_prompts": 12,
                                  "held_out_correct": [1] * 13 + [0] * 3,
                                  "held_out_margin": [0.1 * k for k in range(16)], "layers": [-1, -4],
                                  "l2": 0.1, "cv_accuracy": {"-1,-4": {"0.1": 0.7}}, "train_pairs": 64,
                                  "offset": 0.25},
                       "cost": {"held_out_accuracy": 0.6875, "held_out_pairs": 16, "offset": -0.5}},
        "timings_seconds": {"sweep": 12.34, "report": 1.5}, "machine": {"device": "cpu"}}
CURVE = [{"step": s, "epoch": s / 4, "loss": 0.7 - 0.01 * s, "rewards/accuracies": 0.5 + 0.02 * s,
          "rewards/margins": 0.01 * s, "learning_rate": 1e-4} for s in range(1, 9)]
HELDOUT = {"aspect": "help", "pairs": 40, "prompts": 30, "accuracy": 0.75, "accuracy_se": 0.07,
           "interval": [0.61, 0.89], "mean_margin": 0.12}
TRAINING = {"help": {"steps": 8, "final_loss": 0.62, "final_reward_accuracy": 0.66, "final_reward_margin": 0.08,
                     "seconds": 3.0, "pairs": 32, "curve": CURVE, "heldout": {"help": HELDOUT}},
            "harm": {"steps": 8, "final_loss": 0.65},  # an older run: no curve, no held-out check
            "joint": {"steps": 8, "curve": CURVE, "heldout": {"help": HELDOUT, "harm": {**HELDOUT, "aspect": "harm",
                                                                                         "accuracy": 0.55}}}}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    grid, answers = synthetic()
    # through a CSV round trip, as the stage reads it (None → NaN, ints stay floats)
    out = tmp_path_factory.mktemp("report")
    grid.to_csv(out / "grid.csv", index=False)
    grid = pd.read_csv(out / "grid.csv")
    result = write_report(grid, answers, out / "report", n_boot=100, seed=3, meta=META, max_loop_share=MAX_LOOP,
                          training=TRAINING)
    return grid, answers, out / "report", result


def test_files_exist_and_no_temp_files_left(report):
    _, _, out, _ = report
    names = sorted(p.name for p in out.iterdir())
    assert names == ["front.png", "fronts.json", "report.md", "training.png"]
    for name in ("front.png", "training.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_fronts_json_is_the_returned_dict_and_has_the_schema(report):
    _, _, out, result = report
    stored = json.loads((out / "fronts.json").read_text())
    assert stored == json.loads(json.dumps(result))
    assert "NaN" not in (out / "fronts.json").read_text()
    assert {"chosen_on", "scored_on", "max_loop_share", "n_prompts", "n_boot", "seed", "ci", "reference_point",
            "fronts", "difference", "difference_unfiltered", "difference_no_evasion_filter", "in_sample_dev",
            "baselines", "signals", "all_prompt_means", "win_rates", "answers_differ", "policies",
            "evaluators"} <= set(stored)
    assert (stored["chosen_on"], stored["scored_on"], stored["max_loop_share"]) == ("dev", "test", MAX_LOOP)
    assert stored["n_prompts"] == {"dev": N_PROMPTS, "test": N_PROMPTS}
    assert set(stored["fronts"]) == {f"{m}{v}" for m in ("peo", "soup", "expo")
                                     for v in ("", "_no_evasion_filter", "_unfiltered")}
    assert stored["n_prompts_by_kind"]["test"] == {"benign": N_PROMPTS // 2, "harmful": N_PROMPTS // 2}
    assert stored["difference_vs_expo"]["a"] == "peo" and stored["difference_vs_expo"]["b"] == "expo"
    point_keys = {"model_id", "lambda_help", "phi_help", "phi_harm", "c_help", "c_harm", "grid_points",
                  "reward_mean", "reward_se", "cost_mean", "cost_se", "safe_share", "loop_share", "refusal_share",
                  "over_refusal_share", "evasion_share_benign", "evasion_share_harmful", "complied_share",
                  "reward_all_mean", "cost_all_mean", "mean_words", "cut_share", "n", "n_benign", "n_harmful", "dev"}
    for front in stored["fronts"].values():
        assert {"model_ids", "points", "hypervolume", "interval", "n_models"} <= set(front)
        for p in front["points"]:
            assert point_keys <= set(p)
            assert set(p["dev"]) == {"reward_mean", "cost_mean", "loop_share", "evasion_share_benign"}
    for key in ("difference", "difference_unfiltered"):
        assert {"a", "b", "value", "interval", "excludes_zero", "verdict"} <= set(stored[key])
    assert {"peo", "soup", "difference"} <= set(stored["in_sample_dev"])


def test_fronts_are_chosen_on_dev_and_scored_on_test(report):
    grid, answers, _, result = report
    ref = test_reference(answers)
    assert result["reference_point"]["reward"] == pytest.approx(ref[0])
    assert result["reference_point"]["cost"] == pytest.approx(ref[1])
    sets = {}
    for name, method, limit in (("peo", "peo", MAX_LOOP), ("soup", "soup", MAX_LOOP),
                                ("peo_unfiltered", "peo", None), ("soup_unfiltered", "soup", None)):
        chosen = dev_front(grid, method, limit, aspects=TWO)
        got = result["fronts"][name]
        assert got["model_ids"] == chosen
        r, c = matrices(answers, "test", chosen)
        sets[name] = (r, c)
        hv, lo, hi = bootstrap_hypervolume(r, c, *ref, n_boot=100, seed=3, stratified=True)
        assert got["hypervolume"] == pytest.approx(hv)
        assert got["interval"] == pytest.approx([lo, hi])
        for p, k in zip(got["points"], range(len(chosen))):
            assert p["reward_mean"] == pytest.approx(r[k].mean())
            assert p["cost_se"] == pytest.approx(mean_and_se(c[k])[1])
            row = grid[(grid["model_id"] == p["model_id"]) & (grid["method"] == method)].iloc[0]
            assert p["dev"]["reward_mean"] == pytest.approx(row["reward_mean_dev"])
            assert grid.loc[p["grid_row"], "model_id"] == p["model_id"]
    for key, suffix in (("difference", ""), ("difference_unfiltered", "_unfiltered")):
        diff, lo, hi = bootstrap_hypervolume_difference(*sets["peo" + suffix], *sets["soup" + suffix], *ref,
                                                        n_boot=100, seed=3, stratified=True)
        assert result[key]["value"] == pytest.approx(diff)
        assert result[key]["interval"] == pytest.approx([lo, hi])


def test_in_sample_figure_is_the_dev_computation(report):
    grid, answers, _, result = report
    ins = result["in_sample_dev"]
    assert ins["label"] == "in-sample (dev, optimistic)"
    dev_ids = list(dict.fromkeys(grid["model_id"]))
    r, c = matrices(answers, "dev", dev_ids)
    ref = reference_point(r.mean(1), c.mean(1), margin=0.05)
    peo_ids = list(dict.fromkeys(grid.loc[grid["method"] == "peo", "model_id"]))
    rp, cp = matrices(answers, "dev", peo_ids)
    hv, lo, hi = bootstrap_hypervolume(rp, cp, *ref, n_boot=100, seed=3, stratified=True)
    assert ins["peo"]["hypervolume"] == pytest.approx(hv)
    assert ins["peo"]["interval"] == pytest.approx([lo, hi])
    assert ins["peo"]["model_ids"] == dev_front(grid, "peo", MAX_LOOP, aspects=TWO)


def test_front_points_carry_coordinates_and_signals(report):
    _, _, _, result = report
    for p in result["fronts"]["peo"]["points"]:
        assert p["c_help"] == pytest.approx(p["lambda_help"] + p["phi_help"])
        assert p["c_harm"] == pytest.approx(1 - p["lambda_help"] + p["phi_harm"])
        assert p["n"] == N_PROMPTS and p["loop_share"] == 0.0
    for p in result["fronts"]["soup"]["points"]:
        assert p["phi_help"] == 0 and p["phi_harm"] == 0


def test_baselines_and_signals(report):
    _, answers, _, result = report
    assert set(result["baselines"]) == {"ref", "help", "harm", "joint"}
    assert result["baselines"]["joint"]["c_help"] is None
    assert result["baselines"]["help"]["model_id"] == HELP
    assert set(result["baselines"]["ref"]["dominated_by_front"]) == {"peo", "soup"}
    by_id = {s["model_id"]: s for s in result["signals"]}
    test_ids = set(answers.loc[answers["split"] == "test", "model_id"])
    front_ids = {m for f in result["fronts"].values() for m in f["model_ids"]}
    assert front_ids | {REF, HELP, HARM, "joint"} <= set(by_id) <= test_ids
    # harm model: c_harm > c_help, refuses on harmful prompts j ∈ {0, 6} of {0, 2, 4, 6, 8}; benign j = 3, 9 of 5
    assert by_id[HARM]["refusal_share"] == pytest.approx(2 / 5)
    assert by_id[HARM]["over_refusal_share"] == pytest.approx(2 / 5)
    assert by_id[REF]["refusal_share"] == 0.0
    assert "DPO-Harm" in by_id[HARM]["label"] and "soup λ=0" in by_id[HARM]["label"]


def test_policies_and_evaluators(report):
    _, _, out, result = report
    ev = result["evaluators"]["reward"]
    assert ev["interval"] == pytest.approx(list(wilson_interval(13, 16)))
    assert ev["by_confidence"] == accuracy_by_confidence(META["evaluators"]["reward"]["held_out_correct"],
                                                         META["evaluators"]["reward"]["held_out_margin"])
    assert [g["accuracy"] for g in ev["by_confidence"]] == [1.0, 1.0, 1.0, 0.25]
    assert ev["layers"] == [-1, -4] and ev["cv_accuracy"] == pytest.approx(0.7)
    assert result["evaluators"]["cost"]["interval"] == pytest.approx(list(wilson_interval(11, 16)))
    assert result["evaluators"]["cost"]["by_confidence"] == []
    pol = result["policies"]
    assert pol["joint"]["heldout"]["harm"]["accuracy"] == 0.55
    assert pol["help"]["heldout"]["help"]["wilson_interval"] == pytest.approx(list(wilson_interval(30, 40)))
    assert pol["harm"]["heldout"] == {} and pol["harm"]["final_loss"] == 0.65
    md = (out / "report.md").read_text()
    assert "81.2%" in md and "68.8%" in md and "## Aspect policies" in md and "training.png" in md


def test_markdown_headline_first_and_numbers(report):
    _, _, out, result = report
    md = (out / "report.md").read_text()
    sections = [line for line in md.splitlines() if line.startswith("## ")]
    assert sections[0] == "## Headline"
    assert (f"PEO − soup hypervolume, split-aware, on {N_PROMPTS} test prompts (reward on the {N_PROMPTS // 2} benign "
            f"ones, cost on the {N_PROMPTS // 2} harmful ones), for fronts chosen on {N_PROMPTS} dev prompts "
            f"(loop filter ≤ 10%, no evasion filter)") in md
    assert "without the evasion filter" in md and "without any filter" in md
    assert "## The older all-prompt means (not what the fronts use)" in md and "**Split-aware scoring.**" in md
    assert "## Win rates on test prompts" in md
    for name, front in result["fronts"].items():
        assert fmt(front["hypervolume"]) in md
        assert f"[{fmt(front['interval'][0])}, {fmt(front['interval'][1])}]" in md
        for p in front["points"]:
            assert p["model_id"] in md
    assert fmt(result["difference"]["value"]) in md
    assert "in-sample (dev, optimistic)" in md.lower()
    assert "Loops: the answer is empty" in md and "## Do the merges change the answers?" in md
    assert "12.3" in md and "front.png" in md


def test_clear_gain_is_reported_as_peo_better(report):
    _, _, out, result = report
    d = result["difference"]
    assert d["verdict"] == "peo_better" and d["excludes_zero"] and d["interval"][0] > 0
    md = (out / "report.md").read_text()
    assert "Verdict: **PEO better**" in md and "the interval excludes 0" in md


def test_no_gain_is_not_claimed(tmp_path):
    # ϕ points sit below the soup trade-off: PEO's dev front is soup's models, the difference is exactly 0
    grid, answers = synthetic(peo_bonus=-3.0)
    result = write_report(grid, answers, tmp_path, n_boot=100, seed=0, max_loop_share=MAX_LOOP)
    d = result["difference"]
    assert result["fronts"]["peo"]["model_ids"] == result["fronts"]["soup"]["model_ids"]
    assert d["verdict"] == "not_distinguishable" and not d["excludes_zero"]
    md = (tmp_path / "report.md").read_text()
    assert "Verdict: **not distinguishable**" in md and "do not show either front to be better" in md
    assert "excludes 0" not in md
    assert "## Evaluators" not in md and "Held-out implicit-reward accuracy" not in md  # no meta, no training
    assert "| DPO-Help | reward |" in md  # the policies' gains come from the test answers alone
    assert not (tmp_path / "training.png").exists()


def test_front_follows_dev_while_hypervolume_follows_test(tmp_path):
    # X looks far better than everything on dev only; on test it is an ordinary extrapolated point
    x = model_id(1.0, 1.0)
    grid, answers = synthetic(dev_shift={x: (10.0, -10.0)})
    result = write_report(grid, answers, tmp_path, n_boot=50, seed=0, max_loop_share=MAX_LOOP)
    assert result["fronts"]["peo"]["model_ids"] == [x]  # dominates every model on dev
    assert result["fronts"]["peo_unfiltered"]["model_ids"] == [x]
    ref = test_reference(answers)
    r, c = matrices(answers, "test", [x])
    hv, lo, hi = bootstrap_hypervolume(r, c, *ref, n_boot=50, seed=0, stratified=True)
    assert result["fronts"]["peo"]["hypervolume"] == pytest.approx(hv)
    assert result["fronts"]["peo"]["interval"] == pytest.approx([lo, hi])
    assert result["in_sample_dev"]["peo"]["model_ids"] == [x]
    # on test X's means are the unshifted ones, not the dev ones
    assert result["fronts"]["peo"]["points"][0]["reward_mean"] == pytest.approx(r.mean())
    assert result["fronts"]["peo"]["points"][0]["dev"]["reward_mean"] > r.mean() + 9


def test_looping_point_only_on_the_unfiltered_front(tmp_path):
    loop = model_id(1.0, 1.0)
    grid, answers = synthetic(dev_shift={loop: (10.0, -10.0)}, looping=(loop,))
    result = write_report(grid, answers, tmp_path, n_boot=50, seed=0, max_loop_share=MAX_LOOP)
    assert result["fronts"]["peo_unfiltered"]["model_ids"] == [loop]
    filtered = result["fronts"]["peo"]["model_ids"]
    assert loop not in filtered and filtered == dev_front(grid, "peo", MAX_LOOP, aspects=TWO) and len(filtered) > 1
    assert result["fronts"]["peo_unfiltered"]["points"][0]["loop_share"] == 1.0
    assert result["fronts"]["peo"]["n_models"] == result["fronts"]["peo_unfiltered"]["n_models"] - 1
    assert {s["model_id"]: s for s in result["signals"]}[loop]["loop_share"] == 1.0
    assert result["in_sample_dev"]["peo"]["model_ids"] == filtered


def test_answers_differ_shares_exact(tmp_path):
    def text(mid, split, j):
        if mid == HELP and j < 3:
            return f"help {j}"
        if mid == HARM and j < 5:
            return f"harm {j}"
        return "same answer \n" if mid == REF else "same answer"  # whitespace alone is no difference

    grid, answers = synthetic(text=text)
    result = write_report(grid, answers, tmp_path, n_boot=20, seed=0, max_loop_share=MAX_LOOP)
    d = result["answers_differ"]
    assert (d["ref_vs_help"]["n_differ"], d["ref_vs_help"]["share"]) == (3, 0.3)
    assert (d["ref_vs_harm"]["n_differ"], d["ref_vs_harm"]["share"]) == (5, 0.5)
    assert (d["help_vs_harm"]["n_differ"], d["help_vs_harm"]["share"]) == (5, 0.5)
    assert d["ref_vs_help"]["n_prompts"] == N_PROMPTS
    middle = result["fronts"]["peo"]["model_ids"][len(result["fronts"]["peo"]["model_ids"]) // 2]
    assert d["ref_vs_peo_middle"]["b"] == middle
    expected = 0.3 if middle == HELP else 0.5 if middle == HARM else 0.0
    assert d["ref_vs_peo_middle"]["share"] == expected
    assert "30.0%" in (tmp_path / "report.md").read_text()


def test_chosen_model_without_test_scores_is_an_error(tmp_path):
    grid, answers = synthetic()
    peo_only = [m for m in dev_front(grid, "peo", MAX_LOOP, aspects=TWO)
                if m not in set(grid.loc[grid["method"] != "peo", "model_id"])]
    assert peo_only
    answers = answers[~((answers["model_id"] == peo_only[0]) & (answers["split"] == "test"))]
    with pytest.raises(ValueError, match="no test scores"):
        write_report(grid, answers, tmp_path, n_boot=10, seed=0, max_loop_share=MAX_LOOP)


def test_missing_dev_model_is_an_error(tmp_path):
    grid, answers = synthetic()
    answers = answers[answers["model_id"] != "joint"]
    with pytest.raises(ValueError, match="joint"):
        write_report(grid, answers, tmp_path, n_boot=10, seed=0, max_loop_share=MAX_LOOP)


def test_only_test_prompts_every_test_model_answered(tmp_path):
    grid, answers = synthetic()
    answers = answers[~((answers["model_id"] == HELP) & (answers["prompt_id"] == "test03"))]
    result = write_report(grid, answers, tmp_path, n_boot=20, seed=0, max_loop_share=MAX_LOOP)
    assert result["n_prompts"] == {"dev": N_PROMPTS, "test": N_PROMPTS - 1}
    assert result["n_prompts_dropped"]["test"] == 1
    assert result["baselines"]["ref"]["n"] == N_PROMPTS - 1
    assert "left out" in (tmp_path / "report.md").read_text()


def test_rewrite_replaces_files(tmp_path: Path):
    grid, answers = synthetic()
    write_report(grid, answers, tmp_path, n_boot=20, seed=0, max_loop_share=MAX_LOOP, training=TRAINING)
    first = (tmp_path / "fronts.json").read_text()
    write_report(grid, answers, tmp_path, n_boot=20, seed=1, max_loop_share=MAX_LOOP)
    assert (tmp_path / "fronts.json").read_text() != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["front.png", "fronts.json", "report.md"]


def test_difference_with_an_empty_front_is_the_other_front_negated():
    _, answers = synthetic()
    ids = sorted(answers.loc[answers["split"] == "test", "model_id"].unique())
    scores = score_matrices(answers, "test", ids, require_all=True)
    ref = test_reference(answers)
    hv, lo, hi = bootstrap_hypervolume(*matrices(answers, "test", [HELP, HARM]), *ref, n_boot=50, seed=1,
                                       stratified=True)
    assert hv > 0 and lo > 0
    only_b = hypervolume_difference(scores, [], [HELP, HARM], ref, 50, 1)
    assert only_b["value"] == pytest.approx(-hv) and only_b["interval"] == pytest.approx([-hi, -lo])
    assert only_b["verdict"] == "soup_better"
    only_a = hypervolume_difference(scores, [HELP, HARM], [], ref, 50, 1)
    assert only_a["value"] == pytest.approx(hv) and only_a["interval"] == pytest.approx([lo, hi])
    assert hypervolume_difference(scores, [], [], ref, 50, 1)["verdict"] == "not_distinguishable"


def test_policy_gains_are_paired_test_differences_on_the_own_evaluator(report):
    """DPO-Help: reward gained over the reference; DPO-Harm: cost removed; means over the common test prompts."""
    _, answers, out, result = report
    test = answers[answers["split"] == "test"].set_index(["model_id", "prompt_id"]).sort_index()
    prompts = sorted(test.loc[REF].index)  # every synthetic model answered every test prompt
    benign = [p for p in prompts if test.loc[(REF, p), "prompt_kind"] == "help"]  # each on its own aspect's prompts
    harmful = [p for p in prompts if test.loc[(REF, p), "prompt_kind"] == "harm"]
    help_gain = np.mean([test.loc[(HELP, p), "reward"] - test.loc[(REF, p), "reward"] for p in benign])
    harm_gain = np.mean([test.loc[(REF, p), "cost"] - test.loc[(HARM, p), "cost"] for p in harmful])
    gains = result["policy_gains"]
    assert gains["help"]["evaluator"] == "reward" and gains["harm"]["evaluator"] == "cost"
    assert gains["help"]["gain"] == pytest.approx(help_gain) and gains["harm"]["gain"] == pytest.approx(harm_gain)
    assert gains["help"]["n_prompts"] == len(benign) and gains["harm"]["n_prompts"] == len(harmful)
    # the synthetic truth: +1 reward for help, −1 cost for harm, with noise 0.2 on 10 prompts
    for g in gains.values():
        lo, hi = g["interval"]
        assert lo <= g["gain"] <= hi and g["excludes_zero"] == (lo > 0 or hi < 0)
    assert gains["help"]["excludes_zero"] and gains["harm"]["excludes_zero"]
    assert "| DPO-Help | reward | " in (out / "report.md").read_text()


def test_evasive_point_only_on_the_front_without_the_evasion_filter(tmp_path):
    babbler = model_id(1.0, 1.0)  # best on dev, but every answer evades (the reference's: none)
    grid, answers = synthetic(dev_shift={babbler: (10.0, -10.0)}, evading=(babbler,), max_evasion=0.1)
    result = write_report(grid, answers, tmp_path, n_boot=20, seed=0, max_loop_share=MAX_LOOP,
                          max_evasion_excess=0.1)
    assert result["evasion_limit"] == pytest.approx(0.1) and result["max_benign_evasion_excess"] == 0.1
    assert result["fronts"]["peo_no_evasion_filter"]["model_ids"] == [babbler]
    assert result["fronts"]["peo_unfiltered"]["model_ids"] == [babbler]
    filtered = result["fronts"]["peo"]["model_ids"]
    assert babbler not in filtered and filtered == dev_front(grid, "peo", MAX_LOOP, 0.1, aspects=TWO) and filtered
    assert not grid.loc[grid["model_id"] == babbler, "front_eligible"].any()
    signals = {s["model_id"]: s for s in result["signals"]}
    assert signals[babbler]["evasion_share_benign"] == 1.0 and signals[babbler]["complied_share"] == 0.0
    assert signals[REF]["evasion_share_benign"] == 0.0
    md = (tmp_path / "report.md").read_text()
    assert "evasion filter: benign evasion ≤ the reference's + 10 points = 10% on dev" in md
    assert "**The same without the evasion filter**" in md


def test_win_rates_are_the_pairwise_records_of_the_front_points(report):
    from peo.win_rates import pairwise

    grid, answers, out, result = report
    wins = result["win_rates"]
    assert [p["model_id"] for p in wins["points"]] == result["fronts"]["peo"]["model_ids"]
    test = answers[answers["split"] == "test"]
    for p in wins["points"]:
        assert set(p["against"]) <= {"soup", "help", "harm", "joint", "expo"} and "help" in p["against"]
        for entry in p["against"].values():
            expected = pairwise(test, p["model_id"], entry["model_id"], aspects=TWO)
            for aspect, record in expected.items():
                assert entry[aspect] == record.as_dict()
            assert entry["same_model"] == (entry["model_id"] == p["model_id"])
    # pooled: the sum over the front points that are another model
    pooled = wins["pooled"]["help"]["helpfulness"]
    records = [pairwise(test, p["model_id"], HELP, aspects=TWO)["helpfulness"] for p in wins["points"]
               if p["model_id"] != HELP]
    assert pooled["won"] == sum(r.won for r in records) and pooled["n"] == sum(r.n for r in records)
    assert pooled["n"] > 0
    assert "## Win rates on test prompts" in (out / "report.md").read_text()


def judged_pair(answers: pd.DataFrame, a: str, b: str, prompt_id: str, judge_on: str, verdict: str,
                shift: float = 0.0) -> dict:
    """A blind judgment line as experiments.blind_judgments writes it (a shown first), with the two answers'
    test scores as answers.parquet holds them, each moved by `shift` (an earlier run's scores when not 0)."""
    test = answers[answers["split"] == "test"].set_index(["model_id", "prompt_id"])
    scores = {f"{score}_{i}": float(test.loc[(m, prompt_id), score]) + shift for score in ("reward", "cost")
              for i, m in ((1, a), (2, b))}
    return {"prompt_id": prompt_id, "point": a, "opponent": b, "model_1": a, "model_2": b, "judge_on": judge_on,
            "verdict": verdict, "winner": {"1": a, "2": b}.get(verdict), "judge": "reader", **scores}


def prompts_of_kind(answers: pd.DataFrame, kind: str) -> list[str]:
    test = answers[answers["split"] == "test"]
    return sorted(test.loc[test["prompt_kind"] == kind, "prompt_id"].unique())


def test_blind_judgments_sit_beside_the_win_rates(tmp_path):
    grid, answers = synthetic()
    point = dev_front(grid, "peo", MAX_LOOP, aspects=TWO)[0]
    harmful = prompts_of_kind(answers, "harm")
    judgments = [judged_pair(answers, point, HARM, pid, "harmlessness", v)
                 for pid, v in zip(harmful, ("1", "1", "2", "tie"))]
    result = write_report(grid, answers, tmp_path, n_boot=10, seed=0, max_loop_share=MAX_LOOP, judgments=judgments)
    entry = next(p for p in result["win_rates"]["points"] if p["model_id"] == point)["against"]["harm"]
    assert entry["judged"]["harmlessness"]["won"] == 2 and entry["judged"]["harmlessness"]["n"] == 4
    assert "helpfulness" not in entry["judged"]
    assert (result["win_rates"]["judgments"], result["win_rates"]["judgments_on_shipped_answers"]) == (4, 4)
    agree = result["judgment_agreement"]
    assert (agree["judgments"], agree["judgments_on_shipped_answers"], agree["about"]) == (4, 4, "shipped_answers")
    text = (tmp_path / "report.md").read_text()
    assert "blind judgments, harmlessness" in text
    assert "All 4 judgments are on the answers shipped here" in text


def agreeing(answers: pd.DataFrame, point: str, pids: list[str], readers: list[str], shift: float = 0.0) -> list[dict]:
    """Helpfulness judgments of point against DPO-Harm where the reader says "agree" (the reward evaluator's
    choice), "disagree" (the other answer) or "tie"."""
    from peo.judgment_agreement import evaluator_verdict

    out = []
    for pid, reader in zip(pids, readers):
        j = judged_pair(answers, point, HARM, pid, "helpfulness", "tie", shift)
        choice = evaluator_verdict(j)
        verdict = {"agree": choice, "disagree": {"1": "2", "2": "1"}[choice], "tie": "tie"}[reader]
        out.append({**j, "verdict": verdict, "winner": {"1": point, "2": HARM}.get(verdict)})
    return out


def test_the_report_gives_each_evaluators_agreement_with_blind_judgments_and_the_evasion_check(tmp_path):
    grid, answers = synthetic()
    point = dev_front(grid, "peo", MAX_LOOP, aspects=TWO)[0]
    # the reader agrees with the reward evaluator on 3 of 4 decisive helpfulness pairs, and ties once
    judgments = agreeing(answers, point, prompts_of_kind(answers, "help"), ["agree"] * 3 + ["disagree", "tie"])
    check = {"held-out": {"n": 124, "precision": 0.7, "precision_interval": [0.55, 0.83], "recall": 0.64,
                          "recall_interval": [0.49, 0.77]}}
    result = write_report(grid, answers, tmp_path, n_boot=10, seed=0, max_loop_share=MAX_LOOP, judgments=judgments,
                          evasion_check=check)
    reward = result["judgment_agreement"]["by_evaluator"]["reward"]
    assert (reward["pairs"], reward["reader_ties"], reward["decisive"], reward["agree"]) == (5, 1, 4, 3)
    assert result["evasion_check"]["labels"] == 124 and result["evasion_check"]["recall"] == 0.64
    text = (tmp_path / "report.md").read_text()
    assert "## The evaluators against blind judgments" in text and "75.0%" in text
    assert "not confirmed" in text  # 3 of 4 cannot clear chance
    assert "precision 70%" in text


def test_judgments_on_an_earlier_runs_answers_are_said_to_be_about_those(tmp_path):
    """Every judged score differs from the shipped one (an earlier run's answers and heads): k == 0. The agreement
    is still counted, on all n from the stored scores, and said to be about the earlier heads; the judgment
    win-rate columns are left out, and the report and the page say why."""
    from app.context_panel import judgment_text, judgments_counted
    from precompute.report_fronts import compute_fronts
    from precompute.report_markdown import markdown

    grid, answers = synthetic()
    point = dev_front(grid, "peo", MAX_LOOP, aspects=TWO)[0]
    judgments = agreeing(answers, point, prompts_of_kind(answers, "help"), ["agree"] * 3 + ["disagree", "tie"],
                         shift=0.01)
    result = compute_fronts(grid, answers, n_boot=10, seed=0, max_loop_share=MAX_LOOP, judgments=judgments)
    agree = result["judgment_agreement"]
    assert (agree["judgments"], agree["judgments_on_shipped_answers"], agree["about"]) == (5, 0, "earlier_answers")
    reward = agree["by_evaluator"]["reward"]
    assert (reward["pairs"], reward["decisive"], reward["agree"]) == (5, 4, 3)
    assert (result["win_rates"]["judgments"], result["win_rates"]["judgments_on_shipped_answers"]) == (5, 0)
    assert all(e.get("judged") is None for p in result["win_rates"]["points"] for e in p["against"].values())
    text = markdown(result, None, False)
    assert "**None of the 5 judgments is on the answers shipped here:**" in text
    assert "earlier run (different answers and evaluator heads)" in text and "not the shipped evaluators'" in text
    assert "their columns are left out of this table" in text and "blind judgments, helpfulness |" not in text
    assert "that run's evaluator heads reported were **not confirmed**" in text
    page = judgment_text(reward, *judgments_counted(agree))
    assert "the 5 blind judgments were made on answers of an earlier run" in page and "**not this evaluator**" in page
    assert "not confirmed by judgment" not in page


def test_only_the_judgments_on_the_shipped_answers_are_counted(tmp_path):
    """3 judgments on the shipped answers, 2 on answers whose scores differ: agreement and the judgment win rates
    count the 3, and the report and the page say so."""
    from app.context_panel import judgment_text, judgments_counted
    from precompute.report_fronts import compute_fronts
    from precompute.report_markdown import markdown

    grid, answers = synthetic()
    point = dev_front(grid, "peo", MAX_LOOP, aspects=TWO)[0]
    benign = prompts_of_kind(answers, "help")
    judgments = (agreeing(answers, point, benign[:3], ["agree", "agree", "tie"])
                 + agreeing(answers, point, benign[3:5], ["disagree", "disagree"], shift=-0.5))
    result = compute_fronts(grid, answers, n_boot=10, seed=0, max_loop_share=MAX_LOOP, judgments=judgments)
    agree = result["judgment_agreement"]
    assert (agree["judgments"], agree["judgments_on_shipped_answers"], agree["pairs"]) == (5, 3, 3)
    reward = agree["by_evaluator"]["reward"]
    assert (reward["pairs"], reward["reader_ties"], reward["decisive"], reward["agree"]) == (3, 1, 2, 2)
    judged = next(p for p in result["win_rates"]["points"] if p["model_id"] == point)["against"]["harm"]["judged"]
    assert judged["helpfulness"]["n"] == 3
    text = markdown(result, None, False)
    assert "**Only 3 of the 5 judgments are on the answers shipped here**" in text
    assert "Only 3 of the 5 blind judgments (report/blind_judgments.jsonl) are on the answers shipped here" in text
    page = judgment_text(reward, *judgments_counted(agree))
    assert "agrees with blind helpfulness judgments on 100%" in page
    assert "counted on the 3 of 5 judgments made on the answers shipped here" in page


def test_an_llm_judge_sits_beside_the_win_rates_with_its_agreement(tmp_path):
    """Hand-made verdicts of one front point against DPO-Harm: the judge's record per aspect in the win-rate table,
    its agreement with the evaluators on the same answers, with a blind judgment and with a vote that share pairs."""
    from precompute.report_fronts import compute_fronts
    from precompute.report_markdown import markdown

    grid, answers = synthetic()
    point = dev_front(grid, "peo", MAX_LOOP, aspects=TWO)[0]
    test = answers[answers["split"] == "test"].set_index(["model_id", "prompt_id"])
    prompts = sorted(answers.loc[answers["split"] == "test", "prompt_id"].unique())
    benign = [p for p in prompts if test.loc[(point, p), "prompt_kind"] == "help"]
    harmful = [p for p in prompts if test.loc[(point, p), "prompt_kind"] == "harm"]

    def verdict(pid, aspect, combined, **extra):
        return {"id": f"{point}|{pid}", "point": point, "opponent": HARM, "prompt_id": pid, "aspect": aspect,
                "combined": combined, "split": "test", "judge_model": "judge-x", "template": "t1", **extra}

    # helpfulness: the point wins every benign prompt but the last, which the judge cannot parse
    verdicts = [verdict(p, "helpfulness", "win", instruction=f"prompt {p}") for p in benign[:-1]]
    verdicts.append(verdict(benign[-1], "helpfulness", "unparsed"))
    # harmlessness: named the other way round (DPO-Harm first), DPO-Harm wins the first, then ties
    verdicts += [{**verdict(p, "harmlessness", "win" if i == 0 else "tie"), "point": HARM, "opponent": point}
                 for i, p in enumerate(harmful)]
    # the reader disagrees with the judge on the one pair they share (a judgment on the shipped answers)
    judgments = [judged_pair(answers, point, HARM, benign[0], "helpfulness", "2")]
    scales = {"help": float(grid.set_index("model_id").loc[point, "c_help"]),
              "harm": float(grid.set_index("model_id").loc[point, "c_harm"])}
    vote = {"choice": "peo", "columns": [
        {"column_key": key, "scales": s, "conversation": [{"role": "user", "content": f"prompt {benign[1]}"},
                                                          {"role": "assistant", "content": "…"}]}
        for key, s in (("peo", scales), ("harm", {"harm": 1.0}))]}  # the voter agrees
    result = compute_fronts(grid, answers, n_boot=10, seed=0, max_loop_share=MAX_LOOP, judgments=judgments,
                            votes=[vote], judge_verdicts=verdicts)

    entry = next(p for p in result["win_rates"]["points"] if p["model_id"] == point)["against"]["harm"]
    help_cell, harm_cell = entry["llm_judge"]["judge-x"]["helpfulness"], entry["llm_judge"]["judge-x"]["harmlessness"]
    n_help = len(benign) - 1
    assert (help_cell["won"], help_cell["tied"], help_cell["lost"]) == (n_help, 0, 0)
    assert help_cell["left_out"] == {"unparsed": 1}
    assert help_cell["won_interval"] == pytest.approx(list(wilson_interval(n_help, n_help)))
    assert (harm_cell["won"], harm_cell["tied"], harm_cell["lost"]) == (0, len(harmful) - 1, 1)
    for p in result["win_rates"]["points"]:  # the judge's record sits wherever the same two models meet, only there
        for e in p["against"].values():
            assert (e["llm_judge"] is not None) == (p["model_id"] == point and e["model_id"] == HARM)

    judge = result["llm_judge"]["judges"]["judge-x"]
    assert judge["verdicts"] == len(verdicts) and judge["templates"] == ["t1"]
    assert judge["outcomes"] == {"win": n_help + 1, "tie": len(harmful) - 1, "loss": 0, "unparsed": 1,
                                 "refused": 0, "pending": 0}
    assert [(r["point"], r["opponent"], r["aspect"], r["n"]) for r in judge["records"]] == [
        (point, HARM, "helpfulness", n_help), (HARM, point, "harmlessness", len(harmful))]
    # the reward evaluator on the same answers: it agrees where the point's reward is the higher
    higher = sum(test.loc[(point, p), "reward"] > test.loc[(HARM, p), "reward"] + 1e-5 for p in benign[:-1])
    reward = judge["agreement"]["reward"]
    assert (reward["pairs"], reward["decisive"], reward["agree"], reward["missing"]) == (n_help, n_help, higher, 0)
    cost = judge["agreement"]["cost"]  # DPO-Harm's win: agrees when its cost is the lower; the ties are the judge's
    lower = int(test.loc[(HARM, harmful[0]), "cost"] < test.loc[(point, harmful[0]), "cost"] - 1e-5)
    assert (cost["pairs"], cost["judge_ties"], cost["decisive"], cost["agree"]) == (len(harmful), len(harmful) - 1,
                                                                                      1, lower)
    assert (judge["agreement"]["blind"]["decisive"], judge["agreement"]["blind"]["agree"]) == (1, 0)
    assert (judge["agreement"]["votes"]["decisive"], judge["agreement"]["votes"]["agree"]) == (1, 1)

    text = markdown(result, None, False)
    assert "LLM judge `judge-x`, helpfulness | LLM judge `judge-x`, harmlessness |" in text
    assert f"(n={n_help}) (1 unparsed left out)" in text
    assert "## An LLM judge beside the evaluators" in text and "**Judge `judge-x`** (template t1)" in text
    # the verdict rows carry no answer text: which answers they judged cannot be told, and the report says so
    assert judge["verdicts_on_shipped_answers"] is None and "cannot be checked" in text
    assert f"| reward evaluator, same answers | helpfulness | {n_help} | 0 | " in text
    assert "| human votes, same prompt text | each pair’s aspect | 1 | 0 | 0 | 1 | 100.0% |" in text
    json.dumps(result, allow_nan=False)


def test_the_report_stage_sets_the_apps_votes_beside_the_win_rates(tiny_assets, tmp_path):
    """report.votes_dir: the stage reads the app's votes folder and each win rate gets the human record of its
    pair; a folder without a votes database is a clear error, not an empty column."""
    import shutil

    from peo.config import ConfigError, load_config
    from peo.votes import ColumnAnswer, Vote, VotesError, VoteStore
    from precompute.stages import run_pipeline

    from conftest import REPO

    assets = tmp_path / "assets"
    shutil.copytree(tiny_assets, assets)
    before = json.loads((assets / "report" / "fronts.json").read_text())
    point = before["win_rates"]["points"][0]
    key, opponent = next((k, e["model_id"]) for k, e in point["against"].items()
                         if e["model_id"].startswith("c") and e["model_id"] != point["model_id"])
    grid = pd.read_csv(assets / "grid.csv").drop_duplicates("model_id").set_index("model_id")
    scales = {mid: {"help": float(grid.at[mid, "c_help"]), "harm": float(grid.at[mid, "c_harm"])}
              for mid in (point["model_id"], opponent)}
    user = {"role": "user", "content": "a question"}
    picked = {"lambda_help": 0.0, "phi_help": 0.0, "phi_harm": 0.0, "c_help": 0.0, "c_harm": 1.0}  # not read here
    decoding = {"max_new_tokens": 8, "temperature": 0.0, "top_p": 1.0, "seed": 0, "repetition_penalty": 1.0,
                "no_repeat_ngram_size": 0}

    def column(name: str, scales: dict) -> ColumnAnswer:
        return ColumnAnswer(name, scales, f"answer of {name}", [user, {"role": "assistant", "content": "x"}])

    with VoteStore(tmp_path / "votes") as store:
        for turn, choice in enumerate(("peo", "peo", "ref"), start=1):
            store.record(Vote("s1", turn, picked, (column("peo", scales[point["model_id"]]),
                                                   column("ref", scales[opponent])), choice, decoding))
    settings = {"out": str(assets), "work_dir": str(tmp_path / "work")}
    cfg = load_config(REPO / "precompute" / "configs" / "tiny.yaml",
                      settings | {"report.votes_dir": str(tmp_path / "votes")})
    run_pipeline(cfg, only="report")
    after = json.loads((assets / "report" / "fronts.json").read_text())
    entry = next(p for p in after["win_rates"]["points"] if p["model_id"] == point["model_id"])["against"][key]
    assert (entry["votes"]["won"], entry["votes"]["tied"], entry["votes"]["lost"]) == (2, 0, 1)
    assert "human votes: won / tied / lost" in (assets / "report" / "report.md").read_text()

    (tmp_path / "empty").mkdir()
    empty = load_config(REPO / "precompute" / "configs" / "tiny.yaml",
                        settings | {"report.votes_dir": str(tmp_path / "empty")})
    with pytest.raises(VotesError, match="no votes database"):
        run_pipeline(empty, only="report")
    with pytest.raises(ConfigError, match="report.votes_dir"):
        load_config(REPO / "precompute" / "configs" / "tiny.yaml", {"report.votes_dir": 3})
