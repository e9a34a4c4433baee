"""Stage report: fronts, headline difference, signals and figures from grid.csv and answers.parquet."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from peo.data.jsonl import iter_jsonl
from peo.judge import read_verdicts
from precompute.report import write_report
from precompute.run_context import RunContext, resolve_path


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _read_jsonl(path: Path) -> list[dict]:
    """JSON lines (blank lines skipped); [] when the file is not there."""
    if not path.is_file():
        return []
    return [row for _, row in iter_jsonl(path)]


def _read_votes(folder: str | None, profile: str) -> list[dict] | None:
    """The stored votes of the app's votes folder (report.votes_dir, a config path like `out`), or None when none
    is set."""
    if not folder:
        return None
    from peo.votes import VoteStore

    with VoteStore(resolve_path(folder, profile), create=False) as store:
        return store.votes()


def report(ctx: RunContext) -> list[Path]:
    layout = ctx.layout
    grid = pd.read_csv(layout.grid)
    answers = pd.read_parquet(layout.answers)
    write_report(grid, answers, layout.report.root, n_boot=ctx.cfg.report.n_boot, seed=ctx.cfg.seed,
                 meta=_read_json(layout.meta), max_loop_share=ctx.cfg.sweep.max_loop_share,
                 max_evasion_excess=ctx.cfg.sweep.max_benign_evasion_excess,
                 training=_read_json(layout.training), judgments=_read_jsonl(layout.report.judgments),
                 evasion_check=_read_json(layout.report.evasion_validation),
                 judge_verdicts=read_verdicts(layout.report.judge_verdicts),
                 votes=_read_votes(ctx.cfg.report.votes_dir, ctx.cfg.name), aspects=ctx.cfg.aspect_set)
    return [layout.report.root]
