"""The report's figures: front.png (test means, dev-chosen fronts, baselines) and training.png (training curves).

front.png is 2-D: the run's first evaluator (higher is better) up, its second (lower is better) across, as reward
and cost are for the shipped aspects (`can_plot_front`); with other aspects the report has no front figure.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from peo.aspects import DEFAULT_ASPECTS, Aspects
from peo.atomic import write_with
from peo.evaluation_stats import finite_or_none
from peo.plot_style import COLORS
from precompute.report_inputs import distinct_models
from precompute.report_words import CI, FRONT_NAMES, VERDICT_WORDS, fmt

CURVES = (("loss", "DPO loss (train batches)"), ("rewards/accuracies", "implicit-reward accuracy (train batches)"),
          ("rewards/margins", "implicit-reward margin (train batches)"))
MARKERS = {"ref": "X", "help": "^", "harm": "v", "joint": "s"}
OTHER_MARKERS = ("D", "P", "*", "h")  # for the baselines of aspects other than help and harm, in order


def can_plot_front(aspects: Aspects) -> bool:
    """front.png draws two aspects: the first higher-is-better (up), the second lower-is-better (across)."""
    return len(aspects) == 2 and [a.better for a in aspects] == ["higher", "lower"]


def _marker(method: str, aspects: Aspects) -> str:
    others = [m for m in aspects.baselines if m not in MARKERS]
    return MARKERS.get(method) or OTHER_MARKERS[others.index(method) % len(OTHER_MARKERS)]


def _scatter(ax, xs: list[float], ys: list[float], looping: list[bool], color: str, **kw) -> None:
    """Points drawn filled, or hollow where the model's test answers loop more often than allowed."""
    xs, ys, looping = np.asarray(xs, float), np.asarray(ys, float), np.asarray(looping, bool)
    label = kw.pop("label", None)
    ax.scatter(xs[~looping], ys[~looping], color=color, label=label, **kw)
    if looping.any():
        ax.scatter(xs[looping], ys[looping], facecolors="none", edgecolors=color,
                   label=None if (~looping).any() else label, **kw)


def _staircase(ax, front: dict[str, Any], ref: tuple[float, float], color: str, thin: bool, label: str,
               up: str, across: str) -> None:
    """The region a chosen set dominates on test: a step line through its test-non-dominated points."""
    pts = sorted((p[f"{across}_mean"], p[f"{up}_mean"]) for p in front["points"] if p["on_test_front"])
    if not pts:
        return
    xs, ys = [c for c, _ in pts] + [ref[1]], [r for _, r in pts] + [pts[-1][1]]
    if not thin:
        ax.fill_between(xs, ys, ref[0], step="post", color=color, alpha=0.07, lw=0, zorder=1)
    ax.step(xs, ys, where="post", color=color, lw=1.0 if thin else 2.0, ls="--" if thin else "-",
            alpha=0.7 if thin else 1.0, zorder=4, label=label)


def _loops(p: dict[str, Any], limit: float) -> bool:
    return p.get("loop_share") is not None and p["loop_share"] > limit


def _plot_models(ax, grid: pd.DataFrame, result: dict[str, Any], aspects: Aspects) -> None:
    """Every test-scored model, and the soup line by λ."""
    limit, means = result["max_loop_share"], result["test_means"]
    mids = list(means)
    _scatter(ax, [means[m][0] for m in mids], [means[m][1] for m in mids],
             [means[m][2] is not None and means[m][2] > limit for m in mids], COLORS["other"], s=20, alpha=0.7,
             zorder=2, label=f"every test-scored model ({len(mids)}; hollow: loops > {limit * 100:g}% on test)")
    soup = [m for m in distinct_models(grid, "soup").sort_values(aspects.lambda_columns[0])["model_id"] if m in means]
    if soup:
        ax.plot([means[m][0] for m in soup], [means[m][1] for m in soup], ls=":", lw=1.0, color=COLORS["soup"],
                alpha=0.8, zorder=3, label="soup (ϕ = 0), λ from 0 to 1")
    expo = [m for m in distinct_models(grid, "expo").sort_values("expo_alpha")["model_id"] if m in means] \
        if "expo_alpha" in grid.columns else []
    if expo:
        alphas = distinct_models(grid, "expo").set_index("model_id")["expo_alpha"]
        ax.plot([means[m][0] for m in expo], [means[m][1] for m in expo], ls="-.", lw=1.0, marker="D", ms=4,
                color=COLORS["expo"], alpha=0.9, zorder=3,
                label=f"ExPO θ_ref + α·Δ_joint, α = {', '.join(f'{alphas[m]:g}' for m in expo)}")


def _plot_fronts(ax, result: dict[str, Any], aspects: Aspects) -> None:
    up, across = aspects.evaluators
    ref = (result["reference_point"][up], result["reference_point"][across])
    for name in ("soup_no_evasion_filter", "peo_no_evasion_filter", "soup", "expo", "peo"):
        front = result["fronts"].get(name)
        if not front:
            continue
        color, thin = COLORS[front["method"]], name.endswith("_no_evasion_filter")
        label = (f"{FRONT_NAMES[name]} ({front['n_chosen']} chosen on dev), test HV {fmt(front['hypervolume'])} "
                 f"[{fmt(front['interval'][0])}, {fmt(front['interval'][1])}]")
        _staircase(ax, front, ref, color, thin, label, up, across)
        points = front["points"]
        if points and not thin:
            ax.errorbar([p[f"{across}_mean"] for p in points], [p[f"{up}_mean"] for p in points],
                        xerr=[p[f"{across}_se"] or 0 for p in points], yerr=[p[f"{up}_se"] or 0 for p in points],
                        fmt="none", ecolor=color, elinewidth=0.8, capsize=2, zorder=5)
        if points:
            _scatter(ax, [p[f"{across}_mean"] for p in points], [p[f"{up}_mean"] for p in points],
                     [_loops(p, result["max_loop_share"]) for p in points], color, s=26 if thin else 36, zorder=5)
    ax.scatter([ref[1]], [ref[0]], marker="+", s=70, color="grey", zorder=6, label="hypervolume reference point")


def _plot_baselines(ax, result: dict[str, Any], aspects: Aspects) -> None:
    up, across = aspects.evaluators
    for method, base in result["baselines"].items():
        x, y = base[f"{across}_mean"], base[f"{up}_mean"]
        color = COLORS.get(method, COLORS["other"])
        ax.scatter([x], [y], marker=_marker(method, aspects), s=90, color=color, edgecolors="white", linewidths=0.8,
                   zorder=6, label=f"baseline: {aspects.baseline_labels[method]}")
        ax.annotate(method, (x, y), xytext=(7, 5), textcoords="offset points", fontsize=10, fontweight="bold",
                    color=color, zorder=7)


def _axis_labels(aspects: Aspects) -> tuple[str, str]:
    """(across, up): what each axis is, and which way is better."""
    if aspects == DEFAULT_ASPECTS:
        return ("cost = harmfulness on the harmful test prompts   (← lower is better)",
                "reward = helpfulness on the benign test prompts   (higher is better ↑)")
    up, across = aspects
    return (f"{across.evaluator} = {across.label} on the {across.name} test prompts   (← lower is better)",
            f"{up.evaluator} = {up.label} on the {up.name} test prompts   (higher is better ↑)")


def _front_title(result: dict[str, Any]) -> str:
    n = result["n_prompts"]
    title = f"Fronts chosen on {n['dev']} dev prompts, scored on {n['test']} test prompts"
    diff = result.get("difference")
    if diff:
        title += (f"\nPEO − soup test hypervolume (loop and evasion filters): "
                  f"{fmt(diff['value'])}, {int(CI * 100)}% interval [{fmt(diff['interval'][0])}, "
                  f"{fmt(diff['interval'][1])}]: {VERDICT_WORDS[diff['verdict']]}")
    no_evasion = result.get("difference_no_evasion_filter")
    if no_evasion and result.get("evasion_limit") is not None:
        title += (f"\nwithout the evasion filter: {fmt(no_evasion['value'])} [{fmt(no_evasion['interval'][0])}, "
                  f"{fmt(no_evasion['interval'][1])}]: {VERDICT_WORDS[no_evasion['verdict']]}")
    vs_expo = result.get("difference_vs_expo")
    if vs_expo:
        title += (f"\nPEO − ExPO: {fmt(vs_expo['value'])} [{fmt(vs_expo['interval'][0])}, "
                  f"{fmt(vs_expo['interval'][1])}]: {VERDICT_WORDS[vs_expo['verdict']]}")
    return title


def _new_figure(size: tuple[float, float]):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=130)
    FigureCanvasAgg(fig)
    return fig


def plot_front(path: Path, grid: pd.DataFrame, result: dict[str, Any], aspects: Aspects = DEFAULT_ASPECTS) -> None:
    """front.png: test means of every test-scored model, the dev-chosen fronts, the baselines (two aspects whose
    first is higher-is-better and second lower-is-better: can_plot_front)."""
    if not can_plot_front(aspects):
        raise ValueError(f"front.png draws two aspects, higher then lower is better; got {aspects.names}")
    fig = _new_figure((9, 8.5))
    ax = fig.add_subplot(1, 1, 1)
    _plot_models(ax, grid, result, aspects)
    _plot_fronts(ax, result, aspects)
    _plot_baselines(ax, result, aspects)
    across, up = _axis_labels(aspects)
    ax.set_xlabel(across, fontsize=11)
    ax.set_ylabel(up, fontsize=11)
    ax.annotate("better", xy=(0.04, 0.96), xytext=(0.16, 0.84), xycoords="axes fraction",
                arrowprops={"arrowstyle": "->", "color": "grey"}, color="grey", fontsize=10)
    ax.set_title(_front_title(result), fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2, fontsize=7.5, frameon=False)
    fig.tight_layout()
    write_with(path, lambda tmp: fig.savefig(tmp, format="png"))


def _curves(training: dict | None) -> dict[str, list[dict]]:
    return {policy: m["curve"] for policy, m in (training or {}).items()
            if isinstance(m, dict) and isinstance(m.get("curve"), list) and m["curve"]}


def plot_training(path: Path, training: dict | None) -> bool:
    """training.png: each policy's loss, implicit-reward accuracy and margin against step; False when no curves."""
    curves = _curves(training)
    if not curves:
        if path.exists():
            path.unlink()  # a figure from an earlier run would describe other adapters
        return False
    fig = _new_figure((12, 3.8))
    for k, (key, title) in enumerate(CURVES, start=1):
        ax = fig.add_subplot(1, len(CURVES), k)
        for policy, curve in curves.items():
            pts = [(h["step"], h[key]) for h in curve if finite_or_none(h.get(key)) is not None and "step" in h]
            if pts:
                ax.plot(*zip(*pts), lw=1.2, color=COLORS.get(policy), label=policy)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    write_with(path, lambda tmp: fig.savefig(tmp, format="png"))
    return True
