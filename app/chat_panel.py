"""The side-by-side chat: one message to every chosen column, streamed in one batched generation.

Its panel (columns, decoding settings, one chatbot per column, message box, Stop), the two steps of a turn (a quick
check that refuses bad input beside the message box, then the stream), and the per-session Stop. Each answer is
shown with the point that produced it and its live scores; what is shown is never fed back to the model.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

import gradio as gr

from app import callbacks as cb
from app.data import AppInputError
from app.engine import same_model_columns
from app.score_context import live_score_line
from peo.errors import PeoError
from peo.generation import GenerationStopped
from peo.names import CHAT_COLUMNS, DEFAULT_CHAT_COLUMNS

CHAT_MIN_WIDTH = 150  # px: six chat columns side by side in a 1400 px window
STOPPED = "Stopped: the turn was cancelled; its partial answers are not kept in the chat history."

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
            score = live_score_line(next(scores), m["content"], reference, cut=False)
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


def column_labels(info: dict, columns) -> list[dict]:
    """Each chatbot's label at this point, marking a column that is the same model as another chosen one
    ('Soup (same λ) = PEO (picked point) at this point'), in CHAT_COLUMNS' order."""
    chosen = [k for k in CHAT_COLUMNS if k in (columns or [])]
    same = same_model_columns(chosen, info["lambda_help"], info["c_help"], info["c_harm"])
    return [cb.same_model_label(k, same[k]) if k in same else label for k, label in CHAT_COLUMNS.items()]


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
