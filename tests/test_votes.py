"""The votes database (peo.votes): schema and migrations, WAL, refusal of corrupt or foreign files, length caps,
path confinement, no lost acknowledged vote under SIGKILL, concurrent sessions, and the export to pairs."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from peo.votes import (
    ALL_BAD,
    APPLICATION_ID,
    DB_FILE,
    MAX_COMMENT_CHARS,
    MIGRATIONS,
    SCHEMA_VERSION,
    TIE,
    ColumnAnswer,
    Vote,
    VotesError,
    VoteStore,
    database_path,
    migrate,
)

POINT = {"lambda_help": 0.4, "phi_help": 0.5, "phi_harm": 0.0, "c_help": 0.9, "c_harm": 0.6}
SETTINGS = {"max_new_tokens": 16, "temperature": 0.0, "top_p": 1.0, "seed": 7, "repetition_penalty": 1.2,
            "no_repeat_ngram_size": 0}


def make_vote(session: str = "s1", turn: int = 1, choice: str = "peo", tag: str = "", blind: bool = False,
              comment: str = "") -> Vote:
    """A vote on a turn with three columns whose answers carry `tag`, so a mixed-up vote is visible."""
    user = {"role": "user", "content": f"question {tag}"}
    cols = []
    for i, (col, scales) in enumerate((("peo", {"help": 0.9, "harm": 0.6}), ("ref", {}), ("help", {"help": 1.0}))):
        answer = f"answer of {col} {tag}"
        cols.append(ColumnAnswer(col, scales, answer, [user, {"role": "assistant", "content": answer}],
                                 reward=0.1 * i, cost=-0.2 * i, blind_label="ABC"[i] if blind else None))
    return Vote(session, turn, dict(POINT), tuple(cols), choice, dict(SETTINGS), comment=comment, blind=blind,
                assets="tiny:tiny:seed0")


def test_new_store_has_schema_wal_and_our_application_id(tmp_path):
    with VoteStore(tmp_path) as store:
        assert store.schema_version() == SCHEMA_VERSION == len(MIGRATIONS)
        assert store.path == (tmp_path / DB_FILE).resolve()
    conn = sqlite3.connect(tmp_path / DB_FILE)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    versions = [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY version")]
    assert versions == list(range(1, SCHEMA_VERSION + 1))
    conn.close()


def test_a_version_1_database_is_migrated_and_keeps_its_votes(tmp_path):
    path = tmp_path / DB_FILE
    conn = sqlite3.connect(path, isolation_level=None)
    assert migrate(conn, upto=1) == 1
    conn.execute("INSERT INTO votes (created_at, session_id, turn, lambda_help, phi_help, phi_harm, c_help, c_harm, "
                 "model_id, choice, settings, seed) VALUES ('t', 'old', 1, 0.5, 0, 0, 0.5, 0.5, 'c', 'tie', '{}', 0)")
    columns = {r[1] for r in conn.execute("PRAGMA table_info(votes)")}
    assert "assets" not in columns
    conn.close()
    with VoteStore(tmp_path) as store:
        assert store.schema_version() == SCHEMA_VERSION
        (old,) = store.votes()
        assert (old["session_id"], old["choice"], old["assets"]) == ("old", TIE, "")
        store.record(make_vote("new"))
        assert store.count() == 2


def test_a_database_from_a_newer_peo_is_refused(tmp_path):
    VoteStore(tmp_path).close()
    conn = sqlite3.connect(tmp_path / DB_FILE, isolation_level=None)
    conn.execute("INSERT INTO schema_version VALUES (?, 'later')", (SCHEMA_VERSION + 1,))
    conn.close()
    with pytest.raises(VotesError, match="newer"):
        VoteStore(tmp_path)


@pytest.mark.parametrize("content", [b"not a database at all\n" * 10,
                                     b"SQLite format 3\x00" + b"\xff" * 4000])
def test_a_corrupt_file_is_refused_and_left_as_it_was(tmp_path, content):
    path = tmp_path / DB_FILE
    path.write_bytes(content)
    with pytest.raises(VotesError, match="corrupt|not an SQLite"):
        VoteStore(tmp_path)
    assert path.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == [DB_FILE]


def test_a_damaged_page_of_a_real_database_is_refused(tmp_path):
    with VoteStore(tmp_path) as store:
        for turn in range(1, 60):
            store.record(make_vote(turn=turn, tag="x" * 200))
    path = tmp_path / DB_FILE
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) > 4 * page
    data[2 * page: 3 * page] = b"\x5a" * page  # a b-tree page overwritten
    path.write_bytes(bytes(data))
    with pytest.raises(VotesError, match="corrupt"):
        VoteStore(tmp_path)
    assert path.read_bytes() == bytes(data)


def test_another_programs_sqlite_file_is_refused(tmp_path):
    path = tmp_path / DB_FILE
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE customers (name TEXT)")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(VotesError, match="another program"):
        VoteStore(tmp_path)
    assert path.read_bytes() == before


def test_export_needs_an_existing_database(tmp_path):
    with pytest.raises(VotesError, match="no votes database"):
        VoteStore(tmp_path / "nothing", create=False)
    assert not (tmp_path / "nothing").exists()


def test_database_path_is_confined_to_its_folder(tmp_path):
    for name in ("../votes.sqlite3", "sub/votes.sqlite3", "/etc/votes.sqlite3", "votes.db", ".hidden.sqlite3x"):
        with pytest.raises(VotesError):
            database_path(tmp_path, name)
    outside = tmp_path / "elsewhere.sqlite3"
    folder = tmp_path / "votes"
    folder.mkdir()
    (folder / DB_FILE).symlink_to(outside)
    with pytest.raises(VotesError, match="outside"):
        VoteStore(folder)
    assert not outside.exists()


def test_text_fields_are_capped_in_code_and_in_the_schema(tmp_path):
    with VoteStore(tmp_path) as store:
        with pytest.raises(VotesError, match="comment"):
            store.record(make_vote(comment="x" * (MAX_COMMENT_CHARS + 1)))
        with pytest.raises(VotesError, match="answer of peo"):
            store.record(make_vote(tag="y" * 30_000))
        with pytest.raises(VotesError, match="session id"):
            store.record(make_vote(session="s" * 65))
        with pytest.raises(VotesError, match="choice"):
            store.record(make_vote(choice="harm"))  # not a column of this turn
        assert store.count() == 0
        store.record(make_vote(comment="x" * MAX_COMMENT_CHARS))
    conn = sqlite3.connect(tmp_path / DB_FILE)
    with pytest.raises(sqlite3.IntegrityError):  # even a writer that skips check_vote cannot store a long comment
        conn.execute("UPDATE votes SET comment = ?", ("x" * (MAX_COMMENT_CHARS + 1),))
    conn.close()


def test_a_vote_keeps_its_full_state_and_is_stored_once_per_turn(tmp_path):
    with VoteStore(tmp_path) as store:
        vote = make_vote(choice="ref", tag="t", blind=True, comment="  ref was clearer ")
        vote_id, created = store.record(vote)
        assert created
        assert store.record(make_vote(choice="help", tag="t")) == (vote_id, False)  # a second click: same vote
        (row,) = store.votes()
    assert row["choice"] == "ref" and row["comment"] == "  ref was clearer "
    assert {k: row[k] for k in POINT} == POINT and row["model_id"] == "c+0.900_+0.600"
    assert row["settings"] == SETTINGS and row["seed"] == 7
    assert row["blind_order"] == ["peo", "ref", "help"] and row["assets"] == "tiny:tiny:seed0"
    assert [c["blind_label"] for c in row["columns"]] == ["A", "B", "C"]
    for stored, given in zip(row["columns"], vote.columns):
        assert stored["column_key"] == given.column and stored["label"] == given.label
        assert stored["scales"] == given.scales and stored["answer"] == given.answer
        assert stored["conversation"] == given.conversation
        assert (stored["reward"], stored["cost"]) == pytest.approx((given.reward, given.cost))


WRITER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from test_votes import make_vote
    from peo.votes import VoteStore

    store = VoteStore({folder!r})
    session, n = sys.argv[1], int(sys.argv[2])
    for turn in range(1, n + 1):
        vote_id, created = store.record(make_vote(session, turn, tag=f"{{session}}-{{turn}}"))
        assert created
        print(f"ack {{turn}} {{vote_id}}", flush=True)
""")


def writer(folder, session: str, n: int) -> subprocess.Popen:
    from conftest import REPO

    script = WRITER.format(tests=str(REPO / "tests"), folder=str(folder))
    return subprocess.Popen([sys.executable, "-c", script, session, str(n)], stdout=subprocess.PIPE, text=True,
                            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})


def test_sigkill_right_after_an_acknowledged_vote_loses_nothing(tmp_path):
    proc = writer(tmp_path, "killed", 100_000)
    acked = []
    try:
        for line in proc.stdout:
            acked.append(int(line.split()[1]))
            if len(acked) == 40:
                proc.send_signal(signal.SIGKILL)  # the 40th ack was read: kill while it keeps writing
                break
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    with VoteStore(tmp_path) as store:
        stored = {v["turn"]: v for v in store.votes() if v["session_id"] == "killed"}
    assert set(acked) <= set(stored), "every acknowledged vote survived"
    assert all(stored[t]["columns"][0]["answer"] == f"answer of peo killed-{t}" for t in acked)
    assert sorted(stored) == list(range(1, len(stored) + 1)), "no gap, no half-written vote"


def test_eight_concurrent_sessions_store_every_vote_once_and_unmixed(tmp_path):
    n = 15
    procs = [writer(tmp_path, f"proc{i}", n) for i in range(4)]  # 4 processes …
    errors = []

    def session(i: int, store: VoteStore) -> None:  # … and 4 threads sharing one store
        try:
            for turn in range(1, n + 1):
                store.record(make_vote(f"thread{i}", turn, choice=("peo", "ref", TIE, ALL_BAD)[turn % 4],
                                       tag=f"thread{i}-{turn}"))
                store.record(make_vote(f"thread{i}", turn, tag="a repeated click"))
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    with VoteStore(tmp_path) as store:
        threads = [threading.Thread(target=session, args=(i, store)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for p in procs:
            out, _ = p.communicate(timeout=300)
            assert p.returncode == 0 and out.count("ack") == n
        assert not errors
        votes = store.votes()
    assert len(votes) == 8 * n
    by_session: dict[str, list[int]] = {}
    for v in votes:
        by_session.setdefault(v["session_id"], []).append(v["turn"])
        tag = f"{v['session_id']}-{v['turn']}"
        assert v["columns"][0]["conversation"][0]["content"] == f"question {tag}"
        assert all(c["answer"].endswith(tag) for c in v["columns"]), "answers of another session or turn"
    assert {s: sorted(t) for s, t in by_session.items()} == {
        **{f"proc{i}": list(range(1, n + 1)) for i in range(4)},
        **{f"thread{i}": list(range(1, n + 1)) for i in range(4)}}


def test_aggregate_counts_turns_wins_and_ties_with_a_wilson_interval(tmp_path):
    with VoteStore(tmp_path) as store:
        for turn, choice in enumerate(["peo", "peo", "ref", TIE, ALL_BAD], start=1):
            store.record(make_vote(turn=turn, choice=choice))
        rows = {r["column"]: r for r in store.aggregate()}
    assert rows["peo"]["turns"] == 5 and rows["peo"]["wins"] == 2 and rows["peo"]["ties"] == 1
    assert rows["peo"]["win_share"] == pytest.approx(2.5 / 5)
    assert rows["help"]["win_share"] == pytest.approx(0.5 / 5)
    assert rows["peo"]["ci_low"] < 0.5 < rows["peo"]["ci_high"]


def test_cli_export_writes_pairs_that_validate_data_accepts(tmp_path, capsys):
    from peo.__main__ import main

    with VoteStore(tmp_path / "votes") as store:
        store.record(make_vote("a", 1, choice="ref", tag="one"))
        store.record(make_vote("a", 2, choice=TIE, tag="two"))
        store.record(make_vote("b", 1, choice=ALL_BAD, tag="three"))
        store.record(make_vote("b", 2, choice="help", tag="four"))
    out = tmp_path / "pairs.jsonl"
    assert main(["votes", "export", "--votes-dir", str(tmp_path / "votes"), "--out", str(out)]) == 0
    assert "wrote 4 pairs from 4 votes" in capsys.readouterr().out
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 4  # two winning votes × two other columns; the tie and the all-bad vote are dropped
    first = rows[0]
    assert first["prompt"] == [{"role": "user", "content": "question one"}]
    assert first["chosen"] == [{"role": "assistant", "content": "answer of ref one"}]
    assert {r["rejected"][0]["content"] for r in rows[:2]} == {"answer of peo one", "answer of help one"}
    assert main(["validate-data", str(out), "--format", "pairs", "--aspect", "help", "--strict"]) == 0
    assert "pairs kept:    4" in capsys.readouterr().out
    assert main(["validate-data", str(out)]) == 0  # the format is also detected


def test_cli_export_without_a_database_is_one_clear_error(tmp_path, capsys):
    from peo.__main__ import main

    assert main(["votes", "export", "--votes-dir", str(tmp_path / "none"), "--out", str(tmp_path / "x.jsonl")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no votes database") and err.count("\n") == 1


def test_config_extra_pairs_names_an_aspect(tmp_path):
    from peo.config import ConfigError, load_config

    from conftest import REPO

    tiny = REPO / "precompute" / "configs" / "tiny.yaml"
    assert load_config(tiny).data.extra_pairs == {}
    assert load_config(tiny, {"data.extra_pairs": {"help": "votes.jsonl"}}).data.extra_pairs == {"help": "votes.jsonl"}
    with pytest.raises(ConfigError, match="data.extra_pairs"):
        load_config(tiny, {"data.extra_pairs": {"helpfulness": "votes.jsonl"}})


def test_writer_waits_for_a_lock_held_by_another_process(tmp_path):
    """The one-writer rule across processes: a write blocked by another process's transaction waits, then lands."""
    VoteStore(tmp_path).close()
    blocker = sqlite3.connect(tmp_path / DB_FILE, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    proc = writer(tmp_path, "waiting", 1)
    time.sleep(6)  # well past the writer's start (about 1 s)
    assert proc.poll() is None, "the writer waited for the lock"
    blocker.execute("COMMIT")
    blocker.close()
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0 and out.startswith("ack 1")
