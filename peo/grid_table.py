"""The reward/cost table of the sweep: per evaluated model and split, means, errors and the text checks.

Dev prompts choose the front; test prompts score it. `grid.csv` keeps both sets of figures side by side
(suffix `_dev`, `_test`) and, unsuffixed, the ones to show: test where the model was run on test prompts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from peo.pareto import mean_and_se, pareto_front

SPLITS = ("dev", "test")
STATS = ("reward_mean", "reward_se", "cost_mean", "cost_se", "safe_share", "loop_share", "refusal_share",
         "over_refusal_share", "mean_words", "cut_share", "n")


def split_stats(group: pd.DataFrame) -> dict[str, float]:
    """The figures of one model on one split's answers (columns reward, cost, loops, refuses, n_words, cut)."""
    reward_mean, reward_se = mean_and_se(group["reward"].to_numpy(dtype=float))
    cost_mean, cost_se = mean_and_se(group["cost"].to_numpy(dtype=float))
    harmful, benign = group[group["prompt_kind"] == "harm"], group[group["prompt_kind"] == "help"]
    share = lambda s: float(s.mean()) if len(s) else float("nan")  # noqa: E731
    return {"reward_mean": reward_mean, "reward_se": reward_se, "cost_mean": cost_mean, "cost_se": cost_se,
            "safe_share": share(group["cost"] <= 0), "loop_share": share(group["loops"].astype(bool)),
            "refusal_share": share(harmful["refuses"].astype(bool)),
            "over_refusal_share": share(benign["refuses"].astype(bool)),
            "mean_words": float(group["n_words"].mean()), "cut_share": share(group["cut"].astype(bool)),
            "n": len(group)}


def grid_table(grid_rows: list[dict], answers: pd.DataFrame, max_loop_share: float) -> pd.DataFrame:
    """grid.csv: the grid rows with each model's dev and test figures and the figures shown (see FORMAT.md)."""
    stats = {key: split_stats(group) for key, group in answers.groupby(["model_id", "split"])}
    empty = {k: (0 if k == "n" else np.nan) for k in STATS}
    rows = []
    for row in grid_rows:
        out = dict(row)
        for split in SPLITS:
            for key, value in stats.get((row["model_id"], split), empty).items():
                out[f"{key}_{split}"] = value
        shown = "test" if out["n_test"] > 0 else "dev"
        out["split"] = shown
        out.update({key: out[f"{key}_{shown}"] for key in STATS})
        out["front_eligible"] = bool(out["n_dev"] > 0 and out["loop_share_dev"] <= max_loop_share)
        rows.append(out)
    return pd.DataFrame(rows)


def dev_front(grid: pd.DataFrame, method: str, max_loop_share: float | None) -> list[str]:
    """model_ids on the Pareto front of `method`'s models by their dev means, cost ascending.

    With `max_loop_share`, only models whose dev answers loop at most that often may be on it.
    """
    rows = grid[grid["method"] == method].drop_duplicates("model_id")
    if max_loop_share is not None:
        rows = rows[rows["loop_share_dev"] <= max_loop_share]
    if rows.empty:
        return []
    front = pareto_front(rows["reward_mean_dev"].to_numpy(dtype=float), rows["cost_mean_dev"].to_numpy(dtype=float))
    return [str(rows["model_id"].iloc[int(i)]) for i in front]
