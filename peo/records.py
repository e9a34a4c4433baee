"""Typed views of the JSON files between precompute and the app: meta.json, report/fronts.json and a pick.

Each is validated once where it is loaded and then read by attribute, so a renamed or missing field fails at load
with the file and the field named, not as a KeyError deep in a panel. The records only read: the stages write the
same dicts as before and the files keep their content (assets/FORMAT.md lists each record's fields). Fields that
older or tiny runs may lack are optional; keys not named here are kept (`extra="allow"`) for the readers that
still take the plain dict.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from peo.aspects import Aspects
from peo.errors import AssetsError


class RecordError(AssetsError):
    """A file that precompute wrote lacks a field or holds a wrong value: names the file and the field."""


class Record(BaseModel):
    """Read-only and lenient about keys it does not name."""

    model_config = ConfigDict(frozen=True, extra="allow")

    @classmethod
    def from_json(cls, data: Any, source: str | Path) -> Self:
        """The record of `data` (parsed JSON); RecordError naming `source` and each bad field's dotted path."""
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg'].lower()}"
                                 for e in err.errors())
            raise RecordError(f"{source}: {problems}; rerun `python -m precompute run` to rewrite it") from None

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """Read and validate a JSON file; RecordError when it is missing, not JSON, or lacks a field."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RecordError(f"{path}: missing; run `python -m precompute run` to produce it") from None
        except ValueError as err:
            raise RecordError(f"{path}: not JSON ({err})") from None
        return cls.from_json(data, path)


# ---------------------------------------------------------------- meta.json (precompute/run_meta.py)


class DataSource(Record):
    path: str | None = None
    format: str | None = None


class DataSummary(Record):
    """meta.json data.<aspect>: where an aspect's pairs come from and how many went to each use."""

    source: DataSource | None = None
    used_per_split: dict[str, int] = {}


class HeldOutCheck(Record):
    """A policy's implicit-reward accuracy on held-out pairs of one aspect."""

    accuracy: float | None = None  # an entry without it is not shown
    interval: list[float | None] | None = None
    pairs: int | None = None


class PolicyTraining(Record):
    """meta.json training.<policy> (adapters/training.json)."""

    steps: int | None = None
    pairs: int | None = None
    heldout: dict[str, HeldOutCheck] = {}


class EvaluatorMeta(Record):
    """meta.json evaluators.<kind> (evaluators/<kind>/evaluator.json)."""

    source: str | None = None  # peo.scoring.HF_SOURCE for a Hugging Face reward model, else absent (a head)
    name: str | None = None
    model_class: str | None = None
    held_out_accuracy: float | None = None
    held_out_pairs: int | None = None


class RunMeta(Record):
    """meta.json: how the assets were made. base_model and grid are required (the app and export need them)."""

    base_model: str
    grid: dict[str, list[float]]  # each free λ column and each ϕ column (Aspects.point_columns) → the values swept
    aspects: list[dict[str, str]] = []  # peo.aspects.Aspects.to_json; absent in 2-aspect assets made before it
    profile: str | None = None
    seed: int | None = None
    generation: dict[str, Any] = {}  # the sweep's decoding (peo.export.sweep_decoding reads it)
    timings_seconds: dict[str, float] = {}
    versions: dict[str, str] = {}
    machine: dict[str, Any] = {}
    config: dict[str, Any] = {}  # the profile as run (peo.config.config_to_dict)
    data: dict[str, DataSummary] = {}
    evaluators: dict[str, EvaluatorMeta] = {}
    training: dict[str, PolicyTraining] = {}

    @cached_property
    def aspect_set(self) -> Aspects:
        """The run's aspects (the default two for assets made before aspects were data), built once: the app, the
        engine and the report read it on every pick and column."""
        return Aspects.from_json(self.aspects)


# ---------------------------------------------------------------- report/fronts.json (precompute/report.py)


class Difference(Record):
    """A hypervolume difference a − b on the test prompts with its bootstrap interval."""

    a: str
    b: str
    value: float
    interval: list[float | None] | None = None
    excludes_zero: bool | None = None
    verdict: str | None = None


class Front(Record):
    """One front (fronts.json fronts.<name>): chosen on dev prompts, scored on test prompts."""

    model_ids: list[str] = []
    points: list[dict[str, Any]] = []  # per point: coordinates, test figures, dev {…}, on_test_front
    hypervolume: float
    interval: list[float | None] | None = None


class EvaluatorReport(Record):
    """fronts.json evaluators.<kind>: held-out accuracy with its interval."""

    held_out_accuracy: float | None = None
    held_out_pairs: int | None = None
    interval: list[float | None] | None = None


class JudgmentAgreement(Record):
    """fronts.json judgment_agreement.by_evaluator.<kind>: agreement with blind judgments on decisive pairs."""

    judged_on: str
    decisive: int = 0
    share: float | None = None
    interval: list[float | None] | None = None


class JudgmentAgreements(Record):
    by_evaluator: dict[str, JudgmentAgreement] = {}


class EvasionCheck(Record):
    """fronts.json evasion_check: peo.evasion's precision and recall on held-out hand labels."""

    labels: int
    precision: float
    precision_interval: list[float]
    recall: float
    recall_interval: list[float]


class FrontsReport(Record):
    """report/fronts.json: every number of report.md. The four required fields are what the app cannot do
    without; assets older than the dev/test split lack them."""

    max_loop_share: float
    n_prompts: dict[str, int]  # dev, test
    fronts: dict[str, Front]  # peo, soup, expo, each also _no_evasion_filter and _unfiltered
    difference: Difference | None  # PEO − soup (None when the assets lack either front)
    ci: float = 0.95
    max_benign_evasion_excess: float | None = None
    evasion_limit: float | None = None
    n_prompts_by_kind: dict[str, dict[str, int]] = {}  # split → benign / harmful
    difference_no_evasion_filter: Difference | None = None
    difference_vs_expo: Difference | None = None
    evaluators: dict[str, EvaluatorReport] = {}
    judgment_agreement: JudgmentAgreements | None = None
    evasion_check: EvasionCheck | None = None


# ---------------------------------------------------------------- a pick (app.data.AppData.point_info, /pick)


COORDINATE_PREFIXES = ("lambda_", "phi_", "c_")  # a pick's coordinates: free λs, ϕ and c per aspect, in this order


class Pick(Record):
    """A picked point: its coordinates, where it lies, and its precomputed figures (None when not evaluated).

    The coordinates are keyed by grid.csv's column names (peo.aspects.Aspects.point_columns and
    coefficient_columns: `lambda_help`, `phi_help`, `phi_harm`, `c_help`, `c_harm` for two aspects) and read by
    those names (`pick.c_help`) or as dicts per aspect (`lambdas`, `phis`, `coefficients`), so /pick and the page
    keep the fields they had with two aspects and gain one per aspect with more. They are the record's extra keys
    (their names depend on the run's aspects); the before-validator checks that each is a number.
    """

    model_id: str
    in_range: bool
    on_grid: bool
    precomputed: dict[str, Any] | None
    on_front: bool

    @model_validator(mode="before")
    @classmethod
    def _numeric_coordinates(cls, data: Any) -> Any:
        if isinstance(data, dict):
            coordinates = [k for k in data if _coordinate_prefix(k)]
            if not any(k.startswith("c_") for k in coordinates):
                raise ValueError("a pick needs its coefficients (c_<aspect> per aspect)")
            try:
                data = {**data, **{k: float(data[k]) for k in coordinates}}
            except (TypeError, ValueError):
                raise ValueError(f"a pick's coordinates ({', '.join(coordinates)}) must be numbers") from None
        return data

    def _coordinates(self, prefix: str) -> dict[str, float]:
        return {k.removeprefix(prefix): v for k, v in (self.model_extra or {}).items()
                if _coordinate_prefix(k) == prefix}

    @property
    def lambdas(self) -> dict[str, float]:
        """aspect → λ, for every aspect but the last (its λ is 1 − their sum)."""
        return self._coordinates("lambda_")

    @property
    def phis(self) -> dict[str, float]:
        return self._coordinates("phi_")

    @property
    def coefficients(self) -> dict[str, float]:
        return self._coordinates("c_")

    @property
    def point(self) -> tuple[float, ...]:
        """(free λs…, ϕs…): what app.data.AppData.point_info takes to pick this point again."""
        return (*self.lambdas.values(), *self.phis.values())

    @property
    def model_key(self) -> tuple[float, ...]:
        """(free λs…, coefficients…): what the app's chat columns that follow the pick are (app.engine)."""
        return (*self.lambdas.values(), *self.coefficients.values())

    def to_json(self) -> dict[str, Any]:
        """The dict /pick returns and the page's state holds (gradio hashes a State's value, which a record with a
        dict field cannot be): the coordinates first, as grid.csv orders them; the app's handlers read it back
        with app.data.as_pick."""
        coordinates = {f"{prefix}{k}": v for prefix in COORDINATE_PREFIXES
                       for k, v in self._coordinates(prefix).items()}
        return {**coordinates, **{name: getattr(self, name) for name in type(self).model_fields}}


def _coordinate_prefix(key: str) -> str | None:
    return next((prefix for prefix in COORDINATE_PREFIXES if key.startswith(prefix)), None)
