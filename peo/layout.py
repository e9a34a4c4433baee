"""Where each file of an assets folder lies (assets/FORMAT.md): paths only, nothing read or written here.

The stages that write the assets and the app, export and serve that read them join paths here alone, from the file
names of peo/names.py, so a file is moved or renamed in one place.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from peo.names import (
    ADAPTERS_DIR,
    ANSWERS_FILE,
    EVALUATORS_DIR,
    EVASION_LABELS_FILE,
    EVASION_VALIDATION_FILE,
    FRONT_FIGURE,
    FRONTS_FILE,
    GRID_FILE,
    HEAD_META,
    HEAD_WEIGHTS,
    JUDGE_VERDICTS_FILE,
    JUDGMENT_AGREEMENT_FILE,
    JUDGMENTS_FILE,
    MANIFEST_FILE,
    META_FILE,
    REF_LOGPS,
    REPORT_DIR,
    REPORT_FILE,
    TRAINING_FIGURE,
    TRAINING_FILE,
)


@dataclass(frozen=True)
class ReportLayout:
    """The report folder's files (precompute.report.write_report writes them into any folder it is given)."""

    root: Path

    @property
    def fronts(self) -> Path:
        return self.root / FRONTS_FILE

    @property
    def markdown(self) -> Path:
        return self.root / REPORT_FILE

    @property
    def front_figure(self) -> Path:
        return self.root / FRONT_FIGURE

    @property
    def training_figure(self) -> Path:
        return self.root / TRAINING_FIGURE

    @property
    def judgments(self) -> Path:
        return self.root / JUDGMENTS_FILE

    @property
    def judge_verdicts(self) -> Path:
        """`peo judge --out` here: an LLM judge's verdicts, read by the report (peo.judge.read_verdicts)."""
        return self.root / JUDGE_VERDICTS_FILE

    @property
    def judgment_agreement(self) -> Path:
        return self.root / JUDGMENT_AGREEMENT_FILE

    @property
    def evasion_labels(self) -> Path:
        return self.root / EVASION_LABELS_FILE

    @property
    def evasion_validation(self) -> Path:
        return self.root / EVASION_VALIDATION_FILE


@dataclass(frozen=True)
class AssetLayout:
    """An assets folder's paths, built from its root: `AssetLayout(Path("assets")).grid` is assets/grid.csv."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))  # a str root is accepted

    @property
    def grid(self) -> Path:
        return self.root / GRID_FILE

    @property
    def answers(self) -> Path:
        return self.root / ANSWERS_FILE

    @property
    def meta(self) -> Path:
        return self.root / META_FILE

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST_FILE

    @property
    def adapters(self) -> Path:
        return self.root / ADAPTERS_DIR

    def adapter(self, name: str) -> Path:
        """A policy's LoRA folder: an aspect's, or the joint policy's (peo.aspects.Aspects.adapters)."""
        return self.adapters / name

    def adapter_folders(self, names: Iterable[str]) -> dict[str, Path]:
        """The run's policies' folders, name → folder (e.g. `aspects.adapters`)."""
        return {name: self.adapter(name) for name in names}

    @property
    def training(self) -> Path:
        return self.root / TRAINING_FILE

    @property
    def evaluators(self) -> Path:
        return self.root / EVALUATORS_DIR

    def evaluator(self, kind: str) -> Path:
        """An evaluator's folder, named by the evaluator (peo.aspects.Aspect.evaluator: reward, cost, …)."""
        return self.evaluators / kind

    def evaluator_folders(self, evaluators: Iterable[str]) -> dict[str, Path]:
        """The run's evaluators' folders, evaluator → folder (e.g. `aspects.evaluators`)."""
        return {kind: self.evaluator(kind) for kind in evaluators}

    def evaluator_meta(self, kind: str) -> Path:
        return self.evaluator(kind) / HEAD_META

    def evaluator_head(self, kind: str) -> Path:
        return self.evaluator(kind) / HEAD_WEIGHTS

    def ref_logps(self, kind: str) -> Path:
        return self.evaluator(kind) / REF_LOGPS

    @property
    def report(self) -> ReportLayout:
        return ReportLayout(self.root / REPORT_DIR)
