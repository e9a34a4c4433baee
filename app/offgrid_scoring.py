"""Score an off-grid point on demand: generate and score the test prompts for the picked point, the way the
sweep scored the grid (its decoding, its answer checks, its per-model figures), so it can sit on the front.

Runs through the app's Engine (its public `stream` and `score`, which take the model lock), a batch at a time,
so progress shows and a Stop takes effect between batches. The result is a plain dict kept per session.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterator, Mapping

import gradio as gr
import pandas as pd

from app.callbacks import SCORE_BUTTON
from app.engine import column_scales
from peo.answer_checks import answer_signals
from peo.generation import GenerationSettings
from peo.grid_table import split_stats
from peo.names import PEO

BATCH_SIZE = 8  # prompts per generation: small enough that Stop and the progress bar respond within a batch
SPLIT = "test"


def scoring_prompts(answers: pd.DataFrame) -> pd.DataFrame:
    """The test prompts (prompt_id, prompt_kind, prompt), once each, in the assets' order."""
    rows = answers[answers["split"] == SPLIT]
    return rows.drop_duplicates("prompt_id")[["prompt_id", "prompt_kind", "prompt"]].reset_index(drop=True)


def sweep_settings(meta: Mapping) -> GenerationSettings:
    """The sweep's decoding (meta.json "generation"), so an on-demand score is comparable with the grid's."""
    names = {f.name for f in dataclasses.fields(GenerationSettings)}
    return GenerationSettings(**{k: v for k, v in (meta.get("generation") or {}).items() if k in names})


def answer_rows(prompts: pd.DataFrame, answers: list[str], rewards: list[float], costs: list[float],
                cut: list[bool]) -> list[dict]:
    """answers.parquet-shaped rows (without the model columns and token counts) for one batch."""
    return [{"prompt_id": p.prompt_id, "prompt_kind": p.prompt_kind, "prompt": p.prompt, "split": SPLIT,
             "answer": a, "reward": r, "cost": c, **answer_signals(a), "cut": k}
            for p, a, r, c, k in zip(prompts.itertuples(), answers, rewards, costs, cut)]


def summarize(info: Mapping, rows: list[dict], total: int) -> dict:
    """The scored point: its coordinates, the sweep's per-model figures (peo.grid_table.split_stats), answers."""
    stats = split_stats(pd.DataFrame(rows))
    stats = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in stats.items()}
    point = {k: info[k] for k in ("model_id", "lambda_help", "phi_help", "phi_harm", "c_help", "c_harm")}
    return {**point, **stats, "split": SPLIT, "complete": len(rows) == total, "answers": rows}


def score_point(engine, info: Mapping, prompts: pd.DataFrame, settings: GenerationSettings,
                batch_size: int = BATCH_SIZE) -> Iterator[list[dict]]:
    """Generate and score `prompts` for the point `info` (a pick dict); yields all rows so far after each batch."""
    scales = column_scales(PEO, info["lambda_help"], info["c_help"], info["c_harm"])
    point = (info["c_help"], info["c_harm"])
    rows: list[dict] = []
    for start in range(0, len(prompts), batch_size):
        batch = prompts.iloc[start:start + batch_size]
        messages = [json.loads(p) for p in batch["prompt"]]
        final: list[str] = []
        outcome: dict = {}
        for final in engine.stream(messages, [scales] * len(batch), settings, point, outcome=outcome):
            pass
        texts = [t.strip() for t in final]
        scored = engine.score(messages, texts)
        if scored is None:
            raise RuntimeError("the evaluators are not loaded: this app cannot score answers")
        rows += answer_rows(batch, texts, *scored, outcome["cut"])
        yield rows


def merge_scored(scored: list[dict] | None, point: dict) -> list[dict]:
    """The session's scored points with `point` added (replacing an earlier score of the same model)."""
    return [p for p in (scored or []) if p["model_id"] != point["model_id"]] + [point]


def needs_scoring(info: Mapping) -> bool:
    """A point without test figures: off-grid, or a grid point run on the dev prompts only."""
    stats = info.get("precomputed")
    return stats is None or stats.get("split") != SPLIT


def scored_text(point: Mapping) -> str:
    return (f"Scored `{point['model_id']}` on {point['n']} {SPLIT} prompts: reward {point['reward_mean']:.3f} ± "
            f"{point['reward_se']:.3f}, cost {point['cost_mean']:.3f} ± {point['cost_se']:.3f}, loops in "
            f"{point['loop_share']:.0%} of answers. Drawn on the front as a diamond (kept for this session).")


@dataclasses.dataclass
class ScorePanel:
    button: gr.Button
    stop: gr.Button
    status: gr.Markdown


def score_panel() -> ScorePanel:
    """The button, its Stop, and a status line (the progress bar shows over it)."""
    with gr.Row():
        button = gr.Button(SCORE_BUTTON, elem_id="score-offgrid", scale=2)
        stop = gr.Button("Stop scoring", elem_id="stop-scoring", variant="stop", scale=1)
    status = gr.Markdown(f"'{SCORE_BUTTON}' generates and scores the picked point's answers to the test "
                         "prompts, with the grid's decoding: for points without test figures (off the grid, or dev "
                         "only).", elem_id="score-status", elem_classes=["peo-status"])
    return ScorePanel(button, stop, status)


def wire_score(app, panel: ScorePanel, point_state: gr.State, scored_state: gr.State) -> None:
    """Score on click (a generator: progress per batch), cancelled by Stop between or within batches."""
    data = app.data

    def run(info, scored, progress=gr.Progress()):
        if not needs_scoring(info):
            raise gr.Error(f"{info['model_id']} already has test figures: nothing to score", print_exception=False)
        prompts = scoring_prompts(data.answers)
        total = len(prompts)
        progress(0.0, desc=f"generating and scoring {total} {SPLIT} prompts")
        rows: list[dict] = []
        try:
            for rows in score_point(app.engine, info, prompts, sweep_settings(data.assets.meta)):
                progress(len(rows) / total, desc=f"{len(rows)} of {total} {SPLIT} prompts")
                yield gr.update(), f"Scored {len(rows)} of {total} {SPLIT} prompts…"
        except (TimeoutError, RuntimeError) as err:
            raise gr.Error(str(err), print_exception=False) from None
        point = summarize(info, rows, total)
        yield merge_scored(scored, point), scored_text(point)

    event = panel.button.click(run, [point_state, scored_state], [scored_state, panel.status],
                               api_visibility="private", concurrency_limit=1)
    panel.stop.click(lambda: "Stopped: nothing was kept from the unfinished scoring.", None, panel.status,
                     cancels=[event], api_visibility="private")
