"""The model family as it is: every evaluated point in coefficient space (c_help, c_harm), coloured by reward and
by cost side by side, with the soup segment and the PEO front drawn in it. A plane: the page shows it for runs of
the default two aspects (app/research_views.py).

(λ, ϕ_help, ϕ_harm) has two degrees of freedom only: c_help = λ + ϕ_help, c_harm = 1 − λ + ϕ_harm, so several
grid points are one model. This view shows the models themselves; a click picks the grid point that grid.csv
lists first for that model (its λ, ϕ), through the same click mechanism as the front (app/ui.py plot_js).
"""

from __future__ import annotations

from collections.abc import Mapping

import gradio as gr
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from app.figure import CUSTOM_FIELDS, custom_data, split_label
from peo.aspects import DEFAULT_ASPECTS
from peo.evaluation_stats import finite_or_none
from peo.names import PEO, SOUP
from peo.plot_style import COLORS
from peo.records import Pick

PANELS = (("reward_mean", "reward on benign prompts (↑ better)", "Viridis"),
          ("cost_mean", "cost on harmful prompts (↓ better)", "Viridis_r"))  # split-aware, as every figure
POINT = ("lambda_help", "phi_help", "phi_harm")
SEGMENT_NAME = "soup segment: c_help + c_harm = 1"
FRONT_NAME = "PEO front (chosen on dev prompts)"
# the front's models are ringed, not joined: a line through them in any score order crosses itself here
FRONT_RING = {"color": COLORS[PEO], "size": 21, "symbol": "circle-open", "line": {"width": 2.5}}


def model_points(grid: pd.DataFrame) -> pd.DataFrame:
    """One row per evaluated model with coefficients (joint DPO has none): its first PEO/soup grid row (so a
    click has a λ, ϕ to pick), else its baseline row; `same` lists every (λ, ϕ_help, ϕ_harm) that is this model."""
    rows = grid[grid["c_help"].notna() & grid["c_harm"].notna()].copy()
    rows["model_id"] = rows["model_id"].astype(str)
    rows["_order"] = (~rows["method"].isin([PEO, SOUP])).astype(int)  # grid points before baselines
    out = []
    for mid, group in rows.sort_values("_order", kind="stable").groupby("model_id", sort=False):
        first = group.iloc[0].to_dict()
        points = group.dropna(subset=list(POINT))[list(POINT)].drop_duplicates()
        first["same"] = [tuple(float(x) for x in p) for p in points.itertuples(index=False)]
        labels = DEFAULT_ASPECTS.baseline_labels
        first["labels"] = [labels[m] for m in group["method"] if m in labels]
        out.append(first)
    return pd.DataFrame(out).drop(columns="_order")


def same_model_groups(points: pd.DataFrame) -> list[tuple[str, list[tuple[float, float, float]]]]:
    """Models reached from more than one (λ, ϕ_help, ϕ_harm) grid point, in model order."""
    return [(str(r["model_id"]), list(r["same"])) for _, r in points.iterrows() if len(r["same"]) > 1]


def _hover_text(row: Mapping, on_front: bool) -> str:
    same = ", ".join(f"({a:g}, {b:g}, {c:g})" for a, b, c in row["same"]) or "none (not a grid point)"
    labels = f" = {', '.join(row['labels'])}" if row["labels"] else ""
    reward, cost = finite_or_none(row["reward_mean"]), finite_or_none(row["cost_mean"])
    scores = ("–" if reward is None or cost is None
              else f"reward {reward:.3f} (benign prompts), cost {cost:.3f} (harmful prompts)")
    evasion = finite_or_none(row.get("evasion_share_benign"))
    if evasion is not None:
        scores += f"<br>evades {evasion:.0%} of benign prompts"
    front = ("<br>on the PEO front chosen on the dev prompts (scores on other prompts differ: on test another "
             "point can beat it)") if on_front else ""
    return (f"<b>{row['model_id']}</b>{labels} ({split_label(row['split'], row['n'])})<br>{scores}"
            f"<br>(λ, ϕ_help, ϕ_harm) = {same}{front}")


def coefficient_figure(grid: pd.DataFrame, front_ids: list[str], picked: Pick | None = None) -> go.Figure:
    """Two panels over (c_help, c_harm): points coloured by reward and by cost, soup segment, front (ringed),
    pick."""
    points = model_points(grid)
    fig = make_subplots(rows=1, cols=2, subplot_titles=[title for _, title, _ in PANELS], horizontal_spacing=0.12)
    by_id = {str(r["model_id"]): r for _, r in points.iterrows()}
    front = [by_id[m] for m in front_ids if m in by_id]
    for col, (stat, title, scale) in enumerate(PANELS, start=1):
        values = [finite_or_none(v) for v in points[stat]]
        fig.add_trace(go.Scatter(
            x=points["c_help"], y=points["c_harm"], mode="markers", name=title, showlegend=False,
            customdata=[custom_data(r, r) for _, r in points.iterrows()],
            text=[_hover_text(r, str(r["model_id"]) in front_ids) for _, r in points.iterrows()],
            hovertemplate="%{text}<extra></extra>",
            marker={"color": values, "colorscale": scale, "size": 13, "line": {"width": 0.5, "color": "#333"},
                    "colorbar": {"title": {"text": title.split(" ")[0]}, "x": 0.44 if col == 1 else 1.0,
                                 "len": 0.8}}), row=1, col=col)
        fig.add_trace(go.Scatter(x=[0, 1], y=[1, 0], mode="lines", name=SEGMENT_NAME, showlegend=col == 1,
                                 legendgroup="soup", hoverinfo="skip",
                                 line={"color": COLORS[SOUP], "width": 2, "dash": "dash"}), row=1, col=col)
        if front:
            fig.add_trace(go.Scatter(x=[r["c_help"] for r in front], y=[r["c_harm"] for r in front],
                                     mode="markers", name=FRONT_NAME, showlegend=col == 1, legendgroup="front",
                                     hoverinfo="skip", marker=FRONT_RING), row=1, col=col)
        if picked is not None:
            fig.add_trace(go.Scatter(x=[picked.c_help], y=[picked.c_harm], mode="markers",
                                     name="picked point", showlegend=col == 1, legendgroup="picked",
                                     hoverinfo="skip", marker={"color": COLORS["picked"], "size": 20, "symbol": "star",
                                                               "line": {"width": 1.5, "color": "#333"}}),
                          row=1, col=col)
        fig.update_xaxes(title_text="c_help", row=1, col=col)
        fig.update_yaxes(title_text="c_harm", row=1, col=col, scaleanchor=f"x{'' if col == 1 else col}")
    fig.update_layout(template="plotly_white", height=460, margin={"l": 50, "r": 20, "t": 40, "b": 40},
                      hovermode="closest", clickmode="event",
                      legend={"orientation": "h", "yanchor": "top", "y": -0.12, "x": 0},
                      meta={"picked": str(picked.model_id) if picked is not None else ""})
    return fig


def coefficient_json(grid: pd.DataFrame, front_ids: list[str], picked: Pick | None = None) -> str:
    return coefficient_figure(grid, front_ids, picked).to_json()


def degrees_of_freedom_text(grid: pd.DataFrame) -> str:
    """What the page says about the parametrisation: two degrees of freedom, and which grid points coincide."""
    groups = same_model_groups(model_points(grid))
    text = ("(λ, ϕ_help, ϕ_harm) has **two degrees of freedom**: the model is θ_ref + c_help·Δ_help + "
            "c_harm·Δ_harm with c_help = λ + ϕ_help and c_harm = 1 − λ + ϕ_harm, so grid points with the same "
            "(c_help, c_harm) are **the same model** (generated and scored once). A click picks the first of them.")
    if not groups:
        return text
    lines = [f"- `{mid}`: " + ", ".join(f"({a:g}, {b:g}, {c:g})" for a, b, c in same) for mid, same in groups]
    return text + f"\n\n{len(groups)} models are reached from several (λ, ϕ_help, ϕ_harm):\n" + "\n".join(lines)


def coefficient_panel(grid: pd.DataFrame, front_ids: list[str], picked: Pick, plot_js: str, head: str
                      ) -> gr.HTML:
    """The accordion with the figure (drawn and clicked like the front: `plot_js`) and the note."""
    with gr.Accordion("The model family in coefficient space (c_help, c_harm)", open=False,
                      elem_id="coefficient-panel"):
        plot = gr.HTML(coefficient_json(grid, front_ids, picked), html_template='<div class="peo-front-plot"></div>',
                       js_on_load=plot_js, head=head, elem_id="coefficient-plot", apply_default_css=False)
        gr.Markdown(degrees_of_freedom_text(grid), elem_id="coefficient-note")
    return plot


def click_point(event_data: Mapping, columns: tuple[str, ...] = POINT) -> tuple[float, ...]:
    """The point (λ, ϕ_help, ϕ_harm: `columns`) of a clicked model; ValueError for a marker that is no grid point
    (the reference)."""
    return tuple(float(event_data[k]) for k in columns)


assert CUSTOM_FIELDS[:3] == POINT  # the click handler reads the point from customdata's first three fields
