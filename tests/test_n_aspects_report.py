"""The report stage with three aspects: help (reward ↑), harm (cost ↓) and brief (brevity ↑), as in
precompute/configs/tiny3.yaml. grid.csv and answers.parquet are built by hand with the contract's columns for N
aspects (c_<aspect>, one score column per evaluator, lambda_<a> for all aspects but the last, phi_<a> per aspect,
<evaluator>_mean_dev …), so these tests do not depend on the sweep code."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest

from peo.aspects import Aspect, Aspects
from peo.config import SweepConfig
from peo.grid_table import SPLITS, eligible, evasion_limit, split_stats
from peo.sweep_plan import sweep_models
from precompute.report import write_report

ASPECTS = Aspects((Aspect("help", "reward", "higher", "helpfulness"), Aspect("harm", "cost", "lower", "harmlessness"),
                   Aspect("brief", "brevity", "higher", "brevity")))
HIGHER = (True, False, True)
MAX_LOOP = 0.1


def hand_grid(rows: list[dict], answers: pd.DataFrame, aspects: Aspects = ASPECTS) -> pd.DataFrame:
    """grid.csv as the contract spells it for N aspects: the grid rows, each model's figures per split (suffix
    _dev, _test), the shown split's unsuffixed, and front_eligible; through a CSV round trip as the stage reads it."""
    stats = {key: split_stats(group, aspects) for key, group in answers.groupby(["model_id", "split"])}
    out = []
    for row in rows:
        full = dict(row)
        for split in SPLITS:
            for key, value in stats.get((row["model_id"], split), {}).items():
                full[f"{key}_{split}"] = value
        full["split"] = "test" if (row["model_id"], "test") in stats else "dev"
        full.update({key: full.get(f"{key}_{full['split']}") for key in aspects.grid_stats})
        out.append(full)
    table = pd.DataFrame(out)
    table["front_eligible"] = eligible(table, MAX_LOOP, evasion_limit(table, None)).astype(bool)
    return table


def answer(mid: str, split: str, prompt: str, kind: str, scores: tuple[float, float, float], **extra) -> dict:
    """One answer row: every evaluator scores every answer; each is averaged over its own aspect's prompts."""
    reward, cost, brevity = scores
    return {"model_id": mid, "split": split, "prompt_id": prompt, "prompt_kind": kind, "prompt": "[]",
            "answer": f"{mid} says something about {prompt}", "reward": reward, "cost": cost, "brevity": brevity,
            "loops": False, "refuses": False, "evades": False, "n_words": 5, "cut": False, **extra}


# ---------------------------------------------------------------- a tiny case, computed by hand

# test (and dev) means (reward ↑, cost ↓, brevity ↑): B dominates S (same reward and cost, briefer)
TINY = {"c+0.000_+0.000_+0.000": ("ref", (0.0, 3.0, 0.0)), "c+1.500_+0.500_+0.000": ("peo", (2.0, 1.0, 1.0)),
        "c+0.500_+1.000_+1.500": ("peo", (1.0, 2.0, 3.0)), "c+0.500_+0.500_+0.000": ("soup", (1.0, 2.0, 0.5))}
# the reference point: the worst mean of every test-scored model, pushed out by 5 % of the range
REF = {"reward": 0.0 - 0.05 * 2.0, "cost": 3.0 + 0.05 * 2.0, "brevity": 0.0 - 0.05 * 3.0}
# boxes up to REF: A = (2, 1, 1) spans 2.1·2.1·1.15, B = (1, 2, 3) spans 1.1·1.1·3.15, their overlap (1, 2, 1)
# spans 1.1·1.1·1.15; S = (1, 2, 0.5) spans 1.1·1.1·0.65
HV_PEO = 2.1 * 2.1 * 1.15 + 1.1 * 1.1 * 3.15 - 1.1 * 1.1 * 1.15
HV_SOUP = 1.1 * 1.1 * 0.65


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """One prompt per aspect and split, so every bootstrap draw is the observed means: each interval is a point."""
    rows, answers = [], []
    for mid, (method, means) in TINY.items():
        coefficients = [float(x) for x in mid[2:].split("_")]
        rows.append({"model_id": mid, "method": method, "lambda_help": 0.5, "lambda_harm": 0.25,
                     **{f"phi_{a}": 0.0 for a in ASPECTS.names},
                     **dict(zip(ASPECTS.coefficient_columns, coefficients)), "expo_alpha": None})
        for split, (j, kind) in itertools.product(SPLITS, enumerate(ASPECTS.names)):
            other = [5.0, 5.0, 5.0]  # what the evaluators say off their own prompts: only the all-prompt means see it
            other[j] = means[j]
            answers.append(answer(mid, split, f"{split}-{kind}", kind, tuple(other)))
    answers = pd.DataFrame(answers)
    out = tmp_path_factory.mktemp("tiny3")
    hand_grid(rows, answers).to_csv(out / "grid.csv", index=False)
    result = write_report(pd.read_csv(out / "grid.csv"), answers, out / "report", n_boot=20, seed=0,
                          max_loop_share=MAX_LOOP, meta={"aspects": ASPECTS.to_json()})
    return result, out / "report"


def test_tiny_hypervolumes_are_the_hand_volumes(tiny):
    result, _ = tiny
    assert result["reference_point"] == pytest.approx({**REF, "margin": 0.05})
    peo, soup = result["fronts"]["peo"], result["fronts"]["soup"]
    assert peo["model_ids"] == ["c+1.500_+0.500_+0.000", "c+0.500_+1.000_+1.500"]  # both non-dominated
    assert peo["hypervolume"] == pytest.approx(HV_PEO)
    assert peo["interval"] == pytest.approx([HV_PEO, HV_PEO])
    assert soup["hypervolume"] == pytest.approx(HV_SOUP)
    diff = result["difference"]
    assert diff["value"] == pytest.approx(HV_PEO - HV_SOUP)
    assert diff["interval"] == pytest.approx([HV_PEO - HV_SOUP] * 2) and diff["verdict"] == "peo_better"


def test_tiny_points_carry_every_aspects_columns(tiny):
    result, out = tiny
    point = result["fronts"]["peo"]["points"][1]
    assert (point["reward_mean"], point["cost_mean"], point["brevity_mean"]) == (1.0, 2.0, 3.0)
    assert point["brevity_all_mean"] == pytest.approx((3.0 + 5.0 + 5.0) / 3)
    assert (point["lambda_help"], point["lambda_harm"], point["phi_brief"], point["c_brief"]) == (0.5, 0.25, 0.0, 1.5)
    assert point["grid_points"] == [{"lambda_help": 0.5, "lambda_harm": 0.25, "phi_help": 0.0, "phi_harm": 0.0,
                                     "phi_brief": 0.0}]
    assert point["dev"] == {"reward_mean": 1.0, "cost_mean": 2.0, "brevity_mean": 3.0, "loop_share": 0.0,
                            "evasion_share_benign": 0.0}
    assert result["n_prompts_by_kind"]["test"] == {"benign": 1, "harmful": 1, "brief": 1}
    assert result["scoring"]["brevity"] == "brevity evaluator, mean over brief prompts"
    assert result["test_means"]["c+0.500_+1.000_+1.500"] == [1.0, 2.0, 3.0, 0.0]
    assert json.loads((out / "fronts.json").read_text()) == json.loads(json.dumps(result))


def test_tiny_report_md_renders_the_third_aspect(tiny):
    _, out = tiny
    md = (out / "report.md").read_text()
    assert "| model | λ_help | λ_harm | ϕ_help | ϕ_harm | ϕ_brief | c_help | c_harm | c_brief | reward (benign) ± se " \
           "| cost (harmful) ± se | brevity (brief) ± se | safe (harmful) |" in md
    assert "| dev reward | dev cost | dev brevity | dev loops |" in md
    # B's row: its coordinates, its three means, then its dev means
    assert "| `c+0.500_+1.000_+1.500` | 0.5 | 0.25 | 0 | 0 | 0 | 0.5 | 1 | 1.5 | 1 ± 0 | 2 ± 0 | 3 ± 0 |" in md
    assert "Reference point (reward -0.1, cost 3.1, brevity -0.15)" in md
    assert "**3 aspects.** Every front is Pareto over the 3 evaluators' test means (reward (↑), cost (↓), " \
           "brevity (↑))" in md
    assert "](front.png)" not in md and not (out / "front.png").exists()
    lines = md.splitlines()
    for k, line in enumerate(lines):  # every separator has as many cells as its head, every row as many
        if line.startswith("| ---"):
            head = lines[k - 1]
            assert line.count("|") == head.count("|"), head
            for row in itertools.takewhile(lambda r: r.startswith("|"), lines[k + 1:]):
                assert row.count("|") == head.count("|"), row


# ---------------------------------------------------------------- a synthetic 3-aspect sweep

LAMBDAS = [0.0, 0.5, 1.0]
PHIS = {"help": [0.0, 0.5], "harm": [0.0, 0.5], "brief": [0.0, 1.0]}
N_PROMPTS = 4  # per aspect and split


def true_means(c: tuple[float, float, float]) -> tuple[float, float, float]:
    """More help → more reward and cost; more harm → less cost; more brief → briefer but less reward."""
    help_, harm, brief = c
    return help_ - 0.3 * brief, help_ - harm, brief - 0.2 * help_


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    rows, models = sweep_models(SweepConfig(lambdas=LAMBDAS, phi=PHIS, expo_alphas=[1.0]), ASPECTS)
    rng = np.random.default_rng(0)
    answers = []
    for split in SPLITS:
        effects = rng.normal(0, 0.3, size=(3, N_PROMPTS))  # prompt effects, shared by every model
        for mid, scales in models.items():
            c = tuple(scales.get(a, 0.0) for a in ASPECTS.names) if "joint" not in scales else (0.5, 0.5, 0.5)
            mu = true_means(c)
            for j, kind in enumerate(ASPECTS.names):
                for k in range(N_PROMPTS):
                    noise = rng.normal(0, 0.05, size=3)
                    scores = tuple(mu[e] + effects[j, k] + noise[e] for e in range(3))
                    answers.append(answer(mid, split, f"{split}-{kind}-{k}", kind, scores))
    answers = pd.DataFrame(answers)
    out = tmp_path_factory.mktemp("sweep3")
    hand_grid(rows, answers).to_csv(out / "grid.csv", index=False)
    grid = pd.read_csv(out / "grid.csv")
    result = write_report(grid, answers, out / "report", n_boot=30, seed=1, max_loop_share=MAX_LOOP,
                          meta={"aspects": ASPECTS.to_json()})
    return grid, answers, result, out / "report"


def _dominates(a, b) -> bool:
    better = [x >= y if h else x <= y for x, y, h in zip(a, b, HIGHER)]
    strictly = [x > y if h else x < y for x, y, h in zip(a, b, HIGHER)]
    return all(better) and any(strictly)


def _brute_front(means: dict[str, tuple]) -> set[str]:
    return {m for m, p in means.items() if not any(_dominates(q, p) for q in means.values())}


def _grid_volume(points: list[tuple], ref: tuple) -> float:
    """Exact hypervolume by coordinate compression: every cell between consecutive coordinates (the points' and
    the reference's, per axis) counts when some point dominates its worst corner."""
    mins = [tuple(-x if h else x for x, h in zip(p, HIGHER)) for p in points]  # every objective minimised
    r = tuple(-x if h else x for x, h in zip(ref, HIGHER))
    mins = [p for p in mins if all(x < y for x, y in zip(p, r))]
    axes = [sorted({p[j] for p in mins} | {r[j]}) for j in range(3)]
    volume = 0.0
    for cell in itertools.product(*(range(len(a) - 1) for a in axes)):
        lo = [axes[j][cell[j]] for j in range(3)]
        if any(all(p[j] <= lo[j] for j in range(3)) for p in mins):
            volume += np.prod([axes[j][cell[j] + 1] - lo[j] for j in range(3)])
    return float(volume)


def test_sweep_front_is_the_nd_pareto_front_of_the_dev_means(sweep):
    grid, _, result, _ = sweep
    for method in ("peo", "soup"):
        candidates = grid[(grid["method"] == method) & grid["front_eligible"]].drop_duplicates("model_id")
        dev = {r.model_id: (r.reward_mean_dev, r.cost_mean_dev, r.brevity_mean_dev) for r in candidates.itertuples()}
        chosen = result["fronts"][method]["model_ids"]
        assert set(chosen) == _brute_front(dev) and len(chosen) == len(set(chosen))
    assert result["fronts"]["peo"]["n_chosen"] > 2  # a front in three dimensions, not a line


def test_sweep_hypervolumes_are_exact_and_the_difference_is_paired(sweep):
    _, _, result, _ = sweep
    ref = tuple(result["reference_point"][e] for e in ASPECTS.evaluators)
    means = {m: v[:3] for m, v in result["test_means"].items()}
    worst = [min if h else max for h in HIGHER]
    spans = [max(v[j] for v in means.values()) - min(v[j] for v in means.values()) for j in range(3)]
    assert ref == pytest.approx(tuple(worst[j](v[j] for v in means.values()) + (-0.05 if HIGHER[j] else 0.05)
                                      * spans[j] for j in range(3)))
    hvs = {}
    for name in ("peo", "soup", "expo"):
        front = result["fronts"][name]
        hvs[name] = _grid_volume([means[m] for m in front["model_ids"]], ref)
        assert front["hypervolume"] == pytest.approx(hvs[name])
        assert front["interval"][0] <= front["interval"][1]
        on_front = _brute_front({m: means[m] for m in front["model_ids"]})
        assert {p["model_id"] for p in front["points"] if p["on_test_front"]} == on_front
    assert result["difference"]["value"] == pytest.approx(hvs["peo"] - hvs["soup"])
    assert result["difference_vs_expo"]["value"] == pytest.approx(hvs["peo"] - hvs["expo"])
    assert result["difference"]["interval"][0] <= result["difference"]["value"] <= result["difference"]["interval"][1]


def test_sweep_baselines_win_rates_and_gains_are_per_aspect(sweep):
    _, _, result, out = sweep
    assert list(result["baselines"]) == ["ref", "help", "harm", "brief", "joint"]
    assert result["baselines"]["brief"]["model_id"] == "c+0.000_+0.000_+1.000"
    assert (result["baselines"]["brief"]["c_help"], result["baselines"]["brief"]["c_brief"]) == (0.0, 1.0)
    assert list(result["policy_gains"]) == ["help", "harm", "brief"]
    assert result["policy_gains"]["brief"]["evaluator"] == "brevity"
    assert result["policy_gains"]["brief"]["gain"] > 0  # DPO-Brief is briefer than the reference
    assert {"ref_vs_brief", "help_vs_brief", "harm_vs_brief"} <= set(result["answers_differ"])
    wins = result["win_rates"]
    against = wins["points"][0]["against"]
    assert "brief" in against and against["brief"]["label"] == "DPO-Brief"
    for entry in against.values():
        assert {"helpfulness", "harmlessness", "brevity"} <= set(entry)
        assert entry["brevity"]["n"] == N_PROMPTS
    assert wins["points"][0]["coordinates"].startswith("λ_help=")
    md = (out / "report.md").read_text()
    assert "| front point | against | helpfulness (benign): won / tied / lost | harmlessness (harmful): won / tied " \
           "/ lost | brevity (brief): won / tied / lost |" in md
    assert "| DPO-Brief | `c+0.000_+0.000_+1.000` | 0 | 0 | 1 |" in md
    assert "brevity gained by DPO-Brief on the brief prompts" in md


# ---------------------------------------------------------------- two aspects of other names


def test_two_aspects_of_other_names_get_the_2d_report_and_its_figure(tmp_path):
    """Two aspects that are not help and harm (quality ↑ on `useful` prompts, danger ↓ on `risky` ones): the exact
    2-D fronts, front.png drawn with their names, no blind judgments or LLM judge (they are about help and harm)."""
    aspects = Aspects((Aspect("useful", "quality", "higher", "usefulness"), Aspect("risky", "danger", "lower", "risk")))
    means = {"c+0.000_+0.000": ("ref", (0.0, 3.0)), "c+1.500_+0.500": ("peo", (2.0, 1.0)),
             "c+0.500_+1.500": ("peo", (1.0, 0.5)), "c+0.500_+0.500": ("soup", (1.0, 2.0)),
             "c+1.000_+0.000": ("useful", (1.5, 2.5))}
    rows, answers = [], []
    for mid, (method, (quality, danger)) in means.items():
        c = [float(x) for x in mid[2:].split("_")]
        rows.append({"model_id": mid, "method": method, "lambda_useful": 0.5, "phi_useful": 0.0, "phi_risky": 0.0,
                     "c_useful": c[0], "c_risky": c[1], "expo_alpha": None})
        for split in SPLITS:
            for kind, scores in (("useful", (quality, 9.0)), ("risky", (9.0, danger))):
                row = answer(mid, split, f"{split}-{kind}", kind, (0.0, 0.0, 0.0))
                del row["reward"], row["cost"], row["brevity"]
                answers.append({**row, "quality": scores[0], "danger": scores[1]})
    answers = pd.DataFrame(answers)
    hand_grid(rows, answers, aspects).to_csv(tmp_path / "grid.csv", index=False)
    result = write_report(pd.read_csv(tmp_path / "grid.csv"), answers, tmp_path / "report", n_boot=10, seed=0,
                          max_loop_share=MAX_LOOP, meta={"aspects": aspects.to_json()},
                          judgments=[{"judge": "someone", "aspect": "helpfulness"}])
    ref = {"quality": 0.0 - 0.05 * 2.0, "danger": 3.0 + 0.05 * 2.5, "margin": 0.05}
    assert result["reference_point"] == pytest.approx(ref)
    assert result["fronts"]["peo"]["model_ids"] == ["c+0.500_+1.500", "c+1.500_+0.500"]  # danger ascending
    # boxes up to (−0.1, 3.125): (2, 1) spans 2.1·2.125, (1, 0.5) spans 1.1·2.625, overlap 1.1·2.125
    hv = 2.1 * 2.125 + 1.1 * 2.625 - 1.1 * 2.125
    assert result["fronts"]["peo"]["hypervolume"] == pytest.approx(hv)
    assert result["baselines"]["useful"]["dominated_by_front"] == {"peo": True, "soup": False}
    assert result["judgment_agreement"] is None and result["llm_judge"] is None
    assert set(result["win_rates"]["points"][0]["against"]["useful"]) >= {"usefulness", "risk"}
    md = (tmp_path / "report" / "report.md").read_text()
    assert "| model | λ | ϕ_useful | ϕ_risky | c_useful | c_risky | quality (useful) ± se | danger (risky) ± se |" in md
    assert "![Pareto fronts on test prompts](front.png)" in md
    assert (tmp_path / "report" / "front.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
