"""The report stage: Pareto fronts of PEO vs weight soup vs baselines, hypervolumes with bootstrap intervals.

Writes `front.png`, `report.md` and `fronts.json` into `out_dir`, each atomically (temp file in the same folder,
then `os.replace`). Everything is computed from `answers` on the prompts that every evaluated model answered, so
means, fronts and bootstrap draws all see the same prompts. Reward: higher is better. Cost: lower is better.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from peo.atomic import write_json, write_text, write_with
from peo.pareto import (
    bootstrap_hypervolume,
    bootstrap_hypervolume_difference,
    dominates,
    mean_and_se,
    pareto_front,
    reference_point,
)

FRONT_METHODS = ("peo", "soup")
BASELINES = ("ref", "help", "harm", "joint")
CI = 0.95
MARGIN = 0.05


# ---------------------------------------------------------------- numbers


def _num(x: Any) -> float | None:
    """A JSON-safe float: NaN / None / missing → None."""
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else x


def fmt(x: float | None, digits: int = 4) -> str:
    """How numbers appear in report.md (tests format the same way)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{digits}g}"


def score_matrices(grid: pd.DataFrame, answers: pd.DataFrame) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    """(model_ids in grid order, prompt_ids, reward matrix, cost matrix) on the prompts every grid model answered."""
    model_ids = list(dict.fromkeys(grid["model_id"].astype(str)))
    sub = answers[answers["model_id"].astype(str).isin(model_ids)].copy()
    sub["model_id"] = sub["model_id"].astype(str)
    missing = [m for m in model_ids if m not in set(sub["model_id"])]
    if missing:
        raise ValueError(f"answers has no rows for grid models: {missing}")
    dup = sub.duplicated(["model_id", "prompt_id"])
    if dup.any():
        first = sub.loc[dup, ["model_id", "prompt_id"]].iloc[0].tolist()
        raise ValueError(f"answers has {int(dup.sum())} repeated (model_id, prompt_id) rows, e.g. {first}")
    sub = sub.dropna(subset=["reward", "cost"])
    per_prompt = sub.groupby("prompt_id")["model_id"].nunique()
    prompts = sorted(per_prompt.index[per_prompt == len(model_ids)].tolist(), key=str)
    if not prompts:
        raise ValueError("no prompt was answered (and scored) by every grid model")
    sub = sub[sub["prompt_id"].isin(prompts)]
    rewards = sub.pivot(index="model_id", columns="prompt_id", values="reward").loc[model_ids, prompts]
    costs = sub.pivot(index="model_id", columns="prompt_id", values="cost").loc[model_ids, prompts]
    return model_ids, prompts, rewards.to_numpy(dtype=float), costs.to_numpy(dtype=float)


# ---------------------------------------------------------------- the computation


def _model_stats(reward_row: np.ndarray, cost_row: np.ndarray) -> dict[str, float]:
    reward_mean, reward_se = mean_and_se(reward_row)
    cost_mean, cost_se = mean_and_se(cost_row)
    return {"reward_mean": reward_mean, "reward_se": reward_se, "cost_mean": cost_mean, "cost_se": cost_se,
            "safe_share": float(np.mean(cost_row <= 0))}


def _point_info(rows: pd.DataFrame) -> dict[str, Any]:
    """Coordinates of a model in one method: its first grid row, and every grid point that maps to it."""
    first = rows.iloc[0]
    points = [{"lambda_help": _num(r.lambda_help), "phi_help": _num(r.phi_help), "phi_harm": _num(r.phi_harm)}
              for r in rows.itertuples()]
    return {"grid_row": int(first["_grid_row"]), "lambda_help": _num(first.get("lambda_help")),
            "phi_help": _num(first.get("phi_help")), "phi_harm": _num(first.get("phi_harm")),
            "c_help": _num(first.get("c_help")), "c_harm": _num(first.get("c_harm")), "grid_points": points}


def compute_fronts(grid: pd.DataFrame, answers: pd.DataFrame, *, n_boot: int, seed: int) -> dict[str, Any]:
    """Everything fronts.json holds (see write_report)."""
    grid = grid.reset_index(drop=True).copy()
    grid["_grid_row"] = np.arange(len(grid))
    grid["model_id"] = grid["model_id"].astype(str)
    model_ids, prompts, rm, cm = score_matrices(grid, answers)
    row_of = {m: i for i, m in enumerate(model_ids)}
    stats = {m: _model_stats(rm[i], cm[i]) for m, i in row_of.items()}
    ref_reward, ref_cost = reference_point([stats[m]["reward_mean"] for m in model_ids],
                                           [stats[m]["cost_mean"] for m in model_ids], margin=MARGIN)
    n_answered = answers[answers["model_id"].astype(str).isin(model_ids)]["prompt_id"].nunique()
    result: dict[str, Any] = {
        "n_prompts": len(prompts),
        "n_prompts_dropped": int(n_answered - len(prompts)),
        "n_models": len(model_ids),
        "n_boot": int(n_boot),
        "seed": int(seed),
        "ci": CI,
        "reference_point": {"reward": ref_reward, "cost": ref_cost, "margin": MARGIN},
        "fronts": {},
        "difference": None,
        "baselines": {},
    }
    method_models: dict[str, list[str]] = {}
    for method in FRONT_METHODS:
        rows = grid[grid["method"] == method]
        if rows.empty:
            continue
        mids = list(dict.fromkeys(rows["model_id"]))
        method_models[method] = mids
        idx = [row_of[m] for m in mids]
        front = pareto_front(rm[idx].mean(axis=1), cm[idx].mean(axis=1))
        hv, lo, hi = bootstrap_hypervolume(rm[idx], cm[idx], ref_reward, ref_cost, n_boot=n_boot, seed=seed, ci=CI)
        points = []
        for k in front:
            mid = mids[k]
            points.append({"model_id": mid, **_point_info(rows[rows["model_id"] == mid]), **stats[mid]})
        result["fronts"][method] = {
            "n_models": len(mids),
            "model_ids": [mids[k] for k in front],
            "indices": [int(k) for k in front],  # positions in this method's distinct models, grid order
            "grid_rows": [p["grid_row"] for p in points],  # row positions in grid.csv
            "points": points,
            "hypervolume": hv,
            "interval": [lo, hi],
        }
    if all(m in method_models for m in FRONT_METHODS):
        a = [row_of[m] for m in method_models["peo"]]
        b = [row_of[m] for m in method_models["soup"]]
        diff, lo, hi = bootstrap_hypervolume_difference(rm[a], cm[a], rm[b], cm[b], ref_reward, ref_cost,
                                                        n_boot=n_boot, seed=seed, ci=CI)
        verdict = "peo_better" if lo > 0 else "soup_better" if hi < 0 else "not_distinguishable"
        result["difference"] = {"a": "peo", "b": "soup", "value": diff, "interval": [lo, hi],
                                "excludes_zero": bool(lo > 0 or hi < 0), "verdict": verdict,
                                "soup_models_within_peo": set(method_models["soup"]) <= set(method_models["peo"])}
    for method in BASELINES:
        rows = grid[grid["method"] == method]
        if rows.empty:
            continue
        mid = rows["model_id"].iloc[0]
        point = (stats[mid]["reward_mean"], stats[mid]["cost_mean"])
        dominated = {}
        for front_method, front in result["fronts"].items():
            dominated[front_method] = any(dominates((p["reward_mean"], p["cost_mean"]), point)
                                          for p in front["points"])
        info = _point_info(rows)
        result["baselines"][method] = {"model_id": mid, "grid_row": info["grid_row"], "c_help": info["c_help"],
                                       "c_harm": info["c_harm"], **stats[mid], "dominated_by_front": dominated}
    return result


# ---------------------------------------------------------------- the figure

COLORS = {"peo": "#1f5fbf", "peo_light": "#9ab8e6", "soup": "#e07b00",
          "ref": "#222222", "help": "#2a9d3a", "harm": "#c0262d", "joint": "#7b3fa0"}
MARKERS = {"ref": "X", "help": "^", "harm": "v", "joint": "s"}


def _plot(path: Path, grid: pd.DataFrame, result: dict[str, Any], means: dict[str, tuple[float, float]]) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 8), dpi=130)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ref_r, ref_c = result["reference_point"]["reward"], result["reference_point"]["cost"]

    peo_ids = list(dict.fromkeys(grid.loc[grid["method"] == "peo", "model_id"].astype(str)))
    if peo_ids:
        ax.scatter([means[m][1] for m in peo_ids], [means[m][0] for m in peo_ids], s=22, color=COLORS["peo_light"],
                   alpha=0.6, edgecolors="none", label=f"PEO grid, all {len(peo_ids)} models", zorder=2)
    soup = grid[grid["method"] == "soup"].sort_values("lambda_help")
    if not soup.empty:
        sids = list(dict.fromkeys(soup["model_id"].astype(str)))
        ax.plot([means[m][1] for m in sids], [means[m][0] for m in sids], ls=":", lw=1.2, marker="o", ms=3.5,
                color=COLORS["soup"], alpha=0.8, label="soup (ϕ = 0), λ from 0 to 1", zorder=3)

    hv_text = []
    for method, name in (("soup", "soup"), ("peo", "PEO")):
        front = result["fronts"].get(method)
        if not front:
            continue
        costs = [p["cost_mean"] for p in front["points"]]
        rewards = [p["reward_mean"] for p in front["points"]]
        color = COLORS[method]
        xs, ys = costs + [ref_c], rewards + [rewards[-1]]
        ax.fill_between(xs, ys, ref_r, step="post", color=color, alpha=0.07, lw=0, zorder=1)
        ax.step(xs, ys, where="post", color=color, lw=2.0 if method == "peo" else 1.6,
                ls="-" if method == "peo" else "--", zorder=4,
                label=f"{name} front ({len(costs)} pts), HV {fmt(front['hypervolume'])} "
                      f"[{fmt(front['interval'][0])}, {fmt(front['interval'][1])}]")
        ax.errorbar(costs, rewards, xerr=[p["cost_se"] for p in front["points"]],
                    yerr=[p["reward_se"] for p in front["points"]], fmt="o", ms=5, color=color, elinewidth=0.8,
                    capsize=2, zorder=5)
        hv_text.append(f"{name} {fmt(front['hypervolume'])}")

    for method, base in result["baselines"].items():
        x, y = base["cost_mean"], base["reward_mean"]
        ax.scatter([x], [y], marker=MARKERS[method], s=90, color=COLORS[method], edgecolors="white", linewidths=0.8,
                   zorder=6, label=f"baseline: {method}")
        ax.annotate(method, (x, y), xytext=(7, 5), textcoords="offset points", fontsize=10, fontweight="bold",
                    color=COLORS[method], zorder=7)
    ax.scatter([ref_c], [ref_r], marker="+", s=70, color="grey", zorder=6, label="hypervolume reference point")

    ax.set_xlabel("cost = harmfulness   (← lower is better)", fontsize=11)
    ax.set_ylabel("reward = helpfulness   (higher is better ↑)", fontsize=11)
    ax.annotate("better", xy=(0.04, 0.96), xytext=(0.16, 0.84), xycoords="axes fraction",
                arrowprops={"arrowstyle": "->", "color": "grey"}, color="grey", fontsize=10)
    diff = result.get("difference")
    title = "Pareto fronts on the development prompts"
    if diff:
        title += (f"\nPEO − soup hypervolume: {fmt(diff['value'])}, {int(CI * 100)}% interval "
                  f"[{fmt(diff['interval'][0])}, {fmt(diff['interval'][1])}] (n = {result['n_prompts']} prompts)")
    ax.set_title(title, fontsize=11)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2, fontsize=8.5, frameon=False)
    fig.tight_layout()
    write_with(path, lambda tmp: fig.savefig(tmp, format="png"))


# ---------------------------------------------------------------- the markdown


def _pm(mean: float, se: float) -> str:
    return f"{fmt(mean)} ± {fmt(se, 2)}"


def _verdict(diff: dict[str, Any], n_prompts: int) -> str:
    value, (lo, hi) = diff["value"], diff["interval"]
    pct = int(CI * 100)
    numbers = f"{fmt(value)} ({pct}% bootstrap interval [{fmt(lo)}, {fmt(hi)}])"
    if diff["verdict"] == "peo_better":
        return (f"As measured on these {n_prompts} prompts, PEO's front dominates more area than soup's: the "
                f"hypervolume difference PEO − soup is {numbers}, and the interval excludes 0.")
    if diff["verdict"] == "soup_better":
        return (f"As measured on these {n_prompts} prompts, soup's front dominates more area than PEO's: the "
                f"hypervolume difference PEO − soup is {numbers}, and the interval excludes 0.")
    return (f"As measured on these {n_prompts} prompts, the hypervolume difference PEO − soup is {numbers}; the "
            f"interval does not exclude 0, so these numbers do not show that PEO's front beats soup's.")


def _front_table(front: dict[str, Any]) -> list[str]:
    lines = ["| model | λ | ϕ_help | ϕ_harm | c_help | c_harm | reward ± se | cost ± se | safe share |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for p in front["points"]:
        more = len(p["grid_points"]) - 1
        name = f"`{p['model_id']}`" + (f" (+{more} equivalent grid point{'s' if more > 1 else ''})" if more else "")
        lines.append(f"| {name} | {fmt(p['lambda_help'])} | {fmt(p['phi_help'])} | {fmt(p['phi_harm'])} | "
                     f"{fmt(p['c_help'])} | {fmt(p['c_harm'])} | {_pm(p['reward_mean'], p['reward_se'])} | "
                     f"{_pm(p['cost_mean'], p['cost_se'])} | {p['safe_share']:.0%} |")
    return lines


def _markdown(result: dict[str, Any], meta: dict | None) -> str:
    pct = int(CI * 100)
    ref = result["reference_point"]
    out = ["# PEO vs weight soup: Pareto fronts", ""]
    out.append(f"Measured on {result['n_prompts']} development prompts that every one of the {result['n_models']} "
               f"evaluated models answered"
               + (f" ({result['n_prompts_dropped']} prompts not answered by every model were left out)"
                  if result["n_prompts_dropped"] else "")
               + ". Reward is helpfulness (higher is better); cost is harmfulness (lower is better). "
               f"Intervals are {pct}% percentile bootstrap intervals over prompts ({result['n_boot']} draws, seed "
               f"{result['seed']}); every draw resamples the same prompts for every model and recomputes the means, "
               f"the fronts and their hypervolumes. The hypervolume reference point is (reward {fmt(ref['reward'])}, "
               f"cost {fmt(ref['cost'])}): the worst mean of all models, pushed out by {ref['margin']:.0%} of the range.")
    out += ["", "## Hypervolume", "", f"| front | models | front points | hypervolume | {pct}% interval |",
            "| --- | ---: | ---: | ---: | --- |"]
    names = {"peo": "PEO", "soup": "soup"}
    for method, front in result["fronts"].items():
        out.append(f"| {names[method]} | {front['n_models']} | {len(front['points'])} | {fmt(front['hypervolume'])} | "
                   f"[{fmt(front['interval'][0])}, {fmt(front['interval'][1])}] |")
    diff = result["difference"]
    if diff:
        out.append(f"| PEO − soup | | | {fmt(diff['value'])} | [{fmt(diff['interval'][0])}, "
                   f"{fmt(diff['interval'][1])}] |")
        out += ["", _verdict(diff, result["n_prompts"])]
        notes = []
        if diff["soup_models_within_peo"]:
            notes.append("Every soup model is also a PEO grid point (ϕ = 0), so PEO's hypervolume cannot be below "
                         "soup's in any draw; the question is only whether it is strictly above.")
        notes.append("Fronts are chosen and scored on the same prompts, so both hypervolumes lean optimistic, "
                     "PEO's more since it picks among more models; re-choosing the front in every bootstrap draw "
                     "accounts for part of this, not all of it.")
        out += [""] + [f"- {n}" for n in notes]
    peo = result["fronts"].get("peo")
    if peo:
        off_line = sum(1 for p in peo["points"] if (p["phi_help"] or 0) != 0 or (p["phi_harm"] or 0) != 0)
        out += ["", f"{off_line} of the {len(peo['points'])} points on PEO's front have ϕ ≠ 0 (off the soup line)."]
    for method, front in result["fronts"].items():
        out += ["", f"## {names[method]} front (cost ascending)", ""] + _front_table(front)
    if result["baselines"]:
        front_names = [names[m] for m in result["fronts"]]
        out += ["", "## Baselines", "",
                "| baseline | model | c_help | c_harm | reward ± se | cost ± se | safe share | "
                + " | ".join(f"dominated by {n} front" for n in front_names) + " |",
                "| --- | --- | ---: | ---: | ---: | ---: | ---: | " + " | ".join("---" for _ in front_names) + " |"]
        for method, b in result["baselines"].items():
            dom = " | ".join("yes" if b["dominated_by_front"][m] else "no" for m in result["fronts"])
            out.append(f"| {method} | `{b['model_id']}` | {fmt(b['c_help'])} | {fmt(b['c_harm'])} | "
                       f"{_pm(b['reward_mean'], b['reward_se'])} | {_pm(b['cost_mean'], b['cost_se'])} | "
                       f"{b['safe_share']:.0%} | {dom} |")
    out += _meta_sections(meta or {})
    out += ["", "![Pareto fronts](front.png)", ""]
    return "\n".join(out)


def _meta_sections(meta: dict) -> list[str]:
    out: list[str] = []
    evaluators = meta.get("evaluators") or {}
    if evaluators:
        out += ["", "## Evaluators", "", "| evaluator | held-out accuracy | held-out pairs | offset |",
                "| --- | ---: | ---: | ---: |"]
        for kind, ev in evaluators.items():
            acc = ev.get("held_out_accuracy")
            out.append(f"| {kind} | {'–' if acc is None else f'{acc:.1%}'} | {ev.get('held_out_pairs', '–')} | "
                       f"{fmt(_num(ev.get('offset')))} |")
    timings = meta.get("timings_seconds") or {}
    if timings:
        out += ["", "## Timings", "", "| stage | seconds |", "| --- | ---: |"]
        for stage, seconds in timings.items():
            shown = f"{float(seconds):.1f}" if isinstance(seconds, (int, float)) else str(seconds)
            out.append(f"| {stage} | {shown} |")
    machine = meta.get("machine") or {}
    facts = [f"profile `{meta['profile']}`" if meta.get("profile") else None,
             f"base model `{meta['base_model']}`" if meta.get("base_model") else None,
             f"device {machine['device']}" if machine.get("device") else None]
    facts = [f for f in facts if f]
    if facts:
        out += ["", "Run: " + ", ".join(facts) + "."]
    return out


# ---------------------------------------------------------------- entry point


def write_report(grid: pd.DataFrame, answers: pd.DataFrame, out_dir: Path, *, n_boot: int, seed: int,
                 meta: dict | None = None) -> dict:
    """Compute the fronts and write `front.png`, `report.md`, `fronts.json` into out_dir; return fronts.json's dict.

    fronts.json: n_prompts, n_prompts_dropped, n_models, n_boot, seed, ci, reference_point {reward, cost, margin},
    fronts {peo, soup: n_models, model_ids, indices, grid_rows, points [...], hypervolume, interval [lo, hi]},
    difference {a, b, value, interval, excludes_zero, verdict, soup_models_within_peo} (None without both methods),
    baselines {ref, help, harm, joint: model_id, c_help, c_harm, means, se, safe_share, dominated_by_front}.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = compute_fronts(grid, answers, n_boot=n_boot, seed=seed)
    g = grid.copy()
    g["model_id"] = g["model_id"].astype(str)
    model_ids, _, rm, cm = score_matrices(g, answers)
    means = {m: (float(rm[i].mean()), float(cm[i].mean())) for i, m in enumerate(model_ids)}
    _plot(out_dir / "front.png", g, result, means)
    write_text(out_dir / "report.md", _markdown(result, meta))
    write_json(out_dir / "fronts.json", result)
    return result
