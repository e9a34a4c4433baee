"""The side-by-side chat: one message to every chosen column, streamed in one batched generation.

Its panel (columns, decoding settings, one chatbot per column, message box, Stop), the two steps of a turn (a quick
check that refuses bad input beside the message box, then the stream), and the per-session Stop. Each answer is
shown with the point that produced it and its live scores; what is shown is never fed back to the model. In blind
mode (app/votes_panel.py) neither is shown until the vote: nothing on a column tells which model it is.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import gradio as gr

from app import callbacks as cb
from app.data import AppInputError, as_pick
from app.engine import same_model_columns
from app.score_context import compact_score_line
from peo.aspects import DEFAULT_ASPECTS, Aspects
from peo.errors import PeoError
from peo.generation import GenerationStopped
from peo.records import Pick

CHAT_MIN_WIDTH = 150  # px: six chat columns side by side in a 1400 px window
STOPPED = ("Stopped: the turn was cancelled. Its partial answers stay on screen, marked [stopped], but are not kept "
           "in the chat history: the next message continues the chat from before it.")
STOPPED_MARK = " … [stopped]"
BUSY = ("⚠️ The last message is still being answered: wait for it or press Stop, then send again (your message is "
        "kept in the box).")
BLIND_NOTE = "Scores and names are shown after your vote."


def decoding_note(defaults: dict) -> str:
    """What the settings start at and why: the sweep's decoding (meta.json), answer length included, so a live
    answer is made as the answers its scores are placed among and the front was scored on."""
    sampling = ("greedy" if defaults["temperature"] == 0 else
                f"temperature {defaults['temperature']:g}, top-p {defaults['top_p']:g}, seed {defaults['seed']}")
    parts = [f"at most {defaults['max_new_tokens']} new tokens", sampling,
             f"repetition penalty {defaults['repetition_penalty']:g}"]
    n = defaults["no_repeat_ngram_size"]
    if n:
        parts.append(f"no {n}-gram repeated")
    return ("Defaults are the sweep's decoding (meta.json): " + ", ".join(parts) + ", so live answers are made as "
            "the answers the front was scored on. A value outside its range is refused, never rounded.")


def tag_line(tag: cb.AnswerTag | None) -> str:
    """The point that produced an answer, for a column that follows the pick: 'at c = (c_help, c_harm)'."""
    if tag is None or tag.coefficients is None:
        return ""
    return f"at c = ({', '.join(f'{c:g}' for c in tag.coefficients)})"


def render_column(state: cb.ChatState, col: str, pending: tuple[str, str] | None = None,
                  reference=None, blind: bool = False, aspects: Aspects = DEFAULT_ASPECTS) -> list[dict]:
    """Chatbot messages of one column: its history, each answer followed by the point that produced it (columns
    that follow the pick), its live reward, cost and checks on one short line (the details on hover), and a marker
    when it was cut at the token limit.
    `blind`: answers only (no point, no score), so the column can't be told apart or anchor a blind vote.
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
            score = compact_score_line(next(scores), m["content"], reference, cut=False, aspects=aspects)
            lines = [] if blind else [line for line in (tag_line(tag), score) if line]
            tail = "".join(f"\n\n*{line}*" for line in lines)
            out.append({"role": "assistant", "content": body + tail})
        else:
            out.append({"role": m["role"], "content": m["content"]})
    if pending is not None:
        user, text = pending
        out.append({"role": "user", "content": user})
        out.append({"role": "assistant", "content": text or "…"})
    return out


def render_all(state: cb.ChatState, reference=None, blind: bool = False,
               aspects: Aspects = DEFAULT_ASPECTS) -> list[list[dict]]:
    """Every chat column's messages, the chat columns' order: what a vote (or blind mode turned off) reveals."""
    return [render_column(state, k, reference=reference, blind=blind, aspects=aspects) for k in aspects.chat_columns]


@dataclass(frozen=True)
class BeforeStream:
    """A step of another panel between an accepted message and its stream, in the same chain, so it is done before
    the first token shows (the votes panel: a blind turn's letters and shuffled order). `fn(turn, *inputs)` gets
    the accepted turn, or None for a refused message; then `js` runs in the page on `js_input`."""

    fn: Callable
    inputs: list
    outputs: list
    js_input: gr.components.Component
    js: str


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
    turns: "TurnStops"  # each session's running turn: Stop reaches it, a send meanwhile is refused


def chat_panel(defaults: dict, aspects: Aspects = DEFAULT_ASPECTS) -> ChatPanel:
    """Columns (the aspects' chat columns: a DPO baseline per aspect), decoding settings, one chatbot per column
    and one message box: one message goes to them all."""
    scores = ", ".join(f"{a.evaluator} ({'↑' if a.better == 'higher' else '↓'})" for a in aspects)
    scores = " and ".join(scores.rsplit(", ", 1))
    gr.Markdown("## Side-by-side chat\nOne message goes to every chosen column; all columns are generated in "
                f"one batched generation. Each answer shows its live {scores}.")
    columns = gr.CheckboxGroup([(label, key) for key, label in aspects.chat_columns.items()],
                               value=aspects.default_chat_columns, label="Columns", elem_id="columns")
    with gr.Accordion("Generation settings", open=False):
        with gr.Row():  # plain number boxes: a browser clamps a slider's typed value silently; check_turn refuses
            max_new = setting_box(defaults, "max_new_tokens", "max new tokens", 1, "max-new-tokens")
            temperature = setting_box(defaults, "temperature", "temperature (0 = greedy)", 0.05, "temperature")
            top_p = setting_box(defaults, "top_p", "top-p", 0.05, "top-p")
            repetition_penalty = setting_box(defaults, "repetition_penalty", "repetition penalty (1 = none)", 0.05,
                                             "repetition-penalty")
            seed = setting_box(defaults, "seed", "seed", 1, "seed")
        gr.Markdown(decoding_note(defaults), elem_id="decoding-note")
    chatbots = {}
    with gr.Row(equal_height=True):  # min_width: all six columns fit in one row at 1400 px
        for key, label in aspects.chat_columns.items():
            chatbots[key] = gr.Chatbot(label=label, visible=key in aspects.default_chat_columns, height=360,
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
                     clear, fresh, status, TurnStops())


def setting_box(defaults: dict, name: str, label: str, step: float, elem_id: str) -> gr.Number:
    """A decoding setting's box, its range in the label and none in the browser: a typed value outside it
    reaches cb.check_settings and is refused with a message beside the message box."""
    lo, hi = cb.LIMITS[name]  # no `precision`: Gradio would round 12.5 to 12 without a word
    return gr.Number(defaults[name], label=f"{label} [{lo:g}, {hi:g}]", step=step, elem_id=elem_id, min_width=120)


def column_labels(info: Pick, columns, aspects: Aspects = DEFAULT_ASPECTS) -> list[str]:
    """Each chatbot's label at this point, marking a column that is the same model as another chosen one
    ('Soup (same λ) = PEO (picked point) at this point'), in the chat columns' order."""
    labels = aspects.chat_columns
    chosen = [k for k in labels if k in (columns or [])]
    same = same_model_columns(chosen, *info.model_key, aspects=aspects)
    return [cb.same_model_label(k, same[k], aspects) if k in same else label for k, label in labels.items()]


def check_turn(app: cb.App, defaults: dict, msg, cols, point: Pick, *settings,
               busy: bool = False) -> tuple[dict | None, str]:
    """(the turn to run, status): the first, non-streaming step of a chat turn. A refused input gives no turn
    and its message for the status beside the message box, so the chatbots never show an error. `busy`: this
    session's last turn is still running (one turn at a time: a second would race it for the chat state)."""
    if busy:
        return None, BUSY
    try:
        turn = {"settings": cb.check_settings(*settings, defaults=defaults),
                "columns": cb.check_columns(cols, app.aspects), "message": cb.check_message(msg),
                "point": point.point}
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

    def running(self, session: str) -> bool:
        with self._lock:
            return session in self._events

    def finish(self, session: str, event: threading.Event) -> None:
        with self._lock:
            if self._events.get(session) is event:
                del self._events[session]


def stream_turn(app: cb.App, turn: dict | None, state: cb.ChatState, fresh: bool,
                stop: threading.Event | None = None, blind: bool = False) -> Iterator[tuple]:
    """The streaming step of a chat turn: (one view per chat column, chat state, status, message box) after each
    step. Errors go to the status, the chatbots going back to the chat before this turn; after a Stop (`stop` set)
    they keep the message and the partial answers, marked, though the history does not. Closing this generator
    (what Gradio does when the page goes away) ends the generation at once too.
    `blind`: the columns show answers only and the status names no column (render_column).

    The message box was emptied when the turn was accepted (check step), so text typed during the turn stays; a
    turn refused here, before generating (a message too long for the model), puts its message back to be fixed."""
    aspects = app.aspects
    keys = list(aspects.chat_columns)
    if turn is None:  # refused by check_turn: nothing to do
        yield (*[gr.update()] * len(keys), gr.update(), gr.update(), gr.update())
        return
    cols, msg = turn["columns"], turn["message"]
    reference = app.reference_scores
    steps = cb.chat_stream(app, msg, cols, turn["point"], turn["settings"], state, fresh_on_new_point=fresh,
                           stop=stop)
    base, texts = state, {}
    try:
        # what the answers so far are shown under: the chat so far, or nothing when this turn starts fresh
        base = cb.ChatState() if cb.starts_fresh(state, cb.pick(app, *turn["point"]), fresh) else state
        for step in steps:
            texts = step.texts
            if step.done:
                views = [render_column(step.state, k, reference=reference, blind=blind, aspects=aspects)
                         if k in cols else gr.update() for k in keys]
                status = f"{step.blind_info}. {BLIND_NOTE}" if blind else step.info
                yield (*views, step.state, status, gr.update())
                return
            views = [render_column(base, k, (msg, step.texts.get(k, "")), reference, blind, aspects) if k in cols
                     else gr.update() for k in keys]
            # the status is left as it is: the check step set "generating…", and a refused send during the
            # turn (BUSY) must stay readable until the turn ends, not be overwritten at the next step
            yield (*views, gr.update(), gr.update(), gr.update())
    except GenerationStopped:
        views = [render_column(base, k, (msg, texts.get(k, "") + STOPPED_MARK), reference, blind, aspects)
                 if k in cols else gr.update() for k in keys]
        yield (*views, gr.update(), STOPPED, gr.update())
    except (PeoError, TimeoutError, RuntimeError) as err:  # AppInputError, models not loaded
        views = [render_column(state, k, reference=reference, blind=blind, aspects=aspects) if k in cols
                 else gr.update() for k in keys]
        yield (*views, gr.update(), f"⚠️ {err}", msg if isinstance(err, AppInputError) else gr.update())
    finally:  # a cancelled turn: stop generating now and free the model for the other sessions
        steps.close()


def wire_chat(app: cb.App, chat: ChatPanel, point_state: gr.State, chat_state: gr.State, defaults: dict,
              blind: gr.Checkbox, before_stream: BeforeStream) -> None:
    """Columns shown and labelled, messages checked then streamed into every chosen column, Stop, clearing: the
    chat's per-session events. `blind`: the votes panel's blind mode; while on, the labels are the votes panel's
    (letters until the vote) and the columns show answers only. `before_stream`: the votes panel's turn start."""
    aspects = app.aspects
    chatbots = list(chat.chatbots.values())
    for bot, label in zip(chatbots, column_labels(as_pick(point_state.value), chat.columns.value, aspects)):
        bot.label = label  # the start point's labels (the soup is PEO there when ϕ starts at 0)

    def show_columns(cols, point, is_blind):
        return [gr.update(visible=k in (cols or [])) if is_blind else gr.update(visible=k in (cols or []), label=label)
                for k, label in zip(aspects.chat_columns, column_labels(as_pick(point), cols, aspects))]

    chat.columns.change(show_columns, [chat.columns, point_state, blind], chatbots, api_visibility="private")

    def on_new_point(point, cols, state, fresh, is_blind):
        point = as_pick(point)
        note = ""
        if state is not None and not state.empty and state.point != cb.point_key(point):
            note = ("The point changed: your next message starts a fresh chat." if fresh else
                    "The point changed: the next answers continue this chat at the new point "
                    "(each answer is tagged with the point that produced it).")
        labels = [gr.update() if is_blind else gr.update(label=label)
                  for label in column_labels(point, cols, aspects)]
        return (*labels, note)

    point_state.change(on_new_point, [point_state, chat.columns, chat_state, chat.fresh, blind],
                       chatbots + [chat.status], api_visibility="private")

    turn = gr.State(None)
    check_inputs = [chat.message, chat.columns, point_state, *chat.settings]
    stream_outputs = chatbots + [chat_state, chat.status, chat.message]
    stops = chat.turns

    def do_check(msg, cols, point, n, t, p, sd, rp, request: gr.Request):  # Gradio passes `request` by position
        turn, status = check_turn(app, defaults, msg, cols, as_pick(point), n, t, p, sd, rp,
                                  busy=stops.running(request.session_hash))
        return turn, status, gr.update() if turn is None else ""  # the box is emptied once the turn is accepted

    def do_stream(t, state, fresh, is_blind, request: gr.Request):
        if t is None:  # refused: the running turn (if any) keeps its Stop
            yield from stream_turn(app, None, state, fresh)
            return
        stop = stops.start(request.session_hash)
        try:
            yield from stream_turn(app, t, state, fresh, stop, bool(is_blind))
        finally:
            stops.finish(request.session_hash, stop)

    def do_stop(request: gr.Request):
        stops.stop(request.session_hash)

    for trigger in (chat.send.click, chat.message.submit):
        # "multiple": a send while this session's turn runs still reaches do_check, which says why it is refused
        checked = trigger(do_check, check_inputs, [turn, chat.status, chat.message], trigger_mode="multiple",
                          api_visibility="private")
        begun = checked.then(before_stream.fn, [turn, *before_stream.inputs], before_stream.outputs,
                             api_visibility="private").then(None, before_stream.js_input, None, js=before_stream.js,
                                                            api_visibility="private")
        begun.then(do_stream, [turn, chat_state, chat.fresh, blind], stream_outputs, api_visibility="private")
    chat.stop.click(do_stop, None, None, api_visibility="private")

    def do_clear():
        state = cb.ChatState()
        return (*[[] for _ in chatbots], state, "")

    chat.clear.click(do_clear, None, chatbots + [chat_state, chat.status], api_visibility="private")
    for key, bot in chat.chatbots.items():  # a column's own trash icon: its history goes, not only its display
        bot.clear(lambda state, col=key: state.cleared(col), chat_state, chat_state, api_visibility="private")
