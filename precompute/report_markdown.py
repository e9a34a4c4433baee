"""The report's text: report.md, written from what `precompute.report_fronts.compute_fronts` returns.

Tables have a column per aspect (its evaluator's mean, its coefficients); with the two shipped aspects the text is
that of the help/harm report. What is only about help and harm (the blind judgments, the LLM judge, the evasion
filter of benign prompts, the 2-D front.png) is shown where the run has them, and said to be left out otherwise.
"""

from __future__ import annotations

from typing import Any

from peo import answer_checks
from peo.aspects import DEFAULT_ASPECTS, Aspects
from peo.evaluation_stats import finite_or_none
from peo.judgment_agreement import confirmed
from precompute.report_figures import can_plot_front
from precompute.report_words import (
    CI,
    FRONT_METHODS,
    FRONT_NAMES,
    METHOD_WORDS,
    VERDICT_WORDS,
    fmt,
    has_judged_aspects,
    prompts_list,
    prompts_word,
    win_opponents,
)


def pct(x: float | None, digits: int = 0) -> str:
    """A share as a percentage, '–' when unknown."""
    x = finite_or_none(x)
    return "–" if x is None else f"{x:.{digits}%}"


def _pm(mean: float | None, se: float | None) -> str:
    return f"{fmt(mean)} ± {fmt(se, 2)}"


def _interval(iv: list[float | None]) -> str:
    return f"[{fmt(iv[0])}, {fmt(iv[1])}]"


def _verdict(diff: dict[str, Any], n_test: int, aspects: Aspects = DEFAULT_ASPECTS) -> str:
    """The plain verdict, worded no stronger than the interval allows."""
    area = "area" if len(aspects) == 2 else "volume"
    numbers = f"{fmt(diff['value'])}, {int(CI * 100)}% bootstrap interval {_interval(diff['interval'])}"
    a, b = METHOD_WORDS[diff["a"]], METHOD_WORDS[diff["b"]]
    if diff["verdict"] in (f"{diff['a']}_better", f"{diff['b']}_better"):
        win, lose = (a, b) if diff["verdict"] == f"{diff['a']}_better" else (b, a)
        why = (f"the interval excludes 0: on these {n_test} test prompts the dev-chosen {win} front dominates more "
               f"{area} than the dev-chosen {lose} front")
    else:
        why = (f"the interval includes 0, so these {n_test} test prompts do not show either front to be better "
               f"than the other")
    return f"{numbers}. Verdict: **{VERDICT_WORDS[diff['verdict']]}**; {why}."


def _filters_text(result: dict[str, Any]) -> str:
    """The default fronts' filters in words."""
    text = f"loop filter ≤ {result['max_loop_share'] * 100:g}%"
    excess, limit = result.get("max_benign_evasion_excess"), result.get("evasion_limit")
    if excess is None:
        return text + ", no evasion filter"
    if limit is None:
        return text + ", evasion filter off (no evasion figures in these answers)"
    return (text + f", evasion filter: benign evasion ≤ the reference's + {excess * 100:g} points = "
            f"{limit * 100:.0f}% on dev")


def _headline(result: dict[str, Any], aspects: Aspects) -> list[str]:
    n = result["n_prompts"]
    out = ["## Headline", ""]
    if not result["difference"]:
        return out + ["PEO and soup were not both in the grid: no difference to report."]
    kinds = result.get("n_prompts_by_kind", {}).get("test", {})
    each = ", ".join(f"{a.evaluator} on the {kinds.get(prompts_word(a.name), '–')} {prompts_word(a.name)} ones"
                     for a in aspects)
    where = f"{n['test']} test prompts ({each})"
    out.append(f"**PEO − soup hypervolume, split-aware, on {where}, for fronts chosen on {n['dev']} dev prompts "
               f"({_filters_text(result)}):** " + _verdict(result["difference"], n["test"], aspects))
    if result.get("difference_no_evasion_filter"):
        out += ["", "**The same without the evasion filter** (loop filter only): "
                + _verdict(result["difference_no_evasion_filter"], n["test"], aspects)]
    if result.get("difference_unfiltered"):
        out += ["", "**The same without any filter:** " + _verdict(result["difference_unfiltered"], n["test"], aspects)]
    for key, words in (("difference_vs_expo", ""), ("difference_vs_expo_no_evasion_filter",
                                                      ", without the evasion filter")):
        if result.get(key):
            out += ["", f"**PEO − ExPO{words}** (θ_ref + α·Δ_joint, the single-vector extrapolation of the joint "
                    "DPO policy; its front chosen on the same dev prompts among its α values): "
                    + _verdict(result[key], n["test"], aspects)]
    return out


def _directions_text(aspects: Aspects) -> str:
    if aspects == DEFAULT_ASPECTS:
        return "Reward is helpfulness (higher is better); cost is harmfulness (lower is better)."
    return "Each evaluator's direction: " + "; ".join(
        f"{a.evaluator} scores {a.label} ({a.better} is better)" for a in aspects) + "."


def _split_aware_text(aspects: Aspects) -> str:
    if aspects == DEFAULT_ASPECTS:
        return ("**Split-aware scoring.** Each evaluator is read where its aspect lives: a model's reward is the "
                "helpfulness evaluator's mean over the benign (helpfulness) prompts only, its cost the harmlessness "
                "evaluator's mean over the harmful prompts only, on dev (to choose the fronts) as on test (to score "
                "them). Standard errors are over those prompts, and every bootstrap draw resamples the benign and the "
                "harmful prompts each on its own (stratified), the same prompts for every model. The older means over "
                "every prompt are kept in grid.csv (`reward_all_mean`, `cost_all_mean`) and in one table below, "
                "labelled as such: there the cost head also charged ordinary answers to benign questions, so a point "
                "that declined them looked harmless.")
    each = ", its ".join(f"{a.evaluator} is the {a.label} evaluator's mean over the {prompts_word(a.name)} prompts "
                         "only" for a in aspects)
    kept = ", ".join(f"`{e}_all_mean`" for e in aspects.evaluators)
    return (f"**Split-aware scoring.** Each evaluator is read where its aspect lives: a model's {each}, on dev (to "
            "choose the fronts) as on test (to score them). Standard errors are over those prompts, and every "
            f"bootstrap draw resamples the {prompts_list(aspects)} prompts each on their own (stratified), the "
            f"same prompts for every model. The means over every prompt are kept in grid.csv ({kept}) and in one "
            "table below, labelled as such.")


def _n_aspects_text(aspects: Aspects) -> list[str]:
    """With more than two aspects: what the fronts are over, and what the report leaves out."""
    if len(aspects) == 2:
        return [] if can_plot_front(aspects) else [
            "", "The 2-D front figure (front.png) draws a higher-is-better aspect against a lower-is-better one; "
                "this run's two aspects are not such a pair, so this report has none."]
    names = ", ".join(f"{a.evaluator} ({'↑' if a.better == 'higher' else '↓'})" for a in aspects)
    out = ["", f"**{len(aspects)} aspects.** Every front is Pareto over the {len(aspects)} evaluators' test means "
               f"({names}), each in its direction, and every hypervolume is the {len(aspects)}-dimensional volume "
               "it dominates up to the reference point. The 2-D front figure (front.png) is drawn for two aspects "
               "only, so this report has none; the tables give every point's means."]
    if not has_judged_aspects(aspects):
        out[-1] += (" The blind judgments and the LLM judge are about helpfulness and harmlessness (help and harm "
                    "prompts, reward and cost): this run lacks those aspects, so they are left out, and the "
                    "plain-text checks of help and harm prompts (refusal, evasion, safe, complied) are empty (–).")
    return out


def _method_text(result: dict[str, Any], aspects: Aspects) -> list[str]:
    n, dropped, ref = result["n_prompts"], result["n_prompts_dropped"], result["reference_point"]
    left_out = "; ".join(f"{dropped[s]} {s} prompts not answered by every {s}-scored model were left out"
                         for s in ("dev", "test") if dropped[s])
    return ["", "## How these numbers were made", "",
            f"Each front is chosen on the dev prompts ({n['dev']} prompts, {result['n_models']['dev']} models: the "
            f"non-dominated models by their split-aware dev means, among the models within the filters below) and "
            f"then scored, as a fixed set, on "
            f"the {n['test']} test prompts that all {result['n_models']['test']} test-scored models answered"
            + (f" ({left_out})" if left_out else "") + ". A chosen point that is dominated on test adds nothing "
            f"to its front's hypervolume. Intervals are {int(CI * 100)}% percentile bootstrap intervals over test "
            f"prompts ({result['n_boot']} draws, seed {result['seed']}); each draw resamples the same prompts for "
            f"every model ({prompts_list(aspects)} prompts each on their own), so the PEO − soup difference is "
            f"paired. Reference point ("
            + ", ".join(f"{e} {fmt(ref[e])}" for e in aspects.evaluators)
            + f"): the worst test means of all test-scored models, pushed out by "
            f"{ref['margin']:.0%} of the range. " + _directions_text(aspects), "",
            _split_aware_text(aspects), "",
            f"**Filters.** The fronts are chosen with {_filters_text(result)}: a point whose dev answers loop more "
            "often, or whose answers to benign dev prompts evade (do not address the request: feigned confusion, "
            "an unrelated anecdote, a change of subject; peo/evasion.py) more often, is left out. The fronts "
            "without the evasion filter, and without any filter, are shown beside them." + _evasion_check_text(result),
            *_n_aspects_text(aspects)]


def _evasion_check_text(result: dict[str, Any]) -> str:
    check = result.get("evasion_check")
    if not check:
        return ""
    return (f" The evasion check against {check['labels']} hand-labelled answers it was not tuned on "
            f"(report/evasion_labels.jsonl): precision {pct(check['precision'])} "
            f"{_pct_interval(check['precision_interval'])}, "
            f"recall {pct(check['recall'])} {_pct_interval(check['recall_interval'])} (Wilson 95%): a coarse signal, "
            "so a share near the filter's limit is not a sharp verdict.")


def _hypervolume_table(result: dict[str, Any]) -> list[str]:
    out = ["", "## Hypervolume on test prompts", "",
           f"| front | candidates (dev) | chosen | non-dominated on test | hypervolume | {int(CI * 100)}% interval |",
           "| --- | ---: | ---: | ---: | ---: | --- |"]
    for name, f in result["fronts"].items():
        on_front = sum(p["on_test_front"] for p in f["points"])
        out.append(f"| {FRONT_NAMES[name]} | {f['n_models']} | {f['n_chosen']} | {on_front} | "
                   f"{fmt(f['hypervolume'])} | {_interval(f['interval'])} |")
    for key, label in (("difference", "PEO − soup"), ("difference_no_evasion_filter", "PEO − soup, no evasion filter"),
                       ("difference_unfiltered", "PEO − soup, no filter"), ("difference_vs_expo", "PEO − ExPO"),
                       ("difference_vs_expo_no_evasion_filter", "PEO − ExPO, no evasion filter")):
        if result.get(key):
            out.append(f"| {label} | | | | {fmt(result[key]['value'])} | {_interval(result[key]['interval'])} |")
    return out + _in_sample_text(result["in_sample_dev"])


def _in_sample_text(ins: dict[str, Any]) -> list[str]:
    out = ["", f"**In-sample (dev, optimistic):** fronts chosen and scored on the same {ins['n_prompts']} dev "
               f"prompts (the same filters, front re-chosen in every draw, own "
               f"reference point): "]
    parts = [f"{m} {fmt(ins[m]['hypervolume'])} {_interval(ins[m]['interval'])}" for m in FRONT_METHODS if m in ins]
    if ins.get("difference"):
        d = ins["difference"]
        parts.append(f"PEO − soup {fmt(d['value'])} {_interval(d['interval'])}")
    out[-1] += "; ".join(parts) + (". Selection and scoring on the same prompts flatter PEO most, since it picks "
                                   "among many more models; the test figures above are the ones to quote.")
    return out


TEXT_SIGNAL_HEAD = ("safe (harmful) | loops | refusal (harmful) | over-refusal (benign) | evasion (benign) | "
                    "evasion (harmful) | complied (harmful)")
N_TEXT_SIGNALS = TEXT_SIGNAL_HEAD.count("|") + 1


def _signal_head(aspects: Aspects) -> str:
    """The signal columns' heads: each evaluator's split-aware mean ("reward (benign) ± se"), then the text checks."""
    return " | ".join(f"{a.evaluator} ({prompts_word(a.name)}) ± se" for a in aspects) + " | " + TEXT_SIGNAL_HEAD


def _n_signals(aspects: Aspects) -> int:
    return len(aspects) + N_TEXT_SIGNALS


def _separator(*kinds: tuple[str, int]) -> str:
    """A table's separator row: (alignment, how many columns) in order ("---" left, "---:" right)."""
    return "| " + " | ".join(align for align, n in kinds for _ in range(n)) + " |"


def _signal_cells(p: dict[str, Any], aspects: Aspects) -> str:
    """The split-aware scores and the text signals of one model, as report.md's table cells."""
    return ("".join(f"{_pm(p[f'{e}_mean'], p[f'{e}_se'])} | " for e in aspects.evaluators) +
            f"{pct(p['safe_share'])} | {pct(p['loop_share'])} | {pct(p['refusal_share'])} | "
            f"{pct(p['over_refusal_share'])} | {pct(p.get('evasion_share_benign'))} | "
            f"{pct(p.get('evasion_share_harmful'))} | {pct(p.get('complied_share'))}")


def _front_table(name: str, front: dict[str, Any], aspects: Aspects, same_as: str | None = None) -> list[str]:
    order = "dev cost ascending" if len(aspects) == 2 else "in grid order"
    head = f"## {FRONT_NAMES[name]} (chosen on dev, {order}; figures on test)"
    if same_as:
        n = len(front["points"])
        return ["", head, "", f"The same {n} point{'s' if n != 1 else ''} as the {FRONT_NAMES[same_as]}: the "
                              "filters it lacks left out none of the points that front chose."]
    lambdas = ["λ"] if len(aspects.lambda_columns) == 1 else [f"λ_{a}" for a in aspects.names[:-1]]
    coordinates = [*lambdas, *(f"ϕ_{a}" for a in aspects.names), *aspects.coefficient_columns]
    lines = ["", head, "",
             f"| model | {' | '.join(coordinates)} | {_signal_head(aspects)} | words | non-dominated on test | "
             + "".join(f"dev {e} | " for e in aspects.evaluators) + "dev loops | dev evasion (benign) |",
             _separator(("---", 1), ("---:", len(coordinates) + _n_signals(aspects) + 1), ("---", 1),
                        ("---:", len(aspects) + 2))]
    if not front["points"]:
        return lines[:2] + ["No model passed the filters: the front is empty (hypervolume 0)."]
    for p in front["points"]:
        more = len(p["grid_points"]) - 1
        plural = "s" if more > 1 else ""
        name_cell = f"`{p['model_id']}`" + (f" (+{more} equivalent grid point{plural})" if more else "")
        columns = (*aspects.point_columns, *aspects.coefficient_columns)
        lines.append(f"| {name_cell} | " + "".join(f"{fmt(p[c])} | " for c in columns)
                     + f"{_signal_cells(p, aspects)} | {fmt(p['mean_words'], 3)} | "
                     f"{'yes' if p['on_test_front'] else 'no'} | "
                     + "".join(f"{fmt(p['dev'][f'{e}_mean'])} | " for e in aspects.evaluators)
                     + f"{pct(p['dev']['loop_share'])} | {pct(p['dev'].get('evasion_share_benign'))} |")
    return lines


def _front_tables(fronts: dict[str, Any], aspects: Aspects) -> list[str]:
    """A table per front; a front that chose the same points as an earlier one of its method says so instead."""
    out: list[str] = []
    seen: dict[tuple[str, tuple[str, ...]], str] = {}
    for name, front in fronts.items():
        key = (front["method"], tuple(front["model_ids"]))
        out += _front_table(name, front, aspects, seen.get(key) if front["model_ids"] else None)
        seen.setdefault(key, name)
    return out


def _off_line_text(result: dict[str, Any], aspects: Aspects) -> list[str]:
    phi_columns = aspects.phi_columns
    peo = result["fronts"].get("peo")
    if not peo or not peo["points"]:
        return []
    off = sum(1 for p in peo["points"] if any((p[c] or 0) != 0 for c in phi_columns))
    return ["", f"{off} of the {len(peo['points'])} points of the (filtered) PEO front have ϕ ≠ 0 (off the soup "
                f"line)."]


def _definitions(aspects: Aspects) -> str:
    a = answer_checks
    return (f"Loops: the answer is empty, or its last {a.LOOP_TAIL_WORDS} words repeat some {a.LOOP_NGRAM}-word "
            f"sequence {a.LOOP_REPEATS} or more times or are at least {a.LOOP_MIN_WORDS} words of which fewer than "
            f"{a.LOOP_MIN_DISTINCT:.0%} are distinct (a loop runs to the end of an answer). "
            f"Refuses: its first {a.REFUSAL_WINDOW} characters contain a refusal phrase (\"I can't\", \"I'm "
            f"sorry\", \"as an AI\", …; peo/answer_checks.py). Refusal share is over answers to harmful prompts, "
            f"over-refusal share over answers to benign prompts. Evades: the answer does not address the request "
            f"(feigned confusion, an unrelated personal anecdote, a change of subject; a refusal that names the "
            f"request is not evasion; peo/evasion.py, validated on hand labels in report/evasion_*), shown on "
            f"benign and on harmful prompts. Complied: the share of harmful prompts answered with neither a refusal "
            f"nor evasion, which tells \"harmless because it declined\" (refusal) from \"harmless because it "
            f"babbled\" (evasion) from an answer that took the request on. Safe: the share of answers to harmful "
            f"prompts with cost ≤ 0. " + _split_aware_words(aspects))


def _split_aware_words(aspects: Aspects) -> str:
    if aspects == DEFAULT_ASPECTS:
        return "Reward and cost are split-aware (reward on benign, cost on harmful prompts)."
    return ("The evaluators' means are split-aware (" + ", ".join(
        f"{a.evaluator} on {prompts_word(a.name)}" for a in aspects) + " prompts).")


def _signals_table(signals: list[dict[str, Any]], aspects: Aspects) -> list[str]:
    out = ["", "## Signals on test prompts", "", _definitions(aspects), "",
           f"| model | roles | {_signal_head(aspects)} | words | cut at the token limit | n |",
           _separator(("---", 2), ("---:", _n_signals(aspects) + 3))]
    for s in signals:
        out.append(f"| `{s['model_id']}` | {s['label']} | {_signal_cells(s, aspects)} | {fmt(s['mean_words'], 3)} | "
                   f"{pct(s['cut_share'])} | {s['n']} |")
    return out


def _all_prompt_table(result: dict[str, Any], aspects: Aspects) -> list[str]:
    """The one table with the older means over every test prompt (benign and harmful alike), labelled as such."""
    means = result.get("all_prompt_means") or {}
    if not means:
        return []
    if aspects == DEFAULT_ASPECTS:
        intro = ("Each evaluator averaged over every test prompt, benign and harmful alike (the definition before "
                 "split-aware scoring; grid.csv `reward_all_mean`, `cost_all_mean`), beside the split-aware figures. "
                 "The cost head scores declining an ordinary request as harmless, so on the all-prompt cost a point "
                 "gains by not answering benign prompts.")
    else:
        intro = (f"Each evaluator averaged over every test prompt, {prompts_list(aspects)} alike (grid.csv "
                 + ", ".join(f"`{e}_all_mean`" for e in aspects.evaluators) + "), beside the split-aware figures.")
    heads = "".join(f"{a.evaluator}, all prompts ± se | {a.evaluator}, {prompts_word(a.name)} prompts ± se | "
                    for a in aspects)
    out = ["", "## The older all-prompt means (not what the fronts use)", "", intro, "",
           f"| model | roles | {heads.rstrip()}", _separator(("---", 2), ("---:", 2 * len(aspects)))]
    for s in result["signals"]:
        a = means.get(s["model_id"])
        if a:
            out.append(f"| `{s['model_id']}` | {s['label']} | " + "".join(
                f"{_pm(a[f'{e}_all_mean'], a[f'{e}_all_se'])} | {_pm(s[f'{e}_mean'], s[f'{e}_se'])} | "
                for e in aspects.evaluators).rstrip())
    return out


def _record_cell(r: dict[str, Any] | None) -> str:
    """'62% [52, 71] / 3% / 35% (n=100)': won [its Wilson interval] / tied / lost."""
    if not r or not r.get("n"):
        return "–"
    lo, hi = r["won_interval"]
    return (f"{pct(r['won_share'])} [{pct(lo)}, {pct(hi)}] / {pct(r['tied_share'])} / {pct(r['lost_share'])} "
            f"(n={r['n']})")


def _judge_cell(r: dict[str, Any] | None) -> str:
    """An LLM judge's record (_record_cell), and the pairs it left unsettled: '– (0 judged; 5 unparsed)'."""
    if not r:
        return "–"
    left = ", ".join(f"{n} {why}" for why, n in (r.get("left_out") or {}).items())
    cell = _record_cell(r) if r.get("n") else f"– (0 judged{'; ' if left else ''}{left})"
    return cell + (f" ({left} left out)" if left and r.get("n") else "")


def _judged_win_rates_note(wins: dict[str, Any]) -> str:
    """Which answers the blind judgments' columns are about (fronts.json win_rates: judgments n and
    judgments_on_shipped_answers k): nothing to say when k == n or without judgments."""
    n, k = wins.get("judgments"), wins.get("judgments_on_shipped_answers")
    if not n or k is None or k == n:
        return ""
    if k == 0:
        return (f" The {n} blind judgments (report/blind_judgments.jsonl) were made on answers of an earlier run "
                "(different answers and evaluator heads), none on the answers shipped here, so their win rates would "
                "be about those earlier answers: their columns are left out of this table.")
    return (f" Only {k} of the {n} blind judgments (report/blind_judgments.jsonl) are on the answers shipped here "
            "(answers.parquet holds both judged answers with the scores the judgment stored); their columns count "
            f"those {k} only, the other {n - k} being about answers that are not shipped.")


def _aspect_rules_text(aspects: Aspects) -> str:
    """How each aspect is judged in the win rates: "Helpfulness: reward on the benign test prompts (higher wins); …"."""
    text = "; ".join(f"{a.label}: {a.evaluator} on the {prompts_word(a.name)} test prompts ({a.better} wins)"
                     for a in aspects)
    return text[:1].upper() + text[1:] + "."


def _win_rate_tables(wins: dict[str, Any] | None, aspects: Aspects) -> list[str]:
    """The paper's win-rate table: each front point against each compared method, per aspect; then pooled."""
    if not wins or not wins["points"]:
        return []
    with_votes = any("votes" in e for p in wins["points"] for e in p["against"].values())
    with_judged = any(e.get("judged") for p in wins["points"] for e in p["against"].values())
    judged_note = _judged_win_rates_note(wins)
    llm_judges = list(dict.fromkeys(name for p in wins["points"] for e in p["against"].values()
                                    for name in (e.get("llm_judge") or {})))
    out = ["", "## Win rates on test prompts (PEO front points against each method)", "",
           "As the PEO paper reports them, paired by prompt: a front point wins a prompt when its answer scores "
           "better than the other model's answer to the same prompt, ties when the two scores are equal (or the "
           "answers are the same text), loses otherwise. " + _aspect_rules_text(aspects) + " Cells: won [Wilson 95% "
           "interval] / tied / lost, shares of the paired prompts. The front is the (filtered) PEO front chosen on dev."
           + (" Where blind pairwise judgments by a reader exist for the pair (report/blind_judgments.jsonl), their "
              "record is beside it, in the same form (ties are the reader's)." if with_judged else "")
           + judged_note
           + (" Where an LLM judge (`peo judge`, report/judge_verdicts.jsonl) judged the pair, its record is beside "
              "it: a win when both orders preferred the front point's answer, a tie when the orders disagreed; pairs "
              "it left unsettled (unparsed, refused, pending) are not counted, their number is given."
              if llm_judges else ""), "",
           "| front point | against | " + " | ".join(f"{a.label} ({prompts_word(a.name)}): won / tied / lost"
                                                   for a in aspects) + " |"
           + (" human votes: won / tied / lost |" if with_votes else "")
           + (" blind judgments, helpfulness | blind judgments, harmlessness |" if with_judged else "")
           + "".join(f" LLM judge `{name}`, helpfulness | LLM judge `{name}`, harmlessness |" for name in llm_judges),
           _separator(("---", 2 + len(aspects))) + (" --- |" if with_votes else "")
           + (" --- | --- |" if with_judged else "")
           + " --- | --- |" * len(llm_judges)]
    for p in wins["points"]:
        for key in win_opponents(aspects):
            e = p["against"].get(key)
            if e is None:
                continue
            against = f"{e['label']} (`{e['model_id']}`)" + (" (the same model)" if e["same_model"] else "")
            out.append(f"| `{p['model_id']}` ({p['coordinates']}) | {against} | "
                       + " | ".join(_record_cell(e[a.label]) for a in aspects) + " |"
                       + (f" {_record_cell(e.get('votes'))} |" if with_votes else "")
                       + (f" {_record_cell((e.get('judged') or {}).get('helpfulness'))} | "
                          f"{_record_cell((e.get('judged') or {}).get('harmlessness'))} |" if with_judged else "")
                       + "".join(f" {_judge_cell(((e.get('llm_judge') or {}).get(name) or {}).get('helpfulness'))} | "
                                 f"{_judge_cell(((e.get('llm_judge') or {}).get(name) or {}).get('harmlessness'))} |"
                                 for name in llm_judges))
    if wins.get("pooled"):
        out += ["", "Pooled over the front points (each point's prompts counted once per point; a point that is the "
                    "compared model itself is left out):", "",
                "| against | " + " | ".join(f"{a.label} ({prompts_word(a.name)}): won / tied / lost" for a in aspects)
                + " | " + " | ".join(f"{a.label}: won of decisive" for a in aspects) + " |",
                _separator(("---", 1 + len(aspects)), ("---:", len(aspects)))]
        for key in win_opponents(aspects):
            e = wins["pooled"].get(key)
            if e:
                out.append(f"| {e['label']} | " + " | ".join(_record_cell(e[a.label]) for a in aspects) + " | "
                           + " | ".join(pct(e[a.label]["decisive_share"]) for a in aspects) + " |")
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


def _baselines_table(result: dict[str, Any], aspects: Aspects) -> list[str]:
    if not result["baselines"]:
        return []
    methods = [m for m in FRONT_METHODS if m in result["fronts"]]
    out = ["", "## Baselines (test prompts)", "",
           f"| baseline | model | {' | '.join(aspects.coefficient_columns)} | {_signal_head(aspects)} | "
           + " | ".join(f"dominated by {FRONT_NAMES[m]}" for m in methods) + " |",
           _separator(("---", 2), ("---:", len(aspects) + _n_signals(aspects)))[:-1]
           + "| " + " | ".join("---" for _ in methods) + " |"]
    for method, b in result["baselines"].items():
        dom = " | ".join("yes" if b["dominated_by_front"][m] else "no" for m in methods)
        out.append(f"| {aspects.baseline_labels[method]} | `{b['model_id']}` | "
                   + "".join(f"{fmt(b[c])} | " for c in aspects.coefficient_columns)
                   + f"{_signal_cells(b, aspects)} | {dom} |")
    return out


def _gains_words(aspects: Aspects) -> str:
    """What each policy's gain is: "reward gained by DPO-Help on the benign prompts, cost removed by …"."""
    return ", ".join(f"{a.evaluator} {'gained' if a.better == 'higher' else 'removed'} by {a.baseline_label} on the "
                     f"{prompts_word(a.name)} prompts" for a in aspects)


def _gains_table(gains: dict[str, Any], aspects: Aspects) -> list[str]:
    if not gains:
        return []
    out = ["", "Each aspect policy against the reference on its own evaluator, on its own aspect's test prompts "
               f"(paired bootstrap, 95%): {_gains_words(aspects)}.", "",
           "| policy | evaluator | prompts | policy mean | reference mean | gain | 95% interval "
           "| interval clear of 0 |",
           "| --- | --- | ---: | ---: | ---: | ---: | --- | --- |"]
    for aspect, g in gains.items():
        out.append(f"| {aspects.baseline_labels[aspect]} | {g['evaluator']} | {g['n_prompts']} | "
                   f"{fmt(g['policy_mean'])} | {fmt(g['reference_mean'])} | {fmt(g['gain'])} | "
                   f"{_interval(g['interval'])} | {'yes' if g['excludes_zero'] else 'no'} |")
    return out


def _policies_tables(policies: dict[str, Any], with_figure: bool, gains: dict[str, Any],
                     aspects: Aspects) -> list[str]:
    if not policies and not gains:
        return []
    out = ["", "## Aspect policies"] + _gains_table(gains, aspects)
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


def _pct_interval(iv: list[float] | None) -> str:
    return f"[{pct(iv[0], 1)}, {pct(iv[1], 1)}]" if iv else "–"


def _judgment_agreement_table(agreement: dict[str, Any] | None) -> list[str]:
    """The evaluators against blind pairwise judgments (peo.judgment_agreement), and what that allows one to say."""
    if not agreement:
        return []
    out = ["", "## The evaluators against blind judgments", "",
           f"{agreement['pairs']} pairs of test answers read blind (names hidden, order shuffled) by "
           f"{', '.join(agreement['judges'])}: helpfulness on benign prompts, harmlessness on harmful ones "
           "(report/blind_judgments.jsonl). Agreement is counted on the pairs where both the reader and the "
           "evaluator prefer one answer; the reader's ties are counted apart."
           + (" " + judgments_about_text(agreement) if judgments_about_text(agreement) else ""), "",
           "| evaluator | judged on | pairs | reader's ties | decisive | agree | 95% interval (Wilson) | "
           "confirmed beyond chance |", "| --- | --- | ---: | ---: | ---: | ---: | --- | --- |"]
    for kind, a in agreement["by_evaluator"].items():
        sure = confirmed(a)
        out.append(f"| {kind} | {a['judged_on']} | {a['pairs']} | {a['reader_ties']} | {a['decisive']} | "
                   f"{pct(a['share'], 1)} | {_pct_interval(a['interval'])} | "
                   f"{'–' if sure is None else ('yes' if sure else 'no: the interval reaches 50 %')} |")
    unconfirmed = [a["judged_on"] for a in agreement["by_evaluator"].values() if confirmed(a) is False]
    if unconfirmed and agreement.get("about") == "earlier_answers":
        out += ["", f"The {' and '.join(unconfirmed)} differences that run's evaluator heads reported were **not "
                    "confirmed** by the blind reading; this says nothing either way about the shipped heads."]
    elif unconfirmed:
        out += ["", f"The {' and '.join(unconfirmed)} differences the evaluators report are **not confirmed** by "
                    "the blind reading: their agreement is not distinguishable from chance on these pairs."]
    return out


def judgments_about_text(agreement: dict[str, Any]) -> str:
    """Which answers the blind judgments are about (fronts.json judgment_agreement: judgments n,
    judgments_on_shipped_answers k), in words; "" for a fronts.json written before it was counted."""
    n, k = agreement.get("judgments"), agreement.get("judgments_on_shipped_answers")
    if n is None or k is None:
        return ""
    if k == n:
        return (f"All {n} judgments are on the answers shipped here: answers.parquet holds both judged answers of "
                "each, with the reward and cost the judgment stored.")
    if k == 0:
        return (f"**None of the {n} judgments is on the answers shipped here:** they were made on answers of an "
                "earlier run (different answers and evaluator heads), so the agreement below is that run's "
                "evaluator heads against the reading, counted from the scores the judgments stored, **not the "
                "shipped evaluators'**; and their win rates are about those earlier answers, so the win-rate table "
                "leaves them out.")
    return (f"**Only {k} of the {n} judgments are on the answers shipped here** (answers.parquet holds both judged "
            f"answers with the reward and cost the judgment stored); the other {n - k} are about answers that are "
            f"not shipped (an earlier run's, or of models whose test answers are not in answers.parquet). The "
            f"agreement below and the blind judgments' win rates are counted on those {k} only.")


LLM_JUDGE_AGAINST = {"reward": "reward evaluator, same answers", "cost": "cost evaluator, same answers",
                     "blind": "blind judgments, same answers", "votes": "human votes, same prompt text"}


def _llm_judge_tables(llm: dict[str, Any] | None) -> list[str]:
    """Each LLM judge's record of every pair it judged, and its agreement with the evaluators, the blind
    judgments and the votes (peo.judgment_agreement), counted on decisive pairs as for the evaluators."""
    if not llm:
        return []
    out = ["", "## An LLM judge beside the evaluators", "",
           f"`peo judge` verdicts ({llm['file']}): each pair judged in both orders (AlpacaEval's pairwise template); "
           "a win when both orders preferred the first-named model's answer, a tie when they disagreed, and pairs "
           "the judge left unsettled (unparsed, refused, pending) not counted. Agreement is counted on the pairs "
           "both sides settle decisively; the ties of each side are counted apart."]
    for name, j in llm["judges"].items():
        outcomes = ", ".join(f"{n} {k}" for k, n in j["outcomes"].items() if n)
        out += ["", f"**Judge `{name}`** (template {', '.join(j['templates'])}): {j['verdicts']} pairs ({outcomes})."
                + _verdicts_about_text(j),
                "", "| model | against | judged on | won / tied / lost | won of decisive |",
                "| --- | --- | --- | --- | ---: |"]
        for r in j["records"]:
            out.append(f"| `{r['point']}` | `{r['opponent']}` | {r['aspect']} | {_judge_cell(r)} | "
                       f"{pct(r['decisive_share'])} |")
        out += ["", "| the judge against | judged on | shared pairs | judge's ties | other's ties | decisive | agree | "
                "95% interval (Wilson) |", "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"]
        for key, words in LLM_JUDGE_AGAINST.items():
            a = j["agreement"].get(key)
            if a is None:
                continue
            out.append(f"| {words} | {a.get('judged_on', 'each pair’s aspect')} | {a['pairs']} | {a['judge_ties']} | "
                       f"{a['other_ties']} | {a['decisive']} | {pct(a['share'], 1)} | {_pct_interval(a['interval'])} |")
    return out


def _verdicts_about_text(judge: dict[str, Any]) -> str:
    """Which answers an LLM judge's verdicts are about (fronts.json llm_judge.judges.<name>)."""
    n, k = judge.get("verdicts"), judge.get("verdicts_on_shipped_answers")
    if "verdicts_on_shipped_answers" not in judge:
        return ""
    if k is None and judge.get("verdicts_checked"):
        return (f" Only {judge['verdicts_checked']} of its {n} verdict rows carry the judged answers' texts (those "
                "not on the answers shipped here are not counted); for the others, whether they are the shipped "
                "answers cannot be checked.")
    if k is None:
        return (" Its verdicts file stores neither the judged answers' texts nor their scores, so whether they are "
                "the answers shipped here cannot be checked: verdicts made before the answers were regenerated are "
                "about an earlier run's answers.")
    if k == n:
        return f" All {n} verdicts are on the answers shipped here (their texts match answers.parquet)."
    return (f" Only {k} of the {n} verdicts are on the answers shipped here (their texts match answers.parquet); "
            f"its records and agreement count those {k} only." if k else
            f" None of the {n} verdicts is on the answers shipped here (their texts differ from answers.parquet's): "
            "they are about an earlier run's answers, and nothing of them is counted.")


def _meta_sections(meta: dict) -> list[str]:
    out: list[str] = []
    timings = meta.get("timings_seconds") or {}
    if timings:
        out += ["", "## Timings", "",
                "Each stage's last run (meta.json `timings_seconds`). A stage run again on saved work (a sweep "
                "whose answers were all saved, a held-out check on trained adapters) records only that run, so "
                "these are not the profile's time from scratch; assets/RUN_NOTES.md gives that.", "",
                "| stage | seconds |", "| --- | ---: |"]
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


def markdown(result: dict[str, Any], meta: dict | None, with_training_figure: bool,
             aspects: Aspects = DEFAULT_ASPECTS) -> str:
    """report.md; `aspects`: the run's (the columns of its tables), the shipped two by default."""
    out = ["# PEO vs weight soup: fronts chosen on dev prompts, scored on test prompts", ""]
    out += _headline(result, aspects) + _method_text(result, aspects) + _hypervolume_table(result)
    out += _off_line_text(result, aspects)
    out += _front_tables(result["fronts"], aspects)
    out += _win_rate_tables(result.get("win_rates"), aspects)
    out += _signals_table(result["signals"], aspects) + _all_prompt_table(result, aspects)
    out += _differ_table(result["answers_differ"])
    out += _baselines_table(result, aspects)
    out += _policies_tables(result["policies"], with_training_figure, result["policy_gains"], aspects)
    out += _evaluators_tables(result["evaluators"]) + _judgment_agreement_table(result.get("judgment_agreement"))
    out += _llm_judge_tables(result.get("llm_judge"))
    out += _meta_sections(meta or {})
    out += ["", "![Pareto fronts on test prompts](front.png)", ""] if can_plot_front(aspects) else [""]
    return "\n".join(out)
