"""The Gradio Blocks layout: the front figure and point picker, precomputed answers, side-by-side chat, export.

The figure is a `gr.HTML` drawn with the plotly.js bundled in the `plotly` Python package (served by this app
from the package's own folder: no CDN). A click on a grid point is forwarded to Python with `trigger('click',
{...})`, which picks that point. The sliders and the front table pick points too (sliders allow off-grid values).

Named API endpoints for gradio_client: `/pick` and `/chat` (see `pick_api` and `chat_api`).
"""

from __future__ import annotations

import inspect
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import pandas as pd
import plotly

from app import callbacks as cb
from app.aspect_text import (
    PROMPT_WORDS,
    Axis,
    evaluator_pairs,
    pair_key,
    pair_label,
    parse_pair,
    picker_axes,
    point_symbols,
)
from app.chat_panel import chat_panel, wire_chat
from app.context_panel import context_panel
from app.data import PICKED_MARK, AppData, AppInputError, as_pick
from app.figure import custom_fields, default_pair, figure_json, fmt, hypervolume_text
from app.research_views import research_views, wire_views
from app.share_link import share_panel, wire_share_link
from app.votes_panel import votes_panel, wire_votes
from peo.aspects import DEFAULT_ASPECTS, Aspects
from peo.names import PEO
from peo.records import FrontsReport, Pick
from peo.votes import VoteStore

log = logging.getLogger("app")

PLOTLY_JS = Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"

# draws the figure; a click on a grid point triggers 'click' with the point's columns (POINT_COLUMNS, the first
# fields of customdata) and its model_id (plot_js fills both in)
PLOT_JS_TEMPLATE = r"""
function draw() {
  const div = element.querySelector('.peo-front-plot');
  if (!div) return;
  if (!window.Plotly) {
    div.textContent = 'plotly.js did not load; use the sliders and the table to pick a point.';
    return;
  }
  if (!props.value) return;
  const fig = typeof props.value === 'string' ? JSON.parse(props.value) : props.value;
  window.Plotly.react(div, fig.data, fig.layout, {responsive: true, displaylogo: false});
  const meta = (fig.layout && fig.layout.meta) || {};
  div.dataset.picked = meta.picked || '';
  div.dataset.renders = String((parseInt(div.dataset.renders || '0', 10)) + 1);
  if (!div._peoClick) {
    div._peoClick = true;
    div.on('plotly_click', function (ev) {
      if (!ev || !ev.points || !ev.points.length) return;
      const c = ev.points[0].customdata;
      if (!c) return;
      const names = POINT_COLUMNS, point = {};
      for (let i = 0; i < names.length; i++) {
        const x = parseFloat(c[i]);
        if (isNaN(x)) return;  // baselines are not PEO grid points
        point[names[i]] = x;
      }
      point.model_id = c[MODEL_ID_INDEX];
      trigger('click', point);
    });
  }
}
draw();
watch('value', draw);
"""


def plot_js(aspects: Aspects) -> str:
    """The figures' script for a run's aspects: a click sends the point's columns and model_id."""
    return (PLOT_JS_TEMPLATE.replace("POINT_COLUMNS", json.dumps(list(aspects.point_columns)))
            .replace("MODEL_ID_INDEX", str(custom_fields(aspects).index("model_id"))))


SCORE_COLUMNS_WIDTH = 14  # % of the answers table for the evaluators' scores together


def answer_column_widths(aspects: Aspects) -> list[str]:
    """The answers table's widths: split, kind, prompt, answer, a score per evaluator (reward, cost …), loops,
    refuses: the prompt narrow, the answer wide."""
    each = f"{SCORE_COLUMNS_WIDTH // len(aspects)}%"
    return ["6%", "6%", "22%", "42%", *[each] * len(aspects), "5%", "5%"]

# which prompts the answers table shows: both kinds, the same number of each (a split's first rows can all be one
# kind), or every prompt of one kind
BOTH_KINDS = "both"
KIND_WORDS = {"harm": "harmful prompts", "help": "helpful prompts"}  # else '<aspect> prompts'
ANSWER_ROWS = 20  # rows shown for all kinds together
EVALUATOR_COLUMNS_WIDTH = 28  # % of the front table for the evaluators' figures together


def answer_kinds(aspects: Aspects) -> dict[str, str]:
    """The answers table's choice of prompts: every kind in equal shares, or one aspect's prompts."""
    every = "both kinds, half each" if len(aspects) == 2 else "every kind, an equal share each"
    return {BOTH_KINDS: every, **{n: KIND_WORDS.get(n, f"{n} prompts") for n in reversed(aspects.names)}}



def front_columns(aspects: Aspects) -> list[str]:
    """The front table's columns (picker_front_table): model and point, then each figure as "test (dev)"."""
    return ["", "model_id", point_symbols(aspects), *(f"{ev} test (dev)" for ev in aspects.evaluators),
            "loops test (dev)", "evades benign / harmful", "complied", "on the test front"]


def front_column_widths(aspects: Aspects) -> list[str]:
    each = f"{EVALUATOR_COLUMNS_WIDTH // len(aspects)}%"
    return ["3%", "15%", "12%", *[each] * len(aspects), "10%", "13%", "9%", "10%"]


# (grid axis, slider label, symbol, element id prefix) of the default two aspects' picker axes (picker_axes)
AXES = tuple((a.column, a.label, a.symbol, a.key) for a in picker_axes(DEFAULT_ASPECTS))
FRONT_COLUMNS = front_columns(DEFAULT_ASPECTS)
SINGLE_VALUE_STEP = 0.01  # the step of an axis swept at one value (its slider cannot move anyway)
CSS = """
.peo-front-plot { width: 100%; min-height: 520px; }
.peo-axis input[type=number] { display: none; }
.peo-status { font-size: 0.9em; color: #555; }
"""


def plotly_head() -> str:
    return f'<script src="/gradio_api/file={PLOTLY_JS.as_posix()}"></script>'


def _error(err: Exception) -> gr.Error:
    return gr.Error(str(err), print_exception=False)


def grid_step(values: list[float]) -> float:
    """An axis' step for its slider and box: the smallest gap between its grid values (meta.json "grid"), so a
    drag or an arrow key lands on evaluated points; any value can still be typed. One value: a fine step."""
    ordered = sorted({round(float(v), 9) for v in values})
    gaps = [b - a for a, b in zip(ordered, ordered[1:])]
    return min(gaps) if gaps else SINGLE_VALUE_STEP


def start_point(data: AppData) -> tuple[float, ...]:
    """The first pick: each free λ at the grid value nearest an equal share of its range (two aspects: the
    middle), ϕ at their lowest, so the page opens on precomputed scores."""
    aspects = data.aspects
    lambdas = []
    for column in aspects.lambda_columns:
        lo, hi = data.axis_range(column)
        target = lo + (hi - lo) / len(aspects) if hi > lo else lo
        lambdas.append(min(data.grid_axis(column), key=lambda x: abs(x - target)))
    return (*lambdas, *(data.axis_range(column)[0] for column in aspects.phi_columns))


@dataclass
class Picker:
    """The components that pick a point and show it: the events (wire_pick) read and update these."""

    plot: gr.HTML
    axes: tuple[Axis, ...]  # the point's columns (app.aspect_text.picker_axes), in the order pick() takes them
    pair: gr.Dropdown | gr.State  # the two evaluators the figure draws (a State for the one pair of two aspects)
    sliders: list[gr.Slider]  # λ, ϕ_help, ϕ_harm (the axes' order): dragged, always in range
    boxes: list[gr.Number]  # the same, typed: any value, checked before anything is picked
    pick_btn: gr.Button
    status: gr.Markdown  # why a typed value was refused
    summary: gr.Markdown
    front_table: gr.Dataframe
    answers: gr.Dataframe  # follows the picked point (wire_pick), not part of pick_updates
    answer_kind: gr.Radio  # which prompts the answers table shows

    def outputs(self, point_state: gr.State) -> list:
        """What every pick updates, in pick_updates' order (the figure drawn for the pair chosen)."""
        return [*self.sliders, *self.boxes, self.plot, self.summary, self.front_table, point_state, self.status]


@dataclass
class ExportPanel:
    """The export's components: wire_export reads and updates these."""

    what: gr.Dropdown
    fmt: gr.Radio
    button: gr.Button
    file: gr.File


def point_meaning(aspects: Aspects) -> str:
    """What a point is, in the intro's words: (λ, ϕ) → the model θ_ref + Σ c·Δ."""
    if aspects == DEFAULT_ASPECTS:
        return ("# PEO: a Pareto front of helpful / harmless policies\n"
                "Every point (λ, ϕ_help, ϕ_harm) is the model θ_ref + c_help·Δ_help + c_harm·Δ_harm with "
                "c_help = λ + ϕ_help and c_harm = 1 − λ + ϕ_harm, where Δ_help and Δ_harm are DPO LoRA task vectors. ")
    names = aspects.names
    model = " + ".join(f"c_{a}·Δ_{a}" for a in names)
    free = " − ".join(f"λ_{a}" for a in names[:-1])
    return (f"# PEO: a Pareto front of {' / '.join(a.label for a in aspects)} policies\n"
            f"Every point ({point_symbols(aspects)}) is the model θ_ref + {model} with c_a = λ_a + ϕ_a for each "
            f"aspect a (λ_{names[-1]} = 1 − {free}), where {', '.join(f'Δ_{a}' for a in names)} are DPO LoRA task "
            "vectors. ")


def intro(data: AppData) -> None:
    """The page's head: what a point means and which prompts the figures come from, before anything to click."""
    first, *rest = data.aspects
    read = ", ".join([f"{first.evaluator} is read on the {PROMPT_WORDS.get(first.name, first.name)} prompts",
                      *(f"{a.evaluator} on the {PROMPT_WORDS.get(a.name, a.name)} ones" for a in rest)])
    read = " and ".join(read.rsplit(", ", 1))
    gr.Markdown(
        point_meaning(data.aspects) +
        "Click a point, use the sliders or choose a row of the front table; then chat with the picked policy "
        "next to the baselines.\n\nThe fronts were chosen on dev prompts; every figure shown is on held-out test "
        "prompts, except for points that were only run on the dev prompts (labelled *dev only*). "
        f"{read[0].upper()}{read[1:]}. Points that "
        f"loop in more than {data.max_loop_share:.0%} of their answers are drawn hollow; the front admits only "
        "points whose dev answers loop at most that often" + evasion_filter_text(data.report) + ".")


def evasion_filter_text(report: FrontsReport) -> str:
    """The front's evasion filter in words, when the assets have one (fronts.json)."""
    excess, limit = report.max_benign_evasion_excess, report.evasion_limit
    if excess is None or limit is None:
        return ""
    return (f" and whose benign dev answers evade (ignore the request) at most {excess * 100:g} points more often "
            f"than the reference's ({limit:.0%})")


def picker_panel(data: AppData, start: tuple[float, ...], start_info: Pick) -> Picker:
    """The figure beside the sliders, the front table under both, so each way to pick a point is in view of the
    others. A slider per free λ and per ϕ (app.aspect_text.picker_axes); with more than two aspects a choice of
    the two evaluators the figure draws (two aspects: the one pair, so nothing is shown).

    Each axis has a slider (dragging stays in range) and a box to type a value, both stepping by the grid's step
    (an off-grid value is typed). The sliders' own number boxes are hidden (CSS): the browser clamps a typed
    out-of-range value there and the clamped value got picked; a typed value goes through the boxes, where a
    refused one picks nothing (pick_updates).
    """
    sliders, boxes = [], []
    aspects = data.aspects
    axes = picker_axes(aspects)
    pairs = evaluator_pairs(aspects)
    with gr.Row():
        with gr.Column(scale=3):
            if len(pairs) > 1:
                pair = gr.Dropdown([(pair_label(p), pair_key(p)) for p in pairs], value=pair_key(pairs[0]),
                                   label="objectives drawn", elem_id="front-pair")
            else:  # the one pair: nothing to choose, nothing shown
                pair = gr.State(pair_key(pairs[0]))
            plot = gr.HTML(figure_json(data, start_info), html_template='<div class="peo-front-plot"></div>',
                           js_on_load=plot_js(aspects), head=plotly_head(), elem_id="front-plot",
                           apply_default_css=False)
            gr.Markdown(hypervolume_text(data), elem_id="hypervolumes")
        with gr.Column(scale=2):
            for axis, value in zip(axes, start):
                lo, hi = data.axis_range(axis.column)
                step = grid_step(data.grid_axis(axis.column))
                single = hi <= lo  # one value swept: nothing to drag (a slider needs a range), the box shows it
                with gr.Row(equal_height=True):
                    sliders.append(gr.Slider(lo, hi if not single else lo + 1.0, value=value, step=step,
                                             label=f"{axis.label}, grid step {step:g}", scale=4, buttons=[],
                                             elem_id=f"{axis.key}-slider", elem_classes=["peo-axis"],
                                             visible=not single))
                    boxes.append(gr.Number(value, label=(f"{axis.symbol} in [{lo:g}, {hi:g}]" if not single else
                                                         f"{axis.symbol} = {lo:g} (the one value swept)"),
                                           scale=1, min_width=100, step=step, elem_id=f"{axis.key}-input",
                                           interactive=not single))
            pick_btn = gr.Button("Pick this point", variant="primary", elem_id="pick-button")
            status = gr.Markdown("", elem_id="pick-status", elem_classes=["peo-status"])
            summary = gr.Markdown(cb.pick_summary(start_info, data), elem_id="pick-summary")
    # the page's full width under the figure and the picker: beside the figure, cost, loops and model_id were hidden
    front_table = gr.Dataframe(picker_front_table(data, start_info.model_id), interactive=False, wrap=True,
                               elem_id="front-table", max_height=260, column_widths=front_column_widths(aspects),
                               label=front_table_label(data))
    with gr.Accordion("Precomputed answers of the picked point", open=False):
        answer_kind = gr.Radio([(label, key) for key, label in answer_kinds(aspects).items()], value=BOTH_KINDS,
                               label="prompts", elem_id="answer-kind")
        start = picked_answers(data, start_info.model_id, BOTH_KINDS)
        answers = gr.Dataframe(start, interactive=False, wrap=True, elem_id="picked-answers", max_height=400,
                               column_widths=answer_column_widths(aspects),
                               label=answers_label(start_info, start, aspects))
    return Picker(plot, axes, pair, sliders, boxes, pick_btn, status, summary, front_table, answers, answer_kind)


def _test_dev(test, dev, spec: str) -> str:
    """'0.147 (0.150)': a test figure and, in brackets, the dev one that chose the point; '–' where unknown."""
    return f"{fmt(test, spec)} ({fmt(dev, spec)})"


def picker_front_table(data: AppData, picked_model_id: str | None = None) -> pd.DataFrame:
    """The PEO front, one row per model in the test order of the figure's evaluator across (two aspects: test
    cost; the figure's line, left to right): test figures with the dev ones that chose it in brackets, and whether
    test confirms it. The picked model's row is marked, as the figure marks it with a star; a click picks the
    row's model (front_row_point)."""
    aspects = data.aspects
    across = aspects.mean_column(default_pair(aspects)[0])
    rows = []
    front = data.front(PEO)
    for p in sorted(front.points if front else [], key=lambda p: float(p[across])):
        dev = p.get("dev") or {}
        rows.append([PICKED_MARK if p["model_id"] == picked_model_id else "", p["model_id"],
                     ", ".join(f"{p[column]:g}" for column in aspects.point_columns),
                     *(_test_dev(p[aspects.mean_column(ev)], dev.get(aspects.mean_column(ev)), ".3f")
                       for ev in aspects.evaluators),
                     _test_dev(p["loop_share"], dev.get("loop_share"), ".0%"),
                     f"{fmt(p.get('evasion_share_benign'), '.0%')} / {fmt(p.get('evasion_share_harmful'), '.0%')}",
                     fmt(p.get("complied_share"), ".0%"), "yes" if p.get("on_test_front", True) else "dominated"])
    return pd.DataFrame(rows, columns=front_columns(aspects))


def front_table_label(data: AppData) -> str:
    """What the table is and why its rows are in this order."""
    across = default_pair(data.aspects)[0]
    return (f"PEO Pareto front: chosen on {data.n_prompts('dev')} dev prompts, ordered by test {across} (the figure's "
            f"line, left to right). Test figures, dev in brackets; 'dominated': beaten on test by another front "
            f"point. Click a row to pick it; {PICKED_MARK} = picked.")


def front_row_point(data: AppData, mid: str) -> tuple[float, ...]:
    """The point (λ, ϕ_help, ϕ_harm; the point columns) a front table row picks: its front point's grid point."""
    point = next(p for p in data.front(PEO).points if p["model_id"] == mid)
    return tuple(point[column] for column in data.point_columns)


def export_panel(aspects: Aspects = DEFAULT_ASPECTS) -> ExportPanel:
    """A closed accordion: exporting is rare, and a merged export writes a whole model."""
    with gr.Accordion("Export a policy", open=False):
        with gr.Row():
            what = gr.Dropdown([("picked PEO point", PEO),
                                *((label, key) for key, label in aspects.baseline_labels.items())],
                               value=PEO, label="policy")
            fmt = gr.Radio([("LoRA adapters (small)", "adapter"), ("merged model", "merged")], value="adapter",
                           label="format")
            button = gr.Button("Export as .zip", elem_id="export")
        file = gr.File(label="download", interactive=False)
    return ExportPanel(what, fmt, button, file)


def picked_answers(data: AppData, mid: str, kind: str) -> pd.DataFrame:
    """The answers table: `kind` BOTH_KINDS alternates the kinds, an equal share of ANSWER_ROWS each (two: half),
    so harmful prompts are reachable whatever order the split is in; a kind alone shows every one of its prompts."""
    kinds = answer_kinds(data.aspects)
    if kind not in kinds:
        raise AppInputError(f"prompts must be one of {', '.join(kinds)}, got {kind!r}")
    rows = data.sample_answers(mid, limit=len(data.answers))
    if kind != BOTH_KINDS:
        return rows[rows["kind"] == kind].reset_index(drop=True)
    names = data.aspects.names
    each = ANSWER_ROWS // len(names)
    per_kind = [rows[rows["kind"] == aspect].head(each).reset_index(drop=True) for aspect in names]
    return pd.concat(per_kind).sort_index(kind="stable").reset_index(drop=True)


def answers_label(info: Pick, shown: pd.DataFrame, aspects: Aspects = DEFAULT_ASPECTS) -> str:
    """The answers table's label: whose answers and how many of each kind, or why there are none (an off-grid
    point was never run)."""
    if info.precomputed is None:
        return (f"No precomputed answers: {info.model_id} is off the grid (never evaluated); "
                f"use '{cb.SCORE_BUTTON}' or chat with it")
    counts = shown["kind"].value_counts()
    words = answer_kinds(aspects)
    kinds = ", ".join(f"{counts.get(k, 0)} {words[k]}" for k in aspects.names)
    return f"Precomputed answers of {info.model_id} ({kinds})"


def answers_update(data: AppData, info: Pick, kind: str) -> dict:
    """The answers table after a pick or a change of `kind`."""
    shown = picked_answers(data, info.model_id, kind)
    return gr.update(value=shown, label=answers_label(info, shown, data.aspects))


def pick_updates(app: cb.App, values, current: Pick | dict, refused: str | None = None,
                 scored: list[dict] | None = None, pair: str | None = None) -> tuple:
    """What a pick sets, in Picker.outputs' order: sliders, boxes, figure, summary, front table, state, status.

    `scored`: the off-grid points this session scored on demand, drawn on the front with the pick (the front is
    drawn once per pick, and re-picking never drops them). `pair`: the figure's evaluators (the dropdown's value;
    None: the default pair).

    A value that is refused (not a number, out of range; or `refused`, a reason found before) changes nothing:
    the boxes go back to the current pick and the status says why. `current`: the point state's pick (its dict,
    app.data.as_pick); the state gets the new pick's dict.
    """
    data = app.data
    columns = data.point_columns
    try:
        if refused:
            raise AppInputError(refused)
        info = cb.pick(app, *values)
    except AppInputError as err:
        boxes = [gr.update(value=getattr(as_pick(current), column)) for column in columns]
        return (*[gr.update()] * len(columns), *boxes, *[gr.update()] * 4,
                f"⚠️ **Not picked:** {err}. The picked point is unchanged.")
    point = [getattr(info, column) for column in columns]
    return (*point, *point, figure_json(data, info, scored or None, parse_pair(pair)),
            cb.pick_summary(info, data, scored or ()), picker_front_table(data, info.model_id), info.to_json(), "")


def wire_pick(app: cb.App, picker: Picker, point_state: gr.State, scored_state: gr.State) -> None:
    """Button, typed values, slider release, figure click and table row all end in pick_updates, so every way to
    pick agrees and a refused value picks nothing; the figure is drawn for the pair of evaluators chosen.
    `scored_state`: the session's points scored on demand."""
    outputs = picker.outputs(point_state)
    columns = app.data.point_columns
    n = len(columns)

    def do_pick(*args):  # the point's values, the point state, the scored points, and the figure's pair
        values, (current, scored, *pair) = args[:n], args[n:]
        return pick_updates(app, values, current, scored=scored, pair=pair[0] if pair else None)

    def do_click(current, scored, pair, evt: gr.EventData):
        d = getattr(evt, "_data", None) or {}
        try:
            values = tuple(float(d[column]) for column in columns)
        except (KeyError, TypeError, ValueError):
            return pick_updates(app, None, current, refused="that marker is not a PEO grid point", pair=pair)
        return pick_updates(app, values, current, scored=scored, pair=pair)

    def do_select(table: pd.DataFrame, current, scored, pair, evt: gr.SelectData):
        return pick_updates(app, front_row_point(app.data, table.iloc[evt.index[0]]["model_id"]), current,
                            scored=scored, pair=pair)

    state = [point_state, scored_state, picker.pair]
    typed = [*picker.boxes, *state]
    picker.pick_btn.click(do_pick, typed, outputs, api_visibility="private")
    for box in picker.boxes:
        box.submit(do_pick, typed, outputs, api_visibility="private")
    for slider in picker.sliders:
        slider.release(do_pick, [*picker.sliders, *state], outputs, api_visibility="private")
    picker.plot.click(do_click, state, outputs, api_visibility="private")
    picker.front_table.select(do_select, [picker.front_table, *state], outputs, api_visibility="private")

    def draw_pair(info, scored, pair):
        return figure_json(app.data, as_pick(info), scored or None, parse_pair(pair))

    picker.pair.change(draw_pair, state, picker.plot, api_visibility="private", show_progress="hidden")

    def show_answers(info, kind):
        return answers_update(app.data, as_pick(info), kind)

    for trigger in (point_state.change, picker.answer_kind.change):
        trigger(show_answers, [point_state, picker.answer_kind], picker.answers, api_visibility="private")


def wire_export(app: cb.App, export: ExportPanel, point_state: gr.State) -> None:
    """Export the policy chosen in the dropdown; 'picked PEO point' means the point picked last."""

    def do_export(w, f, point):
        try:
            return str(cb.export_zip(app, w, as_pick(point).point, f))
        except AppInputError as err:
            raise _error(err) from None

    export.button.click(do_export, [export.what, export.fmt, point_state], export.file, api_visibility="private")


def add_api(app: cb.App, start: tuple[float, ...], defaults: dict) -> None:
    """The named endpoints /pick and /chat for gradio_client: stateless, so scripts need no session. Their point
    parameters are the point columns (two aspects: lambda_help, phi_help, phi_harm; see point_api)."""

    def pick_point(*point) -> dict:
        try:
            return cb.pick(app, *point).to_json()
        except AppInputError as err:
            raise _error(err) from None

    def chat_point(message, columns, point, max_new_tokens, temperature, top_p, seed, repetition_penalty) -> dict:
        try:
            settings = cb.check_settings(max_new_tokens, temperature, top_p, seed, repetition_penalty,
                                         defaults=defaults)
            return cb.chat(app, message, cb.columns_for(columns or [], app.aspects), point, settings)
        except (AppInputError, TimeoutError, RuntimeError) as err:
            raise _error(err) from None

    pick_api, chat_api = point_api(app.data.point_columns, start, defaults, pick_point, chat_point)
    gr.api(pick_api, api_name="pick")
    gr.api(chat_api, api_name="chat")


def point_api(columns: tuple[str, ...], start: tuple[float, ...], defaults: dict, pick_point, chat_point):
    """(pick_api, chat_api): the endpoints' functions, whose signatures gradio reads. Two aspects: the functions
    as written below; more: the same with a parameter per point column (a built signature)."""

    def pick_api(lambda_help: float, phi_help: float = 0.0, phi_harm: float = 0.0) -> dict:
        """A point's c_help, c_harm, model_id, precomputed scores (null off-grid), on_front, in_range.

        Raises an error when a value is outside the assets' grid range.
        """
        return pick_point(lambda_help, phi_help, phi_harm)

    def chat_api(message: str, columns: list[str], lambda_help: float = start[0],
                 phi_help: float = start[1], phi_harm: float = start[2],
                 max_new_tokens: int = defaults["max_new_tokens"], temperature: float = defaults["temperature"],
                 top_p: float = defaults["top_p"], seed: int = defaults["seed"],
                 repetition_penalty: float = defaults["repetition_penalty"]) -> dict:
        """One turn (no history): column → {answer, reward, cost, loops}; columns from peo, ref, help, harm,
        soup, joint. Decoding defaults are the sweep's (meta.json); repetition_penalty in [1, 2]."""
        return chat_point(message, columns, (lambda_help, phi_help, phi_harm), max_new_tokens, temperature, top_p,
                          seed, repetition_penalty)

    if columns == DEFAULT_ASPECTS.point_columns:
        return pick_api, chat_api
    return _point_signature(pick_point, columns, start, None), _point_signature(chat_point, columns, start, defaults)


SETTINGS_PARAMS = (("max_new_tokens", int), ("temperature", float), ("top_p", float), ("seed", int),
                   ("repetition_penalty", float))


def _point_signature(fn, columns: tuple[str, ...], start: tuple[float, ...], defaults: dict | None):
    """A function taking the point columns by name (and, for /chat, the message, columns and settings), that calls
    `fn` with the point as a tuple: what gradio reads an endpoint's parameters from."""
    point = [inspect.Parameter(c, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=x, annotation=float)
             for c, x in zip(columns, start)]
    if defaults is None:
        def endpoint(*args, **kwargs) -> dict:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            return fn(*(bound.arguments[c] for c in columns))

        endpoint.__doc__ = "A point's coefficients, model_id, precomputed scores (null off-grid), on_front, in_range."
        params = point
    else:
        def endpoint(*args, **kwargs) -> dict:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            a = bound.arguments
            return fn(a["message"], a["columns"], tuple(a[c] for c in columns),
                      *(a[name] for name, _ in SETTINGS_PARAMS))

        endpoint.__doc__ = "One turn (no history): column → {answer, a score per evaluator, loops}."
        params = [inspect.Parameter("message", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=str),
                  inspect.Parameter("columns", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=list[str]),
                  *point,
                  *(inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=defaults[name],
                                      annotation=kind) for name, kind in SETTINGS_PARAMS)]
    signature = inspect.Signature(params, return_annotation=dict)
    endpoint.__signature__ = signature
    endpoint.__annotations__ = {**{p.name: p.annotation for p in params}, "return": dict}
    return endpoint


def build_demo(app: cb.App, votes: VoteStore | None = None) -> gr.Blocks:
    """The whole page: the panels top to bottom, then their events, so layout and behaviour read separately.

    `votes`: the votes database (default: opened in peo.votes.votes_dir()).
    """
    votes = votes if votes is not None else VoteStore()
    data, defaults = app.data, app.default_settings
    start = start_point(data)
    start_info = cb.pick(app, *start)
    gr.set_static_paths([str(PLOTLY_JS)])
    # Gradio's copies of served files (the export zips) expire with the exports (app/exports.py)
    with gr.Blocks(title="PEO: Pareto-optimal policies by task-vector arithmetic",
                   delete_cache=cb.export_store.limits().gradio_delete_cache()) as demo:
        point_state = gr.State(start_info.to_json())  # the dict: Gradio hashes State values (app.data.as_pick)
        scored_state = gr.State([])  # off-grid points scored on demand in this session (offgrid_scoring.summarize)
        chat_state = gr.State(cb.ChatState())
        intro(data)
        context_panel(data.assets.run_meta, data.report)
        picker = picker_panel(data, start, start_info)
        views = research_views(app, start_info, scored_state, plot_js(data.aspects), plotly_head(), votes)
        chat = chat_panel(defaults, data.aspects)
        ballot = votes_panel(data.aspects)
        share = share_panel()
        export = export_panel(data.aspects)
        wire_pick(app, picker, point_state, scored_state)
        turn_start = wire_votes(app, ballot, chat, point_state, chat_state, votes)
        wire_chat(app, chat, point_state, chat_state, defaults, ballot.blind, turn_start)
        wire_export(app, export, point_state)
        wire_share_link(app, demo, share, chat, point_state, picker.outputs(point_state), pick_updates)
        wire_views(app, views, picker.plot, picker.summary, picker.outputs(point_state), point_state, pick_updates,
                   votes, picker.pair)
        add_api(app, start, defaults)
        demo.load(lambda: app.engine.start(), None, None, api_visibility="private")
    return demo


def launch_kwargs() -> dict:
    return {"css": CSS}
