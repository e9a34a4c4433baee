"""The words and numbers the report's parts share: front names, verdicts, the interval level and `fmt`.

fronts.json (precompute.report_fronts), front.png (precompute.report_figures) and report.md
(precompute.report_markdown) name fronts, methods and verdicts, and format numbers, the same way: from here.
"""

from __future__ import annotations

import math
from typing import Any

from peo.names import EXPO, JOINT, PEO, SOUP

FRONT_METHODS = (PEO, SOUP)
METHOD_WORDS = {PEO: "PEO", SOUP: "soup", EXPO: "ExPO"}
# front variant (a suffix of peo.sweep_plan.front_filters) → what its name adds
VARIANT_WORDS = {"": "", "_no_evasion_filter": ", no evasion filter", "_unfiltered": ", no filter"}
# name → (method, variant): each method's front with both filters (loop and evasion), the loop filter alone, neither
FRONTS = {f"{method}{variant}": (method, variant) for variant in VARIANT_WORDS for method in (PEO, SOUP, EXPO)}
FRONT_NAMES = {name: f"{METHOD_WORDS[method]} front{VARIANT_WORDS[variant]}"
               for name, (method, variant) in FRONTS.items()}
CI = 0.95
VERDICT_WORDS = {"peo_better": "PEO better", "soup_better": "soup better", "expo_better": "ExPO better",
                 "not_distinguishable": "not distinguishable"}
WIN_OPPONENTS = (SOUP, "help", "harm", JOINT, EXPO)  # the order of the report's win-rate table


def fmt(x: float | None, digits: int = 4) -> str:
    """How numbers appear in report.md (tests format the same way)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{digits}g}"


def coordinates_text(p: dict[str, Any]) -> str:
    """A front point's grid coordinates in words: λ, ϕ_help, ϕ_harm."""
    return f"λ={fmt(p['lambda_help'])}, ϕ_help={fmt(p['phi_help'])}, ϕ_harm={fmt(p['phi_harm'])}"
