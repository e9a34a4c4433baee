"""Votes under the side-by-side chat: the best column, "tie" or "all bad", stored with the turn's full state.

A turn starts here when the chat has accepted a message and before it streams (a step of the chat's own chain,
app/chat_panel.py BeforeStream): it records the point, columns and settings of the accepted turn and, in blind
mode, draws the turn's shuffled order and puts the columns in it, so no name shows while the answers stream; a
refused message (bad input, a turn still running) starts nothing. The chat state changing (its final update) ends
the turn: the columns whose history changed took part in it. A vote is committed to
the database (peo.votes) before the page says it is stored; names are revealed after the vote.

Blind mode shows the columns as A, B, C… in a shuffled order: the chatbots keep their components but are
reordered on screen (CSS `order` inside their row) and relabelled, and until the vote they show the answers
alone, without the point that produced them or their scores (app/chat_panel.py render_column); the vote reveals
names, points and scores. The order is stored with the vote.
The votes view shows only the aggregate over all sessions; no event returns another session's votes (the
download of preference pairs holds the page's own session's).
"""

from __future__ import annotations

import json
import random
import secrets
import string
from dataclasses import dataclass
from functools import partial

import gradio as gr
import pandas as pd

from app import callbacks as cb
from app import exports as export_store
from app.chat_panel import BeforeStream, render_all
from app.data import AppInputError, as_pick
from app.engine import column_scales
from peo.answer_checks import loops
from peo.aspects import DEFAULT_ASPECTS, Aspects
from peo.coefficients import model_id
from peo.digest import digest
from peo.records import Pick
from peo.votes import (
    ALL_BAD,
    MAX_COMMENT_CHARS,
    TIE,
    ColumnAnswer,
    ExportSummary,
    Vote,
    VotesError,
    VoteStore,
    vote_pairs,
)

LETTERS = string.ascii_uppercase
VOTE_SCORES = ("reward", "cost")  # the evaluators' scores a vote keeps (peo.votes.ColumnAnswer), where the run has them
AGGREGATE_COLUMNS = ["model", "turns", "wins", "ties", "win share", "95% interval"]

# Puts each chatbot at its blind position inside the chat row (or back in place for an empty order); KEYS: the
# chat columns' keys (order_js)
ORDER_JS_TEMPLATE = """
(o) => {
  let order = [];
  try { order = JSON.parse(o || '[]'); } catch (e) { order = []; }
  const keys = KEYS;
  const item = (k) => {
    let n = document.getElementById('chat-' + k);
    while (n && n.parentElement && !n.parentElement.classList.contains('row')) n = n.parentElement;
    return n;
  };
  keys.forEach((k) => { const n = item(k); if (n) n.style.order = ''; });
  order.forEach((k, i) => { const n = item(k); if (n) n.style.order = String(i - 100); });
  return [];
}
"""


def order_js(aspects: Aspects) -> str:
    return ORDER_JS_TEMPLATE.replace("KEYS", json.dumps(list(aspects.chat_columns)))



@dataclass
class VotesPanel:
    """The vote's components: wire_votes reads and updates these."""

    blind: gr.Checkbox
    buttons: list[gr.Button]  # by display position: button i votes for the i-th column shown
    tie: gr.Button
    all_bad: gr.Button
    comment: gr.Textbox
    status: gr.Markdown
    order: gr.Textbox  # the blind order as JSON, read by order_js's script
    view: gr.Accordion
    table: gr.Dataframe
    refresh: gr.Button
    download: gr.Button  # this session's votes as preference pairs (session_pairs)
    file: gr.File
    session: gr.State


def new_session() -> dict:
    """A session's vote state: an anonymous id (random, tied to nothing), its turn count and the open turn."""
    return {"session": secrets.token_hex(16), "turn": 0, "seen": {}, "sent": None, "pending": None}


def _session(session: dict | None) -> dict:
    """The page's state starts empty (a callable default would be a public load endpoint): the id is drawn here."""
    return session if session and session.get("session") else new_session()


def votes_panel(aspects: Aspects = DEFAULT_ASPECTS) -> VotesPanel:
    """Vote buttons, tie / all bad and a comment under the chat; the aggregate view in a closed accordion."""
    with gr.Row():
        blind = gr.Checkbox(False, label="Blind mode: columns shown as A, B, C… in a shuffled order, names "
                            "revealed after your vote", elem_id="blind-mode")
    with gr.Row():
        buttons = [gr.Button(f"{LETTERS[i]} is best", visible=False, elem_id=f"vote-{i}", size="sm")
                   for i in range(len(aspects.chat_columns))]
        tie = gr.Button("Tie", visible=False, elem_id="vote-tie", size="sm")
        all_bad = gr.Button("All bad", visible=False, elem_id="vote-all-bad", size="sm")
    comment = gr.Textbox(placeholder=f"Optional comment with your vote (at most {MAX_COMMENT_CHARS} characters)",
                         show_label=False, max_length=MAX_COMMENT_CHARS, max_lines=2, elem_id="vote-comment")
    status = gr.Markdown("", elem_id="vote-status", elem_classes=["peo-status"])
    order = gr.Textbox("[]", visible="hidden", elem_id="blind-order")
    with gr.Accordion("Votes: human win share per model", open=False, elem_id="votes-view") as view:
        gr.Markdown("Every session's votes, aggregated: turns a model took part in, its wins and ties, and its win "
                    "share (wins + ½·ties over turns) with a 95 % Wilson interval.")
        table = gr.Dataframe(pd.DataFrame(columns=AGGREGATE_COLUMNS), interactive=False, elem_id="votes-table")
        with gr.Row():
            refresh = gr.Button("Refresh", size="sm", elem_id="votes-refresh")
            download = gr.Button("Download your votes as preference pairs (JSON lines)", size="sm",
                                 elem_id="votes-download")
        gr.Markdown("The download holds this session's votes only, as `python -m peo votes export` writes them "
                    "(TRL conversational pairs: the chosen answer against each other one); every session's votes: "
                    "that command, on the machine running the app.", elem_classes=["peo-status"])
        file = gr.File(label="your votes as pairs", interactive=False, elem_id="votes-file", visible=False)
    session = gr.State({})
    return VotesPanel(blind, buttons, tie, all_bad, comment, status, order, view, table, refresh, download, file,
                      session)


# ---------------------------------------------------------------- the turn: plain functions (tested directly)


def _fingerprint(history: list[dict]) -> str:
    return digest(history)[:16]


def begin_turn(session: dict, columns, point: Pick, settings: dict, blind: bool,
               rng: random.Random | None = None, aspects: Aspects = DEFAULT_ASPECTS) -> dict:
    """What the chat sends with (point, columns, settings) and, when blind, the shuffled order; the open turn
    is closed (a new message supersedes it)."""
    session = dict(session, pending=None, sent=None)
    try:
        cols = cb.check_columns(columns, aspects)
    except AppInputError:
        return session
    order = list(cols)
    if blind:
        (rng or random.SystemRandom()).shuffle(order)
    coordinates = {k: v for k, v in point.to_json().items() if k not in type(point).model_fields}
    session["sent"] = {"columns": order, "point": coordinates, "settings": settings,
                       "blind": bool(blind)}
    return session


def end_turn(session: dict, state: cb.ChatState, aspects: Aspects = DEFAULT_ASPECTS) -> dict:
    """The turn just answered: the columns whose history changed, in display order, with every answer."""
    seen = {col: _fingerprint(h) for col, h in state.histories.items()}
    changed = [c for c, f in seen.items() if session["seen"].get(c) != f and state.histories[c]]
    session = dict(session, seen=seen, pending=None)
    sent = session.get("sent")
    if not changed or sent is None:
        return session
    cols = [c for c in sent["columns"] if c in changed] + [c for c in aspects.chat_columns if c in changed
                                                           and c not in sent["columns"]]
    p = sent["point"]
    model_key = (*(p[c] for c in aspects.lambda_columns), *(p[c] for c in aspects.coefficient_columns))
    answers = []
    for i, col in enumerate(cols):
        history = state.histories[col]
        answer = history[-1]["content"] if history[-1]["role"] == "assistant" else ""
        score = (state.scores.get(col) or [None])[-1]
        scores = dict(zip(aspects.evaluators, score)) if score is not None else {}
        answers.append({"column": col, "scales": column_scales(col, *model_key, aspects=aspects),
                        "answer": answer, "conversation": history,
                        **{ev: scores.get(ev) for ev in VOTE_SCORES}, "loops": loops(answer),
                        "blind_label": LETTERS[i] if sent["blind"] else None})
    session["turn"] += 1
    session["pending"] = {"turn": session["turn"], "columns": answers, "point": p, "settings": sent["settings"],
                          "blind": sent["blind"], "voted": None}
    return session


def make_vote(session: dict, choice: str, comment: str = "", assets: str = "",
              aspects: Aspects = DEFAULT_ASPECTS) -> Vote:
    """The Vote for the open turn; `choice` is a display position ("0", "1", …), TIE or ALL_BAD."""
    pending = session.get("pending")
    if pending is None:
        raise VotesError("there is no answered turn to vote on: send a message first")
    if pending["voted"] is not None:
        raise VotesError(f"you already voted on this turn (vote #{pending['voted']})")
    columns = tuple(ColumnAnswer(**c) for c in pending["columns"])
    if choice not in (TIE, ALL_BAD):
        try:
            choice = columns[int(choice)].column
        except (ValueError, IndexError):
            raise VotesError(f"no column at position {choice!r} in this turn") from None
    return Vote(session_id=session["session"], turn=pending["turn"], point=pending["point"], columns=columns,
                choice=choice, settings=pending["settings"], comment=(comment or "").strip(),
                blind=pending["blind"], assets=assets, aspects=aspects)


def aggregate_table(store: VoteStore, aspects: Aspects = DEFAULT_ASPECTS) -> pd.DataFrame:
    """The votes view: one row per model (a column at its adapter scales)."""
    rows = []
    for g in store.aggregate():
        name = aspects.chat_columns[g["column"]]
        if g["column"] not in aspects.baseline_scales:  # a column that follows the picked point: name its model
            name += f" {model_id(*(g['scales'].get(a, 0.0) for a in aspects.names))}"
        rows.append({"model": name, "turns": g["turns"], "wins": g["wins"], "ties": g["ties"],
                     "win share": round(g["win_share"], 3),
                     "95% interval": f"[{g['ci_low']:.2f}, {g['ci_high']:.2f}]"})
    return pd.DataFrame(rows, columns=AGGREGATE_COLUMNS)


def session_pairs(store: VoteStore, session: dict) -> tuple[list[dict], ExportSummary]:
    """This session's votes as preference pairs (peo.votes.vote_pairs, what `peo votes export` writes), and what
    was kept and dropped: a page gets its own votes back, never another session's."""
    summary = ExportSummary()
    mine = [v for v in store.votes() if v["session_id"] == session.get("session")]
    return list(vote_pairs(mine, summary)), summary


def assets_name(app: cb.App) -> str:
    meta = app.data.assets.run_meta
    return f"{meta.profile or '?'}:{meta.base_model}:seed{'?' if meta.seed is None else meta.seed}"


# ---------------------------------------------------------------- wiring


def _chat_labels(pending_or_sent: dict | None, reveal: bool, aspects: Aspects = DEFAULT_ASPECTS) -> list:
    """Chatbot label updates, the chat columns' order: letters when blind (with the name once revealed), else
    names."""
    if not pending_or_sent or not pending_or_sent["blind"]:
        return [gr.update(label=label) for label in aspects.chat_columns.values()]
    keys = [c["column"] if isinstance(c, dict) else c for c in pending_or_sent["columns"]]
    letters = {k: LETTERS[i] for i, k in enumerate(keys)}
    return [gr.update(label=(f"{letters[k]}: {label}" if reveal else letters[k]) if k in letters else label)
            for k, label in aspects.chat_columns.items()]


def revealed(state, pending: dict | None, reference=None, aspects: Aspects = DEFAULT_ASPECTS) -> list:
    """Chatbot updates, the chat columns' order: every answer with its point and scores, under its revealed
    label."""
    state = state if isinstance(state, cb.ChatState) else cb.ChatState()
    return [{**label, "value": value} for label, value in zip(_chat_labels(pending, reveal=True, aspects=aspects),
                                                              render_all(state, reference, aspects=aspects))]


def _buttons(pending: dict | None, aspects: Aspects = DEFAULT_ASPECTS) -> list:
    """Position buttons (named by letter when blind), then tie and all bad; shown while a turn awaits a vote."""
    open_turn = pending is not None and pending["voted"] is None
    cols = pending["columns"] if pending else []
    out = []
    for i in range(len(aspects.chat_columns)):
        if i < len(cols) and open_turn:
            name = LETTERS[i] if pending["blind"] else aspects.chat_columns[cols[i]["column"]]
            out.append(gr.update(value=f"{name} is best", visible=True, interactive=True))
        else:
            out.append(gr.update(visible=False))
    out += [gr.update(visible=open_turn, interactive=open_turn)] * 2
    return out


def wire_votes(app: cb.App, panel: VotesPanel, chat, point_state: gr.State, chat_state: gr.State,
               store: VoteStore) -> BeforeStream:
    """Turn end (chat state changed), votes and the aggregate; every event private. Returns the turn's start, for
    the chat to run between an accepted message and its stream (app/chat_panel.py wire_chat)."""
    aspects = app.aspects
    chatbots = list(chat.chatbots.values())
    buttons = [*panel.buttons, panel.tie, panel.all_bad]
    assets = assets_name(app)
    js = order_js(aspects)

    def on_accepted(turn, session, point, blind):
        if turn is None:  # refused by the chat (bad input, or a turn still running): the open turn stays
            return (session, gr.update(), gr.update(), *[gr.update()] * (len(buttons) + len(chatbots)))
        session = begin_turn(_session(session), turn["columns"], as_pick(point), turn["settings"].model_dump(), blind,
                             aspects=aspects)
        sent = session["sent"]
        order = json.dumps(sent["columns"] if sent and sent["blind"] else [])
        return (session, order, "", *_buttons(None, aspects), *_chat_labels(sent, reveal=False, aspects=aspects))

    def on_turn_end(session, state):
        session = end_turn(_session(session), state if isinstance(state, cb.ChatState) else cb.ChatState(), aspects)
        pending = session["pending"]
        text = ("Which answer is best? Vote below (optionally with a comment)." if pending else "")
        order = json.dumps([c["column"] for c in pending["columns"]] if pending and pending["blind"] else [])
        return (session, order, text, *_buttons(pending, aspects),
                *_chat_labels(pending, reveal=False, aspects=aspects))

    chat_state.change(on_turn_end, [panel.session, chat_state],
                      [panel.session, panel.order, panel.status, *buttons, *chatbots], api_visibility="private"
                      ).then(None, panel.order, None, js=js, api_visibility="private")

    def on_vote(choice, session, comment, state):
        try:
            vote = make_vote(_session(session), choice, comment, assets, app.aspects)
            vote_id, _ = store.record(vote)  # committed before this returns
        except VotesError as err:
            raise gr.Error(str(err), print_exception=False) from None
        pending = dict(session["pending"], voted=vote_id)
        session = dict(session, pending=pending)
        if vote.blind:
            names = ", ".join(f"{c.blind_label} was {c.label}" for c in vote.columns)
            text = f"Vote #{vote_id} stored. {names}."
        else:
            text = f"Vote #{vote_id} stored."
        return (session, text, "", *_buttons(pending, aspects),
                *revealed(state, pending, app.reference_scores, aspects), aggregate_table(store, aspects))

    vote_inputs = [panel.session, panel.comment, chat_state]
    vote_outputs = [panel.session, panel.status, panel.comment, *buttons, *chatbots, panel.table]
    for i, button in enumerate(panel.buttons):
        button.click(partial(on_vote, str(i)), vote_inputs, vote_outputs, api_visibility="private")
    panel.tie.click(partial(on_vote, TIE), vote_inputs, vote_outputs, api_visibility="private")
    panel.all_bad.click(partial(on_vote, ALL_BAD), vote_inputs, vote_outputs, api_visibility="private")

    def on_blind(blind, session, state):
        """Turning blind mode off reveals the open turn (then stored as not blind); on: from the next message."""
        session = _session(session)
        pending = session.get("pending")
        if not blind and pending is not None and pending["blind"]:
            pending = dict(pending, blind=False, columns=[dict(c, blind_label=None) for c in pending["columns"]])
            session = dict(session, pending=pending)
        text = "Blind from your next message." if blind else ""
        return (session, "[]" if not blind else gr.update(), text, *_buttons(pending, aspects),
                *(revealed(state, pending, app.reference_scores, aspects) if not blind
                  else [gr.update()] * len(chatbots)))

    panel.blind.input(on_blind, [panel.blind, panel.session, chat_state],
                      [panel.session, panel.order, panel.status, *buttons, *chatbots], queue=False,
                      api_visibility="private").then(None, panel.order, None, js=js, api_visibility="private")
    for trigger in (panel.refresh.click, panel.view.expand):
        trigger(lambda: aggregate_table(store, aspects), None, panel.table, api_visibility="private")

    def on_download(session):
        pairs, summary = session_pairs(store, _session(session))
        if not pairs:
            dropped = "; ".join(f"{n} × {reason}" for reason, n in summary.dropped.items())
            raise gr.Error(f"None of this session's {summary.votes} vote(s) gives a pair"
                           + (f" ({dropped})" if dropped else "") + ".", print_exception=False)
        text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in pairs)
        path = export_store.download("votes-pairs.jsonl", lambda p: p.write_text(text, encoding="utf-8"))
        return gr.update(value=str(path), visible=True)

    panel.download.click(on_download, panel.session, panel.file, api_visibility="private")
    return BeforeStream(on_accepted, [panel.session, point_state, panel.blind],
                        [panel.session, panel.order, panel.status, *buttons, *chatbots], panel.order, js)
