"""Score an off-grid point on demand: generate and score the test prompts for the picked point, the way the
sweep scored the grid (its decoding, its answer checks, its per-model figures), so it can sit on the front.

Runs through the app's Engine (its public `stream` and `score`, which take the model lock), a batch at a time,
so progress shows and a Stop takes effect between batches. The result is a plain dict kept per session.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Iterator, Mapping

import gradio as gr
import pandas as pd

from app import exports as export_store
from app.callbacks import SCORE_BUTTON, scores_phrase
from app.data import as_pick
from app.engine import column_scales
from peo.answer_checks import answer_signals
from peo.aspects import DEFAULT_ASPECTS, Aspects
from peo.evasion import last_user_message
from peo.export import sweep_decoding
from peo.generation import GenerationSettings
from peo.grid_table import split_stats
from peo.names import PEO
from peo.records import Pick

BATCH_SIZE = 8  # prompts per generation: small enough that Stop and the progress bar respond within a batch
SPLIT = "test"


def scoring_prompts(answers: pd.DataFrame) -> pd.DataFrame:
    """The test prompts (prompt_id, prompt_kind, prompt), once each, in the assets' order."""
    rows = answers[answers["split"] == SPLIT]
    return rows.drop_duplicates("prompt_id")[["prompt_id", "prompt_kind", "prompt"]].reset_index(drop=True)


def point_keys(aspects: Aspects) -> tuple[str, ...]:
    """A scored point's coordinates: model_id, the point columns, the coefficients."""
    return ("model_id", *aspects.point_columns, *aspects.coefficient_columns)


def answer_columns(aspects: Aspects) -> tuple[str, ...]:
    """answer_rows' keys, answers.parquet's names: a score per evaluator (reward, cost …)."""
    return ("split", "prompt_id", "prompt_kind", "prompt", "answer", *aspects.evaluators, "loops", "refuses",
            "n_words", "evades", "cut")


def answer_rows(prompts: pd.DataFrame, answers: list[str], *per_answer: list,
                aspects: Aspects = DEFAULT_ASPECTS) -> list[dict]:
    """answers.parquet-shaped rows (without the model columns and token counts) for one batch. `per_answer`:
    each evaluator's scores in the aspects' order (rewards, costs …), then whether each answer was cut. The checks
    read the prompt's last user message, as the sweep's do, so `evades` means the same on and off the grid."""
    *scores, cut = per_answer
    return [{"prompt_id": p.prompt_id, "prompt_kind": p.prompt_kind, "prompt": p.prompt, "split": SPLIT,
             "answer": a, **dict(zip(aspects.evaluators, s)), **answer_signals(a, last_user_message(p.prompt)),
             "cut": k}
            for p, a, k, *s in zip(prompts.itertuples(), answers, cut, *scores)]


def summarize(info: Pick, rows: list[dict], total: int, aspects: Aspects = DEFAULT_ASPECTS) -> dict:
    """The scored point: its coordinates, the sweep's per-model figures (peo.grid_table.split_stats; every
    evaluator's mean and standard error), answers."""
    stats = split_stats(pd.DataFrame(rows), aspects)
    stats = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in stats.items()}
    point = {k: getattr(info, k) for k in point_keys(aspects)}
    return {**point, **stats, "split": SPLIT, "complete": len(rows) == total, "answers": rows}


def score_point(engine, info: Pick, prompts: pd.DataFrame, settings: GenerationSettings,
                batch_size: int = BATCH_SIZE, aspects: Aspects = DEFAULT_ASPECTS) -> Iterator[list[dict]]:
    """Generate and score `prompts` for the point `info` (a Pick); yields all rows so far after each batch."""
    scales = column_scales(PEO, *info.model_key, aspects=aspects)
    point = tuple(info.coefficients.values())
    rows: list[dict] = []
    for start in range(0, len(prompts), batch_size):
        batch = prompts.iloc[start:start + batch_size]
        messages = [json.loads(p) for p in batch["prompt"]]
        *_, result = engine.stream(messages, [scales] * len(batch), settings, point)
        texts = [t.strip() for t in result.answers]
        scored = engine.score(messages, texts)
        if scored is None:
            raise RuntimeError("the evaluators are not loaded: this app cannot score answers")
        rows += answer_rows(batch, texts, *scored, result.cut, aspects=aspects)
        yield rows


def merge_scored(scored: list[dict] | None, point: dict) -> list[dict]:
    """The session's scored points with `point` added (replacing an earlier score of the same model)."""
    return [p for p in (scored or []) if p["model_id"] != point["model_id"]] + [point]


def needs_scoring(info: Pick) -> bool:
    """A point without test figures: off-grid, or a grid point run on the dev prompts only."""
    stats = info.precomputed
    return stats is None or stats.get("split") != SPLIT


def scored_text(point: Mapping, total: int, aspects: Aspects = DEFAULT_ASPECTS) -> str:
    """What the panel says of a scored point: every evaluator's score (callbacks.scores_phrase)."""
    done = "" if point["complete"] else f" (of {total}: stopped, the finished batches kept)"
    return (f"Scored `{point['model_id']}` on {point['n']} {SPLIT} prompts{done}: {scores_phrase(point, aspects)}. "
            "Drawn on the front as a diamond (kept for this session); the compare view shows its answers.")


def eta_text(done: int, total: int, seconds: float) -> str:
    """'16 of 200 test prompts, about 230 s left': the rate so far, carried over what is left."""
    left = seconds / done * (total - done) if done else None
    return f"{done} of {total} {SPLIT} prompts" + (f", about {left:.0f} s left" if left is not None else "")


def scored_table(scored: list[dict] | None, aspects: Aspects = DEFAULT_ASPECTS) -> pd.DataFrame:
    """Every answer scored on demand in this session, one line each with its point, for a CSV download
    (`complete`: False for a point whose scoring was stopped part-way)."""
    columns = [*point_keys(aspects), "complete", *answer_columns(aspects)]
    lines = [{**point, **row} for point in scored or () for row in point["answers"]]
    return pd.DataFrame(lines, columns=columns)


@dataclasses.dataclass
class ScorePanel:
    button: gr.Button
    stop: gr.Button
    status: gr.Markdown
    download: gr.Button  # the session's scored answers, as CSV (scored_table)
    file: gr.File


def score_panel() -> ScorePanel:
    """The button, its Stop, a status line (the progress bar shows over it), and the scored answers' download."""
    with gr.Row():
        button = gr.Button(SCORE_BUTTON, elem_id="score-offgrid", scale=2)
        stop = gr.Button("Stop scoring", elem_id="stop-scoring", variant="stop", scale=1)
        download = gr.Button("Download scored answers (CSV)", elem_id="scored-download", size="sm", scale=1)
    status = gr.Markdown(f"'{SCORE_BUTTON}' generates and scores the picked point's answers to the test "
                         "prompts, with the grid's decoding: for points without test figures (off the grid, or dev "
                         "only).", elem_id="score-status", elem_classes=["peo-status"])
    file = gr.File(label="scored answers", interactive=False, elem_id="scored-file", visible=False)
    return ScorePanel(button, stop, status, download, file)


def wire_score(app, panel: ScorePanel, point_state: gr.State, scored_state: gr.State) -> None:
    """Score on click (a generator: progress and an ETA per batch), cancelled by Stop between or within batches.
    Each finished batch is kept in `scored_state` as it comes, so a Stop keeps the batches finished before it."""
    data = app.data
    aspects = data.aspects

    def run(info, scored, progress=gr.Progress()):
        info = as_pick(info)
        if not needs_scoring(info):
            raise gr.Error(f"{info.model_id} already has test figures: nothing to score", print_exception=False)
        prompts = scoring_prompts(data.answers)
        total = len(prompts)
        progress(0.0, desc=eta_text(0, total, 0.0))
        start = time.monotonic()
        point: dict | None = None
        try:
            for rows in score_point(app.engine, info, prompts, sweep_decoding(data.assets.run_meta), aspects=aspects):
                point = summarize(info, rows, total, aspects)
                text = eta_text(len(rows), total, time.monotonic() - start)
                progress(len(rows) / total, desc=text)
                yield merge_scored(scored, point), f"Scored {text}…"
        except (TimeoutError, RuntimeError) as err:
            raise gr.Error(str(err), print_exception=False) from None
        if point is not None:
            yield merge_scored(scored, point), scored_text(point, total, aspects)

    def stopped(info, scored):
        mid = as_pick(info).model_id
        kept = next((p for p in scored or () if p["model_id"] == mid), None)
        if kept is None:
            return "Stopped before a batch finished: nothing was kept."
        return "Stopped. " + scored_text(kept, len(scoring_prompts(data.answers)), aspects)

    event = panel.button.click(run, [point_state, scored_state], [scored_state, panel.status],
                               api_visibility="private", concurrency_limit=1)
    panel.stop.click(stopped, [point_state, scored_state], panel.status, cancels=[event], api_visibility="private")

    def download(scored):
        if not scored:
            raise gr.Error(f"Nothing scored in this session yet: use '{SCORE_BUTTON}' first.", print_exception=False)
        table = scored_table(scored, aspects)
        path = export_store.download("scored-answers.csv", lambda p: table.to_csv(p, index=False))
        return gr.update(value=str(path), visible=True)

    panel.download.click(download, scored_state, panel.file, api_visibility="private")
