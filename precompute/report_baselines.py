"""The models every figure mentions: the baselines, their signals, and the guard against merges that do nothing.

Each baseline's test figures (the reference, one DPO policy per aspect, joint DPO) and whether a front dominates it
over the run's N evaluators; the plain-text checks and evaluator scores of
every model a figure names (baselines, soup points, front points); and the share of test prompts on which two
models' answers differ, so a merge that changed nothing shows as such.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from peo.aspects import Aspects
from peo.evaluation_stats import differ_share, finite_or_none
from peo.names import EXPO, REFERENCE
from peo.pareto_n import dominates_n
from precompute.report_inputs import distinct_models, grid_coordinates
from precompute.report_scores import SplitScores, stats_json
from precompute.report_words import FRONT_METHODS, FRONT_NAMES, coordinates_text, fmt, lambda_words


def baseline_figures(grid: pd.DataFrame, test: SplitScores, fronts: dict[str, Any]) -> dict[str, Any]:
    """Each baseline's test figures, and whether a point of the loop-filtered PEO / soup front dominates it."""
    aspects = test.aspects
    higher = aspects.higher_is_better
    out = {}
    for method in aspects.baselines:
        rows = grid[grid["method"] == method]
        if rows.empty or not test.has(str(rows["model_id"].iloc[0])):
            continue
        mid = str(rows["model_id"].iloc[0])
        point = test.means(mid)
        dominated = {m: any(dominates_n(_means(p, aspects), point, higher) for p in fronts[m]["points"])
                     for m in FRONT_METHODS if m in fronts}
        info = grid_coordinates(rows, aspects)
        out[method] = {"model_id": mid, "grid_row": info["grid_row"],
                       **{c: info[c] for c in aspects.coefficient_columns}, **stats_json(test.stats[mid], aspects),
                       "dominated_by_front": dominated}
    return out


def _means(p: dict[str, Any], aspects: Aspects) -> tuple[float, ...]:
    """A front point's test means, one per evaluator in the aspects' order."""
    return tuple(p[f"{e}_mean"] for e in aspects.evaluators)


def _roles(grid: pd.DataFrame, fronts: dict[str, Any], aspects: Aspects) -> dict[str, tuple[str, list[str]]]:
    """model_id → (method it is listed under, the roles it plays): baselines, soup points, front points."""
    roles: dict[str, tuple[str, list[str]]] = {}

    def add(mid: str, method: str, role: str) -> None:
        entry = roles.setdefault(mid, (method, []))
        if role not in entry[1]:
            entry[1].append(role)

    for method in aspects.baselines:
        for mid in distinct_models(grid, method)["model_id"]:
            add(mid, method, aspects.baseline_labels[method])
    for _, row in distinct_models(grid, "soup").sort_values(list(aspects.lambda_columns)).iterrows():
        add(row["model_id"], "soup", f"soup {', '.join(lambda_words(row, aspects))}")
    if "expo_alpha" in grid.columns:
        for row in distinct_models(grid, EXPO).sort_values("expo_alpha").itertuples():
            add(row.model_id, EXPO, f"ExPO α={fmt(row.expo_alpha)}")
    for name, front in fronts.items():
        for p in front["points"]:
            if p["model_id"] not in roles:
                add(p["model_id"], front["method"], f"PEO {coordinates_text(p, aspects)}")
            add(p["model_id"], front["method"], FRONT_NAMES[name])
    return roles


def model_signals(grid: pd.DataFrame, test: SplitScores, fronts: dict[str, Any]) -> list[dict[str, Any]]:
    """The plain-text checks and evaluator scores, on test prompts, of every model a figure mentions."""
    out = []
    for mid, (method, roles) in _roles(grid, fronts, test.aspects).items():
        if test.has(mid):
            out.append({"label": " · ".join(roles), "model_id": mid, "method": method, "roles": roles,
                        **stats_json(test.stats[mid], test.aspects)})
    return out


def _differ(test_answers: pd.DataFrame, a: tuple[str, str], b: tuple[str, str]) -> dict[str, Any] | None:
    """How many test prompts got different answers from models a and b (label, model_id), on prompts both answered."""
    texts = [test_answers[test_answers["model_id"] == mid].set_index("prompt_id")["answer"] for _, mid in (a, b)]
    if texts[0].empty or texts[1].empty:
        return None
    common = sorted(set(texts[0].index) & set(texts[1].index), key=str)
    n_differ, share = differ_share(texts[0].loc[common].tolist(), texts[1].loc[common].tolist())
    return {"a_label": a[0], "a": a[1], "b_label": b[0], "b": b[1], "n_prompts": len(common),
            "n_differ": n_differ, "share": finite_or_none(share)}


def soup_at(grid: pd.DataFrame, test: SplitScores, point: dict[str, Any]) -> tuple[str, str] | None:
    """(its λ in words, model_id) of the test-scored soup point at one of `point`'s free-λ tuples, if any."""
    soup = distinct_models(grid, "soup")
    columns = test.aspects.lambda_columns
    for gp in point["grid_points"]:
        if any(gp[c] is None for c in columns):
            continue
        same = np.all([np.isclose(soup[c].astype(float), gp[c]) for c in columns], axis=0)
        hit = soup[same] if len(soup) else soup
        if not hit.empty and test.has(str(hit["model_id"].iloc[0])):
            return ", ".join(lambda_words(gp, test.aspects)), str(hit["model_id"].iloc[0])
    return None


def answers_differ(grid: pd.DataFrame, answers: pd.DataFrame, test: SplitScores,
                    fronts: dict[str, Any]) -> dict[str, Any]:
    """The guard against merges that do nothing: shares of test prompts whose answers differ, per pair."""
    sub = answers[answers["split"].astype(str) == "test"].copy()
    sub["model_id"] = sub["model_id"].astype(str)
    aspects = test.aspects
    labels = aspects.baseline_labels
    ids = {m: str(distinct_models(grid, m)["model_id"].iloc[0]) for m in (REFERENCE, *aspects.names)
           if not distinct_models(grid, m).empty}
    compared = [(REFERENCE, a) for a in aspects.names] + list(combinations(aspects.names, 2))
    pairs: dict[str, tuple[tuple[str, str], tuple[str, str]]] = {}
    for x, y in compared:
        if x in ids and y in ids:
            pairs[f"{x}_vs_{y}"] = ((labels[x], ids[x]), (labels[y], ids[y]))
    points = fronts.get("peo", {}).get("points", [])
    if points:
        middle = points[len(points) // 2]
        label = f"PEO front middle ({coordinates_text(middle, aspects)})"
        if REFERENCE in ids:
            pairs["ref_vs_peo_middle"] = ((labels[REFERENCE], ids[REFERENCE]), (label, middle["model_id"]))
        soup = soup_at(grid, test, middle)
        if soup:
            pairs["peo_middle_vs_soup"] = ((label, middle["model_id"]), (f"soup {soup[0]}", soup[1]))
    out = {key: _differ(sub, a, b) for key, (a, b) in pairs.items()}
    return {key: value for key, value in out.items() if value is not None}
