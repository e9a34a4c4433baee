"""Each split's scores as matrices: models × each aspect's own prompts, one matrix per evaluator.

Scoring is split-aware (peo.grid_table): each evaluator is read on its own aspect's prompts only (with the two
shipped aspects: reward, the helpfulness evaluator's mean over the benign prompts; cost, the harmlessness
evaluator's mean over the harmful prompts). Every figure of a split is on the prompts that every model scored on it
answered, so means, hypervolumes and bootstrap draws all see the same prompts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from peo.aspects import COUNT_STATS, DEFAULT_ASPECTS, Aspects
from peo.evaluation_stats import finite_or_none
from peo.grid_table import split_stats
from precompute.report_inputs import ReportInputError


@dataclass
class SplitScores:
    """One split's answers on the prompts every listed model answered, split-aware: per evaluator, its scores of
    the models on its own aspect's prompts (models × those prompts)."""

    split: str
    aspects: Aspects
    model_ids: list[str]
    prompts: list[str]  # every common prompt, every kind
    own_prompts: dict[str, list[str]]  # evaluator → its aspect's prompts: what its scores are over
    scores: dict[str, np.ndarray]  # evaluator → models × its own prompts
    stats: dict[str, dict[str, Any]]  # split_stats of each model on those prompts
    n_dropped: int  # prompts of this split that some model did not answer (left out)

    def has(self, mid: str) -> bool:
        return mid in self.stats

    def matrices(self, mids: list[str], what: str = "models") -> tuple[np.ndarray, ...]:
        """Rows of `mids`, one matrix per evaluator in the aspects' order ((rewards, costs) for the shipped two);
        a clear error when one of them was not scored on this split."""
        missing = [m for m in mids if not self.has(m)]
        if missing:
            raise ReportInputError(f"{what} have no {self.split} scores: {missing}; the {self.split} sweep must "
                                   f"answer every model a reported figure needs")
        idx = [self.model_ids.index(m) for m in mids]
        return tuple(self.scores[e][idx] for e in self.aspects.evaluators)

    def means(self, mid: str) -> tuple[float, ...]:
        """A model's split-aware means, one per evaluator in the aspects' order ((reward, cost) for the two)."""
        return tuple(self.stats[mid][f"{e}_mean"] for e in self.aspects.evaluators)


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


def score_matrices(answers: pd.DataFrame, split: str, model_ids: list[str], *, require_all: bool,
                   aspects: Aspects = DEFAULT_ASPECTS) -> SplitScores:
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
    evaluators = list(aspects.evaluators)
    absent = [e for e in evaluators if e not in sub.columns]
    if absent:
        raise ReportInputError(f"answers has no score column for the evaluators {absent} (one column per evaluator, "
                               f"see FORMAT.md)")
    sub = sub.dropna(subset=evaluators)
    per_prompt = sub.groupby("prompt_id")["model_id"].nunique()
    prompts = sorted(per_prompt.index[per_prompt == len(model_ids)].tolist(), key=str)
    if not prompts:
        raise ReportInputError(f"no {split} prompt was answered (and scored) by every {split}-scored model")
    sub = sub[sub["prompt_id"].isin(prompts)]
    kind = sub.drop_duplicates("prompt_id").set_index("prompt_id")["prompt_kind"].astype(str)
    own = {a.evaluator: [p for p in prompts if kind[p] == a.name] for a in aspects}
    for a in aspects:
        if not own[a.evaluator]:
            raise ReportInputError(f"no {split} prompt of kind '{a.name}' was answered by every {split}-scored "
                                   f"model: the {a.evaluator} (split-aware) has nothing to average")
    scores = {e: sub.pivot(index="model_id", columns="prompt_id", values=e).loc[model_ids, own[e]]
              .to_numpy(dtype=float) for e in evaluators}
    stats = {str(m): split_stats(g, aspects) for m, g in sub.groupby("model_id")}
    return SplitScores(split, aspects, model_ids, prompts, own, scores, stats, int(n_answered - len(prompts)))


def stats_json(stats: dict[str, Any], aspects: Aspects = DEFAULT_ASPECTS) -> dict[str, Any]:
    """A model's figures, JSON-safe (the counts ints)."""
    return {k: (int(stats[k]) if k in COUNT_STATS else finite_or_none(stats.get(k))) for k in aspects.grid_stats}
