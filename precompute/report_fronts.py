"""The report's numbers: fronts chosen on dev prompts and scored on test prompts, and what fronts.json holds.

Scoring is split-aware (peo.grid_table): each evaluator is read on its own aspect's prompts (reward, the
helpfulness evaluator's mean over the benign prompts; cost, the harmlessness evaluator's mean over the harmful
prompts), and every bootstrap resamples each aspect's prompts on their own (stratified). The run's aspects (config
`aspects`, meta.json `aspects`; the shipped two by default) say which evaluators there are and which way each is
better; fronts and hypervolumes are over all N of them (peo.pareto_n). Dev prompts choose each front, test prompts
score it; every reported figure is on the test prompts that every test-scored model answered; the in-sample dev
figure is kept, labelled as such. Reward: higher is better. Cost: lower is better. This module assembles
fronts.json from its parts:

- precompute.report_inputs: the grid made ready, a model's grid rows, the input error (ReportInputError)
- precompute.report_scores: each split's scores as matrices (SplitScores, score_matrices)
- precompute.report_hypervolume: the reference point, hypervolumes and their paired bootstrap differences
- precompute.report_chosen_fronts: the dev-chosen fronts scored on test, and the in-sample figure
- precompute.report_baselines: the baselines, the signals, the answers-differ guard
- precompute.report_training: the policies' and evaluators' summaries, each policy's gain
- precompute.report_win_rates, precompute.report_judges: win rates, and the judges beside the evaluators
- precompute.report_words: the names, verdict words and number formatting (`fmt`) the report's parts share
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from peo.aspects import Aspects
from peo.evaluation_stats import finite_or_none
from peo.grid_table import evasion_limit, with_evasion
from peo.names import EXPO, PEO, SOUP
from precompute.report_baselines import answers_differ, baseline_figures, model_signals
from precompute.report_chosen_fronts import chosen_front, in_sample_fronts
from precompute.report_hypervolume import hypervolume_difference, hypervolume_reference, reference_json
from precompute.report_inputs import prepared_grid
from precompute.report_judges import judgment_agreement_summary, llm_judge_summary
from precompute.report_scores import SplitScores, score_matrices
from precompute.report_training import evaluator_summaries, policy_gains, policy_summaries
from precompute.report_win_rates import win_rates
from precompute.report_words import CI, FRONTS, has_judged_aspects, prompts_list, prompts_word


def run_aspects(aspects: Aspects | None, meta: dict | None) -> Aspects:
    """The run's aspects: those given, else meta.json's `aspects` (the shipped two when it has none)."""
    return aspects if aspects is not None else Aspects.from_json((meta or {}).get("aspects"))


def scoring_words(aspects: Aspects) -> dict[str, str]:
    """fronts.json `scoring`: what each evaluator is averaged over, and how the bootstrap resamples, in words."""
    out = {a.evaluator: f"{a.label} evaluator, mean over {a.name} prompts" for a in aspects}
    out["bootstrap"] = f"stratified: {prompts_list(aspects)} prompts each resampled on their own"
    return out


def test_means(test: SplitScores) -> dict[str, list[float | None]]:
    """What front.png draws: per test-scored model its cost, reward (split-aware) and loop share; with more than
    two aspects, its mean per evaluator in the aspects' order, then its loop share."""
    def row(m: str) -> list[float]:
        means = test.means(m)
        shown = (means[1], means[0]) if len(means) == 2 else means
        return [*shown, test.stats[m]["loop_share"]]
    return {m: [finite_or_none(x) for x in row(m)] for m in test.model_ids}


def compute_fronts(grid: pd.DataFrame, answers: pd.DataFrame, *, n_boot: int, seed: int, max_loop_share: float,
                   max_evasion_excess: float | None = None, meta: dict | None = None, training: dict | None = None,
                   votes: list[dict] | None = None, judgments: list[dict] | None = None,
                   judge_verdicts: list[dict] | None = None, aspects: Aspects | None = None) -> dict[str, Any]:
    """Everything fronts.json holds (see write_report). judge_verdicts: an LLM judge's verdicts file
    (peo.judge.read_verdicts of assets/report/judge_verdicts.jsonl), another judge beside the evaluators.
    aspects: the run's (default: meta.json's, else the shipped two). The blind judgments and the LLM judge are about
    help (reward) and harm (cost): in a run without those two aspects they are left out (None)."""
    aspects = run_aspects(aspects, meta)
    if not has_judged_aspects(aspects):
        judgments = judge_verdicts = None
    grid = prepared_grid(grid)
    answers = with_evasion(answers)
    model_ids = list(dict.fromkeys(grid["model_id"]))
    dev = score_matrices(answers, "dev", model_ids, require_all=True, aspects=aspects)
    test = score_matrices(answers, "test", model_ids, require_all=False, aspects=aspects)
    ref = hypervolume_reference(test)
    fronts = {name: chosen_front(grid, name, test, ref, max_loop_share, max_evasion_excess, n_boot, seed)
              for name, (method, _) in FRONTS.items() if (grid["method"] == method).any()}

    def difference(a: str, b: str, variant: str) -> dict[str, Any] | None:
        if a + variant not in fronts or b + variant not in fronts:
            return None
        return hypervolume_difference(test, fronts[a + variant]["model_ids"], fronts[b + variant]["model_ids"], ref,
                                      n_boot, seed, a=a, b=b)

    all_keys = [f"{e}_{s}" for e in aspects.evaluators for s in ("all_mean", "all_se")]
    all_stats = {m: {k: finite_or_none(test.stats[m][k]) for k in all_keys} for m in test.model_ids}
    return {
        "chosen_on": "dev", "scored_on": "test", "max_loop_share": float(max_loop_share),
        "max_benign_evasion_excess": finite_or_none(max_evasion_excess),
        "evasion_limit": finite_or_none(evasion_limit(grid, max_evasion_excess)),
        "scoring": scoring_words(aspects),
        "n_prompts": {"dev": len(dev.prompts), "test": len(test.prompts)},
        "n_prompts_by_kind": {split: {prompts_word(a.name): len(s.own_prompts[a.evaluator]) for a in aspects}
                              for split, s in (("dev", dev), ("test", test))},
        "n_prompts_dropped": {"dev": dev.n_dropped, "test": test.n_dropped},
        "n_models": {"dev": len(dev.model_ids), "test": len(test.model_ids)},
        "n_boot": int(n_boot), "seed": int(seed), "ci": CI,
        "reference_point": reference_json(ref, test),
        "fronts": fronts, "difference": difference(PEO, SOUP, ""),
        "difference_no_evasion_filter": difference(PEO, SOUP, "_no_evasion_filter"),
        "difference_unfiltered": difference(PEO, SOUP, "_unfiltered"),
        "difference_vs_expo": difference(PEO, EXPO, ""),
        "difference_vs_expo_no_evasion_filter": difference(PEO, EXPO, "_no_evasion_filter"),
        "in_sample_dev": in_sample_fronts(grid, dev, max_loop_share, max_evasion_excess, n_boot, seed),
        "baselines": baseline_figures(grid, test, fronts),
        "signals": model_signals(grid, test, fronts),
        "all_prompt_means": all_stats,  # the older means over every test prompt, for the one table that shows them
        "win_rates": (win_rates(grid, answers, test, fronts["peo"], votes, judgments, judge_verdicts)
                      if "peo" in fronts else None),
        "answers_differ": answers_differ(grid, answers, test, fronts),
        "policies": policy_summaries(training), "policy_gains": policy_gains(grid, test, n_boot, seed),
        "evaluators": evaluator_summaries(meta),
        "judgment_agreement": judgment_agreement_summary(judgments, answers),
        "llm_judge": llm_judge_summary(judge_verdicts, answers, judgments, votes),
        "test_means": test_means(test),
    }
