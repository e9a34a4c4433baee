"""grid.csv from answers: dev and test figures side by side, the shown split, and the dev-chosen front."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from peo.grid_table import dev_front, grid_table


def answer_rows(model_id: str, split: str, rewards, costs, loops=None, refuses=None, kinds=None,
                cut=None) -> list[dict]:
    n = len(rewards)
    loops = loops or [False] * n
    refuses = refuses or [False] * n
    cut = cut or [False] * n
    kinds = kinds or ["help", "harm"] * (n // 2)
    return [{"model_id": model_id, "split": split, "prompt_id": f"{split}{i}", "prompt_kind": kinds[i],
             "reward": rewards[i], "cost": costs[i], "loops": loops[i], "refuses": refuses[i], "n_words": 10 + i,
             "cut": cut[i]}
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
    grid = grid_table([point("a"), point("b")], answers, max_loop_share=0.4).set_index("model_id")
    a, b = grid.loc["a"], grid.loc["b"]
    assert a.reward_mean_dev == 2.0 and a.loop_share_dev == 0.5 and a.n_dev == 2
    assert a.refusal_share_dev == 1.0 and a.over_refusal_share_dev == 0.0  # harm prompt refused, help prompt not
    assert a.reward_mean_test == 3.0 and a.cost_mean_test == 0.5 and a.safe_share_test == 0.25 and a.n_test == 4
    assert a.refusal_share_test == 0.5 and a.over_refusal_share_test == 0.5
    assert a.cut_share_test == 0.75 and a.cut_share_dev == 0.0 and a.cut_share == 0.75
    assert a.reward_se_test == pytest.approx(np.std([2, 2, 4, 4], ddof=1) / 2)
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
    grid = grid_table(rows, answers, max_loop_share=0.1)
    assert dev_front(grid, "peo", 0.1) == ["cheap", "good"]
    assert dev_front(grid, "peo", None) == ["looper"]
    assert dev_front(grid, "soup", 0.1) == ["soup"]
    assert dev_front(grid, "joint", 0.1) == []
