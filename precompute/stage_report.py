"""Stage report: fronts, headline difference, signals and figures from grid.csv and answers.parquet."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from peo.data.jsonl import iter_jsonl
from peo.names import (
    ANSWERS_FILE,
    EVASION_VALIDATION_FILE,
    GRID_FILE,
    JUDGMENTS_FILE,
    META_FILE,
    REPORT_DIR,
    TRAINING_FILE,
)
from precompute.report import write_report
from precompute.run_context import RunContext


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _read_jsonl(path: Path) -> list[dict]:
    """JSON lines (blank lines skipped); [] when the file is not there."""
    if not path.is_file():
        return []
    return [row for _, row in iter_jsonl(path)]


def report(ctx: RunContext) -> list[Path]:
    grid = pd.read_csv(ctx.out / GRID_FILE)
    answers = pd.read_parquet(ctx.out / ANSWERS_FILE)
    write_report(grid, answers, ctx.out / REPORT_DIR, n_boot=ctx.cfg.report.n_boot, seed=ctx.cfg.seed,
                 meta=_read_json(ctx.out / META_FILE), max_loop_share=ctx.cfg.sweep.max_loop_share,
                 max_evasion_excess=ctx.cfg.sweep.max_benign_evasion_excess,
                 training=_read_json(ctx.out / TRAINING_FILE), judgments=_read_jsonl(ctx.out / JUDGMENTS_FILE),
                 evasion_check=_read_json(ctx.out / EVASION_VALIDATION_FILE))
    return [ctx.out / REPORT_DIR]
