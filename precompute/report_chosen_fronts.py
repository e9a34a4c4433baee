"""The fronts: chosen on dev prompts, scored on test prompts; and the in-sample figure, chosen and scored on dev.

Dev prompts choose each front (`peo.grid_table.dev_front`), test prompts score it: a front chosen and scored on
the same prompts looks better than it is (PEO picks among many more models than soup, so it gains the most from
that optimism). The in-sample dev figure is kept, labelled as such. A front is Pareto over the run's N evaluator
means, each with its direction (peo.pareto_n: with two aspects the exact 2-D code, in its order: cost ascending).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from peo.aspects import Aspects
from peo.evaluation_stats import finite_or_none
from peo.grid_table import dev_front, evasion_limit, front_candidates
from peo.pareto_n import pareto_front_n
from peo.sweep_plan import front_filters
from precompute.report_hypervolume import (
    hypervolume_difference,
    hypervolume_reference,
    reference_json,
    set_hypervolume,
)
from precompute.report_inputs import grid_coordinates
from precompute.report_scores import SplitScores, stats_json
from precompute.report_words import FRONT_METHODS, FRONT_NAMES, FRONTS


def _candidates(grid: pd.DataFrame, method: str, max_loop_share: float | None,
                max_evasion_excess: float | None) -> list[str]:
    """The models a front is chosen from: `method`'s, within the filters that are on (on dev)."""
    return front_candidates(grid, method, max_loop_share, max_evasion_excess)["model_id"].tolist()


def _non_dominated(scores: SplitScores, mids: list[str]) -> list[int]:
    """Indices into `mids` of the models non-dominated by their means on `scores`' split."""
    if not mids:
        return []
    means = np.array([scores.means(m) for m in mids])
    return [int(k) for k in pareto_front_n(means, scores.aspects.higher_is_better)]


def _dev_figures(row: pd.Series, aspects: Aspects) -> dict[str, float | None]:
    return {**{f"{e}_mean": finite_or_none(row.get(f"{e}_mean_dev")) for e in aspects.evaluators},
            "loop_share": finite_or_none(row.get("loop_share_dev")),
            "evasion_share_benign": finite_or_none(row.get("evasion_share_benign_dev"))}


def _front_points(grid: pd.DataFrame, method: str, mids: list[str], test: SplitScores) -> list[dict[str, Any]]:
    """Each chosen model: coordinates, test figures, dev figures, and whether it is non-dominated on test."""
    on_test_front = {mids[k] for k in _non_dominated(test, mids)}
    points = []
    for mid in mids:
        rows = grid[(grid["method"] == method) & (grid["model_id"] == mid)]
        points.append({"model_id": mid, **grid_coordinates(rows, test.aspects),
                       **stats_json(test.stats[mid], test.aspects), "dev": _dev_figures(rows.iloc[0], test.aspects),
                       "on_test_front": mid in on_test_front})
    return points


def chosen_front(grid: pd.DataFrame, name: str, test: SplitScores, ref: tuple[float, ...], max_loop_share: float,
                 max_evasion_excess: float | None, n_boot: int, seed: int) -> dict[str, Any]:
    """One dev-chosen front scored on test: its points, and the hypervolume of the chosen set on test."""
    method, variant = FRONTS[name]
    loop, evasion = front_filters(max_loop_share, max_evasion_excess)[variant]
    mids = dev_front(grid, method, loop, evasion, aspects=test.aspects)
    hv, lo, hi = set_hypervolume(test, mids, ref, n_boot, seed, f"{FRONT_NAMES[name]} points (chosen on dev)")
    return {"method": method, "variant": variant, "loop_filter": loop, "evasion_filter": evasion,
            "evasion_limit": evasion_limit(grid, evasion), "model_ids": mids,
            "points": _front_points(grid, method, mids, test), "hypervolume": hv, "interval": [lo, hi],
            "n_models": len(_candidates(grid, method, loop, evasion)), "n_chosen": len(mids)}


def in_sample_fronts(grid: pd.DataFrame, dev: SplitScores, max_loop_share: float, max_evasion_excess: float | None,
                     n_boot: int, seed: int) -> dict[str, Any]:
    """The optimistic figure: fronts chosen and scored on the same dev prompts (re-chosen in every draw)."""
    ref = hypervolume_reference(dev)
    out: dict[str, Any] = {"label": "in-sample (dev, optimistic)", "n_prompts": len(dev.prompts),
                           "max_loop_share": max_loop_share, "max_benign_evasion_excess": max_evasion_excess,
                           "reference_point": reference_json(ref, dev)}
    sets = {}
    for method in FRONT_METHODS:
        if not (grid["method"] == method).any():
            continue
        mids = sets[method] = _candidates(grid, method, max_loop_share, max_evasion_excess)
        hv, lo, hi = set_hypervolume(dev, mids, ref, n_boot, seed, f"{method} models")
        out[method] = {"hypervolume": hv, "interval": [lo, hi],
                       "model_ids": [mids[k] for k in _non_dominated(dev, mids)], "n_models": len(mids)}
    out["difference"] = (hypervolume_difference(dev, sets["peo"], sets["soup"], ref, n_boot, seed)
                         if len(sets) == len(FRONT_METHODS) else None)
    return out
