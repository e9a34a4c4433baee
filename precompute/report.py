"""The report stage: fronts chosen on dev prompts, scored on test prompts; PEO vs weight soup vs baselines.

Writes `report.md`, `front.png`, `training.png` (when the policies' training curves are there) and
`fronts.json` into `out_dir`, each atomically (peo.atomic). Reward: higher is better. Cost: lower is better.
The numbers come from `precompute.report_fronts`, the figures from `precompute.report_figures`, the text from
`precompute.report_markdown`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from peo.atomic import write_json, write_text
from precompute.report_figures import plot_front, plot_training
from precompute.report_fronts import _prepared, compute_fronts
from precompute.report_markdown import markdown


def write_report(grid: pd.DataFrame, answers: pd.DataFrame, out_dir: Path, *, n_boot: int, seed: int,
                 max_loop_share: float, meta: dict | None = None, training: dict | None = None) -> dict:
    """Compute the fronts and write `front.png`, `training.png`, `report.md`, `fronts.json`; return fronts.json.

    grid: grid.csv (peo.grid_table). answers: answers.parquet, dev and test rows. training: adapters/training.json.
    fronts.json: chosen_on, scored_on, max_loop_share, n_prompts {dev, test}, n_prompts_dropped, n_models, n_boot,
    seed, ci, reference_point {reward, cost, margin}, fronts {peo, soup, peo_unfiltered, soup_unfiltered:
    model_ids, points [coordinates, test figures, dev {reward_mean, cost_mean, loop_share}, on_test_front],
    hypervolume, interval, n_models (candidates), n_chosen}, difference and difference_unfiltered {a, b, value,
    interval, excludes_zero, verdict}, in_sample_dev, baselines, signals, answers_differ, policies, evaluators,
    test_means {model_id: [cost, reward, loop share]}.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = compute_fronts(grid, answers, n_boot=n_boot, seed=seed, max_loop_share=max_loop_share, meta=meta,
                            training=training)
    plot_front(out_dir / "front.png", _prepared(grid), result)
    with_training = plot_training(out_dir / "training.png", training)
    write_text(out_dir / "report.md", markdown(result, meta, with_training))
    write_json(out_dir / "fronts.json", result)
    return result
