"""Stage report: fronts, headline difference, signals and figures from grid.csv and answers.parquet."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from peo.names import ANSWERS_FILE, GRID_FILE, META_FILE, REPORT_DIR, TRAINING_FILE
from precompute.report import write_report
from precompute.run_context import RunContext


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def report(ctx: RunContext) -> list[Path]:
    grid = pd.read_csv(ctx.out / GRID_FILE)
    answers = pd.read_parquet(ctx.out / ANSWERS_FILE)
    write_report(grid, answers, ctx.out / REPORT_DIR, n_boot=ctx.cfg.report.n_boot, seed=ctx.cfg.seed,
                 meta=_read_json(ctx.out / META_FILE), max_loop_share=ctx.cfg.sweep.max_loop_share,
                 training=_read_json(ctx.out / TRAINING_FILE))
    return [ctx.out / REPORT_DIR]
