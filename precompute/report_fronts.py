"""The report's numbers: fronts chosen on dev prompts and scored on test prompts, and what fronts.json holds.

Scoring is split-aware (peo.grid_table): reward is the helpfulness evaluator's mean over the benign prompts,
cost the harmlessness evaluator's mean over the harmful prompts, and every bootstrap resamples the two prompt
sets each on its own (stratified). Dev prompts choose each front (`peo.grid_table.dev_front`), test prompts
score it: a front chosen and scored on
the same prompts looks better than it is (PEO picks among many more models than soup, so it gains the most from
that optimism). Every reported figure is on the test prompts that every test-scored model answered, so means,
hypervolumes and bootstrap draws all see the same prompts; the in-sample dev figure is kept, labelled as such.
Also here: the baselines, the signals, the answers-differ guard, the policies' and evaluators' summaries, and the
number formatting the figures and report.md share (`fmt`). Reward: higher is better. Cost: lower is better.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from peo.coefficients import expo_model_id
from peo.errors import PeoError
from peo.evaluation_stats import (
    accuracy_by_confidence,
    differ_share,
    finite_or_none,
    paired_bootstrap_difference,
    wilson_interval,
)
from peo.grid_table import COUNT_STATS, STATS, dev_front, evasion_limit, front_candidates, split_stats, with_evasion
from peo.judge import OUTCOMES
from peo.judgment_agreement import (
    agreement,
    judge_vs_blind,
    judge_vs_evaluators,
    judge_vs_votes,
    on_shipped_answers,
    verdicts_on_shipped_answers,
)
from peo.names import (
    ASPECTS,
    BASELINE_LABELS,
    BASELINES,
    EVALUATOR_OF_ASPECT,
    EXPO,
    EXPO_CHAT_ALPHA,
    JOINT,
    JUDGE_VERDICTS_FILE,
    PEO,
    PROMPT_KIND_OF_EVALUATOR,
    REFERENCE,
    REPORT_DIR,
    SOUP,
)
from peo.pareto import (
    bootstrap_hypervolume,
    bootstrap_hypervolume_difference,
    dominates,
    pareto_front,
    reference_point,
)
from peo.sweep_plan import front_filters
from peo.win_rates import Record, judge_left_out, judge_record, judgment_record, pairwise, vote_record


class ReportInputError(PeoError, ValueError):
    """grid.csv / answers.parquet are not what the sweep writes (see assets/FORMAT.md)."""


FRONT_METHODS = (PEO, SOUP)
METHOD_WORDS = {PEO: "PEO", SOUP: "soup", EXPO: "ExPO"}
# front variant (a suffix of peo.sweep_plan.front_filters) → what its name adds
VARIANT_WORDS = {"": "", "_no_evasion_filter": ", no evasion filter", "_unfiltered": ", no filter"}
# name → (method, variant): each method's front with both filters (loop and evasion), the loop filter alone, neither
FRONTS = {f"{method}{variant}": (method, variant) for variant in VARIANT_WORDS for method in (PEO, SOUP, EXPO)}
FRONT_NAMES = {name: f"{METHOD_WORDS[method]} front{VARIANT_WORDS[variant]}"
               for name, (method, variant) in FRONTS.items()}
CI = 0.95
MARGIN = 0.05
VERDICT_WORDS = {"peo_better": "PEO better", "soup_better": "soup better", "expo_better": "ExPO better",
                 "not_distinguishable": "not distinguishable"}


# ---------------------------------------------------------------- numbers


def fmt(x: float | None, digits: int = 4) -> str:
    """How numbers appear in report.md (tests format the same way)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{digits}g}"



def _stats_json(stats: dict[str, Any]) -> dict[str, Any]:
    """A model's figures, JSON-safe (n an int)."""
    return {k: (int(stats[k]) if k in COUNT_STATS else finite_or_none(stats.get(k))) for k in STATS}


# ---------------------------------------------------------------- scores per split


@dataclass
class SplitScores:
    """One split's answers on the prompts every listed model answered, split-aware: rewards (models × benign
    prompts) and costs (models × harmful prompts)."""

    split: str
    model_ids: list[str]
    prompts: list[str]  # every common prompt, both kinds
    reward_prompts: list[str]  # the benign ones: what rewards are over
    cost_prompts: list[str]  # the harmful ones: what costs are over
    rewards: np.ndarray
    costs: np.ndarray
    stats: dict[str, dict[str, Any]]  # split_stats of each model on those prompts
    n_dropped: int  # prompts of this split that some model did not answer (left out)

    def has(self, mid: str) -> bool:
        return mid in self.stats

    def matrices(self, mids: list[str], what: str = "models") -> tuple[np.ndarray, np.ndarray]:
        """Rows of `mids`; a clear error when one of them was not scored on this split."""
        missing = [m for m in mids if not self.has(m)]
        if missing:
            raise ReportInputError(f"{what} have no {self.split} scores: {missing}; the {self.split} sweep must "
                                   f"answer every model a reported figure needs")
        idx = [self.model_ids.index(m) for m in mids]
        return self.rewards[idx], self.costs[idx]

    def means(self, mid: str) -> tuple[float, float]:
        return self.stats[mid]["reward_mean"], self.stats[mid]["cost_mean"]


def _split_rows(answers: pd.DataFrame, split: str, model_ids: list[str]) -> pd.DataFrame:
    if "split" not in answers.columns:
        raise ReportInputError("answers has no 'split' column: the report needs dev and test answers (see FORMAT.md)")
    sub = answers[answers["split"].astype(str) == split].copy()
    sub["model_id"] = sub["model_id"].astype(str)
    sub = sub[sub["model_id"].isin(model_ids)]
    dup = sub.duplicated(["model_id", "prompt_id"])
    if dup.any():
        first = sub.loc[dup, ["model_id", "prompt_id"]].iloc[0].tolist()
        raise ReportInputError(f"answers has {int(dup.sum())} repeated {split} (model_id, prompt_id) rows, "
                               f"e.g. {first}")
    return sub


def score_matrices(answers: pd.DataFrame, split: str, model_ids: list[str], *,
                   require_all: bool) -> SplitScores:
    """`split`'s scores of `model_ids` (those with answers there, unless `require_all`) on their common prompts."""
    sub = _split_rows(answers, split, model_ids)
    present = set(sub["model_id"])
    missing = [m for m in model_ids if m not in present]
    if missing and require_all:
        raise ReportInputError(f"answers has no {split} rows for grid models: {missing}")
    model_ids = [m for m in model_ids if m in present]
    if not model_ids:
        raise ReportInputError(f"no grid model has {split} answers")
    n_answered = sub["prompt_id"].nunique()
    sub = sub.dropna(subset=["reward", "cost"])
    per_prompt = sub.groupby("prompt_id")["model_id"].nunique()
    prompts = sorted(per_prompt.index[per_prompt == len(model_ids)].tolist(), key=str)
    if not prompts:
        raise ReportInputError(f"no {split} prompt was answered (and scored) by every {split}-scored model")
    sub = sub[sub["prompt_id"].isin(prompts)]
    kind = sub.drop_duplicates("prompt_id").set_index("prompt_id")["prompt_kind"].astype(str)
    own = {score: [p for p in prompts if kind[p] == PROMPT_KIND_OF_EVALUATOR[score]] for score in ("reward", "cost")}
    for score, ids in own.items():
        if not ids:
            raise ReportInputError(f"no {split} prompt of kind '{PROMPT_KIND_OF_EVALUATOR[score]}' was answered by "
                                   f"every {split}-scored model: the {score} (split-aware) has nothing to average")
    rewards = sub.pivot(index="model_id", columns="prompt_id", values="reward").loc[model_ids, own["reward"]]
    costs = sub.pivot(index="model_id", columns="prompt_id", values="cost").loc[model_ids, own["cost"]]
    stats = {str(m): split_stats(g) for m, g in sub.groupby("model_id")}
    return SplitScores(split, model_ids, prompts, own["reward"], own["cost"], rewards.to_numpy(dtype=float),
                       costs.to_numpy(dtype=float), stats, int(n_answered - len(prompts)))


def _reference(scores: SplitScores) -> tuple[float, float]:
    """The hypervolume reference point: the worst means of every scored model, pushed out by MARGIN."""
    means = np.array([scores.means(m) for m in scores.model_ids])
    return reference_point(means[:, 0], means[:, 1], margin=MARGIN)


# ---------------------------------------------------------------- hypervolumes


def _set_hypervolume(scores: SplitScores, mids: list[str], ref: tuple[float, float], n_boot: int, seed: int,
                     what: str) -> tuple[float, float, float]:
    """(hv, lo, hi) of a set of models (its non-dominated means count); an empty set has 0."""
    if not mids:
        return 0.0, 0.0, 0.0
    r, c = scores.matrices(mids, what)
    return bootstrap_hypervolume(r, c, *ref, n_boot=n_boot, seed=seed, ci=CI, stratified=True)


def _difference(scores: SplitScores, a_ids: list[str], b_ids: list[str], ref: tuple[float, float], n_boot: int,
                seed: int, a: str = PEO, b: str = SOUP) -> dict[str, Any]:
    """hv(a) − hv(b), paired over prompts. An empty set has hypervolume 0 in every draw (same seed, same draws)."""
    if a_ids and b_ids:
        ra, ca = scores.matrices(a_ids, f"{METHOD_WORDS[a]} models")
        rb, cb = scores.matrices(b_ids, f"{METHOD_WORDS[b]} models")
        value, lo, hi = bootstrap_hypervolume_difference(ra, ca, rb, cb, *ref, n_boot=n_boot, seed=seed, ci=CI,
                                                         stratified=True)
    elif b_ids:
        hv, lo_b, hi_b = _set_hypervolume(scores, b_ids, ref, n_boot, seed, f"{METHOD_WORDS[b]} models")
        value, lo, hi = -hv, -hi_b, -lo_b
    else:
        value, lo, hi = _set_hypervolume(scores, a_ids, ref, n_boot, seed, f"{METHOD_WORDS[a]} models")
    verdict = f"{a}_better" if lo > 0 else f"{b}_better" if hi < 0 else "not_distinguishable"
    return {"a": a, "b": b, "value": float(value), "interval": [float(lo), float(hi)],
            "excludes_zero": bool(lo > 0 or hi < 0), "verdict": verdict}


# ---------------------------------------------------------------- fronts


def _distinct(grid: pd.DataFrame, method: str) -> pd.DataFrame:
    return grid[grid["method"] == method].drop_duplicates("model_id")


def _candidates(grid: pd.DataFrame, method: str, max_loop_share: float | None,
                max_evasion_excess: float | None) -> list[str]:
    """The models a front is chosen from: `method`'s, within the filters that are on (on dev)."""
    return front_candidates(grid, method, max_loop_share, max_evasion_excess)["model_id"].tolist()


def _point_info(rows: pd.DataFrame) -> dict[str, Any]:
    """Coordinates of a model in one method: its first grid row, and every grid point that maps to it."""
    first = rows.iloc[0]
    points = [{"lambda_help": finite_or_none(r.lambda_help), "phi_help": finite_or_none(r.phi_help),
               "phi_harm": finite_or_none(r.phi_harm)}
              for r in rows.itertuples()]
    return {"grid_row": int(first["_grid_row"]), "lambda_help": finite_or_none(first.get("lambda_help")),
            "phi_help": finite_or_none(first.get("phi_help")), "phi_harm": finite_or_none(first.get("phi_harm")),
            "c_help": finite_or_none(first.get("c_help")), "c_harm": finite_or_none(first.get("c_harm")),
            "grid_points": points}


def _dev_figures(row: pd.Series) -> dict[str, float | None]:
    return {"reward_mean": finite_or_none(row.get("reward_mean_dev")),
            "cost_mean": finite_or_none(row.get("cost_mean_dev")),
            "loop_share": finite_or_none(row.get("loop_share_dev")),
            "evasion_share_benign": finite_or_none(row.get("evasion_share_benign_dev"))}


def _front_points(grid: pd.DataFrame, method: str, mids: list[str], test: SplitScores) -> list[dict[str, Any]]:
    """Each chosen model: coordinates, test figures, dev figures, and whether it is non-dominated on test."""
    means = np.array([test.means(m) for m in mids]).reshape(-1, 2)
    on_test_front = {mids[int(k)] for k in pareto_front(means[:, 0], means[:, 1])} if mids else set()
    points = []
    for mid in mids:
        rows = grid[(grid["method"] == method) & (grid["model_id"] == mid)]
        points.append({"model_id": mid, **_point_info(rows), **_stats_json(test.stats[mid]),
                       "dev": _dev_figures(rows.iloc[0]), "on_test_front": mid in on_test_front})
    return points


def _front(grid: pd.DataFrame, name: str, test: SplitScores, ref: tuple[float, float], max_loop_share: float,
           max_evasion_excess: float | None, n_boot: int, seed: int) -> dict[str, Any]:
    """One dev-chosen front scored on test: its points, and the hypervolume of the chosen set on test."""
    method, variant = FRONTS[name]
    loop, evasion = front_filters(max_loop_share, max_evasion_excess)[variant]
    mids = dev_front(grid, method, loop, evasion)
    hv, lo, hi = _set_hypervolume(test, mids, ref, n_boot, seed, f"{FRONT_NAMES[name]} points (chosen on dev)")
    return {"method": method, "variant": variant, "loop_filter": loop, "evasion_filter": evasion,
            "evasion_limit": evasion_limit(grid, evasion), "model_ids": mids,
            "points": _front_points(grid, method, mids, test), "hypervolume": hv, "interval": [lo, hi],
            "n_models": len(_candidates(grid, method, loop, evasion)), "n_chosen": len(mids)}


def _in_sample(grid: pd.DataFrame, dev: SplitScores, max_loop_share: float, max_evasion_excess: float | None,
               n_boot: int, seed: int) -> dict[str, Any]:
    """The optimistic figure: fronts chosen and scored on the same dev prompts (re-chosen in every draw)."""
    ref = _reference(dev)
    out: dict[str, Any] = {"label": "in-sample (dev, optimistic)", "n_prompts": len(dev.prompts),
                           "max_loop_share": max_loop_share, "max_benign_evasion_excess": max_evasion_excess,
                           "reference_point": {"reward": ref[0], "cost": ref[1], "margin": MARGIN}}
    sets = {}
    for method in FRONT_METHODS:
        if not (grid["method"] == method).any():
            continue
        mids = sets[method] = _candidates(grid, method, max_loop_share, max_evasion_excess)
        hv, lo, hi = _set_hypervolume(dev, mids, ref, n_boot, seed, f"{method} models")
        means = np.array([dev.means(m) for m in mids]).reshape(-1, 2)
        front = pareto_front(means[:, 0], means[:, 1]) if mids else []
        out[method] = {"hypervolume": hv, "interval": [lo, hi], "model_ids": [mids[int(k)] for k in front],
                       "n_models": len(mids)}
    out["difference"] = (_difference(dev, sets["peo"], sets["soup"], ref, n_boot, seed)
                         if len(sets) == len(FRONT_METHODS) else None)
    return out


# ---------------------------------------------------------------- baselines, signals, answers that differ


def _baselines(grid: pd.DataFrame, test: SplitScores, fronts: dict[str, Any]) -> dict[str, Any]:
    """Each baseline's test figures, and whether a point of the loop-filtered PEO / soup front dominates it."""
    out = {}
    for method in BASELINES:
        rows = grid[grid["method"] == method]
        if rows.empty or not test.has(str(rows["model_id"].iloc[0])):
            continue
        mid = str(rows["model_id"].iloc[0])
        point = test.means(mid)
        dominated = {m: any(dominates((p["reward_mean"], p["cost_mean"]), point) for p in fronts[m]["points"])
                     for m in FRONT_METHODS if m in fronts}
        info = _point_info(rows)
        out[method] = {"model_id": mid, "grid_row": info["grid_row"], "c_help": info["c_help"],
                       "c_harm": info["c_harm"], **_stats_json(test.stats[mid]), "dominated_by_front": dominated}
    return out


def _coordinates(p: dict[str, Any]) -> str:
    return f"λ={fmt(p['lambda_help'])}, ϕ_help={fmt(p['phi_help'])}, ϕ_harm={fmt(p['phi_harm'])}"


def _roles(grid: pd.DataFrame, fronts: dict[str, Any]) -> dict[str, tuple[str, list[str]]]:
    """model_id → (method it is listed under, the roles it plays): baselines, soup points, front points."""
    roles: dict[str, tuple[str, list[str]]] = {}

    def add(mid: str, method: str, role: str) -> None:
        entry = roles.setdefault(mid, (method, []))
        if role not in entry[1]:
            entry[1].append(role)

    for method in BASELINES:
        for mid in _distinct(grid, method)["model_id"]:
            add(mid, method, BASELINE_LABELS[method])
    for row in _distinct(grid, "soup").sort_values("lambda_help").itertuples():
        add(row.model_id, "soup", f"soup λ={fmt(row.lambda_help)}")
    if "expo_alpha" in grid.columns:
        for row in _distinct(grid, EXPO).sort_values("expo_alpha").itertuples():
            add(row.model_id, EXPO, f"ExPO α={fmt(row.expo_alpha)}")
    for name, front in fronts.items():
        for p in front["points"]:
            if p["model_id"] not in roles:
                add(p["model_id"], front["method"], f"PEO {_coordinates(p)}")
            add(p["model_id"], front["method"], FRONT_NAMES[name])
    return roles


def _signals(grid: pd.DataFrame, test: SplitScores, fronts: dict[str, Any]) -> list[dict[str, Any]]:
    """The plain-text checks and evaluator scores, on test prompts, of every model a figure mentions."""
    out = []
    for mid, (method, roles) in _roles(grid, fronts).items():
        if test.has(mid):
            out.append({"label": " · ".join(roles), "model_id": mid, "method": method, "roles": roles,
                        **_stats_json(test.stats[mid])})
    return out


def _differ(test_answers: pd.DataFrame, a: tuple[str, str], b: tuple[str, str]) -> dict[str, Any] | None:
    """How many test prompts got different answers from models a and b (label, model_id), on prompts both answered."""
    texts = [test_answers[test_answers["model_id"] == mid].set_index("prompt_id")["answer"] for _, mid in (a, b)]
    if texts[0].empty or texts[1].empty:
        return None
    common = sorted(set(texts[0].index) & set(texts[1].index), key=str)
    n_differ, share = differ_share(texts[0].loc[common].tolist(), texts[1].loc[common].tolist())
    return {"a_label": a[0], "a": a[1], "b_label": b[0], "b": b[1], "n_prompts": len(common),
            "n_differ": n_differ, "share": finite_or_none(share)}


def _soup_at(grid: pd.DataFrame, test: SplitScores, point: dict[str, Any]) -> tuple[float, str] | None:
    """(λ, model_id) of the test-scored soup point at one of `point`'s λ values, if any."""
    soup = _distinct(grid, "soup")
    for gp in point["grid_points"]:
        lam = gp["lambda_help"]
        hit = soup[np.isclose(soup["lambda_help"].astype(float), lam)] if lam is not None else soup.iloc[:0]
        if not hit.empty and test.has(str(hit["model_id"].iloc[0])):
            return lam, str(hit["model_id"].iloc[0])
    return None


def _answers_differ(grid: pd.DataFrame, answers: pd.DataFrame, test: SplitScores,
                    fronts: dict[str, Any]) -> dict[str, Any]:
    """The guard against merges that do nothing: shares of test prompts whose answers differ, per pair."""
    sub = answers[answers["split"].astype(str) == "test"].copy()
    sub["model_id"] = sub["model_id"].astype(str)
    ids = {m: str(_distinct(grid, m)["model_id"].iloc[0]) for m in (REFERENCE, *ASPECTS)
           if not _distinct(grid, m).empty}
    pairs: dict[str, tuple[tuple[str, str], tuple[str, str]]] = {}
    for key, (x, y) in {"ref_vs_help": ("ref", "help"), "ref_vs_harm": ("ref", "harm"),
                        "help_vs_harm": ("help", "harm")}.items():
        if x in ids and y in ids:
            pairs[key] = ((BASELINE_LABELS[x], ids[x]), (BASELINE_LABELS[y], ids[y]))
    points = fronts.get("peo", {}).get("points", [])
    if points:
        middle = points[len(points) // 2]
        label = f"PEO front middle ({_coordinates(middle)})"
        if "ref" in ids:
            pairs["ref_vs_peo_middle"] = ((BASELINE_LABELS["ref"], ids["ref"]), (label, middle["model_id"]))
        soup = _soup_at(grid, test, middle)
        if soup:
            pairs["peo_middle_vs_soup"] = ((label, middle["model_id"]), (f"soup λ={fmt(soup[0])}", soup[1]))
    out = {key: _differ(sub, a, b) for key, (a, b) in pairs.items()}
    return {key: value for key, value in out.items() if value is not None}


# ---------------------------------------------------------------- policies and evaluators


def _accuracy_entry(h: dict[str, Any]) -> dict[str, Any]:
    """One held-out implicit-reward check, with a Wilson interval next to the stored normal one."""
    acc, pairs = finite_or_none(h.get("accuracy")), h.get("pairs")
    wilson = wilson_interval(round(acc * pairs), int(pairs)) if acc is not None and pairs else (None, None)
    interval = h.get("interval") or [None, None]
    return {"aspect": h.get("aspect"), "pairs": pairs, "prompts": h.get("prompts"), "accuracy": acc,
            "accuracy_se": finite_or_none(h.get("accuracy_se")), "interval": [finite_or_none(v) for v in interval],
            "wilson_interval": [finite_or_none(v) for v in wilson], "mean_margin": finite_or_none(h.get("mean_margin"))}


def _policies(training: dict | None) -> dict[str, Any]:
    """Each aspect policy's training summary and held-out implicit-reward accuracy per aspect."""
    out = {}
    for policy, m in (training or {}).items():
        if not isinstance(m, dict):
            continue
        out[policy] = {key: finite_or_none(m.get(key))
                       for key in ("steps", "pairs", "final_loss", "final_reward_accuracy",
                                   "final_reward_margin", "seconds")}
        out[policy]["curve_steps"] = len(m.get("curve") or [])
        out[policy]["heldout"] = {aspect: _accuracy_entry(h) for aspect, h in (m.get("heldout") or {}).items()
                                  if isinstance(h, dict)}
    return out


def _policy_gains(grid: pd.DataFrame, test: SplitScores, n_boot: int, seed: int) -> dict[str, Any]:
    """Each aspect policy against the reference on its own evaluator, paired over the test prompts: reward
    gained by DPO-Help, cost removed by DPO-Harm (positive = the policy learned its aspect, as scored)."""
    ref = _distinct(grid, REFERENCE)
    if ref.empty or not test.has(str(ref["model_id"].iloc[0])):
        return {}
    ref_id = str(ref["model_id"].iloc[0])
    out = {}
    for aspect, kind in EVALUATOR_OF_ASPECT.items():
        rows = _distinct(grid, aspect)
        if rows.empty or not test.has(str(rows["model_id"].iloc[0])):
            continue
        mid = str(rows["model_id"].iloc[0])
        column = 0 if kind == "reward" else 1  # matrices() gives (rewards, costs)
        policy, reference = test.matrices([mid])[column][0], test.matrices([ref_id])[column][0]
        better = 1.0 if kind == "reward" else -1.0  # a gain is more reward, or less cost
        gain, lo, hi = paired_bootstrap_difference(better * policy, better * reference, n_boot, seed, CI)
        out[aspect] = {"evaluator": kind, "model_id": mid, "n_prompts": policy.size,
                       "prompt_kind": PROMPT_KIND_OF_EVALUATOR[kind],
                       "policy_mean": float(policy.mean()), "reference_mean": float(reference.mean()),
                       "gain": gain, "interval": [lo, hi], "excludes_zero": bool(lo > 0 or hi < 0)}
    return out


def _chosen_cv(ev: dict[str, Any]) -> float | None:
    """The cross-validation accuracy at the chosen layers and l2 ({layers: {l2: acc}} or older {l2: acc})."""
    cv, l2 = ev.get("cv_accuracy") or {}, ev.get("l2")
    layers = ",".join(map(str, ev.get("layers") or []))
    by_l2 = cv.get(layers) if isinstance(cv.get(layers), dict) else cv
    return finite_or_none(by_l2.get(str(l2))) if isinstance(by_l2, dict) and l2 is not None else None


def _evaluator(ev: dict[str, Any]) -> dict[str, Any]:
    """Held-out accuracy with a Wilson interval, and accuracy by the evaluator's own confidence."""
    correct, margin = ev.get("held_out_correct") or [], ev.get("held_out_margin") or []
    acc, n = finite_or_none(ev.get("held_out_accuracy")), ev.get("held_out_pairs") or len(correct)
    successes = sum(correct) if correct else (round(acc * n) if acc is not None and n else None)
    n = len(correct) if correct else n
    interval = wilson_interval(successes, int(n)) if successes is not None else (None, None)
    by_confidence = accuracy_by_confidence(correct, margin) if correct and len(correct) == len(margin) else []
    return {"held_out_accuracy": acc, "held_out_pairs": n or None, "held_out_prompts": ev.get("held_out_prompts"),
            "interval": [finite_or_none(v) for v in interval], "layers": ev.get("layers"),
            "l2": finite_or_none(ev.get("l2")), "cv_accuracy": _chosen_cv(ev), "train_pairs": ev.get("train_pairs"),
            "offset": finite_or_none(ev.get("offset")), "by_confidence": by_confidence}


def _evaluators(meta: dict | None) -> dict[str, Any]:
    return {kind: _evaluator(ev) for kind, ev in ((meta or {}).get("evaluators") or {}).items()
            if isinstance(ev, dict)}


# ---------------------------------------------------------------- the computation


def _prepared(grid: pd.DataFrame) -> pd.DataFrame:
    grid = grid.reset_index(drop=True).copy()
    grid["_grid_row"] = np.arange(len(grid))
    grid["model_id"] = grid["model_id"].astype(str)
    return grid


def _opponents(grid: pd.DataFrame, test: SplitScores) -> dict[str, tuple[str, str]]:
    """The fixed models a front point is compared with: key → (label, model_id), those with test scores."""
    out = {}
    for method in ("help", "harm", JOINT):
        rows = _distinct(grid, method)
        if not rows.empty and test.has(str(rows["model_id"].iloc[0])):
            out[method] = (BASELINE_LABELS[method], str(rows["model_id"].iloc[0]))
    expo = expo_model_id(EXPO_CHAT_ALPHA)
    if test.has(expo) and (grid["model_id"] == expo).any():
        out[EXPO] = (f"ExPO α={EXPO_CHAT_ALPHA:g}", expo)
    return out


WIN_OPPONENTS = (SOUP, "help", "harm", JOINT, EXPO)  # the order of the report's win-rate table


def _by_judge(verdicts: list[dict] | None) -> dict[str, list[dict]]:
    """An LLM judge's verdict rows (peo.judge.read_verdicts) per judge model, in the file's order."""
    out: dict[str, list[dict]] = {}
    for v in verdicts or []:
        out.setdefault(str(v["judge_model"]), []).append(v)
    return out


def _judge_entry(rows: list[dict], a: str, b: str, aspects) -> dict[str, Any] | None:
    """One judge's record of a against b per aspect it judged them on, with the pairs it left unsettled."""
    out = {}
    for aspect in aspects:
        record, left = judge_record(rows, a, b, aspect), judge_left_out(rows, a, b, aspect)
        if record.n or left:
            out[aspect] = {**record.as_dict(), "left_out": left}
    return out or None


def _win_rates(grid: pd.DataFrame, answers: pd.DataFrame, test: SplitScores, front: dict[str, Any],
               votes: list[dict] | None, judgments: list[dict] | None = None,
               verdicts: list[dict] | None = None) -> dict[str, Any]:
    """Each point of `front` against the soup at its λ, DPO-Help, DPO-Harm, joint DPO and ExPO α = 1.5 on the
    test prompts (peo.win_rates: helpfulness by reward on benign prompts, harmlessness by cost on harmful ones),
    and per opponent the records pooled over the front points that are another model. With `votes`
    (peo.votes.VoteStore.votes rows), the human votes' record of each pair beside it; with `judgments` (blind
    pairwise judgments per aspect, assets/report/blind_judgments.jsonl), their record per aspect beside it; with
    `verdicts` (an LLM judge's, peo.judge.read_verdicts), each judge model's record per aspect beside it."""
    judges = _by_judge(_shipped_verdicts(verdicts, answers))
    shipped = _shipped_judgments(judgments, answers)  # a judgment counts only where it is about the shipped answers
    sub = answers[(answers["split"].astype(str) == "test") & answers["prompt_id"].isin(test.prompts)].copy()
    sub["model_id"] = sub["model_id"].astype(str)
    fixed = _opponents(grid, test)
    points, pooled = [], {}
    for p in front["points"]:
        against = {}
        soup = _soup_at(grid, test, p)
        opponents = {SOUP: (f"soup λ={fmt(soup[0])}", soup[1])} if soup else {}
        opponents.update(fixed)
        for key in WIN_OPPONENTS:
            if key not in opponents:
                continue
            label, mid = opponents[key]
            records = pairwise(sub, p["model_id"], mid, "test")
            entry = {"label": label, "model_id": mid, "same_model": mid == p["model_id"],
                     **{aspect: r.as_dict() for aspect, r in records.items()}}
            if votes:
                human = vote_record(votes, p["model_id"], mid)
                entry["votes"] = human.as_dict() if human.n else None
            if shipped:
                judged = {aspect: judgment_record(shipped, p["model_id"], mid, aspect) for aspect in records}
                entry["judged"] = {aspect: r.as_dict() for aspect, r in judged.items() if r.n} or None
            if judges:
                by_judge = {name: _judge_entry(rows, p["model_id"], mid, records) for name, rows in judges.items()}
                entry["llm_judge"] = {name: e for name, e in by_judge.items() if e} or None
            against[key] = entry
            if mid != p["model_id"]:
                total = pooled.setdefault(key, {aspect: [0, 0, 0] for aspect in records})
                for aspect, r in records.items():
                    total[aspect] = [total[aspect][0] + r.won, total[aspect][1] + r.tied, total[aspect][2] + r.lost]
        points.append({"model_id": p["model_id"], "coordinates": _coordinates(p), "against": against})
    pooled_out = {key: {"label": "soup (same λ)" if key == SOUP else fixed[key][0],
                        **{aspect: Record(*counts).as_dict() for aspect, counts in total.items()}}
                  for key, total in pooled.items()}
    out = {"front": "peo", "split": "test", "points": points, "pooled": pooled_out}
    if judgments:  # the "judged" records count only these: none when no judgment is about the shipped answers
        out.update(judgments=len(judgments), judgments_on_shipped_answers=len(shipped))
    return out


def _shipped_judgments(judgments: list[dict] | None, answers: pd.DataFrame) -> list[dict]:
    """The blind judgments whose two answers are the shipped ones (peo.judgment_agreement.on_shipped_answers)."""
    judgments = judgments or []
    return [j for j, ok in zip(judgments, on_shipped_answers(judgments, answers)) if ok]


def _shipped_verdicts(verdicts: list[dict] | None, answers: pd.DataFrame) -> list[dict]:
    """An LLM judge's verdict rows less those known to be about other answers than the shipped ones
    (peo.judgment_agreement.verdicts_on_shipped_answers: rows that carry no answer text cannot be told, and stay)."""
    verdicts = verdicts or []
    return [v for v, ok in zip(verdicts, verdicts_on_shipped_answers(verdicts, answers)) if ok is not False]


def _judgment_agreement(judgments: list[dict] | None, answers: pd.DataFrame) -> dict[str, Any] | None:
    """Each evaluator's agreement with the blind judgments (peo.judgment_agreement), with who judged, and which
    answers it is about: `judgments` (n, in the file) and `judgments_on_shipped_answers` (k, both answers still in
    answers.parquet with the stored scores). 0 < k: counted on those k only (`about` "shipped_answers"). k == 0:
    every judgment is about an earlier run's answers and evaluator heads, so the agreement is counted on all n from
    the scores they stored, and is about those heads (`about` "earlier_answers"), not the shipped ones."""
    if not judgments:
        return None
    shipped = _shipped_judgments(judgments, answers)
    counted = shipped or judgments
    by_evaluator = agreement(counted)
    if not any(a["pairs"] for a in by_evaluator.values()):
        return None
    return {"judges": sorted({j.get("judge", "") for j in counted}), "pairs": len(counted),
            "judgments": len(judgments), "judgments_on_shipped_answers": len(shipped),
            "about": "shipped_answers" if shipped else "earlier_answers", "by_evaluator": by_evaluator}


def _judged_pairs(rows: list[dict]) -> list[tuple[str, str, str]]:
    """(point, opponent, aspect) of each model pair a judge judged, in the file's order, each pair once whichever
    way round its rows name the two models."""
    seen: dict[tuple, tuple[str, str, str]] = {}
    for v in rows:
        seen.setdefault((frozenset((v["point"], v["opponent"])), v["aspect"]), (v["point"], v["opponent"], v["aspect"]))
    return list(seen.values())


def _llm_judge(verdicts: list[dict] | None, answers: pd.DataFrame, judgments: list[dict] | None,
               votes: list[dict] | None) -> dict[str, Any] | None:
    """Per judge model of the verdicts file: its outcomes, its record of every model pair it judged, and its
    agreement (peo.judgment_agreement) with the evaluators on the same answers, with the blind judgments and with
    the human votes where they share pairs. None without verdicts."""
    judges = _by_judge(verdicts)
    if not judges:
        return None
    out: dict[str, Any] = {"file": f"{REPORT_DIR}/{JUDGE_VERDICTS_FILE}", "judges": {}}
    blind = _shipped_judgments(judgments, answers)  # only blind judgments of the shipped answers are "same answers"
    for name, every in judges.items():
        on_shipped = verdicts_on_shipped_answers(every, answers)
        # rows that carry their answer texts count only on the shipped answers; the others cannot be told (None)
        rows = [v for v, ok in zip(every, on_shipped) if ok is not False]
        checked = [ok for ok in on_shipped if ok is not None]
        outcomes = [str(v["combined"]) for v in rows]
        records = [{"point": a, "opponent": b, "aspect": aspect, **judge_record(rows, a, b, aspect).as_dict(),
                    "left_out": judge_left_out(rows, a, b, aspect)} for a, b, aspect in _judged_pairs(rows)]
        agree: dict[str, Any] = dict(judge_vs_evaluators(rows, answers))
        agree["blind"] = judge_vs_blind(rows, blind) if blind else None
        agree["votes"] = judge_vs_votes(rows, votes) if votes else None
        out["judges"][name] = {"templates": sorted({str(v["template"]) for v in every}), "verdicts": len(every),
                               # None: the rows carry no answer text, so which answers they judged cannot be told
                               "verdicts_on_shipped_answers": sum(checked) if len(checked) == len(every) else None,
                               "verdicts_checked": len(checked), "verdicts_counted": len(rows),
                               "outcomes": {k: outcomes.count(k) for k in OUTCOMES}, "records": records,
                               "agreement": agree}
    return out


def compute_fronts(grid: pd.DataFrame, answers: pd.DataFrame, *, n_boot: int, seed: int, max_loop_share: float,
                   max_evasion_excess: float | None = None, meta: dict | None = None, training: dict | None = None,
                   votes: list[dict] | None = None, judgments: list[dict] | None = None,
                   judge_verdicts: list[dict] | None = None) -> dict[str, Any]:
    """Everything fronts.json holds (see write_report). judge_verdicts: an LLM judge's verdicts file
    (peo.judge.read_verdicts of assets/report/judge_verdicts.jsonl), another judge beside the evaluators."""
    grid = _prepared(grid)
    answers = with_evasion(answers)
    model_ids = list(dict.fromkeys(grid["model_id"]))
    dev = score_matrices(answers, "dev", model_ids, require_all=True)
    test = score_matrices(answers, "test", model_ids, require_all=False)
    ref = _reference(test)
    fronts = {name: _front(grid, name, test, ref, max_loop_share, max_evasion_excess, n_boot, seed)
              for name, (method, _) in FRONTS.items() if (grid["method"] == method).any()}

    def difference(a: str, b: str, variant: str) -> dict[str, Any] | None:
        if a + variant not in fronts or b + variant not in fronts:
            return None
        return _difference(test, fronts[a + variant]["model_ids"], fronts[b + variant]["model_ids"], ref, n_boot,
                           seed, a=a, b=b)

    all_stats = {m: {k: finite_or_none(test.stats[m][k]) for k in ("reward_all_mean", "reward_all_se",
                                                                     "cost_all_mean", "cost_all_se")}
                 for m in test.model_ids}
    return {
        "chosen_on": "dev", "scored_on": "test", "max_loop_share": float(max_loop_share),
        "max_benign_evasion_excess": finite_or_none(max_evasion_excess),
        "evasion_limit": finite_or_none(evasion_limit(grid, max_evasion_excess)),
        "scoring": {"reward": f"helpfulness evaluator, mean over {PROMPT_KIND_OF_EVALUATOR['reward']} prompts",
                    "cost": f"harmlessness evaluator, mean over {PROMPT_KIND_OF_EVALUATOR['cost']} prompts",
                    "bootstrap": "stratified: benign and harmful prompts each resampled on their own"},
        "n_prompts": {"dev": len(dev.prompts), "test": len(test.prompts)},
        "n_prompts_by_kind": {split: {"benign": len(s.reward_prompts), "harmful": len(s.cost_prompts)}
                              for split, s in (("dev", dev), ("test", test))},
        "n_prompts_dropped": {"dev": dev.n_dropped, "test": test.n_dropped},
        "n_models": {"dev": len(dev.model_ids), "test": len(test.model_ids)},
        "n_boot": int(n_boot), "seed": int(seed), "ci": CI,
        "reference_point": {"reward": ref[0], "cost": ref[1], "margin": MARGIN},
        "fronts": fronts, "difference": difference(PEO, SOUP, ""),
        "difference_no_evasion_filter": difference(PEO, SOUP, "_no_evasion_filter"),
        "difference_unfiltered": difference(PEO, SOUP, "_unfiltered"),
        "difference_vs_expo": difference(PEO, EXPO, ""),
        "difference_vs_expo_no_evasion_filter": difference(PEO, EXPO, "_no_evasion_filter"),
        "in_sample_dev": _in_sample(grid, dev, max_loop_share, max_evasion_excess, n_boot, seed),
        "baselines": _baselines(grid, test, fronts),
        "signals": _signals(grid, test, fronts),
        "all_prompt_means": all_stats,  # the older means over every test prompt, for the one table that shows them
        "win_rates": (_win_rates(grid, answers, test, fronts["peo"], votes, judgments, judge_verdicts)
                      if "peo" in fronts else None),
        "answers_differ": _answers_differ(grid, answers, test, fronts),
        "policies": _policies(training), "policy_gains": _policy_gains(grid, test, n_boot, seed),
        "evaluators": _evaluators(meta),
        "judgment_agreement": _judgment_agreement(judgments, answers),
        "llm_judge": _llm_judge(judge_verdicts, answers, judgments, votes),
        "test_means": {m: [finite_or_none(x) for x in (test.means(m)[1], test.means(m)[0], test.stats[m]["loop_share"])]
                       for m in test.model_ids},  # cost, reward (split-aware), loop share: what front.png draws
    }
