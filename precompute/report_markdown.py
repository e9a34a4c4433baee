"""The report's text: report.md, written from what `precompute.report_fronts.compute_fronts` returns."""

from __future__ import annotations

from typing import Any

from peo import answer_checks
from peo.evaluation_stats import finite_or_none
from peo.names import BASELINE_LABELS
from precompute.report_fronts import CI, FRONT_METHODS, FRONT_NAMES, METHOD_WORDS, VERDICT_WORDS, fmt


def pct(x: float | None, digits: int = 0) -> str:
    """A share as a percentage, '–' when unknown."""
    x = finite_or_none(x)
    return "–" if x is None else f"{x:.{digits}%}"


def _pm(mean: float | None, se: float | None) -> str:
    return f"{fmt(mean)} ± {fmt(se, 2)}"


def _interval(iv: list[float | None]) -> str:
    return f"[{fmt(iv[0])}, {fmt(iv[1])}]"


def _verdict(diff: dict[str, Any], n_test: int) -> str:
    """The plain verdict, worded no stronger than the interval allows."""
    numbers = f"{fmt(diff['value'])}, {int(CI * 100)}% bootstrap interval {_interval(diff['interval'])}"
    a, b = METHOD_WORDS[diff["a"]], METHOD_WORDS[diff["b"]]
    if diff["verdict"] in (f"{diff['a']}_better", f"{diff['b']}_better"):
        win, lose = (a, b) if diff["verdict"] == f"{diff['a']}_better" else (b, a)
        why = (f"the interval excludes 0: on these {n_test} test prompts the dev-chosen {win} front dominates more "
               f"area than the dev-chosen {lose} front")
    else:
        why = (f"the interval includes 0, so these {n_test} test prompts do not show either front to be better "
               f"than the other")
    return f"{numbers}. Verdict: **{VERDICT_WORDS[diff['verdict']]}**; {why}."


def _headline(result: dict[str, Any]) -> list[str]:
    n, limit = result["n_prompts"], result["max_loop_share"]
    out = ["## Headline", ""]
    if not result["difference"]:
        return out + ["PEO and soup were not both in the grid: no difference to report."]
    out.append(f"**PEO − soup hypervolume on {n['test']} test prompts, for fronts chosen on {n['dev']} dev prompts "
               f"(loop filter ≤ {limit * 100:g}%):** " + _verdict(result["difference"], n["test"]))
    out += ["", "**The same without the loop filter:** " + _verdict(result["difference_unfiltered"], n["test"])]
    if result.get("difference_vs_expo"):
        out += ["", "**PEO − ExPO** (θ_ref + α·Δ_joint, the single-vector extrapolation of the joint DPO policy; "
                "its front chosen on the same dev prompts among its α values): "
                + _verdict(result["difference_vs_expo"], n["test"])]
    return out


def _method_text(result: dict[str, Any]) -> list[str]:
    n, dropped, ref = result["n_prompts"], result["n_prompts_dropped"], result["reference_point"]
    left_out = "; ".join(f"{dropped[s]} {s} prompts not answered by every {s}-scored model were left out"
                         for s in ("dev", "test") if dropped[s])
    return ["", "## How these numbers were made", "",
            f"Each front is chosen on the dev prompts ({n['dev']} prompts, {result['n_models']['dev']} models: the "
            f"non-dominated models by their dev means, with the loop filter only among models whose dev answers "
            f"loop at most {result['max_loop_share'] * 100:g}% of the time) and then scored, as a fixed set, on "
            f"the {n['test']} test prompts that all {result['n_models']['test']} test-scored models answered"
            + (f" ({left_out})" if left_out else "") + ". A chosen point that is dominated on test adds nothing "
            f"to its front's hypervolume. Intervals are {int(CI * 100)}% percentile bootstrap intervals over test "
            f"prompts ({result['n_boot']} draws, seed {result['seed']}); each draw resamples the same prompts for "
            f"every model, so the PEO − soup difference is paired. Reference point (reward {fmt(ref['reward'])}, "
            f"cost {fmt(ref['cost'])}): the worst test means of all test-scored models, pushed out by "
            f"{ref['margin']:.0%} of the range. Reward is helpfulness (higher is better); cost is harmfulness "
            f"(lower is better)."]


def _hypervolume_table(result: dict[str, Any]) -> list[str]:
    out = ["", "## Hypervolume on test prompts", "",
           f"| front | candidates (dev) | chosen | non-dominated on test | hypervolume | {int(CI * 100)}% interval |",
           "| --- | ---: | ---: | ---: | ---: | --- |"]
    for name, f in result["fronts"].items():
        on_front = sum(p["on_test_front"] for p in f["points"])
        out.append(f"| {FRONT_NAMES[name]} | {f['n_models']} | {f['n_chosen']} | {on_front} | "
                   f"{fmt(f['hypervolume'])} | {_interval(f['interval'])} |")
    for key, label in (("difference", "PEO − soup"), ("difference_unfiltered", "PEO − soup, no loop filter"),
                       ("difference_vs_expo", "PEO − ExPO")):
        if result.get(key):
            out.append(f"| {label} | | | | {fmt(result[key]['value'])} | {_interval(result[key]['interval'])} |")
    return out + _in_sample_text(result["in_sample_dev"])


def _in_sample_text(ins: dict[str, Any]) -> list[str]:
    out = ["", f"**In-sample (dev, optimistic):** fronts chosen and scored on the same {ins['n_prompts']} dev "
               f"prompts (loop filter ≤ {ins['max_loop_share'] * 100:g}%, front re-chosen in every draw, own "
               f"reference point): "]
    parts = [f"{m} {fmt(ins[m]['hypervolume'])} {_interval(ins[m]['interval'])}" for m in FRONT_METHODS if m in ins]
    if ins.get("difference"):
        d = ins["difference"]
        parts.append(f"PEO − soup {fmt(d['value'])} {_interval(d['interval'])}")
    out[-1] += "; ".join(parts) + (". Selection and scoring on the same prompts flatter PEO most, since it picks "
                                   "among many more models; the test figures above are the ones to quote.")
    return out


def _front_table(name: str, front: dict[str, Any]) -> list[str]:
    lines = ["", f"## {FRONT_NAMES[name]} (chosen on dev, dev cost ascending; figures on test)", "",
             "| model | λ | ϕ_help | ϕ_harm | c_help | c_harm | reward ± se | cost ± se | safe | loops | refusal "
             "(harmful) | over-refusal (benign) | words | non-dominated on test | dev reward | dev cost | dev loops |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: "
             "| ---: | ---: |"]
    if not front["points"]:
        return lines[:2] + ["No model passed the filter: the front is empty (hypervolume 0)."]
    for p in front["points"]:
        more = len(p["grid_points"]) - 1
        plural = "s" if more > 1 else ""
        name_cell = f"`{p['model_id']}`" + (f" (+{more} equivalent grid point{plural})" if more else "")
        lines.append(f"| {name_cell} | {fmt(p['lambda_help'])} | {fmt(p['phi_help'])} | {fmt(p['phi_harm'])} | "
                     f"{fmt(p['c_help'])} | {fmt(p['c_harm'])} | {_pm(p['reward_mean'], p['reward_se'])} | "
                     f"{_pm(p['cost_mean'], p['cost_se'])} | {pct(p['safe_share'])} | {pct(p['loop_share'])} | "
                     f"{pct(p['refusal_share'])} | {pct(p['over_refusal_share'])} | {fmt(p['mean_words'], 3)} | "
                     f"{'yes' if p['on_test_front'] else 'no'} | {fmt(p['dev']['reward_mean'])} | "
                     f"{fmt(p['dev']['cost_mean'])} | {pct(p['dev']['loop_share'])} |")
    return lines


def _off_line_text(result: dict[str, Any]) -> list[str]:
    peo = result["fronts"].get("peo")
    if not peo or not peo["points"]:
        return []
    off = sum(1 for p in peo["points"] if (p["phi_help"] or 0) != 0 or (p["phi_harm"] or 0) != 0)
    return ["", f"{off} of the {len(peo['points'])} points of the loop-filtered PEO front have ϕ ≠ 0 (off the soup "
                f"line)."]


def _definitions() -> str:
    a = answer_checks
    return (f"Loops: the answer is empty, repeats some {a.LOOP_NGRAM}-word sequence {a.LOOP_REPEATS} or more times, "
            f"or has at least {a.LOOP_MIN_WORDS} words of which fewer than {a.LOOP_MIN_DISTINCT:.0%} are distinct. "
            f"Refuses: its first {a.REFUSAL_WINDOW} characters contain a refusal phrase (\"I can't\", \"I'm "
            f"sorry\", \"as an AI\", …; peo/answer_checks.py). Refusal share is over answers to harmful prompts, "
            f"over-refusal share over answers to benign prompts.")


def _signals_table(signals: list[dict[str, Any]]) -> list[str]:
    out = ["", "## Signals on test prompts", "", _definitions(), "",
           "| model | roles | reward ± se | cost ± se | loops | refusal (harmful) | over-refusal (benign) | words "
           "| cut at the token limit | n |",
           "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for s in signals:
        out.append(f"| `{s['model_id']}` | {s['label']} | {_pm(s['reward_mean'], s['reward_se'])} | "
                   f"{_pm(s['cost_mean'], s['cost_se'])} | {pct(s['loop_share'])} | {pct(s['refusal_share'])} | "
                   f"{pct(s['over_refusal_share'])} | {fmt(s['mean_words'], 3)} | {pct(s['cut_share'])} | {s['n']} |")
    return out


def _differ_table(differ: dict[str, Any]) -> list[str]:
    if not differ:
        return []
    out = ["", "## Do the merges change the answers?", "",
           "Share of test prompts whose two answers differ (compared as strings after stripping whitespace). A "
           "share near 0 means the merge changed (almost) nothing the evaluators could score.", "",
           "| a | b | prompts | answers differ | share |", "| --- | --- | ---: | ---: | ---: |"]
    for d in differ.values():
        out.append(f"| {d['a_label']} (`{d['a']}`) | {d['b_label']} (`{d['b']}`) | {d['n_prompts']} | "
                   f"{d['n_differ']} | {pct(d['share'], 1)} |")
    return out


def _baselines_table(result: dict[str, Any]) -> list[str]:
    if not result["baselines"]:
        return []
    methods = [m for m in FRONT_METHODS if m in result["fronts"]]
    out = ["", "## Baselines (test prompts)", "",
           "| baseline | model | c_help | c_harm | reward ± se | cost ± se | safe | loops | "
           + " | ".join(f"dominated by {FRONT_NAMES[m]}" for m in methods) + " |",
           "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | " + " | ".join("---" for _ in methods) + " |"]
    for method, b in result["baselines"].items():
        dom = " | ".join("yes" if b["dominated_by_front"][m] else "no" for m in methods)
        out.append(f"| {BASELINE_LABELS[method]} | `{b['model_id']}` | {fmt(b['c_help'])} | {fmt(b['c_harm'])} | "
                   f"{_pm(b['reward_mean'], b['reward_se'])} | {_pm(b['cost_mean'], b['cost_se'])} | "
                   f"{pct(b['safe_share'])} | {pct(b['loop_share'])} | {dom} |")
    return out


def _gains_table(gains: dict[str, Any]) -> list[str]:
    if not gains:
        return []
    out = ["", "Each aspect policy against the reference on its own evaluator, on the test prompts (paired "
               "bootstrap, 95%): reward gained by DPO-Help, cost removed by DPO-Harm.", "",
           "| policy | evaluator | prompts | policy mean | reference mean | gain | 95% interval "
           "| interval clear of 0 |",
           "| --- | --- | ---: | ---: | ---: | ---: | --- | --- |"]
    for aspect, g in gains.items():
        out.append(f"| {BASELINE_LABELS[aspect]} | {g['evaluator']} | {g['n_prompts']} | {fmt(g['policy_mean'])} | "
                   f"{fmt(g['reference_mean'])} | {fmt(g['gain'])} | {_interval(g['interval'])} | "
                   f"{'yes' if g['excludes_zero'] else 'no'} |")
    return out


def _policies_tables(policies: dict[str, Any], with_figure: bool, gains: dict[str, Any]) -> list[str]:
    if not policies and not gains:
        return []
    out = ["", "## Aspect policies"] + _gains_table(gains)
    rows = [f"| {policy} | {aspect} | {h['pairs'] or '–'} | {h['prompts'] or '–'} | {pct(h['accuracy'], 1)} | "
            f"[{pct(h['wilson_interval'][0], 1)}, {pct(h['wilson_interval'][1], 1)}] | {fmt(h['mean_margin'])} |"
            for policy, p in policies.items() for aspect, h in p["heldout"].items()]
    if rows:
        out += ["", "Held-out implicit-reward accuracy: a pair counts as right when β·(log π − log π_ref) is higher "
                    "for the chosen answer than for the rejected one. Interval: Wilson 95%.", "",
                "| policy | aspect | pairs | prompts | accuracy | 95% interval | mean margin |",
                "| --- | --- | ---: | ---: | ---: | --- | ---: |"] + rows
    out += ["", "| policy | steps | train pairs | final train loss | final train accuracy | final margin | seconds |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for policy, p in policies.items():
        out.append(f"| {policy} | {fmt(p['steps'], 6)} | {fmt(p['pairs'], 6)} | {fmt(p['final_loss'])} | "
                   f"{pct(p['final_reward_accuracy'], 1)} | {fmt(p['final_reward_margin'])} | "
                   f"{fmt(p['seconds'], 6)} |")
    return out + (["", "![Training curves](training.png)"] if with_figure else [])


def _evaluators_tables(evaluators: dict[str, Any]) -> list[str]:
    if not evaluators:
        return []
    out = ["", "## Evaluators", "",
           "| evaluator | held-out accuracy | 95% interval (Wilson) | held-out pairs | prompts | layers | l2 | CV "
           "accuracy | train pairs | offset |", "| --- | ---: | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |"]
    for kind, ev in evaluators.items():
        layers = ",".join(map(str, ev["layers"])) if ev["layers"] else "–"
        out.append(f"| {kind} | {pct(ev['held_out_accuracy'], 1)} | [{pct(ev['interval'][0], 1)}, "
                   f"{pct(ev['interval'][1], 1)}] | {ev['held_out_pairs'] or '–'} | {ev['held_out_prompts'] or '–'} | "
                   f"{layers} | {fmt(ev['l2'])} | {pct(ev['cv_accuracy'], 1)} | {ev['train_pairs'] or '–'} | "
                   f"{fmt(ev['offset'])} |")
    rows = [(kind, g) for kind, ev in evaluators.items() for g in ev["by_confidence"]]
    if rows:
        out += ["", "Accuracy by the evaluator's own confidence: held-out pairs ranked by |score difference| and "
                    "split into quartiles by rank (1 = least confident). If accuracy does not rise with confidence, "
                    "the evaluator's larger score gaps are no more reliable on these pairs (groups are small: read "
                    "the differences with their sizes in mind).", "",
                "| evaluator | quartile | score gap range | pairs | accuracy |", "| --- | ---: | --- | ---: | ---: |"]
        out += [f"| {kind} | {g['group']} | {fmt(g['margin_min'], 3)} – {fmt(g['margin_max'], 3)} | {g['n']} | "
                f"{pct(g['accuracy'], 1)} |" for kind, g in rows]
    return out


def _meta_sections(meta: dict) -> list[str]:
    out: list[str] = []
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


def markdown(result: dict[str, Any], meta: dict | None, with_training_figure: bool) -> str:
    out = ["# PEO vs weight soup: fronts chosen on dev prompts, scored on test prompts", ""]
    out += _headline(result) + _method_text(result) + _hypervolume_table(result) + _off_line_text(result)
    for name, front in result["fronts"].items():
        out += _front_table(name, front)
    out += _signals_table(result["signals"]) + _differ_table(result["answers_differ"])
    out += _baselines_table(result)
    out += _policies_tables(result["policies"], with_training_figure, result["policy_gains"])
    out += _evaluators_tables(result["evaluators"])
    out += _meta_sections(meta or {})
    out += ["", "![Pareto fronts on test prompts](front.png)", ""]
    return "\n".join(out)
