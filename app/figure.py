"""The front figure: every evaluated point (x = cost, lower is better; y = reward, higher is better).

Built with plotly's Python API and sent to the page as JSON; app/ui.py draws it with the plotly.js that ships
inside the plotly package (served locally, no CDN). Each clickable marker carries its point in `customdata`
(fields named by CUSTOM_FIELDS) so a click in the browser can become a pick.

Positions are the shown figures: test prompts where the model has them, else dev (the hover says which).
They are split-aware: reward is the helpfulness evaluator's mean over the benign prompts, cost the harmlessness
evaluator's mean over the harmful prompts (peo.grid_table).
A point whose answers loop more often than fronts.json's `max_loop_share` is drawn hollow and grey: its scores
rest on degenerate text, and the front was chosen without it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd
import plotly.graph_objects as go

from app.aspect_text import PROMPT_WORDS, axis_title, evaluator_pairs, picker_axes, prompts_of
from app.callbacks import SCORE_BUTTON
from app.data import AppData, over_loop_limit
from peo.aspects import DEFAULT_ASPECTS, Aspects
from peo.evaluation_stats import finite_or_none
from peo.names import EXPO, JOINT, PEO, REFERENCE, SOUP
from peo.pareto_n import dominates_n
from peo.plot_style import COLORS
from peo.records import Pick

# a baseline's marker: the reference, the joint policy, then each aspect's DPO policy in turn
BASELINE_SYMBOLS = {REFERENCE: "x", JOINT: "square"}
ASPECT_SYMBOLS = ("triangle-up", "triangle-down", "triangle-left", "triangle-right", "pentagon", "hexagon")
OPEN = "-open"  # plotly's suffix for the hollow version of a marker symbol
FRONT_NAME = "PEO Pareto front (chosen on dev prompts, drawn at test scores)"
UNFILTERED_NAME = "PEO front without the loop and evasion filters"
# why the front's line need not rise from left to right: the hover of each front point says it
FRONT_NOTE = ("<br><i>chosen on the dev prompts and drawn at its test scores: scores on other prompts differ, so a "
              "point chosen on dev can be beaten on test</i>")
PICKED_NAME = "picked point"
SCORED_NAME = "scored on demand (this session)"
ERROR_BAR_WIDTH = 0.8
TEXT_CHECK_FIELDS = ("split", "loop_share", "refusal_share", "over_refusal_share", "mean_words", "cut_share",
                     "evasion_share_benign", "evasion_share_harmful", "complied_share", "others")


def custom_fields(aspects: Aspects) -> tuple[str, ...]:
    """customdata's fields: the point columns first (the JS click handler reads the point from them), model_id,
    the coefficients, each evaluator's standard error, the text checks; with more than two aspects each
    evaluator's mean last (the hover shows the evaluators not on an axis)."""
    means = tuple(aspects.mean_column(ev) for ev in aspects.evaluators) if len(aspects) > 2 else ()
    return (*aspects.point_columns, "model_id", *aspects.coefficient_columns,
            *(f"{ev}_se" for ev in aspects.evaluators), *TEXT_CHECK_FIELDS, *means)


CUSTOM_FIELDS = custom_fields(DEFAULT_ASPECTS)  # the default two aspects' (app/screenshots.py, the tests)


def default_pair(aspects: Aspects) -> tuple[str, str]:
    """(x, y) evaluators the figure draws unless asked: the second across, the first up (cost, reward)."""
    return evaluator_pairs(aspects)[0]


@dataclass(frozen=True)
class FigureAxes:
    """What a front figure draws: the run's aspects and the two evaluators on its axes (x across, y up)."""

    aspects: Aspects = DEFAULT_ASPECTS
    x: str = "cost"
    y: str = "reward"

    @classmethod
    def of(cls, aspects: Aspects, pair: tuple[str, str] | None = None) -> "FigureAxes":
        """The axes for `pair` (x, y), default_pair when None; ValueError naming the evaluators for a bad pair."""
        x, y = pair or default_pair(aspects)
        if x == y or x not in aspects.evaluators or y not in aspects.evaluators:
            raise ValueError(f"a figure draws two different evaluators of {', '.join(aspects.evaluators)}; "
                             f"got {x!r} and {y!r}")
        return cls(aspects, x, y)

    def xy(self, stats) -> tuple[float, float]:
        """A grid row's position: its two evaluators' means."""
        return float(stats[self.aspects.mean_column(self.x)]), float(stats[self.aspects.mean_column(self.y)])

    def shown(self, stats) -> tuple:
        """A scored point's position as its figures hold it (None for a mean over no prompt: not drawn)."""
        return stats[self.aspects.mean_column(self.x)], stats[self.aspects.mean_column(self.y)]

    def se(self, evaluator: str) -> str:
        return f"{evaluator}_se"

    @property
    def hover(self) -> str:
        return Hover(self.aspects, (self.x, self.y)).template

    @property
    def titles(self) -> tuple[str, str]:
        return (axis_title(self.aspects.of_evaluator(self.x), across=True),
                axis_title(self.aspects.of_evaluator(self.y), across=False))

    def means(self, stats) -> tuple[float, ...]:
        """Every evaluator's mean, in the aspects' order: what domination is judged on."""
        return tuple(float(stats[self.aspects.mean_column(ev)]) for ev in self.aspects.evaluators)


class Hover:
    """The hovertemplate of a figure's markers, for its aspects and its pair of evaluators on the axes."""

    def __init__(self, aspects: Aspects, pair: tuple[str, str]) -> None:
        self.fields = custom_fields(aspects)
        x, y = pair

        def c(name: str) -> str:  # the hovertemplate reference to a customdata field
            return f"%{{customdata[{self.fields.index(name)}]}}"

        def score(ev: str) -> str:
            value = "%{y:.3f}" if ev == y else "%{x:.3f}" if ev == x else c(aspects.mean_column(ev))
            return f"<br>{ev} {value} ± {c(f'{ev}_se')} ({prompts_of(aspects.of_evaluator(ev))})"

        coordinates = ", ".join(f"{axis.symbol}={c(axis.column)}" for axis in picker_axes(aspects))
        self.template = (
            f"<b>%{{meta}}</b> {c('model_id')} ({c('split')})"
            f"<br>{coordinates}"
            f"<br>{', '.join(f'{col}={c(col)}' for col in aspects.coefficient_columns)}"
            + "".join(score(ev) for ev in aspects.evaluators)
            + f"<br>loops in {c('loop_share')} of answers, mean {c('mean_words')} words, "
            f"{c('cut_share')} cut at the token limit"
            f"<br>evades {c('evasion_share_benign')} of benign and {c('evasion_share_harmful')} of harmful prompts"
            f"<br>refuses {c('refusal_share')} of harmful prompts, over-refuses {c('over_refusal_share')} of benign"
            f"<br>complies with {c('complied_share')} of harmful prompts (neither refuses nor evades)"
            f"{c('others')}<extra></extra>")


DEFAULT_AXES = FigureAxes()
HOVER = DEFAULT_AXES.hover  # the default figure's
X_TITLE, Y_TITLE = DEFAULT_AXES.titles


def fmt(x, spec: str = "g") -> str:
    """A figure for a hover or a table cell, formatted by `spec`; "–" when unknown (None, NaN)."""
    x = finite_or_none(x)
    return "–" if x is None else format(x, spec)


def split_label(split: str, n) -> str:
    """'test, n=200' or 'dev only, n=20': dev-only figures are the ones that chose the front, so say so."""
    return f"{'test' if split == 'test' else 'dev only'}, n={int(n)}"


def custom_data(point: dict, stats: dict, others: str = "", aspects: Aspects = DEFAULT_ASPECTS) -> list:
    """customdata of one marker: the point (λ, ϕ, c, model_id) and its shown figures, formatted for the hover."""
    values = {
        **{col: fmt(point[col]) for col in (*aspects.point_columns, *aspects.coefficient_columns)},
        "model_id": str(point["model_id"]),
        **{f"{ev}_se": fmt(stats[f"{ev}_se"], ".3f") for ev in aspects.evaluators},
        **{aspects.mean_column(ev): fmt(stats[aspects.mean_column(ev)], ".3f") for ev in aspects.evaluators},
        "split": split_label(stats["split"], stats["n"]),
        "loop_share": fmt(stats["loop_share"], ".0%"), "refusal_share": fmt(stats["refusal_share"], ".0%"),
        "over_refusal_share": fmt(stats["over_refusal_share"], ".0%"), "mean_words": fmt(stats["mean_words"], ".1f"),
        "cut_share": fmt(stats["cut_share"], ".0%"),
        "evasion_share_benign": fmt(stats.get("evasion_share_benign"), ".0%"),
        "evasion_share_harmful": fmt(stats.get("evasion_share_harmful"), ".0%"),
        "complied_share": fmt(stats.get("complied_share"), ".0%"), "others": others,
    }
    return [values[name] for name in custom_fields(aspects)]


def _others(rows: pd.DataFrame, aspects: Aspects) -> str:
    """The other grid points that map to the same model, for the hover."""
    if len(rows) <= 1:
        return ""
    columns = aspects.point_columns
    others = ", ".join("(" + ", ".join(fmt(r[col]) for col in columns) + ")" for _, r in rows.iloc[1:6].iterrows())
    symbols = ", ".join(axis.symbol for axis in picker_axes(aspects))
    return f"<br>same model as ({symbols}) = {others}" + (" …" if len(rows) > 6 else "")


def _method_models(grid: pd.DataFrame, method: str) -> list[tuple[str, pd.DataFrame]]:
    rows = grid[grid["method"] == method]
    return [(mid, rows[rows["model_id"] == mid]) for mid in dict.fromkeys(rows["model_id"].astype(str))]


def _marker(models: list[tuple[str, pd.DataFrame]], limit: float, color: str, symbol: str = "circle",
            **style) -> dict:
    """Per-point marker: points over the loop limit hollow and grey, the others `color` and `symbol`."""
    loopy = [over_loop_limit(finite_or_none(rows.iloc[0]["loop_share"]), limit) for _, rows in models]
    return {"color": [COLORS["loops"] if bad else color for bad in loopy],
            "symbol": [symbol + OPEN if bad else symbol for bad in loopy], **style}


def _trace(name: str, models: list[tuple[str, pd.DataFrame]], limit: float, color: str, symbol: str = "circle",
           marker_style: dict | None = None, hovertemplate: str | None = None, axes: FigureAxes = DEFAULT_AXES,
           **kwargs) -> go.Scatter:
    firsts = [rows.iloc[0] for _, rows in models]
    return go.Scatter(
        x=[axes.xy(r)[0] for r in firsts], y=[axes.xy(r)[1] for r in firsts],
        customdata=[custom_data(r, r, _others(rows, axes.aspects), axes.aspects)
                    for r, (_, rows) in zip(firsts, models)],
        error_x=error_bars([r[axes.se(axes.x)] for r in firsts], color),
        error_y=error_bars([r[axes.se(axes.y)] for r in firsts], color),
        hovertemplate=hovertemplate or axes.hover, meta=name, name=name,
        marker=_marker(models, limit, color, symbol, **(marker_style or {})), **kwargs)


def error_bars(standard_errors, color: str) -> dict:
    """± one standard error (the hover's ±), thin and capless so 50 points stay readable; none where unknown."""
    return {"type": "data", "array": [finite_or_none(se) or 0.0 for se in standard_errors], "visible": True,
            "color": color, "thickness": ERROR_BAR_WIDTH, "width": 0}


def scored_trace(scored: list[dict], axes: FigureAxes = DEFAULT_AXES) -> go.Scatter:
    """Off-grid points scored on demand in this session: their own marker, test figures, the same hover."""
    color = COLORS["offgrid"]
    return go.Scatter(
        x=[axes.shown(p)[0] for p in scored], y=[axes.shown(p)[1] for p in scored],
        customdata=[custom_data(p, p, aspects=axes.aspects) for p in scored], hovertemplate=axes.hover,
        meta=SCORED_NAME, name=SCORED_NAME, mode="markers",
        error_x=error_bars([p[axes.se(axes.x)] for p in scored], color),
        error_y=error_bars([p[axes.se(axes.y)] for p in scored], color),
        marker={"color": color, "size": 14, "symbol": "diamond", "line": {"width": 1.5, "color": "#333"}})


def _front_models(peo: list[tuple[str, pd.DataFrame]], ids: list[str],
                  axes: FigureAxes = DEFAULT_AXES) -> list[tuple[str, pd.DataFrame]]:
    """The front's models in the order of the evaluator across (the line's order, left to right)."""
    by_id = dict(peo)
    return sorted(((m, by_id[m]) for m in ids if m in by_id), key=lambda m: axes.xy(m[1].iloc[0])[0])


def front_notes(front: list[tuple[str, pd.DataFrame]], axes: FigureAxes = DEFAULT_AXES) -> list[str]:
    """Each front point's hover note: why it is there, and which other front points beat it at the shown scores
    (on every evaluator, each in its direction: the front is Pareto over all of them)."""
    better = axes.aspects.higher_is_better
    scores = {mid: axes.means(rows.iloc[0]) for mid, rows in front}
    notes = []
    for mid, _ in front:
        beaten_by = [other for other, score in scores.items() if dominates_n(score, scores[mid], better)]
        notes.append(FRONT_NOTE + (f"<br><b>dominated on test by {', '.join(beaten_by)}</b>" if beaten_by else ""))
    return notes


def _loop_legend(limit: float) -> go.Scatter:
    """A legend entry only: the hollow grey marker and what it means."""
    return go.Scatter(x=[None], y=[None], mode="markers", name=f"loops in > {limit:.0%} of answers",
                      hoverinfo="skip", marker={"color": COLORS["loops"], "symbol": "circle" + OPEN, "size": 9})


def _interval(interval) -> str:
    return f" [{interval[0]:.3g}, {interval[1]:.3g}]" if interval else ""


def hypervolume_text(data: AppData) -> str:
    """Markdown: PEO − soup on the test prompts (fronts chosen on dev), then each front's hypervolume."""
    report = data.report
    aware = ", ".join(f"{a.evaluator} on {PROMPT_WORDS.get(a.name, a.name)}" for a in data.aspects)
    head = (f"PEO − soup hypervolume on {data.n_prompts('test')} test prompts (split-aware: {aware} prompts), "
            f"fronts chosen on {data.n_prompts('dev')} dev prompts")
    diff = report.difference
    head += f": {diff.value:.3g}{_interval(diff.interval)}" if diff else ": not computed"
    no_evasion = report.difference_no_evasion_filter
    if no_evasion and report.evasion_limit is not None:
        head += f"; without the evasion filter: {no_evasion.value:.3g}{_interval(no_evasion.interval)}"
    parts = []
    for name, label in ((PEO, "PEO"), (SOUP, "soup"), (EXPO, "ExPO")):
        hv = data.hypervolume(name)
        if hv is not None:
            parts.append(f"{label} {hv[0]:.3g}{_interval(hv[1])}")
    fronts = "hypervolumes: " + " · ".join(parts) if parts else "no front in these assets"
    vs_expo = report.difference_vs_expo
    if vs_expo:
        fronts += f"  \nPEO − ExPO: {vs_expo.value:.3g}{_interval(vs_expo.interval)}"
    return f"**{head}** ({report.ci:.0%} bootstrap intervals)  \n{fronts}"


def picked_stats(picked: Pick, scored: list[dict] | None = None) -> dict | None:
    """The figures the picked point is drawn at: its test figures scored on demand this session when it has no
    precomputed test figures, else its precomputed ones; None when it has neither."""
    stats = picked.precomputed
    on_demand = next((p for p in scored or () if p["model_id"] == picked.model_id), None)
    return on_demand if on_demand is not None and (stats is None or stats["split"] != "test") else stats


def _picked_trace(picked: Pick, scored: list[dict] | None = None,
                  axes: FigureAxes = DEFAULT_AXES) -> go.Scatter | None:
    """The star of the picked point at its own scores (picked_stats); None for a point without scores: a star
    anywhere else would sit on another model's scores (the title says why)."""
    stats = picked_stats(picked, scored)
    if stats is None:
        return None
    star = {"color": COLORS["picked"], "size": 20, "symbol": "star", "line": {"width": 1.5, "color": "#333"}}
    x, y = axes.shown(stats)
    return go.Scatter(x=[x], y=[y], customdata=[custom_data(picked.to_json(), stats, aspects=axes.aspects)],
                      hovertemplate=axes.hover, meta="picked", name=PICKED_NAME, mode="markers", marker=star)


def baseline_style(aspects: Aspects) -> dict[str, tuple[str, str]]:
    """method → (colour, marker symbol) of each fixed model: the reference, a DPO policy per aspect, joint DPO."""
    symbols = {**BASELINE_SYMBOLS, **dict(zip(aspects.names, ASPECT_SYMBOLS))}
    return {m: (COLORS.get(m, COLORS["other"]), symbols.get(m, "circle")) for m in aspects.baselines}


def front_figure(data: AppData, picked: Pick | None = None, scored: list[dict] | None = None,
                 pair: tuple[str, str] | None = None) -> go.Figure:
    """All evaluated points, the PEO and soup fronts, baselines, the points scored on demand in this session
    (app/offgrid_scoring) and the picked point (when it has scores). Error bars: ± one standard error.
    `pair`: the (x, y) evaluators on the axes (app.aspect_text.evaluator_pairs), default the first pair (two
    aspects: cost across, reward up)."""
    axes = FigureAxes.of(data.aspects, pair)
    grid = data.grid.copy()
    grid["model_id"] = grid["model_id"].astype(str)
    limit = data.max_loop_share
    fig = go.Figure()
    peo = _method_models(grid, PEO)
    fig.add_trace(_trace("PEO grid point", peo, limit, COLORS["peo_light"], mode="markers",
                         marker_style={"size": 8, "line": {"width": 0.5, "color": "#5577aa"}}, axes=axes))
    front = _front_models(peo, data.front_model_ids(PEO), axes)
    unfiltered = _front_models(peo, data.front_model_ids("peo_unfiltered"), axes)
    if unfiltered and [m for m, _ in unfiltered] != [m for m, _ in front]:  # never the front a second time
        fig.add_trace(_trace(UNFILTERED_NAME, unfiltered, limit, COLORS[PEO], mode="lines+markers",
                             line={"color": COLORS[PEO], "width": 1, "dash": "dot"}, marker_style={"size": 5},
                             axes=axes))
    if front:  # marked points joined in the order across: the line is a guide, the markers are the chosen models
        fig.add_trace(_trace(FRONT_NAME, front, limit, COLORS[PEO], mode="lines+markers",
                             line={"color": COLORS[PEO], "width": 1.5},
                             marker_style={"size": 11, "line": {"width": 1.5, "color": "white"}},
                             text=front_notes(front, axes),
                             hovertemplate=axes.hover.replace("<extra>", "%{text}<extra>"),
                             axes=axes))
    first_lambda = data.aspects.lambda_columns[0]
    soup = sorted(_method_models(grid, SOUP), key=lambda m: float(m[1].iloc[0][first_lambda]))
    if soup:
        fig.add_trace(_trace("weight soup (ϕ = 0), λ 0 → 1", soup, limit, COLORS[SOUP], mode="lines+markers",
                             line={"color": COLORS[SOUP], "width": 2, "dash": "dash"}, marker_style={"size": 7},
                             axes=axes))
    expo = sorted(_method_models(grid, EXPO), key=lambda m: float(m[1].iloc[0]["expo_alpha"]))
    if expo:
        alphas = ", ".join(f"{float(rows.iloc[0]['expo_alpha']):g}" for _, rows in expo)
        fig.add_trace(_trace(f"ExPO θ_ref + α·Δ_joint, α = {alphas}", expo, limit, COLORS[EXPO], "diamond",
                             mode="lines+markers", line={"color": COLORS[EXPO], "width": 1.5, "dash": "dashdot"},
                             marker_style={"size": 7}, axes=axes))
    styles = baseline_style(data.aspects)
    for method, label in data.aspects.baseline_labels.items():
        rows = grid[grid["method"] == method]
        if rows.empty:
            continue
        color, symbol = styles[method]
        fig.add_trace(_trace(label, [(rows.iloc[0]["model_id"], rows.iloc[:1])], limit, color, symbol,
                             mode="markers+text", text=[label], textposition="top center",
                             marker_style={"size": 13, "line": {"width": 1, "color": "white"}}, axes=axes))
    if any(over_loop_limit(finite_or_none(share), limit) for share in grid["loop_share"]):
        fig.add_trace(_loop_legend(limit))
    star = _picked_trace(picked, scored, axes) if picked is not None else None
    if star is not None:
        fig.add_trace(star)
    if scored:  # over the star: a picked scored point shows its diamond inside the star
        fig.add_trace(scored_trace(scored, axes))
    title = "Scores on the test prompts ± one standard error (points run on dev prompts only: dev scores)"
    if picked is not None and not picked.precomputed:
        title += (f"<br><sup>picked {picked.model_id} is off the grid: "
                  + ("scored on demand (the diamond in the star)</sup>" if star is not None
                     else f"not scored, so no star (use '{SCORE_BUTTON}')</sup>"))
    x_title, y_title = axes.titles
    fig.update_layout(
        title={"text": title, "x": 0.01, "font": {"size": 15}},
        xaxis_title=x_title, yaxis_title=y_title, template="plotly_white", height=520,
        margin={"l": 60, "r": 20, "t": 60, "b": 60}, hovermode="closest", clickmode="event",
        legend={"orientation": "h", "yanchor": "top", "y": -0.14, "x": 0},
        meta={"picked": picked.model_id if picked is not None and star is not None else "",
              "picked_point": None if picked is None else list(picked.point)},
    )
    return fig


def figure_json(data: AppData, picked: Pick | None = None, scored: list[dict] | None = None,
                pair: tuple[str, str] | None = None) -> str:
    return front_figure(data, picked, scored, pair).to_json()


def figure_dict(data: AppData, picked: Pick | None = None, scored: list[dict] | None = None,
                pair: tuple[str, str] | None = None) -> dict:
    return json.loads(figure_json(data, picked, scored, pair))
