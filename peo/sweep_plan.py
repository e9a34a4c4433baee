"""What a sweep generates: the grid rows (a row per point and method) and the distinct models behind them.

Pure: precompute's sweep stages and the tests read the same plan. Several rows can share a model (a PEO point
with ϕ = 0 is the soup point of the same λ; λ = 1, ϕ = 0 is DPO-Help), and each model is generated once.
"""

from __future__ import annotations

import pandas as pd

from peo.coefficients import expo_model_id, grid_points, model_id, scales, soup_points, unique_models
from peo.config import SweepConfig
from peo.grid_table import dev_front
from peo.names import ASPECTS, BASELINE_SCALES, BASELINES, EXPO, JOINT, PEO, SOUP

Scales = dict[str, float]  # adapter → scale


def baseline_model_id(method: str) -> str:
    """The joint policy has no coefficients on (Δ_help, Δ_harm); every other baseline is a coefficient pair."""
    scales = BASELINE_SCALES[method]
    return JOINT if JOINT in scales else model_id(scales.get("help", 0.0), scales.get("harm", 0.0))


def is_joint_model(scales: Scales) -> bool:
    """Models on the joint adapter (joint DPO, ExPO) have no coefficients on (Δ_help, Δ_harm)."""
    return JOINT in scales


def sweep_models(sweep: SweepConfig) -> tuple[list[dict], dict[str, Scales]]:
    """Grid rows and the models they need (model_id → adapter scales, first-seen order)."""
    rows: list[dict] = []
    models: dict[str, Scales] = {}
    for method, points in ((PEO, grid_points(sweep.lambdas, sweep.phi_help, sweep.phi_harm)),
                           (SOUP, soup_points(sweep.lambdas))):
        for mid, c in unique_models(points).items():
            models.setdefault(mid, scales(c))
        for p in points:
            c_help, c_harm = p.coefficients
            rows.append({"model_id": model_id(c_help, c_harm), "method": method, "lambda_help": p.lambda_help,
                         "phi_help": p.phi_help, "phi_harm": p.phi_harm, "c_help": c_help, "c_harm": c_harm,
                         "expo_alpha": None})
    for alpha in sweep.expo_alphas:
        mid = expo_model_id(alpha)
        models.setdefault(mid, {JOINT: alpha})
        rows.append({"model_id": mid, "method": EXPO, "lambda_help": None, "phi_help": None, "phi_harm": None,
                     "c_help": None, "c_harm": None, "expo_alpha": alpha})
    for method in BASELINES:
        mid, fixed = baseline_model_id(method), BASELINE_SCALES[method]
        c = (None, None) if mid == JOINT else tuple(fixed.get(aspect, 0.0) for aspect in ASPECTS)
        rows.append({"model_id": mid, "method": method, "lambda_help": None, "phi_help": None, "phi_harm": None,
                     "c_help": c[0], "c_harm": c[1], "expo_alpha": None})
        models.setdefault(mid, dict(fixed) if mid == JOINT else scales(c))
    return rows, models


def front_filters(max_loop_share: float, max_evasion_excess: float | None) -> dict[str, tuple]:
    """The report's front variants → (loop filter, evasion filter) of each: both filters (the default front),
    the loop filter alone (no evasion filter), and neither."""
    return {"": (max_loop_share, max_evasion_excess), "_no_evasion_filter": (max_loop_share, None),
            "_unfiltered": (None, None)}


def test_models(grid_dev: pd.DataFrame, models: dict[str, Scales], max_loop_share: float,
                max_evasion_excess: float | None = None) -> dict[str, Scales]:
    """What the test prompts are spent on: the baselines, every soup and ExPO point, and PEO's dev fronts with
    both filters (loop and evasion), with the loop filter alone, and with neither."""
    keep = set(grid_dev.loc[grid_dev["method"].isin([*BASELINES, SOUP, EXPO]), "model_id"])
    for loop, evasion in front_filters(max_loop_share, max_evasion_excess).values():
        keep |= set(dev_front(grid_dev, PEO, loop, evasion))
    return {mid: scales for mid, scales in models.items() if mid in keep}


test_models.__test__ = False  # a plan, not a pytest test
