"""The sweep's figures over any number of aspects, on hand-built answers (no model): grid.csv's columns and values
with three aspects, the 3-D dev front, win rates per aspect, the answers' layout and the sweep's fingerprint."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from peo.aspects import DEFAULT_ASPECTS, Aspect, Aspects
from peo.generation import GenerationSettings
from peo.grid_table import dev_front, grid_table, split_stats
from peo.sweep_plan import test_models
from peo.win_rates import pairwise
from precompute.stage_sweep import Job, assemble, generated_columns, row_key, sweep_fingerprint

THREE = Aspects((Aspect("help", "reward", "higher", "helpfulness"), Aspect("harm", "cost", "lower", "harmlessness"),
                 Aspect("brief", "brevity", "higher", "brevity")))
KINDS = ["help", "help", "harm", "harm", "brief", "brief"]


def answer_rows(mid: str, split: str, reward: list[float], cost: list[float], brevity: list[float],
                refuses: list[bool] | None = None, evades: list[bool] | None = None) -> list[dict]:
    """Six answers of one model: two per aspect's prompts (help, harm, brief), each with all three scores."""
    refuses = refuses or [False] * 6
    evades = evades or [False] * 6
    return [{"model_id": mid, "split": split, "prompt_id": f"{split}{i}", "prompt_kind": KINDS[i],
             "prompt": json.dumps([{"role": "user", "content": f"question {i}"}]), "answer": f"{mid} says {i}",
             "reward": reward[i], "cost": cost[i], "brevity": brevity[i], "loops": False, "refuses": refuses[i],
             "evades": evades[i], "n_words": 10 + i, "cut": i == 5} for i in range(6)]


def point(mid: str, method: str = "peo") -> dict:
    return {"model_id": mid, "method": method, "lambda_help": 0.5, "lambda_harm": 0.5, "phi_help": 0.0,
            "phi_harm": 0.0, "phi_brief": 0.0, "c_help": 0.5, "c_harm": 0.5, "c_brief": 0.0}


def flat(mid: str, reward: float, cost: float, brevity: float, split: str = "dev") -> list[dict]:
    """A model scoring the same on every prompt, with every evaluator."""
    return answer_rows(mid, split, [reward] * 6, [cost] * 6, [brevity] * 6)


def test_grid_columns_are_the_aspects_stats_per_split():
    answers = pd.DataFrame(flat("a", 1.0, 0.0, 0.0))
    grid = grid_table([point("a")], answers, 0.5, aspects=THREE)
    stats = THREE.grid_stats
    assert stats[:12] == ("reward_mean", "reward_se", "cost_mean", "cost_se", "brevity_mean", "brevity_se",
                          "reward_all_mean", "reward_all_se", "cost_all_mean", "cost_all_se", "brevity_all_mean",
                          "brevity_all_se")
    assert list(grid.columns) == [*point("a"), *(f"{s}_dev" for s in stats), *(f"{s}_test" for s in stats),
                                  "split", *stats, "front_eligible"]
    # the default two aspects: the columns grid.csv always had (no brevity)
    two = grid_table([point("a")], answers, 0.5, aspects=DEFAULT_ASPECTS)
    assert not any("brevity" in c for c in two.columns) and "reward_all_se_dev" in two.columns


def test_each_evaluator_is_averaged_over_its_own_aspects_prompts():
    answers = pd.DataFrame(
        answer_rows("a", "dev", [1.0, 3.0, 9.0, 9.0, 9.0, 9.0], [9.0, 9.0, -1.0, 0.5, 9.0, 9.0],
                    [0.0, 0.0, 0.0, 0.0, 2.0, 6.0], refuses=[True, False, True, False, False, False],
                    evades=[False, False, False, True, True, False])
        + answer_rows("a", "test", [2.0] * 6, [0.0] * 6, [1.0, 1.0, 1.0, 1.0, 4.0, 4.0]))
    grid = grid_table([point("a"), point("b")], answers, 0.5, aspects=THREE).set_index("model_id")
    a, b = grid.loc["a"], grid.loc["b"]
    # reward on the help prompts, cost on the harm prompts, brevity on the brief prompts
    assert (a.reward_mean_dev, a.cost_mean_dev, a.brevity_mean_dev) == (2.0, -0.25, 4.0)
    assert a.brevity_se_dev == pytest.approx(np.std([2.0, 6.0], ddof=1) / np.sqrt(2))
    assert a.reward_se_dev == pytest.approx(1.0) and a.cost_se_dev == pytest.approx(0.75)
    # over every prompt
    assert a.reward_all_mean_dev == pytest.approx(40 / 6) and a.brevity_all_mean_dev == pytest.approx(8 / 6)
    assert a.brevity_all_se_dev == pytest.approx(np.std([0, 0, 0, 0, 2, 6], ddof=1) / np.sqrt(6))
    # the text checks read the help and harm prompts; counts and shares of all prompts read all six
    assert a.safe_share_dev == 0.5 and a.refusal_share_dev == 0.5 and a.over_refusal_share_dev == 0.5
    assert a.evasion_share_benign_dev == 0.0 and a.evasion_share_harmful_dev == 0.5
    assert a.complied_share_dev == 0.0  # harm prompt 2 refused, harm prompt 3 evaded
    assert (a.n_dev, a.n_benign_dev, a.n_harmful_dev) == (6, 2, 2)
    assert a.cut_share_dev == pytest.approx(1 / 6) and a.mean_words_dev == 12.5
    # the shown figures are test's
    assert a.split == "test" and a.brevity_mean == 4.0 and a.brevity_all_mean == 2.0 and a.cost_mean == 0.0
    # b has no answers: NaN means, zero counts
    assert np.isnan(b.brevity_mean_dev) and b.n_dev == 0 and b.split == "dev"


def test_text_checks_are_nan_in_a_run_without_help_and_harm_prompts():
    other = Aspects((Aspect("brief", "brevity", "higher", "brevity"), Aspect("kind", "warmth", "higher", "warmth")))
    kinds = ["brief", "brief", "kind", "kind"]
    group = pd.DataFrame([{"prompt_kind": k, "brevity": float(i), "warmth": -float(i), "loops": i == 0,
                           "refuses": True, "evades": False, "n_words": 4, "cut": False} for i, k in enumerate(kinds)])
    stats = split_stats(group, other)
    assert list(stats) == list(other.grid_stats)
    assert stats["brevity_mean"] == 0.5 and stats["warmth_mean"] == -2.5 and stats["warmth_all_mean"] == -1.5
    assert stats["loop_share"] == 0.25 and stats["n"] == 4 and stats["n_benign"] == 0 and stats["n_harmful"] == 0
    for share in ("safe_share", "refusal_share", "over_refusal_share", "evasion_share_benign",
                  "evasion_share_harmful", "complied_share"):
        assert np.isnan(stats[share]), share


def front_grid() -> pd.DataFrame:
    """Dev means (reward ↑, cost ↓, brevity ↑) of five PEO points and a soup point."""
    answers = pd.DataFrame(
        flat("good", 1.0, 0.0, 0.0)
        + flat("cheap", 0.0, -1.0, 0.0)
        + flat("terse", 0.0, 0.5, 2.0)  # dominated on reward and cost by good; the briefest of all
        + flat("dominated", 0.5, 0.5, -1.0)  # good is better on all three
        + flat("twin", 0.0, 0.5, 1.0)  # terse is as good on two and better on brevity
        + flat("soup", 0.0, 0.0, 0.0))
    rows = [point(m) for m in ("good", "cheap", "terse", "dominated", "twin")] + [point("soup", "soup")]
    return grid_table(rows, answers, 0.5, aspects=THREE)


def test_the_dev_front_is_pareto_over_every_evaluator_with_its_direction():
    grid = front_grid()
    # three aspects: a point best on the third evaluator alone is on the front (in the grid's order)
    assert dev_front(grid, "peo", 0.5, aspects=THREE) == ["good", "cheap", "terse"]
    # the same grid judged on reward and cost alone: peo.pareto's 2-D front, cost ascending; terse is dominated
    assert dev_front(grid, "peo", 0.5, aspects=DEFAULT_ASPECTS) == ["cheap", "good"]
    assert dev_front(grid, "soup", 0.5, aspects=THREE) == ["soup"]
    # lower brevity better instead: `dominated` (the lowest brevity) is on the front, terse and twin are not
    shorter = Aspects((*THREE.items[:2], Aspect("brief", "brevity", "lower", "brevity")))
    assert dev_front(grid, "peo", 0.5, aspects=shorter) == ["good", "cheap", "dominated"]


def test_the_test_prompts_go_to_the_3d_front_and_every_other_method():
    grid = front_grid()
    models = {m: {"help": 0.5, "harm": 0.5, "brief": 0.0} for m in grid["model_id"]}
    chosen = test_models(grid, models, 0.5, aspects=THREE)
    assert list(chosen) == ["good", "cheap", "terse", "soup"]
    assert list(test_models(grid, models, 0.5, aspects=DEFAULT_ASPECTS)) == ["good", "cheap", "soup"]


def test_win_rates_judge_each_aspect_by_its_evaluator_on_its_own_prompts():
    answers = pd.DataFrame(
        answer_rows("a", "test", [1.0, 0.0, 9.0, 9.0, 9.0, 9.0], [9.0, 9.0, -1.0, 0.0, 9.0, 9.0],
                    [9.0, 9.0, 9.0, 9.0, 3.0, 1.0])
        + answer_rows("b", "test", [0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
                      [0.0, 0.0, 0.0, 0.0, 1.0, 2.0]))
    records = pairwise(answers, "a", "b", aspects=THREE)
    assert list(records) == ["helpfulness", "harmlessness", "brevity"]  # keyed by the aspects' labels
    got = {k: (r.won, r.tied, r.lost) for k, r in records.items()}
    # helpfulness: reward on the help prompts (1 > 0, 0 = 0); harmlessness: cost on the harm prompts, lower wins
    # (−1 < 0, 0 = 0); brevity: brevity on the brief prompts, higher wins (3 > 1, 1 < 2)
    assert got == {"helpfulness": (1, 1, 0), "harmlessness": (1, 1, 0), "brevity": (1, 0, 1)}
    # the default two: the records as before, and brevity is not judged
    assert list(pairwise(answers, "a", "b", aspects=DEFAULT_ASPECTS)) == ["helpfulness", "harmlessness"]
    lower = Aspects((*THREE.items[:2], Aspect("brief", "brevity", "lower", "brevity")))
    r = pairwise(answers, "a", "b", aspects=lower)["brevity"]
    assert (r.won, r.tied, r.lost) == (1, 0, 1) and r.n == 2


def test_answers_get_a_coefficient_per_aspect_and_a_score_per_evaluator():
    settings = GenerationSettings(max_new_tokens=4, temperature=0.0, seed=0)
    prompt = {"prompt_id": "p0", "prompt_kind": "brief", "messages": [{"role": "user", "content": "Say hi."}]}
    models = {"c+0.500_+0.000_+0.500": {"help": 0.5, "harm": 0.0, "brief": 0.5}, "joint": {"joint": 1.0}}
    jobs = [Job(mid, scales, prompt, f"key-{mid}") for mid, scales in models.items()]
    done = pd.DataFrame([{"model_id": job.model_id, "prompt_id": "p0", "prompt_kind": "brief",
                          "prompt": json.dumps(prompt["messages"]), "answer": "hi", "new_tokens": 2,
                          "reward": 0.1, "cost": 0.2, "brevity": 0.3, "row_key": job.row_key} for job in jobs])
    answers = assemble(jobs, done, models, "dev", settings, THREE)
    assert list(answers.columns[:13]) == ["model_id", "c_help", "c_harm", "c_brief", "prompt_id", "prompt_kind",
                                          "prompt", "split", "answer", "new_tokens", "reward", "cost", "brevity"]
    assert answers["c_brief"].tolist()[0] == 0.5 and answers["c_brief"].isna().tolist() == [False, True]
    assert answers["brevity"].tolist() == [0.3, 0.3]
    assert generated_columns(THREE)[-3:] == ("reward", "cost", "brevity")
    two = assemble(jobs[1:], done.drop(columns="brevity").iloc[1:], models, "dev", settings, DEFAULT_ASPECTS)
    assert list(two.columns) == ["model_id", "c_help", "c_harm", "prompt_id", "prompt_kind", "prompt", "split",
                                 "answer", "new_tokens", "reward", "cost", "row_key", "loops", "refuses", "n_words",
                                 "evades", "cut"]


def fingerprint(tmp_path, aspects: Aspects) -> str:
    for rel in ("adapters/help/adapter_model.safetensors", "adapters/harm/adapter_model.safetensors",
                "adapters/joint/adapter_model.safetensors", "adapters/help/settings.json",
                "evaluators/reward/head.safetensors", "evaluators/cost/evaluator.json",
                "adapters/brief/adapter_model.safetensors", "evaluators/brevity/head.safetensors"):
        if not (tmp_path / rel).exists():
            (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / rel).write_text(rel)
    cfg = SimpleNamespace(sweep=SimpleNamespace(batch_size=8, score_batch_size=None, dtype="float32"),
                          base_model="tiny-base", aspect_set=aspects)
    return sweep_fingerprint(SimpleNamespace(cfg=cfg, out=tmp_path),
                             GenerationSettings(max_new_tokens=32, temperature=0.0, seed=0))


def test_a_two_aspect_sweeps_fingerprint_and_row_keys_are_the_ones_before_aspects_were_data(tmp_path):
    """The answers are reused by row_key: the default two aspects' fingerprint reads the files it always read
    (adapters help, harm, joint; evaluators reward, cost; the values below are what the code wrote before), and
    a third aspect's adapter and evaluator files count only in a run that has it."""
    two = fingerprint(tmp_path, DEFAULT_ASPECTS)
    assert two == "fd077d231ea9b9f8f1e10abe6081c060b9bfe0516f2444a260c3bd125327efa9"
    assert row_key(two, {"help": 0.5, "harm": 1.0}, [{"role": "user", "content": "hi"}]) == "f1ccf1bfdabd5ded1514201f"
    three = fingerprint(tmp_path, THREE)
    assert three != two
    (tmp_path / "evaluators/brevity/head.safetensors").write_text("retrained")
    assert fingerprint(tmp_path, DEFAULT_ASPECTS) == two and fingerprint(tmp_path, THREE) != three
