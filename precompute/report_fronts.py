"""The report's numbers: fronts chosen on dev prompts and scored on test prompts, and what fronts.json holds.

Scoring is split-aware (peo.grid_table): reward is the helpfulness evaluator's mean over the benign prompts,
cost the harmlessness evaluator's mean over the harmful prompts, and every bootstrap resamples the two prompt
sets each on its own (stratified). Dev prompts choose each front, test prompts score it; every reported figure is
on the test prompts that every test-scored model answered; the in-sample dev figure is kept, labelled as such.
Reward: higher is better. Cost: lower is better. This module assembles fronts.json from its parts:

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

from peo.evaluation_stats import finite_or_none
from peo.grid_table import evasion_limit, with_evasion
from peo.names import EXPO, PEO, PROMPT_KIND_OF_EVALUATOR, SOUP
from precompute.report_baselines import answers_differ, baseline_figures, model_signals
from precompute.report_chosen_fronts import chosen_front, in_sample_fronts
from precompute.report_hypervolume import MARGIN, hypervolume_difference, hypervolume_reference
from precompute.report_inputs import prepared_grid
from precompute.report_judges import judgment_agreement_summary, llm_judge_summary
from precompute.report_scores import score_matrices
from precompute.report_training import evaluator_summaries, policy_gains, policy_summaries
from precompute.report_win_rates import win_rates
from precompute.report_words import CI, FRONTS


def compute_fronts(grid: pd.DataFrame, answers: pd.DataFrame, *, n_boot: int, seed: int, max_loop_share: float,
                   max_evasion_excess: float | None = None, meta: dict | None = None, training: dict | None = None,
                   votes: list[dict] | None = None, judgments: list[dict] | None = None,
                   judge_verdicts: list[dict] | None = None) -> dict[str, Any]:
    """Everything fronts.json holds (see write_report). judge_verdicts: an LLM judge's verdicts file
    (peo.judge.read_verdicts of assets/report/judge_verdicts.jsonl), another judge beside the evaluators."""
    grid = prepared_grid(grid)
    answers = with_evasion(answers)
    model_ids = list(dict.fromkeys(grid["model_id"]))
    dev = score_matrices(answers, "dev", model_ids, require_all=True)
    test = score_matrices(answers, "test", model_ids, require_all=False)
    ref = hypervolume_reference(test)
    fronts = {name: chosen_front(grid, name, test, ref, max_loop_share, max_evasion_excess, n_boot, seed)
              for name, (method, _) in FRONTS.items() if (grid["method"] == method).any()}

    def difference(a: str, b: str, variant: str) -> dict[str, Any] | None:
        if a + variant not in fronts or b + variant not in fronts:
            return None
        return hypervolume_difference(test, fronts[a + variant]["model_ids"], fronts[b + variant]["model_ids"], ref,
                                      n_boot, seed, a=a, b=b)

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
        "test_means": {m: [finite_or_none(x) for x in (test.means(m)[1], test.means(m)[0], test.stats[m]["loop_share"])]
                       for m in test.model_ids},  # cost, reward (split-aware), loop share: what front.png draws
    }
