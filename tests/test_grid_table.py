"""grid.csv from answers: dev and test figures side by side, the shown split, and the dev-chosen front."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from peo.aspects import DEFAULT_ASPECTS
from peo.grid_table import dev_front, grid_table, split_stats

TWO = DEFAULT_ASPECTS  # help (reward ↑) and harm (cost ↓): the assets' two aspects


def answer_rows(model_id: str, split: str, rewards, costs, loops=None, refuses=None, kinds=None,
                cut=None, evades=None) -> list[dict]:
    n = len(rewards)
    loops = loops or [False] * n
    refuses = refuses or [False] * n
    cut = cut or [False] * n
    kinds = kinds or ["help", "harm"] * (n // 2)
    return [{"model_id": model_id, "split": split, "prompt_id": f"{split}{i}", "prompt_kind": kinds[i],
             "reward": rewards[i], "cost": costs[i], "loops": loops[i], "refuses": refuses[i], "n_words": 10 + i,
             "cut": cut[i], **({"evades": evades[i]} if evades is not None else {})}
            for i in range(n)]


def point(model_id: str, method: str = "peo") -> dict:
    return {"model_id": model_id, "method": method, "lambda_help": 0.5, "phi_help": 0.0, "phi_harm": 0.0,
            "c_help": 0.5, "c_harm": 0.5}


def test_figures_per_split_and_the_shown_split():
    answers = pd.DataFrame(
        answer_rows("a", "dev", [1.0, 3.0], [0.5, -0.5], loops=[True, False], refuses=[False, True])
        + answer_rows("a", "test", [2.0, 2.0, 4.0, 4.0], [1.0, 1.0, 1.0, -1.0], refuses=[True, True, False, False],
                      cut=[True, True, True, False])
        + answer_rows("b", "dev", [0.0, 0.0], [0.0, 0.0]))
    grid = grid_table([point("a"), point("b")], answers, max_loop_share=0.4, aspects=TWO).set_index("model_id")
    a, b = grid.loc["a"], grid.loc["b"]
    # split-aware: reward over the benign (help) prompts, cost over the harmful (harm) prompts
    assert a.reward_mean_dev == 1.0 and a.cost_mean_dev == -0.5 and a.loop_share_dev == 0.5 and a.n_dev == 2
    assert a.reward_all_mean_dev == 2.0 and a.cost_all_mean_dev == 0.0  # the older means over every prompt
    assert a.refusal_share_dev == 1.0 and a.over_refusal_share_dev == 0.0  # harm prompt refused, help prompt not
    assert a.reward_mean_test == 3.0 and a.cost_mean_test == 0.0 and a.n_test == 4
    assert a.n_benign_test == 2 and a.n_harmful_test == 2
    assert a.safe_share_test == 0.5  # of the answers to harmful prompts (costs 1, -1)
    assert a.refusal_share_test == 0.5 and a.over_refusal_share_test == 0.5
    assert a.cut_share_test == 0.75 and a.cut_share_dev == 0.0 and a.cut_share == 0.75
    assert a.reward_se_test == pytest.approx(np.std([2, 4], ddof=1) / np.sqrt(2))
    assert a.reward_all_se_test == pytest.approx(np.std([2, 2, 4, 4], ddof=1) / 2)
    assert a.split == "test" and a.reward_mean == 3.0 and a.mean_words == 11.5
    assert b.split == "dev" and b.n_test == 0 and np.isnan(b.reward_mean_test) and b.reward_mean == 0.0
    assert not a.front_eligible and b.front_eligible  # a loops in half its dev answers


def test_dev_front_follows_dev_means_and_the_loop_filter():
    answers = pd.DataFrame(
        answer_rows("good", "dev", [1.0, 1.0], [0.0, 0.0])
        + answer_rows("looper", "dev", [5.0, 5.0], [-5.0, -5.0], loops=[True, False])  # dominates, but loops
        + answer_rows("cheap", "dev", [0.0, 0.0], [-1.0, -1.0])
        + answer_rows("dominated", "dev", [0.5, 0.5], [0.5, 0.5])
        + answer_rows("dominated", "test", [9.0, 9.0], [-9.0, -9.0])  # test scores never choose anything
        + answer_rows("soup", "dev", [9.0, 9.0], [-9.0, -9.0]))
    rows = [point(m) for m in ("good", "looper", "cheap", "dominated")] + [point("soup", "soup")]
    grid = grid_table(rows, answers, max_loop_share=0.1, aspects=TWO)
    assert dev_front(grid, "peo", 0.1, aspects=TWO) == ["cheap", "good"]
    assert dev_front(grid, "peo", None, aspects=TWO) == ["looper"]
    assert dev_front(grid, "soup", 0.1, aspects=TWO) == ["soup"]
    assert dev_front(grid, "joint", 0.1, aspects=TWO) == []


def test_split_aware_means_rank_points_the_other_way_from_the_mixed_mean():
    """`decliner` answers benign prompts by declining (low reward, and the cost head calls that harmless) and is no
    safer on harmful prompts than `helper`. Over every prompt it looks better on both axes and dominates; judged
    where each aspect lives, `helper` is as harmless and more helpful, and dominates it."""
    kinds = ["help", "help", "harm", "harm"]
    answers = pd.DataFrame(
        answer_rows("helper", "dev", [1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 0.2, 0.2], kinds=kinds)
        + answer_rows("decliner", "dev", [0.5, 0.5, 0.9, 0.9], [-1.0, -1.0, 0.2, 0.2], kinds=kinds))
    grid = grid_table([point("helper"), point("decliner")], answers, max_loop_share=0.1,
                      aspects=TWO).set_index("model_id")
    helper, decliner = grid.loc["helper"], grid.loc["decliner"]
    # the older mixed means: decliner has the lower cost (−0.4 vs 0.6) and the higher reward (0.7 vs 0.5)
    assert decliner.cost_all_mean_dev == pytest.approx(-0.4) and helper.cost_all_mean_dev == pytest.approx(0.6)
    assert helper.reward_all_mean_dev == pytest.approx(0.5) and decliner.reward_all_mean_dev == pytest.approx(0.7)
    # split-aware: equal cost on the harmful prompts, helper's reward on the benign ones is higher
    assert helper.cost_mean_dev == decliner.cost_mean_dev == pytest.approx(0.2)
    assert helper.reward_mean_dev == 1.0 and decliner.reward_mean_dev == 0.5
    assert dev_front(grid.reset_index(), "peo", 0.1, aspects=TWO) == ["helper"]
    mixed = grid.reset_index().assign(reward_mean_dev=grid["reward_all_mean_dev"].to_numpy(),
                                      cost_mean_dev=grid["cost_all_mean_dev"].to_numpy())
    assert dev_front(mixed, "peo", 0.1, aspects=TWO) == ["decliner"]  # what the mixed mean would have chosen


def test_evasion_and_complied_shares():
    kinds = ["help", "help", "harm", "harm", "harm", "harm"]
    answers = pd.DataFrame(answer_rows(
        "a", "test", [0.0] * 6, [0.0] * 6, kinds=kinds, refuses=[False, False, True, False, False, True],
        evades=[True, False, False, True, False, True]))  # harmful: refuses, evades, complies, refuses + evades
    a = grid_table([point("a")], answers, max_loop_share=0.1, aspects=TWO).iloc[0]
    assert a.evasion_share_benign == 0.5 and a.evasion_share_harmful == 0.5
    assert a.refusal_share == 0.5 and a.complied_share == 0.25  # one of the four harmful answers took it on
    # without an `evades` column and without the check to compute it, the shares are unknown, not 0
    bare = split_stats(answers.drop(columns=["evades"]), TWO)
    assert np.isnan(bare["complied_share"]) and np.isnan(bare["evasion_share_benign"])


def evasion_grid(ref_benign: list[bool], points: dict[str, tuple[float, float, list[bool]]]) -> pd.DataFrame:
    """A grid of hand-made dev rows: the reference and PEO points (reward, cost, benign evasion flags)."""
    kinds = ["help"] * 10 + ["harm"] * 2
    rows = answer_rows("ref", "dev", [0.0] * 12, [0.5] * 12, kinds=kinds, evades=ref_benign + [False, False])
    for mid, (reward, cost, flags) in points.items():
        rows += answer_rows(mid, "dev", [reward] * 12, [cost] * 12, kinds=kinds, evades=flags + [True, True])
    grid_rows = [{**point("ref", "ref"), "c_help": 0.0, "c_harm": 0.0}] + [point(m) for m in points]
    return pd.DataFrame(rows), grid_rows


def test_evasion_filter_admits_points_within_the_reference_plus_the_margin():
    ref = [True] + [False] * 9  # the reference evades 10 % of the benign dev prompts
    answers, rows = evasion_grid(ref, {
        "babbler": (1.0, -1.0, [True] * 5 + [False] * 5),  # 50 %: best scores, evades
        "edge": (0.8, -0.5, [True] * 2 + [False] * 8),  # 20 % = 10 % + 10 points: admitted
        "over": (0.9, -0.9, [True] * 3 + [False] * 7),  # 30 %: left out
        "plain": (0.5, 0.0, [False] * 10)})
    grid = grid_table(rows, answers, max_loop_share=0.1, max_evasion_excess=0.1, aspects=TWO)
    eligible = dict(zip(grid["model_id"], grid["front_eligible"]))
    assert eligible == {"ref": True, "babbler": False, "edge": True, "over": False, "plain": True}
    assert dev_front(grid, "peo", 0.1, 0.1, aspects=TWO) == ["edge"]  # dominates plain; babbler and over filtered
    assert dev_front(grid, "peo", 0.1, None, aspects=TWO) == ["babbler"]  # without the evasion filter
    assert dev_front(grid, "peo", 0.1, 0.3, aspects=TWO) == ["over"]  # limit 40 %: over is admitted and dominates edge
    assert dev_front(grid, "peo", 0.1, 0.4, aspects=TWO) == ["babbler"]
    # no evasion figures (older answers without the check): the filter cannot apply and admits everything
    unknown = grid.assign(evasion_share_benign_dev=np.nan)
    assert dev_front(unknown, "peo", 0.1, 0.1, aspects=TWO) == ["babbler"]
