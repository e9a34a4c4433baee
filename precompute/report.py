"""The report stage: fronts chosen on dev prompts, scored on test prompts; PEO vs weight soup vs baselines.

Writes `report.md`, `front.png`, `training.png` (when the policies' training curves are there) and
`fronts.json` into `out_dir`, each atomically (peo.atomic). Reward: higher is better. Cost: lower is better. With
more than two aspects (the run's `aspects`) the fronts are over every evaluator and front.png, a 2-D figure, is
not drawn (report.md says so; nor for two aspects other than higher-then-lower is better).
The numbers come from `precompute.report_fronts`, the figures from `precompute.report_figures`, the text from
`precompute.report_markdown`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from peo.aspects import Aspects
from peo.atomic import write_json, write_text
from peo.layout import ReportLayout
from precompute.report_figures import can_plot_front, plot_front, plot_training
from precompute.report_fronts import compute_fronts, run_aspects
from precompute.report_inputs import prepared_grid
from precompute.report_markdown import markdown


def held_out_evasion_check(validation: dict | None) -> dict | None:
    """The evasion check's precision and recall on the hand labels it was not tuned on."""
    held = (validation or {}).get("held-out")
    if not held:
        return None
    return {"labels": held["n"], "precision": held["precision"], "precision_interval": held["precision_interval"],
            "recall": held["recall"], "recall_interval": held["recall_interval"]}


def write_report(grid: pd.DataFrame, answers: pd.DataFrame, out_dir: Path, *, n_boot: int, seed: int,
                 max_loop_share: float, max_evasion_excess: float | None = None, meta: dict | None = None,
                 training: dict | None = None, votes: list[dict] | None = None,
                 judgments: list[dict] | None = None, evasion_check: dict | None = None,
                 judge_verdicts: list[dict] | None = None, aspects: Aspects | None = None) -> dict:
    """Compute the fronts and write `front.png`, `training.png`, `report.md`, `fronts.json`; return fronts.json.

    grid: grid.csv (peo.grid_table). answers: answers.parquet, dev and test rows. training: adapters/training.json.
    votes: peo.votes.VoteStore.votes rows, for the human record beside each win rate (optional). judgments: blind
    pairwise judgments per aspect (assets/report/blind_judgments.jsonl rows), their record beside it and each
    evaluator's agreement with them (optional). evasion_check: report/evasion_validation.json (peo.evasion's
    precision and recall on hand labels), its held-out figures carried into fronts.json (optional).
    fronts.json: chosen_on, scored_on, max_loop_share, max_benign_evasion_excess, evasion_limit, scoring (the
    split-aware rule in words), n_prompts {dev, test}, n_prompts_by_kind, n_prompts_dropped, n_models, n_boot,
    seed, ci, reference_point {reward, cost, margin}, fronts {peo, soup, expo, each also _no_evasion_filter and
    _unfiltered: model_ids, points [coordinates, test figures, dev {reward_mean, cost_mean, loop_share,
    evasion_share_benign}, on_test_front], loop_filter, evasion_filter, evasion_limit, hypervolume, interval,
    n_models (candidates), n_chosen}, difference, difference_no_evasion_filter, difference_unfiltered,
    difference_vs_expo, difference_vs_expo_no_evasion_filter {a, b, value, interval, excludes_zero, verdict},
    in_sample_dev, baselines, signals, all_prompt_means, win_rates, answers_differ, policies, evaluators,
    judgment_agreement {judges, pairs, by_evaluator}, llm_judge (an LLM judge's verdicts, report/judge_verdicts.jsonl:
    {file, judges {judge model: templates, verdicts, outcomes, records, agreement {reward, cost, blind, votes}}},
    null without verdicts), evasion_check {labels, precision, recall, intervals},
    test_means {model_id: [cost, reward, loop share]}. aspects: the run's (default: meta.json `aspects`, else the
    shipped two); with N of them every reward/cost pair above is one entry per evaluator (reference_point
    {<evaluator>: value, margin}, the points' <evaluator>_mean/_se, their coordinates the run's point columns), the
    baselines are one DPO policy per aspect, win rates are per aspect (keyed by its label) and test_means is
    [each evaluator's mean, loop share]; front.png is drawn for two aspects only (report_figures.can_plot_front).
    """
    aspects = run_aspects(aspects, meta)
    files = ReportLayout(Path(out_dir))
    files.root.mkdir(parents=True, exist_ok=True)
    result = compute_fronts(grid, answers, n_boot=n_boot, seed=seed, max_loop_share=max_loop_share,
                            max_evasion_excess=max_evasion_excess, meta=meta, training=training, votes=votes,
                            judgments=judgments, judge_verdicts=judge_verdicts, aspects=aspects)
    result["evasion_check"] = held_out_evasion_check(evasion_check)
    if can_plot_front(aspects):
        plot_front(files.front_figure, prepared_grid(grid), result, aspects)
    elif files.front_figure.exists():
        files.front_figure.unlink()  # a figure from an earlier run would describe other fronts
    with_training = plot_training(files.training_figure, training)
    write_text(files.markdown, markdown(result, meta, with_training, aspects))
    write_json(files.fronts, result)
    return result
