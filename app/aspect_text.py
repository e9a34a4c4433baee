"""How the page names a run's aspects: the picker's axes, a point's coordinates, each evaluator's prompts.

Everything here is derived from the run's `peo.aspects.Aspects`, so the page has a slider per free λ and per ϕ,
and a score per evaluator, whatever the number of aspects. For the default two aspects the words are the ones
the page always used: one λ ("λ (help vs harm)"), `ϕ_help`, `ϕ_harm`, "reward on benign prompts".
"""

from __future__ import annotations

from dataclasses import dataclass

from peo.aspects import Aspect, Aspects
from peo.records import Pick

# the prompts an aspect's evaluator is read on, in words (the aspect's own prompts: split-aware scoring)
PROMPT_WORDS = {"help": "benign", "harm": "harmful"}


@dataclass(frozen=True)
class Axis:
    """One picker axis: its point column, slider label, symbol and element id prefix."""

    column: str
    label: str
    symbol: str
    key: str


def picker_axes(aspects: Aspects) -> tuple[Axis, ...]:
    """The picker's axes in the order AppData.point_info takes them: the free λs, then ϕ per aspect. Two aspects:
    the one λ is "λ (help vs harm)" with element ids `lambda-…`, as the page always had."""
    names = aspects.names
    if len(aspects) == 2:
        lambdas = [Axis(aspects.lambda_columns[0], f"λ ({names[0]} vs {names[1]})", "λ", "lambda")]
    else:
        lambdas = [Axis(f"lambda_{a}", f"λ_{a} (weight of {a})", f"λ_{a}", f"lambda-{a}") for a in names[:-1]]
    phis = [Axis(f"phi_{a}", f"ϕ_{a} (extrapolation)", f"ϕ_{a}", f"phi-{a}") for a in names]
    return (*lambdas, *phis)


def point_symbols(aspects: Aspects) -> str:
    """'λ, ϕ_help, ϕ_harm': the point's coordinates, named."""
    return ", ".join(axis.symbol for axis in picker_axes(aspects))


def point_text(info: Pick, aspects: Aspects) -> str:
    """'λ = 0.5, ϕ_help = 0, ϕ_harm = 0 → c_help = 0.5, c_harm = 0.5': a pick's coordinates and coefficients."""
    coordinates = ", ".join(f"{axis.symbol} = {getattr(info, axis.column):g}" for axis in picker_axes(aspects))
    coefficients = ", ".join(f"{column} = {getattr(info, column):g}" for column in aspects.coefficient_columns)
    return f"{coordinates} → {coefficients}"


def prompts_of(aspect: Aspect) -> str:
    """'benign prompts': the prompts the aspect's evaluator is read on."""
    return f"{PROMPT_WORDS.get(aspect.name, aspect.name)} prompts"


# how an evaluator is named on an axis, where its name alone says too little
EVALUATOR_WORDS = {"cost": "cost (harmfulness)"}


def axis_title(aspect: Aspect, across: bool) -> str:
    """'cost (harmfulness) on harmful prompts ← better', 'reward on benign prompts ↑ better': an evaluator's axis
    title, with the way it gets better (across: → or ←; up: ↑ or ↓)."""
    arrow = ("→" if aspect.higher_is_better else "←") if across else ("↑" if aspect.higher_is_better else "↓")
    return f"{EVALUATOR_WORDS.get(aspect.evaluator, aspect.evaluator)} on {prompts_of(aspect)} {arrow} better"


def evaluator_pairs(aspects: Aspects) -> list[tuple[str, str]]:
    """Every (x, y) pair of evaluators the front figure can draw, the default first: the second evaluator
    across, the first up (two aspects: cost across, reward up, the figure as it always was)."""
    evaluators = aspects.evaluators
    return [(evaluators[j], evaluators[i]) for i in range(len(evaluators)) for j in range(i + 1, len(evaluators))]


def pair_key(pair: tuple[str, str]) -> str:
    """'cost,reward': a pair of evaluators as a dropdown value (x first)."""
    return ",".join(pair)


def parse_pair(value: str | None) -> tuple[str, str] | None:
    """The (x, y) evaluators of a pair_key ('cost,reward'); None (the default pair) when unset."""
    if not value:
        return None
    x, _, y = str(value).partition(",")
    return x, y


def pair_label(pair: tuple[str, str]) -> str:
    """'reward (up) vs cost (across)': a pair of evaluators as the figure draws them."""
    x, y = pair
    return f"{y} (up) vs {x} (across)"
