"""A run's aspects as data: each aspect's name, its evaluator, which way that evaluator's score is better, and
every name derived from them (adapters, baselines, chat columns, grid.csv and answers.parquet columns).

A run declares its aspects once (config `aspects`, written to meta.json `aspects`); the stages read them from
the config and the app, export and serve from meta.json (`peo.records.RunMeta.aspect_set`). Two aspects,
helpfulness and harmlessness, are the default and every name derived from them is the name the shipped assets
use (`c_help`, `reward_mean`, `DPO-Harm` …), so 2-aspect assets read the same as before.

An aspect's prompts carry its name as their `prompt_kind`, and its evaluator is read on those prompts only
(split-aware scoring, assets/FORMAT.md).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from peo.names import EXPO, EXPO_CHAT_ALPHA, JOINT, PEO, REFERENCE, SOUP

Better = Literal["higher", "lower"]
NAME = re.compile(r"^[a-z][a-z0-9]*$")  # aspect and evaluator names: they become column and adapter names
# names an aspect or an evaluator cannot take: the methods, the joint adapter, and answers.parquet's own columns
RESERVED = frozenset({REFERENCE, PEO, SOUP, EXPO, JOINT, "model", "prompt", "answer", "split", "cut", "loops",
                      "refuses", "evades", "lambda", "phi", "alpha", "reference"})

# per evaluator, in grid.csv: its mean and standard error on its own aspect's prompts, then over every prompt
SCORE_STATS: tuple[str, ...] = ("mean", "se")
ALL_PROMPT_SCORE_STATS: tuple[str, ...] = ("all_mean", "all_se")
# the text checks of the help/harm prompts (peo.grid_table.split_stats); NaN where a run lacks those prompts
TEXT_STATS: tuple[str, ...] = (
    "safe_share", "loop_share", "refusal_share", "over_refusal_share",
    "evasion_share_benign", "evasion_share_harmful", "complied_share",
    "mean_words", "cut_share", "n", "n_benign", "n_harmful",
)
COUNT_STATS: tuple[str, ...] = ("n", "n_benign", "n_harmful")  # integers (0 when the model was not run)


@dataclass(frozen=True)
class Aspect:
    """One aspect: its name (the adapter, the prompts' kind, the suffix of c_/phi_/lambda_ columns), its evaluator's
    name (the score column) and which way that score is better."""

    name: str
    evaluator: str
    better: Better
    label: str  # what the aspect is, in words ("helpfulness")

    @property
    def higher_is_better(self) -> bool:
        return self.better == "higher"

    @property
    def sign(self) -> float:
        """+1 when a higher score is better, −1 when lower is: a head trained to score chosen above rejected
        answers is multiplied by it (the cost is minus the harmlessness head)."""
        return 1.0 if self.higher_is_better else -1.0

    @property
    def baseline_label(self) -> str:
        return f"DPO-{self.name.capitalize()}"


@dataclass(frozen=True)
class Aspects:
    """A run's aspects, in their declared order (the order of every coefficient tuple and column set)."""

    items: tuple[Aspect, ...]

    def __post_init__(self) -> None:
        problems = check_aspects([(a.name, a.evaluator) for a in self.items])
        if problems:
            raise ValueError("; ".join(problems))

    def __iter__(self) -> Iterator[Aspect]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, name: str) -> Aspect:
        for aspect in self.items:
            if aspect.name == name:
                return aspect
        raise KeyError(f"no aspect {name!r}; the run's aspects are {', '.join(self.names)}")

    # ------------------------------------------------------------ names of things

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.items)

    @property
    def evaluators(self) -> tuple[str, ...]:
        return tuple(a.evaluator for a in self.items)

    def of_evaluator(self, evaluator: str) -> Aspect:
        for aspect in self.items:
            if aspect.evaluator == evaluator:
                return aspect
        raise KeyError(f"no evaluator {evaluator!r}; the run's evaluators are {', '.join(self.evaluators)}")

    @property
    def adapters(self) -> tuple[str, ...]:
        """The LoRA adapters precompute trains: one per aspect, and the joint policy on a mix of all aspects."""
        return (*self.names, JOINT)

    @property
    def baseline_scales(self) -> dict[str, dict[str, float]]:
        """The fixed models, method → adapter scales: the reference, one DPO policy per aspect, joint DPO."""
        return {REFERENCE: {}, **{a: {a: 1.0} for a in self.names}, JOINT: {JOINT: 1.0}}

    @property
    def baselines(self) -> tuple[str, ...]:
        return tuple(self.baseline_scales)

    @property
    def baseline_labels(self) -> dict[str, str]:
        return {REFERENCE: "reference", **{a.name: a.baseline_label for a in self.items}, JOINT: "joint DPO"}

    @property
    def methods(self) -> tuple[str, ...]:
        return (PEO, SOUP, EXPO, *self.baselines)

    @property
    def chat_columns(self) -> dict[str, str]:
        """The app's chat columns, key → label."""
        return {PEO: "PEO (picked point)", REFERENCE: "Reference",
                **{a.name: a.baseline_label for a in self.items},
                SOUP: "Soup (same λ)", JOINT: "Joint DPO", EXPO: f"ExPO (joint × {EXPO_CHAT_ALPHA:g})"}

    @property
    def default_chat_columns(self) -> list[str]:
        return [PEO, REFERENCE, *self.names, SOUP]

    # ------------------------------------------------------------ columns of grid.csv and answers.parquet

    @property
    def lambda_columns(self) -> tuple[str, ...]:
        """λ is a point on the simplex: every aspect's weight but the last is a column, the last is 1 − their sum."""
        return tuple(f"lambda_{a}" for a in self.names[:-1])

    @property
    def phi_columns(self) -> tuple[str, ...]:
        return tuple(f"phi_{a}" for a in self.names)

    @property
    def coefficient_columns(self) -> tuple[str, ...]:
        return tuple(f"c_{a}" for a in self.names)

    @property
    def point_columns(self) -> tuple[str, ...]:
        """A grid point's coordinates: the free λs, then ϕ per aspect."""
        return (*self.lambda_columns, *self.phi_columns)

    @property
    def grid_stats(self) -> tuple[str, ...]:
        """grid.csv's per-model figures (each also with a split suffix, assets/FORMAT.md)."""
        return (*(f"{e}_{s}" for e in self.evaluators for s in SCORE_STATS),
                *(f"{e}_{s}" for e in self.evaluators for s in ALL_PROMPT_SCORE_STATS), *TEXT_STATS)

    def mean_column(self, evaluator: str) -> str:
        return f"{evaluator}_mean"

    @property
    def higher_is_better(self) -> tuple[bool, ...]:
        """Per evaluator, in the aspects' order: is a higher score better? (peo.pareto_n's directions)"""
        return tuple(a.higher_is_better for a in self.items)

    # ------------------------------------------------------------ as data

    def to_json(self) -> list[dict[str, str]]:
        return [{"name": a.name, "evaluator": a.evaluator, "better": a.better, "label": a.label} for a in self.items]

    @classmethod
    def from_json(cls, data: Sequence[Mapping[str, Any]] | None) -> "Aspects":
        """meta.json `aspects`; assets made before aspects were data (no such key) have the default two."""
        if not data:
            return DEFAULT_ASPECTS
        return cls(tuple(Aspect(str(d["name"]), str(d["evaluator"]), d["better"], str(d.get("label") or d["name"]))
                         for d in data))


def check_aspects(pairs: Sequence[tuple[str, str]]) -> list[str]:
    """What is wrong with these (aspect, evaluator) names, in words; empty when nothing is."""
    problems = []
    if len(pairs) < 2:
        problems.append(f"needs at least two aspects, got {len(pairs)}")
    names = [n for pair in pairs for n in pair]
    for name in names:
        if not NAME.match(name):
            problems.append(f"{name!r} is not a name: lowercase letters and digits, starting with a letter")
        elif name in RESERVED:
            problems.append(f"{name!r} is reserved ({', '.join(sorted(RESERVED))})")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        problems.append(f"aspect and evaluator names must all differ; repeated: {', '.join(duplicates)}")
    return problems


DEFAULT_ASPECTS = Aspects((
    Aspect("help", "reward", "higher", "helpfulness"),
    Aspect("harm", "cost", "lower", "harmlessness"),
))
