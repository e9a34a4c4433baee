"""Votes in the app on the tiny assets: a blind turn and its vote hold the full state, every votes event is
private, share-link parsing, and real votes exported as pairs train the tiny profile's policy."""

from __future__ import annotations

import json
import os
import random
from contextlib import contextmanager
from pathlib import Path

import pytest

from app import callbacks as cb
from app.data import AppInputError
from app.share_link import parse_query, share_query
from app.votes_panel import assets_name, begin_turn, end_turn, make_vote, new_session
from peo.aspects import DEFAULT_ASPECTS
from peo.records import Pick
from peo.votes import TIE, VotesError, VoteStore

from conftest import REPO


@pytest.fixture(scope="module")
def app(request):
    prebuilt = os.environ.get("PEO_APP_TEST_ASSETS")  # as in tests/browser: reuse built tiny assets
    assets = Path(prebuilt) if prebuilt else request.getfixturevalue("tiny_assets")
    application = cb.App.load(assets, device="cpu")
    application.engine.start()
    application.engine.wait_ready()
    return application


def run_turn(app, session, state, message, columns, point, blind, seed=0, rng=None):
    """What the page does: the send starts the turn, the chat answers, the changed chat state ends it.
    Sampled (temperature 1): the tiny random model's greedy answer is empty."""
    settings = cb.check_settings(12, 1.0, 1.0, seed, 1.0, defaults=app.default_settings)
    session = begin_turn(session, columns, point, settings.model_dump(), blind, rng=rng)
    steps = list(cb.chat_stream(app, message, columns, (point.lambda_help, point.phi_help, point.phi_harm),
                                settings, state))
    final = steps[-1]
    return end_turn(session, final.state), final


def test_a_blind_turn_and_its_vote_hold_the_full_state(app, tmp_path):
    session, state = new_session(), cb.ChatState()
    point = cb.pick(app, 0.5, 0.5, 0.0)
    session, first = run_turn(app, session, state, "What is a task vector?", ["peo", "ref", "soup"], point,
                              blind=True, rng=random.Random(3))
    pending = session["pending"]
    order = [c["column"] for c in pending["columns"]]
    assert sorted(order) == ["peo", "ref", "soup"] and order == session["sent"]["columns"]
    assert [c["blind_label"] for c in pending["columns"]] == ["A", "B", "C"]

    with VoteStore(tmp_path) as store:
        vote = make_vote(session, "1", "B reads better", assets_name(app))  # position 1: the second shown column
        vote_id, created = store.record(vote)
        assert created and vote.choice == order[1]
        (row,) = store.votes()
        assert row["session_id"] == session["session"] and row["turn"] == 1
        assert row["blind_order"] == order and row["choice"] == order[1] and row["comment"] == "B reads better"
        assert (row["lambda_help"], row["phi_help"], row["phi_harm"]) == (0.5, 0.5, 0.0)
        assert (row["c_help"], row["c_harm"]) == (point.c_help, point.c_harm)
        assert row["settings"]["seed"] == 0 and row["settings"]["max_new_tokens"] == 12
        assert row["settings"]["temperature"] == 1.0
        columns = {c["column_key"]: c for c in row["columns"]}
        assert columns["peo"]["scales"] == {"help": point.c_help, "harm": point.c_harm}
        assert columns["soup"]["scales"] == {"help": 0.5, "harm": 0.5} and columns["ref"]["scales"] == {}
        for col in order:
            assert columns[col]["answer"] == first.texts[col] != ""
            assert (columns[col]["reward"], columns[col]["cost"]) == pytest.approx(first.scores[col])
            assert columns[col]["conversation"] == [{"role": "user", "content": "What is a task vector?"},
                                                    {"role": "assistant", "content": first.texts[col]}]

        # the second turn, not blind, without the reference: only the columns that answered take part
        session["pending"]["voted"] = vote_id
        with pytest.raises(VotesError, match="already voted"):
            make_vote(session, TIE)
        session, second = run_turn(app, session, first.state, "And why extrapolate?", ["peo", "soup"], point,
                                   blind=False)
        assert session["pending"]["turn"] == 2
        assert [c["column"] for c in session["pending"]["columns"]] == ["peo", "soup"]
        store.record(make_vote(session, TIE))
        last = store.votes()[-1]
        assert last["blind_order"] is None and last["choice"] == TIE
        assert [m["role"] for m in last["columns"][0]["conversation"]] == ["user", "assistant"] * 2


def test_clearing_the_chat_closes_the_turn(app):
    session, state = new_session(), cb.ChatState()
    point = cb.pick(app, 0.5, 0.0, 0.0)
    session, _ = run_turn(app, session, state, "Hi", ["peo"], point, blind=False)
    assert session["pending"] is not None
    session = end_turn(session, cb.ChatState())
    assert session["pending"] is None
    with pytest.raises(VotesError, match="send a message first"):
        make_vote(session, "0")


@contextmanager
def _page(app, tmp_path):
    """The whole page, built as the app builds it (its votes database under tmp_path, open while in use)."""
    from app.ui import build_demo

    with VoteStore(tmp_path) as store:
        demo = build_demo(app, votes=store)
        try:
            yield demo
        finally:
            demo.close()


def _fn(demo, name: str):
    """The page's event function named `name` (a partial's function counts by its own name)."""
    return next(f.fn for f in demo.fns.values() if getattr(getattr(f.fn, "func", f.fn), "__name__", "") == name)


def _request(session: str = "s1", **query):
    from types import SimpleNamespace

    return SimpleNamespace(session_hash=session, query_params=query)


def _text(update) -> str:
    """What a chatbot update shows: its label and messages."""
    value = update.get("value", update) if isinstance(update, dict) else update
    messages = value if isinstance(value, list) else []
    return " ".join([str(update.get("label", "")) if isinstance(update, dict) else ""]
                    + [m["content"] for m in messages])


# what would tell a blind voter which column is which, or anchor them: tags, scores, bands, names
GIVEAWAYS = ("at c =", "reward", "cost", "pct", "🟩", "🟨", "🟥", *DEFAULT_ASPECTS.chat_columns.values(), "Soup", "PEO",
             "DPO")


def test_blind_mode_shows_no_tag_score_or_name_until_the_vote(app, tmp_path):
    """A blind turn through the page's own events: the send relabels the columns A, B, C…, every streamed and final
    view shows the answers alone, the status names no column, a change of point or columns keeps the letters; the
    vote reveals names, the point that produced each answer and the scores."""
    from app.chat_panel import check_turn, stream_turn

    with _page(app, tmp_path) as demo:
        point = cb.pick(app, 1.0, 0.5, 0.0)  # PEO at c = (1.5, 0): its tag would match the picked point
        cols = ["peo", "ref", "help", "harm", "soup"]
        settings = (12, 1.0, 1.0, 0, 1.0)  # sampled: the tiny random model's greedy answer is empty
        turn, _ = check_turn(app, app.default_settings, "Tell me about the weather.", cols, point, *settings)
        start = _fn(demo, "on_accepted")  # the chat runs it after accepting the message, before streaming
        session = new_session()
        assert start(None, session, point, True)[0] is session, "a refused message starts no turn"
        sent = start(turn, session, point, True)
        session, order, labels = sent[0], json.loads(sent[1]), sent[-len(DEFAULT_ASPECTS.chat_columns):]
        assert sorted(order) == sorted(cols)
        columns = list(DEFAULT_ASPECTS.chat_columns)
        assert [labels[columns.index(c)]["label"] for c in order] == ["A", "B", "C", "D", "E"]

        updates = list(stream_turn(app, turn, cb.ChatState(), True, blind=True))
        n = len(DEFAULT_ASPECTS.chat_columns)
        for update in updates:
            for col, view in zip(DEFAULT_ASPECTS.chat_columns, update[:n]):
                if col in cols:
                    shown = _text(view)
                    assert "Tell me about the weather." in shown
                    assert not [g for g in GIVEAWAYS if g in shown], (col, shown)
        state, status = updates[-1][n], updates[-1][n + 1]
        assert "after your vote" in status and not [g for g in DEFAULT_ASPECTS.chat_columns.values() if g in status]

        ended = _fn(demo, "on_turn_end")(session, state)
        session = ended[0]
        # the others are hidden
        shown = [_text(u) for col, u in zip(DEFAULT_ASPECTS.chat_columns, ended[-n:]) if col in cols]
        assert not [g for g in GIVEAWAYS if any(g in text for text in shown)], "turn end: letters only"
        assert all("label" not in u for u in _fn(demo, "show_columns")(cols, point, True))
        assert all("label" not in u for u in _fn(demo, "on_new_point")(cb.pick(app, 0.5, 0.0, 0.0), cols, state,
                                                                         True, True)[:n])

        voted = _fn(demo, "on_vote")(session, "", state)  # the first button: the column shown as A
        revealed = dict(zip(DEFAULT_ASPECTS.chat_columns, voted[-n - 1:-1]))
        assert revealed[order[0]]["label"] == f"A: {DEFAULT_ASPECTS.chat_columns[order[0]]}"
        assert "at c = (1.5, 0)" in _text(revealed["peo"]) and "at c = (1, 0)" in _text(revealed["soup"])
        assert all("reward" in _text(revealed[c]) and "cost" in _text(revealed[c]) for c in cols)


def test_a_share_link_sets_sliders_boxes_summary_and_state_alike(app, tmp_path):
    """Opening ?lambda_help=0.25&phi_help=1&phi_harm=0.5 picks through the page's one pick path: the number boxes
    hold the link's values too, so a later Pick (which reads the boxes) keeps the point; a bad link picks nothing
    and says why beside the picker."""
    from app.ui import AXES

    with _page(app, tmp_path) as demo:
        restore = _fn(demo, "restore")
        start = cb.pick(app, 0.5, 0.0, 0.0).to_json()  # what the page state holds
        hi = app.data.axis_range("lambda_help")[1]
        link = {"lambda_help": "0.25", "phi_help": str(app.data.axis_range("phi_help")[1]), "phi_harm": "0.5"}
        out = restore(start, _request(**link, columns="peo,ref"))
        n = len(AXES)
        sliders, boxes, (figure, summary, _, state, status, columns) = out[:n], out[n:2 * n], out[2 * n:]
        want = [float(link[axis]) for axis, *_ in AXES]
        assert list(sliders) == want and list(boxes) == want  # the boxes agree with the sliders
        assert state["lambda_help"] == 0.25 and state["model_id"] in summary and status == ""
        assert json.loads(figure)["layout"]["meta"]["picked_point"] == want  # the figure at the link's point
        assert columns["value"] == ["peo", "ref"]
        picked = _fn(demo, "do_pick")(*boxes, state, [])  # "Pick this point" reads the boxes
        assert picked[2 * n + 3]["model_id"] == state["model_id"]

        refused = restore(start, _request(lambda_help=str(hi + 5)))
        assert "link's point was not restored" in refused[2 * n + 4] and "outside the range" in refused[2 * n + 4]
        assert [u["value"] for u in refused[n:2 * n]] == [start[axis] for axis, *_ in AXES]


def test_the_compare_view_shows_the_human_votes_beside_the_record(app, tmp_path):
    """The page passes its votes database to the compare view: a vote for PEO over DPO-Help shows in the record."""
    point = cb.pick(app, 0.5, 0.0, 0.0)
    session, _ = run_turn(app, new_session(), cb.ChatState(), "What is a task vector?", ["peo", "help"], point,
                          blind=False)
    with VoteStore(tmp_path) as store:
        store.record(make_vote(session, "0"))  # the first shown column: PEO
    with _page(app, tmp_path) as demo:
        view = _fn(demo, "redraw")(point, "all prompts", "prompt order", 5, [])
    assert "<th>human votes</th>" in view
    help_row = next(row for row in view.split("<tr>") if "DPO-Help" in row)
    assert "won 100%" in help_row and "(n=1)" in help_row


def test_the_page_downloads_its_own_sessions_votes_as_pairs(app, tmp_path):
    """The votes export on the page: this session's votes as `peo votes export` pairs, never another session's."""
    from app.votes_panel import session_pairs
    from peo.votes import vote_pairs

    point = cb.pick(app, 0.5, 0.0, 0.0)
    mine, _ = run_turn(app, new_session(), cb.ChatState(), "Name a fruit.", ["peo", "help"], point, blind=False)
    theirs, _ = run_turn(app, new_session(), cb.ChatState(), "Name a colour.", ["peo", "ref"], point, blind=False)
    with VoteStore(tmp_path) as store:
        store.record(make_vote(mine, "0"))
        store.record(make_vote(theirs, "1"))
        pairs, summary = session_pairs(store, mine)
        assert summary.votes == 1
        assert pairs == list(vote_pairs([v for v in store.votes() if v["session_id"] == mine["session"]]))
        assert all(p["prompt"][-1]["content"] == "Name a fruit." for p in pairs)
    with _page(app, tmp_path) as demo:
        path = Path(_fn(demo, "on_download")(mine)["value"])
        assert [json.loads(line) for line in path.read_text().splitlines()] == pairs != []
        with pytest.raises(Exception, match="None of this session's 0 vote"):
            _fn(demo, "on_download")(new_session())


def test_every_votes_event_is_private(app, tmp_path):
    from app.ui import build_demo

    with VoteStore(tmp_path) as store:
        demo = build_demo(app, votes=store)
        from app import votes_panel

        mine = [fn for fn in demo.fns.values()
                if getattr(fn.fn, "__module__", None) in (votes_panel.__name__, "app.share_link")
                or getattr(getattr(fn.fn, "func", None), "__module__", None) == votes_panel.__name__]
        assert len(mine) >= 8
        assert all(fn.api_visibility == "private" for fn in mine)
        public = {fn.api_name for fn in demo.fns.values() if fn.api_visibility != "private"}
        assert not any("vote" in (name or "") for name in public)
        demo.close()


def test_share_query_round_trips_and_bad_links_are_refused():
    point = Pick.model_construct(lambda_help=0.4, phi_help=0.55, phi_harm=0.0)  # the coordinates are all it reads
    query = share_query(point, ["peo", "help", "nonsense"])
    assert query == "lambda_help=0.4&phi_help=0.55&phi_harm=0&columns=peo,help"
    from urllib.parse import parse_qsl

    assert parse_query(dict(parse_qsl(query))) == ((0.4, 0.55, 0.0), ["peo", "help"])
    assert parse_query({}) == (None, None)
    with pytest.raises(AppInputError, match="lambda_help"):
        parse_query({"lambda_help": "nan"})
    with pytest.raises(AppInputError, match="phi_help"):
        parse_query({"lambda_help": "0.5", "phi_help": "1e"})
    with pytest.raises(AppInputError, match="Unknown column"):
        parse_query({"columns": "peo,<script>"})


def test_exported_real_votes_train_the_tiny_policy(app, tmp_path):
    """Votes on the real (tiny) model's answers → `peo votes export` → validate-data → a tiny precompute run whose
    help policy trains on them."""
    from peo.__main__ import main
    from peo.config import load_config
    from precompute.pair_files import data_path, read_pairs
    from precompute.stages import run_pipeline

    from conftest import write_tiny_data

    point = cb.pick(app, 0.5, 0.5, 0.0)
    with VoteStore(tmp_path / "votes") as store:
        for i in range(6):
            session, last = run_turn(app, new_session(), cb.ChatState(), f"Please explain idea number {i}.",
                                     ["peo", "ref", "help"], point, blind=i % 2 == 0, seed=i)
            best = max(range(3), key=lambda k: session["pending"]["columns"][k]["reward"] or 0.0)
            store.record(make_vote(session, str(best)))
    out = tmp_path / "votes.jsonl"
    assert main(["votes", "export", "--votes-dir", str(tmp_path / "votes"), "--out", str(out)]) == 0
    exported = [json.loads(line) for line in out.read_text().splitlines()]
    assert exported, "the tiny model's answers gave at least one pair"
    assert main(["validate-data", str(out), "--format", "pairs", "--strict"]) == 0

    cfg = load_config(REPO / "precompute" / "configs" / "tiny.yaml",
                      {"out": str(tmp_path / "assets"), "work_dir": str(tmp_path / "work"),
                       "data.root": str(write_tiny_data(tmp_path / "data")),
                       "data.extra_pairs": {"help": str(out)}})
    ctx = run_pipeline(cfg, only="prepare-data")
    policy = read_pairs(data_path(ctx.work, "help", "policy"))
    extra = [p for p in policy if p.source.startswith("extra:")]
    summary = json.loads((ctx.work / "data" / "summary.json").read_text())["help"]["extra_pairs"]
    assert len(extra) == summary["added_to_policy"] == len(exported) - summary["dropped_too_long"]
    assert len(extra) > 0
    assert {p.chosen for p in extra} <= {row["chosen"][0]["content"] for row in exported}
    assert not [p for p in read_pairs(data_path(ctx.work, "harm", "policy")) if p.source.startswith("extra:")]

    for stage in ("train-evaluators", "train-aspects"):  # the policies' held-out check reads the evaluators'
        run_pipeline(cfg, only=stage)
    assert (ctx.out / "adapters" / "help" / "adapter_model.safetensors").is_file()
    # the help policy's training set is the policy split with the votes in it (settings.json: its pairs' digest)
    from precompute.stage_train_aspects import SETTINGS_FILE, policy_settings

    settings = json.loads((ctx.work / "train-dpo-help" / SETTINGS_FILE).read_text())
    assert settings["n_pairs"] == len(policy)
    assert settings["pairs"] == policy_settings(policy, cfg.dpo, cfg.lora, cfg.seed, 0)["pairs"]


def test_the_app_refuses_to_start_on_a_corrupt_votes_database(tmp_path, capsys):
    from app.__main__ import main

    bad = tmp_path / "votes.sqlite3"
    bad.write_bytes(b"garbage, not SQLite\n" * 50)
    assert main(["--votes-dir", str(tmp_path), "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: votes database") and "not an SQLite file" in err and err.count("\n") == 1
    assert bad.read_bytes() == b"garbage, not SQLite\n" * 50
