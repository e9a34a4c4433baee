"""What a sweep generates: the grid rows (a row per point and method) and the distinct models behind them.

Pure: precompute's sweep stages and the tests read the same plan. Several rows can share a model (a PEO point
with ϕ = 0 is the soup point of the same λ; λ = 1, ϕ = 0 is DPO-Help), and each model is generated once.
"""

from __future__ import annotations

import pandas as pd

from peo.aspects import Aspects
from peo.coefficients import expo_model_id, grid_points, model_id, scales, soup_points, unique_models
from peo.config import SweepConfig
from peo.grid_table import dev_front
from peo.names import EXPO, JOINT, PEO, SOUP

Scales = dict[str, float]  # adapter → scale


def baseline_model_id(method: str, aspects: Aspects) -> str:
    """The joint policy has no coefficients on the aspects' task vectors; every other baseline is a coefficient
    tuple (the reference all zeros, an aspect's DPO policy 1 on its own vector)."""
    fixed = aspects.baseline_scales[method]
    return JOINT if JOINT in fixed else model_id(*(fixed.get(a, 0.0) for a in aspects.names))


def is_joint_model(scales: Scales) -> bool:
    """Models on the joint adapter (joint DPO, ExPO) have no coefficients on the aspects' task vectors."""
    return JOINT in scales


def sweep_models(sweep: SweepConfig, aspects: Aspects) -> tuple[list[dict], dict[str, Scales]]:
    """Grid rows (grid.csv's first columns: model_id, method, the point, its coefficients, expo_alpha) and the
    models they need (model_id → adapter scales, first-seen order)."""
    rows: list[dict] = []
    models: dict[str, Scales] = {}
    names = aspects.names
    empty_point = dict.fromkeys((*aspects.point_columns, *aspects.coefficient_columns))

    def row(mid: str, method: str, point: dict, alpha: float | None = None) -> dict:
        return {"model_id": mid, "method": method, **empty_point, **point, "expo_alpha": alpha}

    for method, points in ((PEO, grid_points(sweep.lambdas, sweep.phis(names))),
                           (SOUP, soup_points(sweep.lambdas, len(names)))):
        for mid, c in unique_models(points).items():
            models.setdefault(mid, scales(c, names))
        for p in points:
            c = p.coefficients
            rows.append(row(model_id(*c), method, {**dict(zip(aspects.lambda_columns, p.lambdas)),
                                                   **dict(zip(aspects.phi_columns, p.phis)),
                                                   **dict(zip(aspects.coefficient_columns, c))}))
    for alpha in sweep.expo_alphas:
        mid = expo_model_id(alpha)
        models.setdefault(mid, {JOINT: alpha})
        rows.append(row(mid, EXPO, {}, alpha))
    for method, fixed in aspects.baseline_scales.items():
        mid = baseline_model_id(method, aspects)
        if mid == JOINT:
            rows.append(row(mid, method, {}))
            models.setdefault(mid, dict(fixed))
        else:
            c = tuple(fixed.get(a, 0.0) for a in names)
            rows.append(row(mid, method, dict(zip(aspects.coefficient_columns, c))))
            models.setdefault(mid, scales(c, names))
    return rows, models


def front_filters(max_loop_share: float, max_evasion_excess: float | None) -> dict[str, tuple]:
    """The report's front variants → (loop filter, evasion filter) of each: both filters (the default front),
    the loop filter alone (no evasion filter), and neither."""
    return {"": (max_loop_share, max_evasion_excess), "_no_evasion_filter": (max_loop_share, None),
            "_unfiltered": (None, None)}


def test_models(grid_dev: pd.DataFrame, models: dict[str, Scales], max_loop_share: float,
                max_evasion_excess: float | None = None, *, aspects: Aspects) -> dict[str, Scales]:
    """What the test prompts are spent on: the baselines, every soup and ExPO point, and PEO's dev fronts over
    every evaluator of `aspects` with both filters (loop and evasion), with the loop filter alone, and with
    neither."""
    keep = set(grid_dev.loc[~grid_dev["method"].isin([PEO]), "model_id"])
    for loop, evasion in front_filters(max_loop_share, max_evasion_excess).values():
        keep |= set(dev_front(grid_dev, PEO, loop, evasion, aspects=aspects))
    return {mid: scales for mid, scales in models.items() if mid in keep}


test_models.__test__ = False  # a plan, not a pytest test
