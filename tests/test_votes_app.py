"""Votes in the app on the tiny assets: a blind turn and its vote hold the full state, every votes event is
private, share-link parsing, and real votes exported as pairs train the tiny profile's policy."""

from __future__ import annotations

import json
import os
import random
from dataclasses import asdict
from pathlib import Path

import pytest

from app import callbacks as cb
from app.data import AppInputError
from app.share_link import parse_query, share_query
from app.votes_panel import assets_name, begin_turn, end_turn, make_vote, new_session
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
    session = begin_turn(session, columns, point, asdict(settings), blind, rng=rng)
    steps = list(cb.chat_stream(app, message, columns, (point["lambda_help"], point["phi_help"], point["phi_harm"]),
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
        assert (row["c_help"], row["c_harm"]) == (point["c_help"], point["c_harm"])
        assert row["settings"]["seed"] == 0 and row["settings"]["max_new_tokens"] == 12
        assert row["settings"]["temperature"] == 1.0
        columns = {c["column_key"]: c for c in row["columns"]}
        assert columns["peo"]["scales"] == {"help": point["c_help"], "harm": point["c_harm"]}
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
    point = {"lambda_help": 0.4, "phi_help": 0.55, "phi_harm": 0.0}
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
