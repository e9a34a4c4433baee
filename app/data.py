"""What the app reads from the assets once at start: grid, answers, report fronts, the grid's range.

Figures shown are test-prompt figures where the model was run on the test prompts, else dev figures labelled
as such (assets/FORMAT.md, "Dev and test prompts"). Assets in the older single-split format are refused.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from peo.aspects import COUNT_STATS, Aspects
from peo.assets import Assets, AssetsError, load_assets
from peo.chat_limits import ChatInputError
from peo.coefficients import coefficients, model_id, on_simplex
from peo.grid_table import SPLITS
from peo.layout import AssetLayout
from peo.names import EVADES, PEO
from peo.records import Front, FrontsReport, Pick

TOL = 1e-9
PROMPT_CHARS = 120  # the answers table shows this much of each prompt, so answer, reward and cost stay visible
PICKED_MARK = "★"  # the front table's row of the picked model (the figure's star)


def grid_columns(aspects: Aspects) -> tuple[str, ...]:
    """The grid.csv columns the app reads: each figure unsuffixed (the shown split) and per split."""
    stats = aspects.grid_stats
    return ("split", "front_eligible", *stats, *(f"{stat}_{split}" for split in SPLITS for stat in stats))


def answer_columns(aspects: Aspects) -> tuple[str, ...]:
    """The answers.parquet columns the app reads: a score column per evaluator."""
    return ("model_id", "prompt_kind", "prompt", "split", "answer", "new_tokens", *aspects.evaluators, "loops",
            "refuses", "n_words", "cut")


def answer_table_columns(aspects: Aspects) -> list[str]:
    """The answers table's columns (AppData.sample_answers): every evaluator's score after the answer."""
    return ["split", "kind", "prompt", "answer", *aspects.evaluators, "loops", "refuses", "evades"]

AppInputError = ChatInputError  # one input error: peo.chat_limits raises it for the app and peo serve


def _require(have, need, where: str) -> None:
    """AssetsError naming what is missing: old assets would otherwise show dev figures as if they were test."""
    missing = [name for name in need if name not in have]
    if missing:
        raise AssetsError(f"{where} lacks {', '.join(missing)}: these assets predate the dev/test split; "
                          "rerun `python -m precompute run` (see assets/FORMAT.md)")


def read_fronts(root: Path) -> dict:
    """report/fronts.json as read (AppData validates it as a FrontsReport)."""
    path = AssetLayout(root).report.fronts
    if not path.is_file():
        raise AssetsError(f"{root}: missing {path.relative_to(root).as_posix()}; "
                          "run `python -m precompute run --stage report`")
    return json.loads(path.read_text(encoding="utf-8"))


@dataclass
class AppData:
    assets: Assets
    fronts: dict  # fronts.json as read, for the readers that still take it by key (`report` is the typed view)
    report: FrontsReport = field(init=False)  # fronts.json, validated once here (RecordError names a bad field)

    def __post_init__(self) -> None:
        self.report = FrontsReport.from_json(self.fronts, self.assets.layout.report.fronts)

    @classmethod
    def load(cls, root: str | Path | None = None) -> "AppData":
        assets = load_assets(root)
        aspects = assets.run_meta.aspect_set
        _require(assets.grid.columns, grid_columns(aspects), str(assets.layout.grid))
        _require(assets.answers.columns, answer_columns(aspects), str(assets.layout.answers))
        return cls(assets=assets, fronts=read_fronts(assets.root))

    @property
    def aspects(self) -> Aspects:
        """The run's aspects (meta.json `aspects`; the default two for assets made before it)."""
        return self.assets.run_meta.aspect_set

    @property
    def point_columns(self) -> tuple[str, ...]:
        """The picker's axes, in the order point_info takes them: the free λs, then ϕ per aspect."""
        return self.aspects.point_columns

    @property
    def grid(self) -> pd.DataFrame:
        return self.assets.grid

    @property
    def answers(self) -> pd.DataFrame:
        return self.assets.answers

    @property
    def max_loop_share(self) -> float:
        """Points whose shown answers loop more often than this are drawn as suspect (the front excludes them)."""
        return self.report.max_loop_share

    def n_prompts(self, split: str) -> int:
        return self.report.n_prompts[split]

    def axis_range(self, axis: str) -> tuple[float, float]:
        """(min, max) of a point column ('lambda_help', 'phi_harm' …) over the grid the assets were swept on."""
        values = [float(v) for v in self.assets.grid_values[axis]]
        return min(values), max(values)

    def grid_axis(self, axis: str) -> list[float]:
        return sorted(float(v) for v in self.assets.grid_values[axis])

    def front(self, name: str = PEO) -> Front | None:
        """A front of fronts.json ('peo', 'soup', 'peo_unfiltered', 'soup_unfiltered'); None when absent."""
        return self.report.fronts.get(name)

    def front_model_ids(self, name: str = PEO) -> list[str]:
        front = self.front(name)
        return list(front.model_ids) if front else []

    def hypervolume(self, name: str) -> tuple[float, list[float | None] | None] | None:
        front = self.front(name)
        return None if front is None else (front.hypervolume, front.interval)

    def model_stats(self, mid: str) -> dict | None:
        """The shown figures of evaluated model `mid` (test, else dev) and which split; None when not evaluated."""
        rows = self.grid[self.grid["model_id"].astype(str) == mid]
        if rows.empty:
            return None
        row = rows.iloc[0]
        out: dict = {"split": str(row["split"])}
        for key in self.aspects.grid_stats:
            out[key] = float(row[key]) if pd.notna(row[key]) else None
        for key in COUNT_STATS:
            out[key] = int(row[key]) if pd.notna(row[key]) else 0
        return out

    def sample_answers(self, mid: str, limit: int = 20) -> pd.DataFrame:
        """Precomputed answers of model `mid` on the split its figures come from (test when it has them)."""
        sub = self.answers[self.answers["model_id"].astype(str) == mid]
        split = "test" if (sub["split"] == "test").any() else "dev"
        sub = sub[sub["split"] == split].head(limit)
        evaluators = self.aspects.evaluators
        return pd.DataFrame({
            "split": sub["split"].tolist(), "kind": sub["prompt_kind"].tolist(),
            "prompt": [shorten(last_user_turn(p)) for p in sub["prompt"]], "answer": sub["answer"].tolist(),
            **{ev: sub[ev].round(3).tolist() for ev in evaluators},
            "loops": sub["loops"].astype(bool).tolist(), "refuses": sub["refuses"].astype(bool).tolist(),
            "evades": (sub[EVADES].astype(bool).tolist() if EVADES in sub.columns else [None] * len(sub)),
        }, columns=answer_table_columns(self.aspects))

    def check_point(self, *values) -> tuple[float, ...]:
        """The point (a value per point column: the free λs, then ϕ per aspect) as floats; AppInputError when
        one is missing, not a number or outside the grid's range."""
        names = self.point_columns
        if len(values) != len(names):
            raise AppInputError(f"a point has {len(names)} coordinates ({', '.join(names)}), got {len(values)}")
        point = []
        for name, value in zip(names, values):
            try:
                x = float(value)
            except (TypeError, ValueError):
                raise AppInputError(f"{name} must be a number, got {value!r}") from None
            if not math.isfinite(x):
                raise AppInputError(f"{name} must be a finite number, got {value!r}")
            lo, hi = self.axis_range(name)
            if x < lo - TOL or x > hi + TOL:
                raise AppInputError(f"{name}={x:g} is outside the range these assets support: [{lo:g}, {hi:g}]")
            point.append(min(max(x, lo), hi))
        free = point[:len(self.aspects.lambda_columns)]
        if not on_simplex(free):  # the last aspect's weight is 1 − the free ones' sum
            raise AppInputError(f"{' + '.join(names[:len(free)])} = {sum(free):g} is over 1: the last aspect's "
                                f"weight λ_{self.aspects.names[-1]} = 1 − their sum would be negative")
        return tuple(point)

    def on_grid(self, *point: float) -> bool:
        return all(any(abs(x - g) <= 1e-6 for g in self.grid_axis(axis)) for axis, x in zip(self.point_columns, point))

    def point_info(self, *values) -> Pick:
        """Everything /pick returns about a point (see callbacks.pick), read by attribute; `.to_json()` is the
        dict /pick returns. `values`: the free λs, then ϕ per aspect (two aspects: λ_help, ϕ_help, ϕ_harm)."""
        point = self.check_point(*values)
        n_free = len(self.aspects.lambda_columns)
        c = coefficients(point[:n_free], point[n_free:])
        mid = model_id(*c)
        return Pick(**dict(zip(self.point_columns, point)), **dict(zip(self.aspects.coefficient_columns, c)),
                    model_id=mid, in_range=True,  # out-of-range points raise AppInputError instead
                    on_grid=self.on_grid(*point), precomputed=self.model_stats(mid),
                    on_front=mid in self.front_model_ids(PEO))

    def reference_scores(self):
        """The reference's per-prompt scores on the test prompts, split-aware: each evaluator's scores on its own
        aspect's prompts (rewards on the benign prompts, costs on the harmful ones), as every other figure (dev
        when it has no test answers). What a live score is placed against (app.score_context percentile bands)."""
        from app.score_context import ReferenceScores

        reference = model_id(*(0.0,) * len(self.aspects))
        rows = self.answers[self.answers["model_id"].astype(str) == reference]
        split = "test" if (rows["split"] == "test").any() else "dev"
        rows = rows[rows["split"] == split]
        kind = rows["prompt_kind"].astype(str)
        return ReferenceScores({a.evaluator: tuple(float(x) for x in rows.loc[kind == a.name, a.evaluator])
                                for a in self.aspects}, split)


def as_pick(value: Pick | dict) -> Pick:
    """The pick a panel reads, from what the page's point state holds: the pick's dict (`Pick.to_json()`), since
    Gradio hashes each State value to see whether it changed, and a Pick, frozen with its `precomputed` dict,
    cannot be hashed."""
    return value if isinstance(value, Pick) else Pick.model_validate(value)


def over_loop_limit(loop_share: float | None, limit: float) -> bool:
    """Whether a model's answers loop too often for its scores to be taken at face value."""
    return loop_share is not None and not math.isnan(loop_share) and loop_share > limit


def last_user_turn(prompt_json: str) -> str:
    try:
        messages = json.loads(prompt_json)
    except (TypeError, ValueError):
        return str(prompt_json)
    users = [m.get("content", "") for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    return users[-1] if users else ""


def shorten(text: str, limit: int = PROMPT_CHARS) -> str:
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"
