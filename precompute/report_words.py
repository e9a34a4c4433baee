"""The words and numbers the report's parts share: front names, verdicts, the interval level and `fmt`.

fronts.json (precompute.report_fronts), front.png (precompute.report_figures) and report.md
(precompute.report_markdown) name fronts, methods and verdicts, and format numbers, the same way: from here.
"""

from __future__ import annotations

import math
from typing import Any

from peo.aspects import DEFAULT_ASPECTS, Aspects
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
# the words for the prompts of the two shipped aspects (any other aspect's prompts are called by its name)
PROMPT_WORDS = {"help": "benign", "harm": "harmful"}


def win_opponents(aspects: Aspects = DEFAULT_ASPECTS) -> tuple[str, ...]:
    """The order of the report's win-rate table: the soup, each aspect's DPO policy, joint DPO, ExPO."""
    return (SOUP, *aspects.names, JOINT, EXPO)


def prompts_word(aspect: str) -> str:
    """What an aspect's prompts are called in the report ("benign" for help's, "harmful" for harm's)."""
    return PROMPT_WORDS.get(aspect, aspect)


def prompts_list(aspects: Aspects) -> str:
    """Every aspect's prompts in words: "benign and harmful" for the shipped two; "benign, harmful and brief"."""
    words = [prompts_word(name) for name in aspects.names]
    return ", ".join(words[:-1]) + " and " + words[-1]


def has_judged_aspects(aspects: Aspects) -> bool:
    """Whether the run has the two aspects the blind judgments and the LLM judge are about: help scored by the reward
    evaluator and harm by the cost evaluator."""
    return {"help", "harm"} <= set(aspects.names) and (aspects["help"].evaluator, aspects["harm"].evaluator) == (
        "reward", "cost")


def fmt(x: float | None, digits: int = 4) -> str:
    """How numbers appear in report.md (tests format the same way)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{digits}g}"


def lambda_words(p: dict[str, Any], aspects: Aspects = DEFAULT_ASPECTS) -> list[str]:
    """A point's free λs in words: "λ=0.5" with two aspects (the first aspect's weight), "λ_help=0.5", … with more."""
    columns = aspects.lambda_columns
    if len(columns) == 1:
        return [f"λ={fmt(p[columns[0]])}"]
    return [f"λ_{column.removeprefix('lambda_')}={fmt(p[column])}" for column in columns]


def coordinates_text(p: dict[str, Any], aspects: Aspects = DEFAULT_ASPECTS) -> str:
    """A front point's grid coordinates in words: the free λs, then ϕ per aspect (λ, ϕ_help, ϕ_harm for two)."""
    return ", ".join([*lambda_words(p, aspects), *(f"ϕ_{a}={fmt(p[f'phi_{a}'])}" for a in aspects.names)])
