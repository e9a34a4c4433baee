"""What training made: each aspect policy's summary and gain over the reference, each evaluator's accuracy.

The policies' training summaries and held-out implicit-reward accuracy (adapters/training.json), each aspect
policy against the reference on its own evaluator (test prompts, paired bootstrap), and the evaluators' held-out
accuracy with a Wilson interval and by their own confidence (meta.json).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from peo.evaluation_stats import accuracy_by_confidence, finite_or_none, paired_bootstrap_difference, wilson_interval
from peo.names import REFERENCE
from precompute.report_inputs import distinct_models
from precompute.report_scores import SplitScores
from precompute.report_words import CI


def _accuracy_entry(h: dict[str, Any]) -> dict[str, Any]:
    """One held-out implicit-reward check, with a Wilson interval next to the stored normal one."""
    acc, pairs = finite_or_none(h.get("accuracy")), h.get("pairs")
    wilson = wilson_interval(round(acc * pairs), int(pairs)) if acc is not None and pairs else (None, None)
    interval = h.get("interval") or [None, None]
    return {"aspect": h.get("aspect"), "pairs": pairs, "prompts": h.get("prompts"), "accuracy": acc,
            "accuracy_se": finite_or_none(h.get("accuracy_se")), "interval": [finite_or_none(v) for v in interval],
            "wilson_interval": [finite_or_none(v) for v in wilson], "mean_margin": finite_or_none(h.get("mean_margin"))}


def policy_summaries(training: dict | None) -> dict[str, Any]:
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


def policy_gains(grid: pd.DataFrame, test: SplitScores, n_boot: int, seed: int) -> dict[str, Any]:
    """Each aspect policy against the reference on its own evaluator, paired over its aspect's test prompts, in
    its direction: e.g. reward gained by DPO-Help, cost removed by DPO-Harm (positive = the policy learned its
    aspect, as scored)."""
    ref = distinct_models(grid, REFERENCE)
    if ref.empty or not test.has(str(ref["model_id"].iloc[0])):
        return {}
    ref_id = str(ref["model_id"].iloc[0])
    out = {}
    for column, aspect in enumerate(test.aspects):  # matrices() gives one matrix per evaluator, in this order
        rows = distinct_models(grid, aspect.name)
        if rows.empty or not test.has(str(rows["model_id"].iloc[0])):
            continue
        mid = str(rows["model_id"].iloc[0])
        policy, reference = test.matrices([mid])[column][0], test.matrices([ref_id])[column][0]
        better = aspect.sign  # a gain is a better score: more reward, or less cost
        gain, lo, hi = paired_bootstrap_difference(better * policy, better * reference, n_boot, seed, CI)
        out[aspect.name] = {"evaluator": aspect.evaluator, "model_id": mid, "n_prompts": policy.size,
                            "prompt_kind": aspect.name,
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


def evaluator_summaries(meta: dict | None) -> dict[str, Any]:
    return {kind: _evaluator(ev) for kind, ev in ((meta or {}).get("evaluators") or {}).items()
            if isinstance(ev, dict)}
