"""Compare generations: for the picked point, each prompt's full conversation and, side by side, the answers of
the picked point, the reference, DPO-Help, DPO-Harm and the soup at the same λ, each with its scores and flags.
Above them, the picked point's pairwise record on the test prompts (peo.win_rates, as the paper reports win
rates) against the soup at its λ, DPO-Help, DPO-Harm, joint DPO and ExPO α = 1.5, with human votes beside it
where there are any.

What researchers come for is the same prompt answered by the models being compared, not each model's scores
alone. Data shaping (which models, which split, which prompts, in which order) is pure and tested; `render_html`
writes a CSS grid that wraps its columns so 1400 px needs no horizontal scrolling.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import gradio as gr
import pandas as pd

from app import exports as export_store
from app.callbacks import SCORE_BUTTON
from app.data import as_pick
from app.score_context import answer_flags
from peo.aspects import DEFAULT_ASPECTS
from peo.coefficients import coefficients, expo_model_id, model_id
from peo.names import EVADES, EXPO_CHAT_ALPHA, JOINT, PEO, REFERENCE, SOUP
from peo.records import Pick
from peo.win_rates import ASPECT_SCORES, pairwise, vote_record

# chat columns: picked, ref, DPO-Help/-Harm, soup
COMPARED: tuple[str, ...] = (PEO, REFERENCE, *DEFAULT_ASPECTS.names, SOUP)
ASPECT_FILTERS = {"all prompts": None, "help prompts": "help", "harm prompts": "harm"}
# sort key → (score, descending): the picked point's score minus the reference's on the same prompt
SORTS = {"prompt order": None,
         "reward − reference, largest first": ("reward", True),
         "reward − reference, smallest first": ("reward", False),
         "cost − reference, largest drop first": ("cost", False),
         "cost − reference, largest rise first": ("cost", True)}
DEFAULT_SHOWN = 10
SCORE_KEYS = ("answer", "reward", "cost")

COMPARE_CSS = """
.peo-compare { font-size: 14px; }
.peo-compare .peo-note { margin: 4px 0 10px; color: #444; }
.peo-compare .peo-prompt { border: 1px solid #ddd; border-radius: 6px; padding: 8px 10px; margin-bottom: 12px; }
.peo-compare .peo-prompt-head { font-size: 12px; color: #555; margin-bottom: 4px; }
.peo-compare .peo-turn { white-space: pre-wrap; overflow-wrap: anywhere; margin: 4px 0; }
.peo-compare .peo-turn.user { font-weight: 600; }
.peo-compare details { font-size: 13px; color: #333; }
.peo-compare .peo-answers { display: grid; grid-template-columns: repeat(auto-fit, minmax(210px, 1fr)); gap: 8px;
  margin-top: 6px; }
.peo-compare .peo-answer { border: 1px solid #e3e3e3; border-radius: 5px; padding: 6px 8px; min-width: 0;
  border-top: 4px solid var(--peo-col, #888); }
.peo-compare .peo-answer-head { font-weight: 600; font-size: 13px; }
.peo-compare .peo-answer-text { white-space: pre-wrap; overflow-wrap: anywhere; margin: 4px 0; }
.peo-compare .peo-answer-scores { font-size: 12px; color: #333; }
.peo-compare .peo-flag { color: #b00020; font-weight: 600; }
.peo-compare table.peo-record { border-collapse: collapse; margin: 4px 0 12px; font-size: 13px; }
.peo-compare table.peo-record th, .peo-compare table.peo-record td { border: 1px solid #e3e3e3; padding: 3px 8px;
  text-align: left; }
"""
COMPARE_CSV_COLUMNS = ["split", "prompt_id", "kind", "prompt", "column", "model_id", "answer", "reward", "cost",
                       "flags"]
EVADES_FLAG = "evades"  # the answer does not address the request (answers.parquet `evades`, peo/evasion.py)


@dataclass
class Answer:
    """One model's answer to one prompt, with its scores (None when the model was not run on that prompt)."""

    text: str
    reward: float
    cost: float
    flags: list[str] = field(default_factory=list)


@dataclass
class PromptRow:
    prompt_id: str
    kind: str
    messages: list[dict]
    answers: dict[str, Answer | None]  # compared column → answer

    def difference(self, score: str) -> float | None:
        """The picked point's score minus the reference's on this prompt; None when either is missing."""
        picked, ref = self.answers.get(PEO), self.answers.get(REFERENCE)
        if picked is None or ref is None:
            return None
        return getattr(picked, score) - getattr(ref, score)


def compared_models(grid: pd.DataFrame, info: Pick) -> dict[str, str | None]:
    """Compared column → model_id: the picked point, the fixed baselines (grid rows of their method), and the
    soup at the picked λ (the model c = (λ, 1 − λ)); None for a baseline the assets lack."""
    out: dict[str, str | None] = {}
    for column in COMPARED:
        if column == PEO:
            out[column] = str(info.model_id)
        elif column == SOUP:
            out[column] = soup_model(info)
        elif column in DEFAULT_ASPECTS.baselines:
            rows = grid[grid["method"] == column]
            out[column] = str(rows.iloc[0]["model_id"]) if not rows.empty else None
    return out


def scored_answers(scored: Sequence[Mapping], mid: str) -> pd.DataFrame | None:
    """The answers of an off-grid point scored on demand in this session (app/offgrid_scoring), if any."""
    for point in scored or ():
        if point.get("model_id") == mid and point.get("answers"):
            return pd.DataFrame(point["answers"])
    return None


def choose_split(answers: pd.DataFrame, picked_id: str, picked_extra: pd.DataFrame | None = None) -> str:
    """The picked point's split: test when it has test answers (or was scored on demand), else dev."""
    if picked_extra is not None:
        return "test"
    splits = set(answers.loc[answers["model_id"].astype(str) == picked_id, "split"])
    return "dev" if splits == {"dev"} else "test"


def parse_messages(prompt_json: str) -> list[dict]:
    try:
        messages = json.loads(prompt_json)
    except (TypeError, ValueError):
        return [{"role": "user", "content": str(prompt_json)}]
    return [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []


def _answer(row: Mapping) -> Answer:
    text = str(row["answer"])
    evades = row.get(EVADES)
    flags = answer_flags(text, bool(row["cut"])) + ([EVADES_FLAG] if evades is True or evades == 1 else [])
    return Answer(text, float(row["reward"]), float(row["cost"]), flags)


def prompt_rows(answers: pd.DataFrame, ids: Mapping[str, str | None], split: str,
                picked_extra: pd.DataFrame | None = None) -> list[PromptRow]:
    """One row per prompt of `split` that any compared model answered, in the assets' prompt order."""
    sub = answers[(answers["split"] == split) & answers["model_id"].astype(str).isin([m for m in ids.values() if m])]
    by_model = {mid: {str(r["prompt_id"]): r for r in group.to_dict("records")}
                for mid, group in sub.groupby(sub["model_id"].astype(str), sort=False)}
    if picked_extra is not None:
        by_model = {**by_model, "__picked__": {str(r["prompt_id"]): r for r in picked_extra.to_dict("records")}}
    firsts: dict[str, Mapping] = {}
    for rows in by_model.values():
        for pid, r in rows.items():
            firsts.setdefault(pid, r)
    out = []
    for pid, first in firsts.items():
        row_answers: dict[str, Answer | None] = {}
        for column, mid in ids.items():
            source = by_model.get("__picked__" if column == PEO and picked_extra is not None else mid or "", {})
            row_answers[column] = _answer(source[pid]) if pid in source else None
        out.append(PromptRow(pid, str(first["prompt_kind"]), parse_messages(first["prompt"]), row_answers))
    return out


def select_rows(rows: Sequence[PromptRow], aspect: str | None = None, sort: str = "prompt order",
                limit: int | None = None) -> list[PromptRow]:
    """Filter by prompt kind, sort by the picked − reference difference (missing differences last), cut."""
    kept = [r for r in rows if aspect is None or r.kind == aspect]
    how = SORTS.get(sort)
    if how is not None:
        score, descending = how

        def key(r: PromptRow) -> tuple[bool, float]:
            d = r.difference(score)
            return (d is None, 0.0 if d is None else (-d if descending else d))

        kept = sorted(kept, key=key)
    return kept[:limit] if limit else kept


def _scores_html(answer: Answer, ref: Answer | None, column: str) -> str:
    def one(name: str) -> str:
        value = getattr(answer, name)
        delta = "" if ref is None or column == REFERENCE else f" (Δ {value - getattr(ref, name):+.2f})"
        return f"{name} {value:+.3f}{delta}"

    flags = "".join(f' · <span class="peo-flag">{html.escape(f)}</span>' for f in answer.flags)
    return f"{one('reward')} · {one('cost')}{flags}"


def _turn(message: Mapping) -> str:
    role = str(message.get("role", ""))
    return (f'<div class="peo-turn {html.escape(role)}"><b>{html.escape(role)}:</b> '
            f'{html.escape(str(message.get("content", "")))}</div>')


def row_html(row: PromptRow, labels: Mapping[str, str], colors: Mapping[str, str]) -> str:
    """One prompt: earlier turns collapsed, the last user turn, the answers in a wrapping grid."""
    earlier, last = row.messages[:-1], row.messages[-1:] or [{"role": "user", "content": ""}]
    context = ""
    if earlier:
        context = (f"<details><summary>earlier turns ({len(earlier)} messages)</summary>"
                   f"{''.join(_turn(m) for m in earlier)}</details>")
    ref = row.answers.get(REFERENCE)
    cells = []
    for column, answer in row.answers.items():
        body = ('<div class="peo-answer-text"><i>not run on this prompt</i></div>' if answer is None else
                f'<div class="peo-answer-text">{html.escape(answer.text) or "<i>(empty answer)</i>"}</div>'
                f'<div class="peo-answer-scores">{_scores_html(answer, ref, column)}</div>')
        cells.append(f'<div class="peo-answer" data-column="{column}" style="--peo-col: {colors.get(column, "#888")}">'
                     f'<div class="peo-answer-head">{html.escape(labels[column])}</div>{body}</div>')
    return (f'<section class="peo-prompt" data-prompt="{html.escape(row.prompt_id)}">'
            f'<div class="peo-prompt-head">{html.escape(row.kind)} prompt <code>{html.escape(row.prompt_id)}</code>'
            f"</div>{context}{''.join(_turn(m) for m in last)}"
            f'<div class="peo-answers">{"".join(cells)}</div></section>')


def soup_model(info: Pick) -> str:
    """The soup at the picked free λs: the model c = λ (ϕ = 0)."""
    return model_id(*coefficients(tuple(float(x) for x in info.lambdas.values())))


def soup_label(info: Pick) -> str:
    """'Soup λ=0.5' (two aspects), 'Soup λ=(0.25, 0.5)' (more: the free λs)."""
    lambdas = [f"{float(x):g}" for x in info.lambdas.values()]
    return f"Soup λ={lambdas[0]}" if len(lambdas) == 1 else f"Soup λ=({', '.join(lambdas)})"


def column_labels(info: Pick, ids: Mapping[str, str | None]) -> dict[str, str]:
    """Chat column labels with the model each one is here; same-model columns say so (e.g. soup = picked)."""
    labels = {}
    for column, mid in ids.items():
        label = DEFAULT_ASPECTS.chat_columns[column]
        if column == PEO:
            label += f" c=({', '.join(f'{c:g}' for c in info.coefficients.values())})"
        if column == SOUP:
            label = soup_label(info)
        same = [DEFAULT_ASPECTS.chat_columns[c] for c, m in ids.items() if c != column and m is not None and m == mid]
        labels[column] = label + (f" (= {', '.join(same)})" if same else "")
    return labels


def note(info: Pick, ids: Mapping[str, str | None], split: str, shown: int, total: int, on_demand: bool) -> str:
    """What the grid shows and why a column may be empty (off-grid pick, a model not run on these prompts)."""
    text = f"{shown} of {total} {split} prompts; Δ is each answer's score minus the reference's on the same prompt."
    if on_demand:
        text += (" The picked point's answers were generated and scored on demand in this session (a Stop "
                 "leaves the prompts after it not run).")
    elif info.precomputed is None:
        text += (f" The picked point {info.model_id} is <b>off-grid</b>: it has no precomputed answers (score it "
                 f"with <b>{SCORE_BUTTON}</b>, above this view); the other columns are shown.")
    elif split == "dev":
        text += " The picked point was run on the dev prompts only, so every column shows dev answers."
    return f'<div class="peo-note">{text}</div>'


RECORD_SPLIT = "test"


def record_opponents(grid: pd.DataFrame, info: Pick, answers: pd.DataFrame) -> dict[str, str]:
    """What the picked point's record is against: label → model_id, those with test answers."""
    tested = set(answers.loc[answers["split"] == RECORD_SPLIT, "model_id"].astype(str))
    out: dict[str, str] = {soup_label(info): soup_model(info)}
    for method in ("help", "harm", JOINT):
        rows = grid[grid["method"] == method]
        if not rows.empty:
            out[DEFAULT_ASPECTS.baseline_labels[method]] = str(rows.iloc[0]["model_id"])
    out[f"ExPO α={EXPO_CHAT_ALPHA:g}"] = expo_model_id(EXPO_CHAT_ALPHA)
    return {label: mid for label, mid in out.items() if mid in tested}


def _record_cell(record) -> str:
    if record.n == 0:
        return "–"
    lo, hi = record.interval("won")
    return (f"won {record.share('won'):.0%} [{lo:.0%}, {hi:.0%}] · tied {record.share('tied'):.0%} · lost "
            f"{record.share('lost'):.0%} <small>(n={record.n})</small>")


def record_html(answers: pd.DataFrame, grid: pd.DataFrame, info: Pick, picked_extra: pd.DataFrame | None = None,
                votes: Sequence[Mapping] = ()) -> str:
    """The picked point's pairwise record on the test prompts against each compared method; '' without test
    answers of the picked point. Helpfulness: reward on benign prompts; harmlessness: cost on harmful prompts."""
    mid = str(info.model_id)
    sub = answers[answers["split"] == RECORD_SPLIT]
    if picked_extra is not None:
        mine = picked_extra.assign(model_id="__picked__", split=RECORD_SPLIT)
        sub, mid = pd.concat([sub, mine], ignore_index=True), "__picked__"
    if not (sub["model_id"].astype(str) == mid).any():
        return ""
    with_votes = bool(votes)
    rows = []
    for label, other in record_opponents(grid, info, answers).items():
        records = pairwise(sub, mid, other, RECORD_SPLIT, aspects=DEFAULT_ASPECTS)
        same = " (the same model)" if other == mid else ""
        cells = "".join(f"<td>{_record_cell(records[aspect])}</td>" for aspect in ASPECT_SCORES)
        if with_votes:
            human = vote_record(votes, str(info.model_id), other)
            cells += f"<td>{_record_cell(human) if human.n else 'no votes'}</td>"
        rows.append(f"<tr><td>{html.escape(label)} <code>{html.escape(other)}</code>{same}</td>{cells}</tr>")
    if not rows:
        return ""
    head = "".join(f"<th>{aspect} ({'reward, benign' if score == 'reward' else 'cost, harmful'} prompts)</th>"
                   for aspect, (score, _) in ASPECT_SCORES.items()) + ("<th>human votes</th>" if with_votes else "")
    return ('<div class="peo-note"><b>Pairwise record on the test prompts</b>: on each prompt the picked point wins '
            "when its answer scores better than the other model's answer to the same prompt (higher reward on a "
            "benign prompt, lower cost on a harmful one), ties when the scores are equal or the answers the same "
            "text; share won [Wilson 95% interval].</div>"
            f'<table class="peo-record"><tr><th>against</th>{head}</tr>{"".join(rows)}</table>')


def compared(answers: pd.DataFrame, grid: pd.DataFrame, info: Pick, scored: Sequence[Mapping]
             ) -> tuple[dict[str, str | None], pd.DataFrame | None, str]:
    """What the view compares for a pick: column → model_id, the picked point's answers scored on demand (only a
    point without test answers is ever scored), and the split shown."""
    ids = compared_models(grid, info)
    extra = scored_answers(scored, str(info.model_id))
    return ids, extra, choose_split(answers, str(info.model_id), extra)


def compare_html(answers: pd.DataFrame, grid: pd.DataFrame, info: Pick, colors: Mapping[str, str],
                 aspect: str | None = None, sort: str = "prompt order", limit: int | None = DEFAULT_SHOWN,
                 scored: Sequence[Mapping] = (), votes: Sequence[Mapping] = ()) -> str:
    """The whole view for one pick: the pairwise record, a note, then one block per prompt. `votes`: human votes
    (peo.votes.VoteStore.votes rows) shown beside the record, where there are any."""
    ids, extra, split = compared(answers, grid, info, scored)
    rows = prompt_rows(answers, ids, split, extra)
    total = len([r for r in rows if aspect is None or r.kind == aspect])
    shown = select_rows(rows, aspect, sort, limit)
    labels = column_labels(info, ids)
    body = "".join(row_html(r, labels, colors) for r in shown)
    record = record_html(answers, grid, info, extra, votes)
    return (f'<div class="peo-compare">{record}{note(info, ids, split, len(shown), total, extra is not None)}'
            f"{body}</div>")


def compare_table(answers: pd.DataFrame, grid: pd.DataFrame, info: Pick, aspect: str | None = None,
                  sort: str = "prompt order", limit: int | None = DEFAULT_SHOWN,
                  scored: Sequence[Mapping] = ()) -> pd.DataFrame:
    """The rows the view shows (same filter, order and count), one line per prompt and compared column, for a
    CSV download: the whole answer and prompt, scores, flags; a column not run on a prompt has no answer."""
    ids, extra, split = compared(answers, grid, info, scored)
    labels = column_labels(info, ids)
    lines = []
    for row in select_rows(prompt_rows(answers, ids, split, extra), aspect, sort, limit):
        prompt = row.messages[-1]["content"] if row.messages else ""
        for column, answer in row.answers.items():
            lines.append({"split": split, "prompt_id": row.prompt_id, "kind": row.kind, "prompt": prompt,
                          "column": labels[column], "model_id": ids[column],
                          "answer": None if answer is None else answer.text,
                          "reward": None if answer is None else answer.reward,
                          "cost": None if answer is None else answer.cost,
                          "flags": None if answer is None else "; ".join(answer.flags)})
    return pd.DataFrame(lines, columns=COMPARE_CSV_COLUMNS)


def _limit(value) -> int | None:
    try:
        n = int(value)
    except (TypeError, ValueError):
        return DEFAULT_SHOWN
    return None if n <= 0 or math.isinf(n) else n


@dataclass
class CompareView:
    """The view's components: `wire` connects them to the pick."""

    aspect: gr.Radio
    sort: gr.Dropdown
    limit: gr.Slider
    html: gr.HTML
    download: gr.Button  # the rows shown, as CSV (compare_table)
    file: gr.File


def compare_panel(answers: pd.DataFrame, grid: pd.DataFrame, info: Pick, colors: Mapping[str, str],
                  votes: Sequence[Mapping] = ()) -> CompareView:
    """An accordion with the filters and the side-by-side answers of the start point (`votes`: the human votes
    so far, beside the record)."""
    with gr.Accordion("Compare generations: the same prompt, side by side", open=False, elem_id="compare-panel"):
        with gr.Row():
            aspect = gr.Radio(list(ASPECT_FILTERS), value="all prompts", label="prompts", elem_id="compare-aspect")
            sort = gr.Dropdown(list(SORTS), value="prompt order", label="sort by the picked point's score − the "
                               "reference's", elem_id="compare-sort")
            limit = gr.Slider(1, 200, value=DEFAULT_SHOWN, step=1, label="prompts shown", elem_id="compare-limit")
        view = gr.HTML(compare_html(answers, grid, info, colors, votes=votes), css_template=COMPARE_CSS,
                       js_on_load=None, elem_id="compare-view")
        with gr.Row():
            download = gr.Button("Download these rows (CSV)", size="sm", elem_id="compare-download", scale=1)
            file = gr.File(label="compare rows", interactive=False, elem_id="compare-file", scale=3, visible=False)
    return CompareView(aspect, sort, limit, view, download, file)


def wire_compare(view: CompareView, answers: pd.DataFrame, grid: pd.DataFrame, colors: Mapping[str, str],
                 point_state: gr.State, scored_state: gr.State,
                 votes: Callable[[], Sequence[Mapping]] | None = None) -> None:
    """Redraw on a pick, a filter change, or a newly scored off-grid point. `votes`: returns the human votes
    (peo.votes.VoteStore.votes rows) at redraw time, shown beside the pairwise record; none when not given."""

    def redraw(info, aspect, sort, limit, scored):
        return compare_html(answers, grid, as_pick(info), colors, ASPECT_FILTERS.get(aspect), sort, _limit(limit),
                            scored or (), votes() if votes else ())

    def download(info, aspect, sort, limit, scored) -> dict:
        info = as_pick(info)
        table = compare_table(answers, grid, info, ASPECT_FILTERS.get(aspect), sort, _limit(limit), scored or ())
        path = export_store.download(f"compare-{info.model_id}.csv", lambda p: table.to_csv(p, index=False))
        return gr.update(value=str(path), visible=True)

    inputs = [point_state, view.aspect, view.sort, view.limit, scored_state]
    for trigger in (point_state.change, view.aspect.change, view.sort.change, view.limit.release,
                    scored_state.change):
        trigger(redraw, inputs, view.html, api_visibility="private", show_progress="hidden")
    view.download.click(download, inputs, view.file, api_visibility="private")
