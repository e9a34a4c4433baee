"""The Gradio Blocks layout: the front figure and point picker, precomputed answers, side-by-side chat, export.

The figure is a `gr.HTML` drawn with the plotly.js bundled in the `plotly` Python package (served by this app
from the package's own folder: no CDN). A click on a grid point is forwarded to Python with `trigger('click',
{...})`, which picks that point. The sliders and the front table pick points too (sliders allow off-grid values).

Named API endpoints for gradio_client: `/pick` and `/chat` (see `pick_api` and `chat_api`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import pandas as pd
import plotly

from app import callbacks as cb
from app.context_panel import context_panel
from app.data import PICKED_MARK, AppData, AppInputError
from app.engine import same_model_columns
from app.figure import CUSTOM_FIELDS, figure_json, hypervolume_text
from app.research_views import research_views, wire_views
from app.share_link import share_panel, wire_share_link
from app.votes_panel import votes_panel, wire_votes
from peo.errors import PeoError
from peo.generation import GenerationStopped
from peo.names import BASELINE_LABELS, CHAT_COLUMNS, DEFAULT_CHAT_COLUMNS, PEO
from peo.votes import VoteStore

log = logging.getLogger("app")

PLOTLY_JS = Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"

PLOT_JS = r"""
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
      const lam = parseFloat(c[0]), ph = parseFloat(c[1]), pa = parseFloat(c[2]);
      if (isNaN(lam) || isNaN(ph) || isNaN(pa)) return;  // baselines are not PEO grid points
      trigger('click', {lambda_help: lam, phi_help: ph, phi_harm: pa, model_id: c[MODEL_ID_INDEX]});
    });
  }
}
draw();
watch('value', draw);
""".replace("MODEL_ID_INDEX", str(CUSTOM_FIELDS.index("model_id")))

# split, kind, prompt, answer, reward, cost, loops, refuses: the prompt narrow, the answer wide
ANSWER_COLUMN_WIDTHS = ["6%", "6%", "22%", "42%", "7%", "7%", "5%", "5%"]

# (grid axis, slider label, symbol, element id prefix) of the three picker axes, in the order pick() takes them
AXES = (("lambda_help", "λ (help vs harm)", "λ", "lambda"),
        ("phi_help", "ϕ_help (extrapolation)", "ϕ_help", "phi-help"),
        ("phi_harm", "ϕ_harm (extrapolation)", "ϕ_harm", "phi-harm"))
CHAT_MIN_WIDTH = 150  # px: six chat columns side by side in a 1400 px window
STOPPED = "Stopped: the turn was cancelled; its partial answers are not kept in the chat history."

CSS = """
.peo-front-plot { width: 100%; min-height: 520px; }
.peo-axis input[type=number] { display: none; }
.peo-status { font-size: 0.9em; color: #555; }
"""


def plotly_head() -> str:
    return f'<script src="/gradio_api/file={PLOTLY_JS.as_posix()}"></script>'


def _error(err: Exception) -> gr.Error:
    return gr.Error(str(err), print_exception=False)


def decoding_note(defaults: dict) -> str:
    """Why the settings start where they do: the sweep's decoding, so chat answers match the scored ones."""
    note = "Defaults are the sweep's decoding (meta.json), so answers match those the front was scored on"
    n = defaults["no_repeat_ngram_size"]
    return note + (f"; no {n}-gram is repeated in an answer." if n else ".")


def tag_line(tag: cb.AnswerTag | None) -> str:
    """The point that produced an answer, for a column that follows the pick: 'at c = (c_help, c_harm)'."""
    if tag is None or tag.coefficients is None:
        return ""
    return f"at c = ({tag.coefficients[0]:g}, {tag.coefficients[1]:g})"


def render_column(state: cb.ChatState, col: str, pending: tuple[str, str] | None = None,
                  reference=None) -> list[dict]:
    """Chatbot messages of one column: its history, each answer followed by the point that produced it (columns
    that follow the pick), its live reward, cost and checks, and a marker when it was cut at the token limit.
    What is added here is shown only: the history fed back to the model keeps the bare answers."""
    out: list[dict] = []
    history = state.histories.get(col, [])
    n_answers = sum(1 for m in history if m["role"] == "assistant")

    def aligned(items: list) -> Iterator:  # answers older than the kept items: none
        return iter([None] * (n_answers - len(items)) + list(items))

    scores, tags = aligned(state.scores.get(col, [])), aligned(state.tags.get(col, []))
    for m in history:
        if m["role"] == "assistant":
            tag = next(tags)
            body = m["content"] or "(empty answer)"
            if tag is not None and tag.cut_at is not None:
                body += f" … [cut at {tag.cut_at} tokens]"
            score = cb.score_line(next(scores), m["content"], reference, cut=False)
            lines = [line for line in (tag_line(tag), score) if line]
            tail = "".join(f"\n\n*{line}*" for line in lines)
            out.append({"role": "assistant", "content": body + tail})
        else:
            out.append({"role": m["role"], "content": m["content"]})
    if pending is not None:
        user, text = pending
        out.append({"role": "user", "content": user})
        out.append({"role": "assistant", "content": text or "…"})
    return out


def start_point(data: AppData) -> tuple[float, float, float]:
    """The first pick: the grid λ nearest the middle, ϕ at their lowest, so the page opens on precomputed scores."""
    lam_lo, lam_hi = data.axis_range("lambda_help")
    middle = (lam_lo + lam_hi) / 2 if lam_hi > lam_lo else lam_lo
    lam = min(data.grid_axis("lambda_help"), key=lambda x: abs(x - middle))
    return lam, data.axis_range("phi_help")[0], data.axis_range("phi_harm")[0]


@dataclass
class Picker:
    """The components that pick a point and show it: the events (wire_pick) read and update these."""

    plot: gr.HTML
    sliders: list[gr.Slider]  # λ, ϕ_help, ϕ_harm (AXES' order): dragged, always in range
    boxes: list[gr.Number]  # the same, typed: any value, checked before anything is picked
    pick_btn: gr.Button
    status: gr.Markdown  # why a typed value was refused
    summary: gr.Markdown
    front_table: gr.Dataframe
    answers: gr.Dataframe

    def outputs(self, point_state: gr.State) -> list:
        """What every pick updates, in pick_updates' order."""
        return [*self.sliders, *self.boxes, self.plot, self.summary, self.answers, self.front_table, point_state,
                self.status]


@dataclass
class ChatPanel:
    """The side-by-side chat's components: the events (wire_chat) read and update these."""

    columns: gr.CheckboxGroup
    settings: list  # max new tokens, temperature, top-p, seed, repetition penalty: cb.check_settings' order
    chatbots: dict[str, gr.Chatbot]
    message: gr.Textbox
    send: gr.Button
    stop: gr.Button
    clear: gr.Button
    fresh: gr.Checkbox  # start a fresh chat when the point changes
    status: gr.Markdown  # beside the message box: progress, timings and refused inputs


@dataclass
class ExportPanel:
    """The export's components: wire_export reads and updates these."""

    what: gr.Dropdown
    fmt: gr.Radio
    button: gr.Button
    file: gr.File


def intro(data: AppData) -> None:
    """The page's head: what a point means and which prompts the figures come from, before anything to click."""
    gr.Markdown(
        "# PEO: a Pareto front of helpful / harmless policies\n"
        "Every point (λ, ϕ_help, ϕ_harm) is the model θ_ref + c_help·Δ_help + c_harm·Δ_harm with "
        "c_help = λ + ϕ_help and c_harm = 1 − λ + ϕ_harm, where Δ_help and Δ_harm are DPO LoRA task vectors. "
        "Click a point, use the sliders or choose a row of the front table; then chat with the picked policy "
        "next to the baselines.\n\nThe fronts were chosen on dev prompts; every figure shown is on held-out test "
        "prompts, except for points that were only run on the dev prompts (labelled *dev only*). Points that "
        f"loop in more than {data.max_loop_share:.0%} of their answers are drawn hollow; the front admits only "
        "points whose dev answers loop at most that often.")


def picker_panel(data: AppData, start: tuple[float, float, float], start_info: dict) -> Picker:
    """The figure beside the sliders and the front table, so each way to pick a point is in view of the others.

    Each axis has a slider (dragging stays in range) and a box to type a value. The sliders' own number boxes are
    hidden (CSS): the browser clamps a typed out-of-range value there and the clamped value got picked; a typed
    value goes through the boxes, where a refused one picks nothing (pick_updates).
    """
    sliders, boxes = [], []
    with gr.Row():
        with gr.Column(scale=3):
            plot = gr.HTML(figure_json(data, start_info), html_template='<div class="peo-front-plot"></div>',
                           js_on_load=PLOT_JS, head=plotly_head(), elem_id="front-plot", apply_default_css=False)
            gr.Markdown(hypervolume_text(data), elem_id="hypervolumes")
        with gr.Column(scale=2):
            for (axis, label, symbol, key), value in zip(AXES, start):
                lo, hi = data.axis_range(axis)
                with gr.Row(equal_height=True):
                    sliders.append(gr.Slider(lo, hi, value=value, step=0.01, label=label, scale=4, buttons=[],
                                             elem_id=f"{key}-slider", elem_classes=["peo-axis"]))
                    boxes.append(gr.Number(value, label=f"{symbol} in [{lo:g}, {hi:g}]", scale=1, min_width=100,
                                           elem_id=f"{key}-input"))
            pick_btn = gr.Button("Pick this point", variant="primary", elem_id="pick-button")
            status = gr.Markdown("", elem_id="pick-status", elem_classes=["peo-status"])
            summary = gr.Markdown(cb.pick_summary(start_info, data), elem_id="pick-summary")
            front_table = gr.Dataframe(data.front_table(start_info["model_id"]), interactive=False,
                                       elem_id="front-table", max_height=260,
                                       label=f"PEO Pareto front (test figures; click a row to pick it; "
                                             f"{PICKED_MARK} = picked)")
    with gr.Accordion("Precomputed answers of the picked point", open=False):
        answers = gr.Dataframe(data.sample_answers(start_info["model_id"]), interactive=False, wrap=True,
                               elem_id="picked-answers", max_height=400, column_widths=ANSWER_COLUMN_WIDTHS,
                               label=answers_label(start_info))
    return Picker(plot, sliders, boxes, pick_btn, status, summary, front_table, answers)


def chat_panel(defaults: dict) -> ChatPanel:
    """Columns, decoding settings, one chatbot per column and one message box: one message goes to them all."""
    gr.Markdown("## Side-by-side chat\nOne message goes to every chosen column; all columns are generated in "
                "one batched generation. Each answer shows its live reward (↑) and cost (↓).")
    columns = gr.CheckboxGroup([(label, key) for key, label in CHAT_COLUMNS.items()], value=DEFAULT_CHAT_COLUMNS,
                               label="Columns", elem_id="columns")
    with gr.Accordion("Generation settings", open=False):
        with gr.Row():
            max_new = gr.Slider(*cb.LIMITS["max_new_tokens"], value=defaults["max_new_tokens"], step=1,
                                label="max new tokens", elem_id="max-new-tokens")
            temperature = gr.Slider(*cb.LIMITS["temperature"], value=defaults["temperature"], step=0.05,
                                    label="temperature (0 = greedy)")
            top_p = gr.Slider(*cb.LIMITS["top_p"], value=defaults["top_p"], step=0.05, label="top-p")
            repetition_penalty = gr.Slider(*cb.LIMITS["repetition_penalty"], value=defaults["repetition_penalty"],
                                           step=0.05, label="repetition penalty (1 = none)",
                                           elem_id="repetition-penalty")
            seed = gr.Number(defaults["seed"], precision=0, minimum=0, maximum=cb.LIMITS["seed"][1], label="seed")
        gr.Markdown(decoding_note(defaults))
    chatbots = {}
    with gr.Row(equal_height=True):  # min_width: all six columns fit in one row at 1400 px
        for key, label in CHAT_COLUMNS.items():
            chatbots[key] = gr.Chatbot(label=label, visible=key in DEFAULT_CHAT_COLUMNS, height=360,
                                       min_width=CHAT_MIN_WIDTH, elem_id=f"chat-{key}", elem_classes=["peo-chat"])
    with gr.Row(equal_height=True):
        with gr.Column(scale=4):
            message = gr.Textbox(placeholder=f"Message (at most {cb.MAX_MESSAGE_CHARS} characters)",
                                 show_label=False, elem_id="message", max_lines=6)
            status = gr.Markdown("", elem_id="chat-status", elem_classes=["peo-status"])
        with gr.Column(scale=1, min_width=140):
            send = gr.Button("Send", variant="primary", elem_id="send")
            stop = gr.Button("Stop", variant="stop", elem_id="stop")
        with gr.Column(scale=1, min_width=180):
            clear = gr.Button("Clear chats", elem_id="clear")
            fresh = gr.Checkbox(True, label="start a fresh chat when the point changes", elem_id="fresh-chat")
    return ChatPanel(columns, [max_new, temperature, top_p, seed, repetition_penalty], chatbots, message, send, stop,
                     clear, fresh, status)


def export_panel() -> ExportPanel:
    """A closed accordion: exporting is rare, and a merged export writes a whole model."""
    with gr.Accordion("Export a policy", open=False):
        with gr.Row():
            what = gr.Dropdown([("picked PEO point", PEO), *((label, key) for key, label in BASELINE_LABELS.items())],
                               value=PEO, label="policy")
            fmt = gr.Radio([("LoRA adapters (small)", "adapter"), ("merged model", "merged")], value="adapter",
                           label="format")
            button = gr.Button("Export as .zip", elem_id="export")
        file = gr.File(label="download", interactive=False)
    return ExportPanel(what, fmt, button, file)


def answers_label(info: dict) -> str:
    """The answers table's label: whose answers, or why there are none (an off-grid point was never run)."""
    if info["precomputed"] is None:
        return (f"No precomputed answers: {info['model_id']} is off the grid (never evaluated); "
                f"use '{cb.SCORE_BUTTON}' or chat with it")
    return f"Precomputed answers of {info['model_id']}"


def pick_updates(app: cb.App, values, current: dict, refused: str | None = None) -> tuple:
    """What a pick sets, in Picker.outputs' order: sliders, boxes, figure, summary, answers, table, state, status.

    A value that is refused (not a number, out of range; or `refused`, a reason found before) changes nothing:
    the boxes go back to the current pick and the status says why.
    """
    data = app.data
    try:
        if refused:
            raise AppInputError(refused)
        info = cb.pick(app, *values)
    except AppInputError as err:
        boxes = [gr.update(value=current[axis]) for axis, *_ in AXES]
        return (*[gr.update()] * len(AXES), *boxes, *[gr.update()] * 5,
                f"⚠️ **Not picked:** {err}. The picked point is unchanged.")
    point = [info[axis] for axis, *_ in AXES]
    answers = gr.update(value=data.sample_answers(info["model_id"]), label=answers_label(info))
    return (*point, *point, figure_json(data, info), cb.pick_summary(info, data), answers,
            data.front_table(info["model_id"]), info, "")


def wire_pick(app: cb.App, picker: Picker, point_state: gr.State) -> None:
    """Button, typed values, slider release, figure click and table row all end in pick_updates, so every way to
    pick agrees and a refused value picks nothing."""
    outputs = picker.outputs(point_state)

    def do_pick(lam, ph, pa, current):
        return pick_updates(app, (lam, ph, pa), current)

    def do_click(current, evt: gr.EventData):
        d = getattr(evt, "_data", None) or {}
        try:
            values = (float(d["lambda_help"]), float(d["phi_help"]), float(d["phi_harm"]))
        except (KeyError, TypeError, ValueError):
            return pick_updates(app, None, current, refused="that marker is not a PEO grid point")
        return pick_updates(app, values, current)

    def do_select(table: pd.DataFrame, current, evt: gr.SelectData):
        row = table.iloc[evt.index[0]]
        return pick_updates(app, (row["λ"], row["ϕ_help"], row["ϕ_harm"]), current)

    typed = [*picker.boxes, point_state]
    picker.pick_btn.click(do_pick, typed, outputs, api_visibility="private")
    for box in picker.boxes:
        box.submit(do_pick, typed, outputs, api_visibility="private")
    for slider in picker.sliders:
        slider.release(do_pick, [*picker.sliders, point_state], outputs, api_visibility="private")
    picker.plot.click(do_click, point_state, outputs, api_visibility="private")
    picker.front_table.select(do_select, [picker.front_table, point_state], outputs, api_visibility="private")


def column_labels(info: dict, columns) -> list[dict]:
    """Each chatbot's label at this point, marking a column that is the same model as another chosen one
    ('Soup (same λ) = PEO (picked point) at this point'), in CHAT_COLUMNS' order."""
    chosen = [k for k in CHAT_COLUMNS if k in (columns or [])]
    same = same_model_columns(chosen, info["lambda_help"], info["c_help"], info["c_harm"])
    return [f"{label} = {CHAT_COLUMNS[same[k]]} at this point" if k in same else label
            for k, label in CHAT_COLUMNS.items()]


def check_turn(app: cb.App, defaults: dict, msg, cols, point: dict, *settings) -> tuple[dict | None, str]:
    """(the turn to run, status): the first, non-streaming step of a chat turn. A refused input gives no turn
    and its message for the status beside the message box, so the chatbots never show an error."""
    try:
        turn = {"settings": cb.check_settings(*settings, defaults=defaults), "columns": cb.check_columns(cols),
                "message": cb.check_message(msg),
                "point": (point["lambda_help"], point["phi_help"], point["phi_harm"])}
        cb.pick(app, *turn["point"])
    except AppInputError as err:
        return None, f"⚠️ {err}"
    return turn, "generating…"


class TurnStops:
    """What the Stop button reaches: the stop event of each session's running turn, by Gradio's session hash.

    Stop sets it and the turn ends after the current step, reporting "Stopped" in its own status. (Gradio's
    `cancels=` would end it too, but marks every chatbot and the message box with a red "Error" overlay.)
    """

    def __init__(self) -> None:
        self._events: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def start(self, session: str) -> threading.Event:
        with self._lock:
            event = self._events[session] = threading.Event()
        return event

    def stop(self, session: str) -> bool:
        """Whether a turn of `session` was running (and is now asked to stop)."""
        with self._lock:
            event = self._events.get(session)
        if event is None:
            return False
        event.set()
        return True

    def finish(self, session: str, event: threading.Event) -> None:
        with self._lock:
            if self._events.get(session) is event:
                del self._events[session]


def stream_turn(app: cb.App, turn: dict | None, state: cb.ChatState, fresh: bool,
                stop: threading.Event | None = None) -> Iterator[tuple]:
    """The streaming step of a chat turn: (one view per chat column, chat state, status, message box) after each
    step. Errors and a Stop (`stop` set) go to the status, the chatbots going back to the chat before this turn;
    closing this generator (what Gradio does when the page goes away) ends the generation at once too."""
    n = len(CHAT_COLUMNS)
    if turn is None:  # refused by check_turn: nothing to do
        yield (*[gr.update()] * n, gr.update(), gr.update(), gr.update())
        return
    cols, msg = turn["columns"], turn["message"]
    reference = app.reference_scores
    steps = cb.chat_stream(app, msg, cols, turn["point"], turn["settings"], state, fresh_on_new_point=fresh,
                           stop=stop)
    try:
        # what the answers so far are shown under: the chat so far, or nothing when this turn starts fresh
        base = cb.ChatState() if cb.starts_fresh(state, cb.pick(app, *turn["point"]), fresh) else state
        for step in steps:
            if step.done:
                views = [render_column(step.state, k, reference=reference) if k in cols else gr.update()
                         for k in CHAT_COLUMNS]
                yield (*views, step.state, step.info, "")
                return
            views = [render_column(base, k, (msg, step.texts.get(k, "")), reference) if k in cols else gr.update()
                     for k in CHAT_COLUMNS]
            yield (*views, gr.update(), "generating…", gr.update())
    except (PeoError, TimeoutError, RuntimeError) as err:  # AppInputError, GenerationStopped, models not loaded
        views = [render_column(state, k, reference=reference) if k in cols else gr.update() for k in CHAT_COLUMNS]
        yield (*views, gr.update(), STOPPED if isinstance(err, GenerationStopped) else f"⚠️ {err}", gr.update())
    finally:  # a cancelled turn: stop generating now and free the model for the other sessions
        steps.close()


def wire_chat(app: cb.App, chat: ChatPanel, point_state: gr.State, chat_state: gr.State, defaults: dict) -> None:
    """Columns shown and labelled, messages checked then streamed into every chosen column, Stop, clearing: the
    chat's per-session events."""
    chatbots = list(chat.chatbots.values())
    for bot, label in zip(chatbots, column_labels(point_state.value, chat.columns.value)):
        bot.label = label  # the start point's labels (the soup is PEO there when ϕ starts at 0)

    def show_columns(cols, point):
        return [gr.update(visible=k in (cols or []), label=label)
                for k, label in zip(CHAT_COLUMNS, column_labels(point, cols))]

    chat.columns.change(show_columns, [chat.columns, point_state], chatbots, api_visibility="private")

    def on_new_point(point, cols, state, fresh):
        note = ""
        if state is not None and not state.empty and state.point != cb.point_key(point):
            note = ("The point changed: your next message starts a fresh chat." if fresh else
                    "The point changed: the next answers continue this chat at the new point "
                    "(each answer is tagged with the point that produced it).")
        return (*[gr.update(label=label) for label in column_labels(point, cols)], note)

    point_state.change(on_new_point, [point_state, chat.columns, chat_state, chat.fresh], chatbots + [chat.status],
                       api_visibility="private")

    turn = gr.State(None)
    check_inputs = [chat.message, chat.columns, point_state, *chat.settings]
    stream_outputs = chatbots + [chat_state, chat.status, chat.message]

    def do_check(msg, cols, point, *settings):
        return check_turn(app, defaults, msg, cols, point, *settings)

    stops = TurnStops()

    def do_stream(t, state, fresh, request: gr.Request):
        stop = stops.start(request.session_hash)
        try:
            yield from stream_turn(app, t, state, fresh, stop)
        finally:
            stops.finish(request.session_hash, stop)

    def do_stop(request: gr.Request):
        stops.stop(request.session_hash)

    for trigger in (chat.send.click, chat.message.submit):
        checked = trigger(do_check, check_inputs, [turn, chat.status], api_visibility="private")
        checked.then(do_stream, [turn, chat_state, chat.fresh], stream_outputs, api_visibility="private")
    chat.stop.click(do_stop, None, None, api_visibility="private")

    def do_clear():
        state = cb.ChatState()
        return (*[[] for _ in CHAT_COLUMNS], state, "")

    chat.clear.click(do_clear, None, chatbots + [chat_state, chat.status], api_visibility="private")


def wire_export(app: cb.App, export: ExportPanel, point_state: gr.State) -> None:
    """Export the policy chosen in the dropdown; 'picked PEO point' means the point picked last."""

    def do_export(w, f, point):
        try:
            point3 = (point["lambda_help"], point["phi_help"], point["phi_harm"])
            return str(cb.export_zip(app, w, point3, f))
        except AppInputError as err:
            raise _error(err) from None

    export.button.click(do_export, [export.what, export.fmt, point_state], export.file, api_visibility="private")


def add_api(app: cb.App, start: tuple[float, float, float], defaults: dict) -> None:
    """The named endpoints /pick and /chat for gradio_client: stateless, so scripts need no session."""

    def pick_api(lambda_help: float, phi_help: float = 0.0, phi_harm: float = 0.0) -> dict:
        """A point's c_help, c_harm, model_id, precomputed scores (null off-grid), on_front, in_range.

        Raises an error when a value is outside the assets' grid range.
        """
        try:
            return cb.pick(app, lambda_help, phi_help, phi_harm)
        except AppInputError as err:
            raise _error(err) from None

    def chat_api(message: str, columns: list[str], lambda_help: float = start[0],
                 phi_help: float = start[1], phi_harm: float = start[2],
                 max_new_tokens: int = defaults["max_new_tokens"], temperature: float = defaults["temperature"],
                 top_p: float = defaults["top_p"], seed: int = defaults["seed"],
                 repetition_penalty: float = defaults["repetition_penalty"]) -> dict:
        """One turn (no history): column → {answer, reward, cost, loops}; columns from peo, ref, help, harm,
        soup, joint. Decoding defaults are the sweep's (meta.json); repetition_penalty in [1, 2]."""
        try:
            settings = cb.check_settings(max_new_tokens, temperature, top_p, seed, repetition_penalty,
                                         defaults=defaults)
            return cb.chat(app, message, cb.columns_for(columns or []), (lambda_help, phi_help, phi_harm),
                           settings)
        except (AppInputError, TimeoutError, RuntimeError) as err:
            raise _error(err) from None

    gr.api(pick_api, api_name="pick")
    gr.api(chat_api, api_name="chat")


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
        point_state = gr.State(start_info)
        chat_state = gr.State(cb.ChatState())
        intro(data)
        context_panel(data.assets.meta, data.fronts)
        picker = picker_panel(data, start, start_info)
        views = research_views(app, start_info, PLOT_JS, plotly_head())
        chat = chat_panel(defaults)
        ballot = votes_panel()
        share = share_panel()
        export = export_panel()
        wire_pick(app, picker, point_state)
        wire_chat(app, chat, point_state, chat_state, defaults)
        wire_export(app, export, point_state)
        wire_votes(app, ballot, chat, point_state, chat_state, votes)
        wire_share_link(app, demo, share, picker, chat, point_state)
        wire_views(app, views, picker.plot, picker.outputs(point_state), point_state, pick_updates)
        add_api(app, start, defaults)
        demo.load(lambda: app.engine.start(), None, None, api_visibility="private")
    return demo


def launch_kwargs() -> dict:
    return {"css": CSS}
