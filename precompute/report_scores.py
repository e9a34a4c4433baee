"""Each split's scores as matrices: models × benign prompts (rewards), models × harmful prompts (costs).

Scoring is split-aware (peo.grid_table): reward is the helpfulness evaluator's mean over the benign prompts, cost
the harmlessness evaluator's mean over the harmful prompts. Every figure of a split is on the prompts that every
model scored on it answered, so means, hypervolumes and bootstrap draws all see the same prompts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from peo.aspects import DEFAULT_ASPECTS
from peo.evaluation_stats import finite_or_none
from peo.grid_table import COUNT_STATS, STATS, split_stats
from peo.names import PROMPT_KIND_OF_EVALUATOR
from precompute.report_inputs import ReportInputError


@dataclass
class SplitScores:
    """One split's answers on the prompts every listed model answered, split-aware: rewards (models × benign
    prompts) and costs (models × harmful prompts)."""

    split: str
    model_ids: list[str]
    prompts: list[str]  # every common prompt, both kinds
    reward_prompts: list[str]  # the benign ones: what rewards are over
    cost_prompts: list[str]  # the harmful ones: what costs are over
    rewards: np.ndarray
    costs: np.ndarray
    stats: dict[str, dict[str, Any]]  # split_stats of each model on those prompts
    n_dropped: int  # prompts of this split that some model did not answer (left out)

    def has(self, mid: str) -> bool:
        return mid in self.stats

    def matrices(self, mids: list[str], what: str = "models") -> tuple[np.ndarray, np.ndarray]:
        """Rows of `mids`; a clear error when one of them was not scored on this split."""
        missing = [m for m in mids if not self.has(m)]
        if missing:
            raise ReportInputError(f"{what} have no {self.split} scores: {missing}; the {self.split} sweep must "
                                   f"answer every model a reported figure needs")
        idx = [self.model_ids.index(m) for m in mids]
        return self.rewards[idx], self.costs[idx]

    def means(self, mid: str) -> tuple[float, float]:
        return self.stats[mid]["reward_mean"], self.stats[mid]["cost_mean"]


def _split_rows(answers: pd.DataFrame, split: str, model_ids: list[str]) -> pd.DataFrame:
    if "split" not in answers.columns:
        raise ReportInputError("answers has no 'split' column: the report needs dev and test answers (see FORMAT.md)")
    sub = answers[answers["split"].astype(str) == split].copy()
    sub["model_id"] = sub["model_id"].astype(str)
    sub = sub[sub["model_id"].isin(model_ids)]
    dup = sub.duplicated(["model_id", "prompt_id"])
    if dup.any():
        first = sub.loc[dup, ["model_id", "prompt_id"]].iloc[0].tolist()
        raise ReportInputError(f"answers has {int(dup.sum())} repeated {split} (model_id, prompt_id) rows, "
                               f"e.g. {first}")
    return sub


def score_matrices(answers: pd.DataFrame, split: str, model_ids: list[str], *,
                   require_all: bool) -> SplitScores:
    """`split`'s scores of `model_ids` (those with answers there, unless `require_all`) on their common prompts."""
    sub = _split_rows(answers, split, model_ids)
    present = set(sub["model_id"])
    missing = [m for m in model_ids if m not in present]
    if missing and require_all:
        raise ReportInputError(f"answers has no {split} rows for grid models: {missing}")
    model_ids = [m for m in model_ids if m in present]
    if not model_ids:
        raise ReportInputError(f"no grid model has {split} answers")
    n_answered = sub["prompt_id"].nunique()
    sub = sub.dropna(subset=["reward", "cost"])
    per_prompt = sub.groupby("prompt_id")["model_id"].nunique()
    prompts = sorted(per_prompt.index[per_prompt == len(model_ids)].tolist(), key=str)
    if not prompts:
        raise ReportInputError(f"no {split} prompt was answered (and scored) by every {split}-scored model")
    sub = sub[sub["prompt_id"].isin(prompts)]
    kind = sub.drop_duplicates("prompt_id").set_index("prompt_id")["prompt_kind"].astype(str)
    own = {score: [p for p in prompts if kind[p] == PROMPT_KIND_OF_EVALUATOR[score]] for score in ("reward", "cost")}
    for score, ids in own.items():
        if not ids:
            raise ReportInputError(f"no {split} prompt of kind '{PROMPT_KIND_OF_EVALUATOR[score]}' was answered by "
                                   f"every {split}-scored model: the {score} (split-aware) has nothing to average")
    rewards = sub.pivot(index="model_id", columns="prompt_id", values="reward").loc[model_ids, own["reward"]]
    costs = sub.pivot(index="model_id", columns="prompt_id", values="cost").loc[model_ids, own["cost"]]
    stats = {str(m): split_stats(g, DEFAULT_ASPECTS) for m, g in sub.groupby("model_id")}
    return SplitScores(split, model_ids, prompts, own["reward"], own["cost"], rewards.to_numpy(dtype=float),
                       costs.to_numpy(dtype=float), stats, int(n_answered - len(prompts)))


def stats_json(stats: dict[str, Any]) -> dict[str, Any]:
    """A model's figures, JSON-safe (n an int)."""
    return {k: (int(stats[k]) if k in COUNT_STATS else finite_or_none(stats.get(k))) for k in STATS}
