"""The Gradio Blocks layout: the front figure and point picker, precomputed answers, side-by-side chat, export.

The figure is a `gr.HTML` drawn with the plotly.js bundled in the `plotly` Python package (served by this app
from the package's own folder: no CDN). A click on a grid point is forwarded to Python with `trigger('click',
{...})`, which picks that point. The sliders and the front table pick points too (sliders allow off-grid values).

Named API endpoints for gradio_client: `/pick` and `/chat` (see `pick_api` and `chat_api`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import pandas as pd
import plotly

from app import callbacks as cb
from app.data import AppData, AppInputError
from app.figure import CUSTOM_FIELDS, figure_json, hypervolume_text
from peo.names import BASELINE_LABELS, CHAT_COLUMNS, DEFAULT_CHAT_COLUMNS, PEO

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

CSS = """
.peo-front-plot { width: 100%; min-height: 520px; }
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


def render_column(state: cb.ChatState, col: str, pending: tuple[str, str] | None = None) -> list[dict]:
    """Chatbot messages of one column: its history, each answer followed by its live reward, cost and loop check."""
    out: list[dict] = []
    history = state.histories.get(col, [])
    n_answers = sum(1 for m in history if m["role"] == "assistant")
    scores = state.scores.get(col, [])
    scores = iter([None] * (n_answers - len(scores)) + list(scores))  # answers older than the kept scores: none
    for m in history:
        if m["role"] == "assistant":
            line = cb.score_line(next(scores), m["content"])
            tail = f"\n\n*{line}*" if line else ""
            out.append({"role": "assistant", "content": (m["content"] or "(empty answer)") + tail})
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
    sliders: list[gr.Slider]  # λ, ϕ_help, ϕ_harm: the order do_pick takes them in
    pick_btn: gr.Button
    summary: gr.Markdown
    front_table: gr.Dataframe
    answers: gr.Dataframe


@dataclass
class ChatPanel:
    """The side-by-side chat's components: the events (wire_chat) read and update these."""

    columns: gr.CheckboxGroup
    settings: list  # max new tokens, temperature, top-p, seed, repetition penalty: cb.check_settings' order
    chatbots: dict[str, gr.Chatbot]
    message: gr.Textbox
    send: gr.Button
    clear: gr.Button
    status: gr.Markdown


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
    """The figure beside the sliders and the front table, so each way to pick a point is in view of the others."""
    lam_lo, lam_hi = data.axis_range("lambda_help")
    ph_lo, ph_hi = data.axis_range("phi_help")
    pa_lo, pa_hi = data.axis_range("phi_harm")
    with gr.Row():
        with gr.Column(scale=3):
            plot = gr.HTML(figure_json(data, start_info), html_template='<div class="peo-front-plot"></div>',
                           js_on_load=PLOT_JS, head=plotly_head(), elem_id="front-plot", apply_default_css=False)
            gr.Markdown(hypervolume_text(data), elem_id="hypervolumes")
        with gr.Column(scale=2):
            lam = gr.Slider(lam_lo, lam_hi, value=start[0], step=0.01, label="λ (help vs harm)",
                            elem_id="lambda-slider")
            phi_help = gr.Slider(ph_lo, ph_hi, value=start[1], step=0.01, label="ϕ_help (extrapolation)",
                                 elem_id="phi-help-slider")
            phi_harm = gr.Slider(pa_lo, pa_hi, value=start[2], step=0.01, label="ϕ_harm (extrapolation)",
                                 elem_id="phi-harm-slider")
            pick_btn = gr.Button("Pick this point", variant="primary", elem_id="pick-button")
            summary = gr.Markdown(cb.pick_summary(start_info, data), elem_id="pick-summary")
            front_table = gr.Dataframe(data.front_table(), interactive=False, elem_id="front-table", max_height=260,
                                       label="PEO Pareto front (test figures; click a row to pick it)")
    with gr.Accordion("Precomputed answers of the picked point", open=False):
        answers = gr.Dataframe(data.sample_answers(start_info["model_id"]), interactive=False, wrap=True,
                               elem_id="picked-answers", max_height=400, column_widths=ANSWER_COLUMN_WIDTHS)
    return Picker(plot, [lam, phi_help, phi_harm], pick_btn, summary, front_table, answers)


def chat_panel(defaults: dict) -> ChatPanel:
    """Columns, decoding settings, one chatbot per column and one message box: one message goes to them all."""
    gr.Markdown("## Side-by-side chat\nOne message goes to every chosen column; all columns are generated in "
                "one batched generation. Each answer shows its live reward (↑) and cost (↓).")
    columns = gr.CheckboxGroup([(label, key) for key, label in CHAT_COLUMNS.items()], value=DEFAULT_CHAT_COLUMNS,
                               label="Columns", elem_id="columns")
    with gr.Accordion("Generation settings", open=False):
        with gr.Row():
            max_new = gr.Slider(*cb.LIMITS["max_new_tokens"], value=defaults["max_new_tokens"], step=1,
                                label="max new tokens")
            temperature = gr.Slider(*cb.LIMITS["temperature"], value=defaults["temperature"], step=0.05,
                                    label="temperature (0 = greedy)")
            top_p = gr.Slider(*cb.LIMITS["top_p"], value=defaults["top_p"], step=0.05, label="top-p")
            repetition_penalty = gr.Slider(*cb.LIMITS["repetition_penalty"], value=defaults["repetition_penalty"],
                                           step=0.05, label="repetition penalty (1 = none)",
                                           elem_id="repetition-penalty")
            seed = gr.Number(defaults["seed"], precision=0, minimum=0, maximum=cb.LIMITS["seed"][1], label="seed")
        gr.Markdown(decoding_note(defaults))
    chatbots = {}
    with gr.Row(equal_height=True):
        for key, label in CHAT_COLUMNS.items():
            chatbots[key] = gr.Chatbot(label=label, visible=key in DEFAULT_CHAT_COLUMNS, height=360, min_width=200,
                                       elem_id=f"chat-{key}", elem_classes=["peo-chat"])
    with gr.Row():
        message = gr.Textbox(placeholder=f"Message (at most {cb.MAX_MESSAGE_CHARS} characters)", show_label=False,
                             scale=5, elem_id="message", max_lines=6)
        send = gr.Button("Send", variant="primary", scale=1, elem_id="send")
        clear = gr.Button("Clear chats", scale=1, elem_id="clear")
    status = gr.Markdown("", elem_id="chat-status", elem_classes=["peo-status"])
    return ChatPanel(columns, [max_new, temperature, top_p, seed, repetition_penalty], chatbots, message, send, clear,
                     status)


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


def wire_pick(app: cb.App, picker: Picker, point_state: gr.State) -> None:
    """Button, slider release, figure click and table row all end in do_pick, so every way to pick agrees."""
    data = app.data
    pick_outputs = [picker.plot, picker.summary, picker.answers, point_state]

    def do_pick(lam, ph, pa):
        try:
            info = cb.pick(app, lam, ph, pa)
        except AppInputError as err:
            raise _error(err) from None
        return figure_json(data, info), cb.pick_summary(info, data), data.sample_answers(info["model_id"]), info

    def do_click(evt: gr.EventData):
        d = getattr(evt, "_data", None) or {}
        try:
            values = (float(d["lambda_help"]), float(d["phi_help"]), float(d["phi_harm"]))
        except (KeyError, TypeError, ValueError):
            raise gr.Error("that marker is not a PEO grid point", print_exception=False) from None
        return (*values, *do_pick(*values))

    def do_select(table: pd.DataFrame, evt: gr.SelectData):
        row = table.iloc[evt.index[0]]
        values = (float(row["λ"]), float(row["ϕ_help"]), float(row["ϕ_harm"]))
        return (*values, *do_pick(*values))

    sliders = picker.sliders
    picker.pick_btn.click(do_pick, sliders, pick_outputs, api_visibility="private")
    for s in sliders:
        s.release(do_pick, sliders, pick_outputs, api_visibility="private")
    picker.plot.click(do_click, None, sliders + pick_outputs, api_visibility="private")
    picker.front_table.select(do_select, picker.front_table, sliders + pick_outputs, api_visibility="private")


def wire_chat(app: cb.App, chat: ChatPanel, point_state: gr.State, chat_state: gr.State, defaults: dict) -> None:
    """Columns shown, messages streamed into every chosen column, and clearing: the chat's per-session events."""
    chatbots = list(chat.chatbots.values())

    def show_columns(cols):
        return [gr.update(visible=k in (cols or [])) for k in CHAT_COLUMNS]

    chat.columns.change(show_columns, chat.columns, chatbots, api_visibility="private")

    def do_chat(msg, cols, point, state, n, t, p, sd, rp):
        try:
            settings = cb.check_settings(n, t, p, sd, rp, defaults=defaults)
            cols = cb.check_columns(cols)
            msg = cb.check_message(msg)
            point3 = (point["lambda_help"], point["phi_help"], point["phi_harm"])
            steps = cb.chat_stream(app, msg, cols, point3, settings, state)
            first = next(steps)
        except (AppInputError, TimeoutError, RuntimeError) as err:
            raise _error(err) from None
        step = first
        while True:
            views = [gr.update() if k not in cols else
                     render_column(step.state if step.done else state, k,
                                   None if step.done else (msg, step.texts.get(k, "")))
                     for k in CHAT_COLUMNS]
            if step.done:
                yield (*views, step.state, step.info, "")
                return
            yield (*views, state, "generating…", gr.update())
            try:
                step = next(steps)
            except StopIteration:
                return

    chat_outputs = chatbots + [chat_state, chat.status, chat.message]
    chat_inputs = [chat.message, chat.columns, point_state, chat_state, *chat.settings]
    chat.send.click(do_chat, chat_inputs, chat_outputs, api_visibility="private")
    chat.message.submit(do_chat, chat_inputs, chat_outputs, api_visibility="private")

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


def build_demo(app: cb.App) -> gr.Blocks:
    """The whole page: the panels top to bottom, then their events, so layout and behaviour read separately."""
    data, defaults = app.data, app.default_settings
    start = start_point(data)
    start_info = cb.pick(app, *start)
    gr.set_static_paths([str(PLOTLY_JS)])
    with gr.Blocks(title="PEO: Pareto-optimal policies by task-vector arithmetic") as demo:
        point_state = gr.State(start_info)
        chat_state = gr.State(cb.ChatState())
        intro(data)
        picker = picker_panel(data, start, start_info)
        chat = chat_panel(defaults)
        export = export_panel()
        wire_pick(app, picker, point_state)
        wire_chat(app, chat, point_state, chat_state, defaults)
        wire_export(app, export, point_state)
        add_api(app, start, defaults)
        demo.load(lambda: app.engine.start(), None, None, api_visibility="private")
    return demo


def launch_kwargs() -> dict:
    return {"css": CSS}
