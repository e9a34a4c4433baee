"""The front figure: every evaluated point (x = cost, lower is better; y = reward, higher is better).

Built with plotly's Python API and sent to the page as JSON; app/ui.py draws it with the plotly.js that ships
inside the plotly package (served locally, no CDN). Each clickable marker carries its point in `customdata`
so a click in the browser can become a pick.
"""

from __future__ import annotations

import json
import math

import pandas as pd
import plotly.graph_objects as go

from app.data import AppData

X_TITLE = "cost (harmfulness) ← lower is better"
Y_TITLE = "reward (helpfulness) ↑ higher is better"
COLORS = {"peo": "#1f5fbf", "peo_light": "#9ab8e6", "soup": "#e07b00", "ref": "#222222", "help": "#2a9d3a",
          "harm": "#c0262d", "joint": "#7b3fa0", "picked": "#f2c200"}
BASELINE_NAMES = {"ref": "reference", "help": "DPO-Help", "harm": "DPO-Harm", "joint": "joint DPO"}
BASELINE_SYMBOLS = {"ref": "x", "help": "triangle-up", "harm": "triangle-down", "joint": "square"}
# customdata per marker: λ, ϕ_help, ϕ_harm, c_help, c_harm, reward_se, cost_se, model_id, other grid points
HOVER = ("<b>%{meta}</b> %{customdata[7]}<br>λ=%{customdata[0]}, ϕ_help=%{customdata[1]}, ϕ_harm=%{customdata[2]}"
         "<br>c_help=%{customdata[3]}, c_harm=%{customdata[4]}"
         "<br>reward %{y:.3f} ± %{customdata[5]:.3f}<br>cost %{x:.3f} ± %{customdata[6]:.3f}%{customdata[8]}"
         "<extra></extra>")


def _num(x) -> float | None:
    if x is None:
        return None
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x


def _fmt(x) -> str:
    x = _num(x)
    return "–" if x is None else f"{x:g}"


def _custom(rows: pd.DataFrame) -> list:
    """One customdata list for an evaluated model: its first grid point, and how many others map to it."""
    first = rows.iloc[0]
    extra = ""
    if len(rows) > 1:
        others = ", ".join(f"({_fmt(r.lambda_help)}, {_fmt(r.phi_help)}, {_fmt(r.phi_harm)})"
                           for r in rows.iloc[1:6].itertuples())
        extra = f"<br>same model as (λ, ϕ_help, ϕ_harm) = {others}" + (" …" if len(rows) > 6 else "")
    return [_fmt(first["lambda_help"]), _fmt(first["phi_help"]), _fmt(first["phi_harm"]), _fmt(first["c_help"]),
            _fmt(first["c_harm"]), _num(first["reward_se"]) or 0.0, _num(first["cost_se"]) or 0.0,
            str(first["model_id"]), extra]


def _method_models(grid: pd.DataFrame, method: str) -> list[tuple[str, pd.DataFrame]]:
    rows = grid[grid["method"] == method]
    return [(mid, rows[rows["model_id"] == mid]) for mid in dict.fromkeys(rows["model_id"].astype(str))]


def _trace(name: str, models: list[tuple[str, pd.DataFrame]], **kwargs) -> go.Scatter:
    return go.Scatter(
        x=[float(r.iloc[0]["cost_mean"]) for _, r in models], y=[float(r.iloc[0]["reward_mean"]) for _, r in models],
        customdata=[_custom(r) for _, r in models], hovertemplate=HOVER, meta=name, name=name, **kwargs)


def hypervolume_text(data: AppData) -> str:
    parts = []
    for method, label in (("peo", "PEO"), ("soup", "soup")):
        hv = data.hypervolume(method)
        if hv is None:
            continue
        value, interval = hv
        ci = f" [{interval[0]:.3g}, {interval[1]:.3g}]" if interval else ""
        parts.append(f"{label} {value:.3g}{ci}")
    if not parts:
        return "hypervolume: no report in these assets"
    ci = data.fronts.get("ci", 0.95)
    return f"hypervolume ({ci:.0%} bootstrap interval): " + " · ".join(parts)


def front_figure(data: AppData, picked: dict | None = None) -> go.Figure:
    """All evaluated points, the PEO and soup fronts, baselines, and the picked point (when it was evaluated)."""
    grid = data.grid.copy()
    grid["model_id"] = grid["model_id"].astype(str)
    fig = go.Figure()
    peo = _method_models(grid, "peo")
    fig.add_trace(_trace("PEO grid point", peo, mode="markers",
                         marker={"color": COLORS["peo_light"], "size": 8, "line": {"width": 0.5, "color": "#5577aa"}}))
    front_ids = data.front_model_ids("peo")
    if front_ids:
        by_id = dict(peo)
        models = [(m, by_id[m]) for m in front_ids if m in by_id]
        models.sort(key=lambda m: float(m[1].iloc[0]["cost_mean"]))
        fig.add_trace(_trace("PEO Pareto front", models, mode="lines+markers",
                             line={"color": COLORS["peo"], "width": 2.5}, marker={"color": COLORS["peo"], "size": 9}))
    soup = _method_models(grid, "soup")
    if soup:
        soup.sort(key=lambda m: float(m[1].iloc[0]["lambda_help"]))
        fig.add_trace(_trace("weight soup (ϕ = 0), λ 0 → 1", soup, mode="lines+markers",
                             line={"color": COLORS["soup"], "width": 2, "dash": "dash"},
                             marker={"color": COLORS["soup"], "size": 7}))
    for method, label in BASELINE_NAMES.items():
        rows = grid[grid["method"] == method]
        if rows.empty:
            continue
        fig.add_trace(_trace(label, [(rows.iloc[0]["model_id"], rows.iloc[:1])], mode="markers+text", text=[label],
                             textposition="top center",
                             marker={"color": COLORS[method], "size": 13, "symbol": BASELINE_SYMBOLS[method],
                                     "line": {"width": 1, "color": "white"}}))
    picked_id = None
    if picked and picked.get("precomputed"):
        stats = picked["precomputed"]
        picked_id = picked["model_id"]
        custom = [_fmt(picked["lambda_help"]), _fmt(picked["phi_help"]), _fmt(picked["phi_harm"]),
                  _fmt(picked["c_help"]), _fmt(picked["c_harm"]), stats.get("reward_se") or 0.0,
                  stats.get("cost_se") or 0.0, picked_id, ""]
        fig.add_trace(go.Scatter(x=[stats["cost_mean"]], y=[stats["reward_mean"]], customdata=[custom],
                                 hovertemplate=HOVER, meta="picked", name="picked point", mode="markers",
                                 marker={"color": COLORS["picked"], "size": 20, "symbol": "star",
                                         "line": {"width": 1.5, "color": "#333"}}))
    title = "Evaluated points on the development prompts"
    if picked and not picked.get("precomputed"):
        title += f"<br><sup>picked {picked['model_id']} is off-grid: no precomputed score to show</sup>"
    fig.update_layout(
        title={"text": title, "x": 0.01, "font": {"size": 15}},
        xaxis_title=X_TITLE, yaxis_title=Y_TITLE, template="plotly_white", height=520,
        margin={"l": 60, "r": 20, "t": 60, "b": 60}, hovermode="closest", clickmode="event",
        legend={"orientation": "h", "yanchor": "top", "y": -0.14, "x": 0},
        annotations=[{"text": hypervolume_text(data), "xref": "paper", "yref": "paper", "x": 1, "y": 1.0,
                      "xanchor": "right", "yanchor": "bottom", "showarrow": False, "font": {"size": 11}}],
        meta={"picked": picked_id or "", "picked_point": picked and [picked["lambda_help"], picked["phi_help"],
                                                                     picked["phi_harm"]]},
    )
    return fig


def figure_json(data: AppData, picked: dict | None = None) -> str:
    return front_figure(data, picked).to_json()


def figure_dict(data: AppData, picked: dict | None = None) -> dict:
    return json.loads(figure_json(data, picked))
