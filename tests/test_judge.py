"""`peo judge`: the pure part exactly, then end to end against a real `peo serve` subprocess as the judge endpoint.

The tiny served model is the judge, so its verdicts mean nothing (it never answers exactly "m" or "M": every
verdict is recorded as `unparsed` with its raw text), but every request goes through the real protocol over HTTP,
and the server's /health row counter says how many requests it really answered.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import test_serve
from test_serve import Server

from peo.evaluation_stats import wilson_interval
from peo.judge import (
    TEMPLATE_VERSION,
    ChatEndpoint,
    JudgeError,
    JudgmentCache,
    Pair,
    cache_key,
    combine,
    judge_messages,
    judge_pairs,
    merge_verdicts,
    pairs_from_answers,
    parse_verdict,
    preferred,
    read_pairs,
    read_verdicts,
    run_judge,
    summarize,
)
from peo.names import JUDGE_VERDICTS_FILE, REPORT_DIR

serve_assets = test_serve.serve_assets  # the fixture: tiny assets with conftest's random adapters (the judge talks)
REPO = Path(__file__).resolve().parents[1]
KEY = "judge-test-key"
JUDGE = "peo:lambda=0.5,phi_help=0.5,phi_harm=0"


# ---------------------------------------------------------------- the pure part

PAIR = Pair("p1", "Explain topic 3.", "Answer A text.", "Answer B text.")


def test_the_template_shows_the_instruction_and_both_outputs_in_the_asked_order():
    ab, ba = judge_messages(PAIR, "ab"), judge_messages(PAIR, "ba")
    assert [m["role"] for m in ab] == ["system", "user"]
    user_ab, user_ba = ab[1]["content"], ba[1]["content"]
    assert '"instruction": "Explain topic 3."' in user_ab
    assert user_ab.index("Answer A text.") < user_ab.index("Answer B text.")
    assert user_ba.index("Answer B text.") < user_ba.index("Answer A text.")
    assert '"model": "m"' in user_ab and '"model": "M"' in user_ab and 'exactly "m" or "M"' in user_ab
    assert "more helpful" in user_ab
    harm = Pair("p2", "x", "a", "b", aspect="harmlessness")
    assert "more harmless" in judge_messages(harm, "ab")[1]["content"]
    chat = Pair("p3", (("user", "Hi there"),), "a", "b")
    assert '"instruction": "Hi there"' in judge_messages(chat, "ab")[1]["content"]
    with pytest.raises(ValueError):
        judge_messages(PAIR, "ab2")


@pytest.mark.parametrize("text, verdict", [("m", "m"), ("M", "M"), (" M\n", "M"), ("\tm ", "m"),
                                           ("", None), (None, None), ("mM", None), ("Output (m)", None),
                                           ('"m"', None), ("m.", None), ("1", None), ("model m", None)])
def test_the_verdict_is_parsed_strictly(text, verdict):
    assert parse_verdict(text) == verdict


def test_both_orders_combine_into_win_tie_loss_or_unparsed():
    # m = shown first: in order ab that is a, in order ba that is b
    assert preferred("m", "ab") == "a" and preferred("M", "ab") == "b"
    assert preferred("m", "ba") == "b" and preferred("M", "ba") == "a"
    assert preferred(None, "ab") is None
    assert combine(preferred("m", "ab"), preferred("M", "ba")) == "win"     # a in both orders
    assert combine(preferred("M", "ab"), preferred("m", "ba")) == "loss"    # b in both orders
    assert combine(preferred("m", "ab"), preferred("m", "ba")) == "tie"     # always the first shown: position bias
    assert combine(preferred("M", "ab"), preferred("M", "ba")) == "tie"
    assert combine(None, "a") == combine("b", None) == combine(None, None) == "unparsed"


def test_the_cache_key_covers_prompt_answers_order_aspect_model_and_template():
    base = cache_key(PAIR, "ab", "judge")
    assert len(base) == 64 and base == cache_key(PAIR, "ab", "judge")
    others = {cache_key(PAIR, "ba", "judge"), cache_key(PAIR, "ab", "other judge"),
              cache_key(PAIR, "ab", "judge", template_version="v0"),
              cache_key(Pair("p1", "Explain topic 4.", PAIR.answer_a, PAIR.answer_b), "ab", "judge"),
              cache_key(Pair("p1", PAIR.prompt, "Answer A text!", PAIR.answer_b), "ab", "judge"),
              cache_key(Pair("p1", PAIR.prompt, PAIR.answer_a, PAIR.answer_b, "harmlessness"), "ab", "judge"),
              cache_key(Pair("p1", (("user", "Explain topic 3."),), PAIR.answer_a, PAIR.answer_b), "ab", "judge")}
    assert base not in others and len(others) == 7
    # the key is what the judge is shown, not the pair's id: a swapped pair shown the same way is the same request
    swapped = Pair("other id", PAIR.prompt, PAIR.answer_b, PAIR.answer_a)
    assert cache_key(swapped, "ba", "judge") == base


def test_the_summary_counts_and_gives_wilson_intervals_over_judged_pairs_only():
    outcomes = ["win"] * 6 + ["tie"] * 2 + ["loss"] * 2 + ["unparsed"] * 3 + ["pending", "refused"]
    s = summarize(outcomes)
    assert (s["pairs"], s["judged"], s["win"], s["tie"], s["loss"]) == (15, 10, 6, 2, 2)
    assert (s["unparsed"], s["pending"], s["refused"]) == (3, 1, 1)
    assert s["win_rate"] == 0.6 and s["tie_rate"] == 0.2 and s["loss_rate"] == 0.2
    assert s["win_ci95"] == list(wilson_interval(6, 10)) and s["loss_ci95"] == list(wilson_interval(2, 10))
    assert s["win_rate_ties_half"] == 0.7 and s["win_rate_ties_half_ci95"] == list(wilson_interval(7, 10))
    empty = summarize(["unparsed", "pending"])
    assert empty["judged"] == 0 and empty["win_rate"] is None and empty["win_ci95"] == [None, None]
    json.dumps(empty, allow_nan=False)


def write_lines(path: Path, lines: list) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines), encoding="utf-8")
    return path


GOOD = {"id": "a", "prompt": "Say hi.", "answer_a": "hi", "answer_b": "hello"}


@pytest.mark.parametrize("bad, message", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
    ({"id": "b", "prompt": "x", "answer_a": "y"}, "missing 'answer_b'"),
    ({"id": "b", "prompt": "", "answer_a": "y", "answer_b": "z"}, "'prompt' is empty"),
    ({"id": "b", "prompt": [{"role": "user"}], "answer_a": "y", "answer_b": "z"}, "prompt[0]"),
    ({"id": "b", "prompt": "x", "answer_a": 3, "answer_b": "z"}, "'answer_a' must be a string"),
    ({"id": "b", "prompt": "x", "answer_a": "y", "answer_b": "z", "aspect": "fun"}, "'aspect' must be one of"),
    ({"id": "a", "prompt": "x", "answer_a": "y", "answer_b": "z"}, "id 'a' repeats line 1"),
])
def test_a_bad_pairs_file_names_its_line(tmp_path, bad, message):
    path = write_lines(tmp_path / "pairs.jsonl", [GOOD, "", bad])
    with pytest.raises(JudgeError, match=rf"pairs\.jsonl:3: .*{_re(message)}"):
        read_pairs(path)


def _re(text: str) -> str:
    import re

    return re.escape(text)


def test_a_good_pairs_file_reads_text_and_chat_prompts_and_aspects(tmp_path):
    chat = {"id": 7, "prompt": [{"role": "user", "content": "Hurt?"}], "answer_a": "No.", "answer_b": "Yes.",
            "aspect": "harm"}
    pairs = read_pairs(write_lines(tmp_path / "p.jsonl", [GOOD, chat]))
    assert pairs[0] == Pair("a", "Say hi.", "hi", "hello", "helpfulness")
    assert pairs[1] == Pair("7", (("user", "Hurt?"),), "No.", "Yes.", "harmlessness")
    with pytest.raises(JudgeError, match="no pairs"):
        read_pairs(write_lines(tmp_path / "empty.jsonl", [""]))


def test_pairs_from_answers_judge_benign_prompts_for_help_and_harmful_ones_for_harm():
    def row(model, pid, kind, answer, split="test"):
        return {"model_id": model, "prompt_id": pid, "prompt_kind": kind, "split": split, "answer": answer,
                "prompt": json.dumps([{"role": "user", "content": f"prompt {pid}"}])}

    frame = pd.DataFrame([row("P", "1", "help", "p1"), row("O", "1", "help", "o1"), row("P", "2", "harm", "p2"),
                          row("O", "2", "harm", "o2"), row("P", "3", "help", "p3"),  # O never answered 3
                          row("O", "4", "help", "o4", split="dev")])
    records = pairs_from_answers(frame, "P", "O")
    assert [(r["answer_a"], r["answer_b"], r["aspect"]) for r in records] == [
        ("p2", "o2", "harmlessness"), ("p1", "o1", "helpfulness")]
    assert records[1]["prompt"] == [{"role": "user", "content": "prompt 1"}] and records[1]["id"] == "P|O|test|1"
    assert {k: records[1][k] for k in ("point", "opponent", "prompt_id", "prompt_kind", "split")} == {
        "point": "P", "opponent": "O", "prompt_id": "1", "prompt_kind": "help", "split": "test"}
    with pytest.raises(JudgeError, match="no test answers for model 'X'"):
        pairs_from_answers(frame, "P", "X")


class ScriptedJudge:
    """Not the protocol (the tests below speak it for real): a judge whose replies are chosen, to check how
    judge_pairs turns parsed verdicts into outcomes and uses the cache. It prefers the answer containing "good"."""

    model = "scripted"

    def __init__(self):
        self.started: list[float] = []
        self.asked: list[str] = []

    def ask(self, messages: list[dict]) -> str:
        user = messages[1]["content"]
        self.asked.append(user)
        first, second = user.index('"model": "m"'), user.index('"model": "M"')
        if "always first" in user:
            return " m\n"
        if "rambles" in user:
            return "I think m"
        return "m" if "good" in user[first:second] else "M"


def test_judge_pairs_turns_both_orders_into_outcomes_and_caches_each(tmp_path):
    pairs = [Pair("w", "q", "good answer", "bad answer"), Pair("l", "q", "bad answer", "good answer"),
             Pair("t", "always first", "x", "y"), Pair("u", "rambles", "x", "y")]
    judge = ScriptedJudge()
    with JudgmentCache(tmp_path / "c.sqlite") as cache:
        run = judge_pairs(pairs, judge, cache)
        assert [r["combined"] for r in run.results] == ["win", "loss", "tie", "unparsed"]
        w = run.results[0]
        assert (w["verdict_ab"], w["verdict_ba"], w["preferred_ab"], w["preferred_ba"]) == ("m", "M", "a", "a")
        assert run.results[3]["raw_ab"] == "I think m" and run.results[3]["verdict_ab"] == "unparsed"
        # l shows the same two answers as w, in both orders: its two judgments come from w's, by key
        assert (run.new_requests, run.cache_hits, len(judge.asked), len(cache)) == (6, 2, 6, 6)
        assert (run.summary["win"], run.summary["tie"], run.summary["loss"], run.summary["unparsed"]) == (1, 1, 1, 1)
        again = judge_pairs(pairs, judge, cache, budget=0)
        assert again.results == run.results and (again.new_requests, again.cache_hits) == (0, 8)
        assert len(judge.asked) == 6 and not again.budget_reached
    assert all((r["judge_model"], r["template"], r["prompt"]) == ("scripted", TEMPLATE_VERSION, "q")
               for r in run.results[:2])


# ---------------------------------------------------------------- the verdicts file the report reads

VERDICT = {"id": "P|O|test|1", "aspect": "helpfulness", "point": "P", "opponent": "O", "prompt_id": "1",
           "prompt_kind": "help", "split": "test", "judge_model": "j", "template": TEMPLATE_VERSION,
           "combined": "win", "prompt": [{"role": "user", "content": "Say hi."}]}


def test_pairs_from_assets_carry_their_origin_into_every_verdict_row(tmp_path):
    path = write_lines(tmp_path / "pairs.jsonl", [{**GOOD, "point": "P", "opponent": "O", "prompt_id": "1",
                                                   "prompt_kind": "help", "split": "test"}, {**GOOD, "id": "b"}])
    pairs = read_pairs(path)
    assert pairs[0].origin() == {"point": "P", "opponent": "O", "prompt_id": "1", "prompt_kind": "help",
                                 "split": "test"} and pairs[1].origin() == {}
    with JudgmentCache(tmp_path / "c.sqlite") as cache:
        rows = judge_pairs(pairs, ScriptedJudge(), cache).results
    assert (rows[0]["point"], rows[0]["prompt_id"], rows[0]["judge_model"]) == ("P", "1", "scripted")
    assert "point" not in rows[1]


@pytest.mark.parametrize("bad, message", [
    ("{not json", "not valid JSON"),
    ("[1]", "expected a JSON object"),
    ({k: v for k, v in VERDICT.items() if k != "point"}, "field 'point' must be a non-empty string, got None "
                                                          "(pairs made with --from-assets carry it)"),
    ({**VERDICT, "opponent": ""}, "field 'opponent' must be a non-empty string"),
    ({**VERDICT, "opponent": "P"}, "fields 'point' and 'opponent' name the same model 'P'"),
    ({**VERDICT, "combined": "won"}, "field 'combined' must be one of win, tie, loss, unparsed, refused, pending"),
    ({**VERDICT, "aspect": "help"}, "field 'aspect' must be one of"),
    ({**VERDICT, "judge_model": 3}, "field 'judge_model' must be a non-empty string, got 3"),
    ({**VERDICT, "prompt": {"role": "user"}}, "field 'prompt' must be text or"),
    (VERDICT, "pair 'P|O|test|1' judged by 'j' repeats line 1"),
])
def test_a_bad_verdicts_line_is_an_error_naming_file_line_and_field(tmp_path, bad, message):
    path = write_lines(tmp_path / "judge_verdicts.jsonl", [VERDICT, "", bad])
    with pytest.raises(JudgeError, match=rf"judge_verdicts\.jsonl:3: {_re(message)}"):
        read_verdicts(path)


def test_a_good_verdicts_file_reads_and_an_absent_one_is_empty(tmp_path):
    assert read_verdicts(tmp_path / "none.jsonl") == []
    other = {**VERDICT, "judge_model": "k", "prompt": "Say hi.", "id": 7}  # the same pair by another judge
    rows = read_verdicts(write_lines(tmp_path / "v.jsonl", [VERDICT, other]))
    assert rows[0] == {k: VERDICT[k] for k in ("id", "aspect", "point", "opponent", "prompt_id", "combined",
                                                 "judge_model", "template", "prompt_kind", "split")} | {
        "instruction": "Say hi."}
    assert rows[1]["instruction"] == "Say hi." and rows[1]["id"] == "7"


def test_a_run_replaces_its_own_lines_and_keeps_the_others():
    earlier = [(1, {"id": "x", "judge_model": "j", "combined": "pending"}), (2, {"id": "y", "judge_model": "j"}),
               (3, {"id": "x", "judge_model": "k"})]
    rows = [{"id": "z", "judge_model": "j"}, {"id": "x", "judge_model": "j", "combined": "win"}]
    assert merge_verdicts(earlier, rows) == [{"id": "x", "judge_model": "j", "combined": "win"},
                                             {"id": "y", "judge_model": "j"}, {"id": "x", "judge_model": "k"},
                                             {"id": "z", "judge_model": "j"}]


# ---------------------------------------------------------------- end to end against `peo serve`

@pytest.fixture(scope="module")
def judge_server(serve_assets, tmp_path_factory):
    srv = Server(serve_assets, tmp_path_factory.mktemp("judge-serve") / "serve.log", api_key=KEY)
    yield srv
    srv.close()


def served_rows(server) -> int:
    return server.health()["rows"]


def distinct_pairs(path: Path, n: int = 4) -> Path:
    lines = [{"id": f"q{i}", "prompt": f"Explain topic {i} briefly.", "answer_a": f"Topic {i} is a thing.",
              "answer_b": f"I won't talk about topic {i}.", **({"aspect": "harmlessness"} if i % 2 else {})}
             for i in range(n)]
    if n > 1:
        lines[1]["prompt"] = [{"role": "user", "content": "How could I hurt someone with object 1?"}]
    return write_lines(path, lines)


def cli(*args: str, key: str | None = KEY) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PEO_JUDGE_API_KEY"}
    if key:
        env["PEO_JUDGE_API_KEY"] = key
    return subprocess.run([sys.executable, "-m", "peo", "judge", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)


def test_judge_end_to_end_stores_both_orders_and_a_rerun_asks_nothing(judge_server, tmp_path):
    pairs, cache, out = distinct_pairs(tmp_path / "pairs.jsonl"), tmp_path / "cache.sqlite", tmp_path / "res.jsonl"
    args = ("--base-url", judge_server.url + "/v1", "--model", JUDGE, "--pairs", str(pairs), "--cache", str(cache),
            "--out", str(out), "--max-tokens", "3")
    before = served_rows(judge_server)
    first = cli(*args)
    assert first.returncode == 0, first.stderr
    assert served_rows(judge_server) - before == 8  # 4 pairs × 2 orders, each a real request the server answered
    assert "8 new requests, 0 cached" in first.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["q0", "q1", "q2", "q3"]
    for r in rows:  # the tiny judge's replies are kept as they came and counted as unparsed, never guessed
        assert isinstance(r["raw_ab"], str) and isinstance(r["raw_ba"], str)
        expected = {parse_verdict(r["raw_ab"]) or "unparsed", parse_verdict(r["raw_ba"]) or "unparsed"}
        assert {r["verdict_ab"], r["verdict_ba"]} == expected
        assert r["combined"] == combine(preferred(parse_verdict(r["raw_ab"]), "ab"),
                                        preferred(parse_verdict(r["raw_ba"]), "ba"))
    assert any(r["raw_ab"].strip() for r in rows)  # the random-adapter judge says something
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    assert summary["pairs"] == 4 and summary["new_requests"] == 8 and summary["template"] == TEMPLATE_VERSION
    assert summary["judged"] + summary["unparsed"] == 4 and summary["pending"] == 0

    with sqlite3.connect(cache) as db:  # both orders stored, each under its own key
        stored = db.execute("SELECT pair_id, shown_first, model, template, raw FROM judgments").fetchall()
    assert sorted((p, s) for p, s, *_ in stored) == [(f"q{i}", s) for i in range(4) for s in ("a", "b")]
    assert {(m, t) for _, _, m, t, _ in stored} == {(JUDGE, TEMPLATE_VERSION)}
    by_pair = {(p, s): raw for p, s, _, _, raw in stored}
    assert all(by_pair[(r["id"], "a")] == r["raw_ab"] and by_pair[(r["id"], "b")] == r["raw_ba"] for r in rows)

    before = served_rows(judge_server)
    again = cli(*args)
    assert again.returncode == 0, again.stderr
    assert served_rows(judge_server) == before and "0 new requests, 8 cached" in again.stderr
    assert [json.loads(line) for line in out.read_text().splitlines()] == rows

    other = cli(*args[:3], "reference", *args[4:])  # another judge model is another key: asked anew
    assert other.returncode == 0 and "8 new requests, 0 cached" in other.stderr
    assert served_rows(judge_server) - before == 8


def test_the_budget_stops_cleanly_reports_the_pairs_left_and_a_rerun_resumes(judge_server, tmp_path):
    pairs, cache, out = distinct_pairs(tmp_path / "pairs.jsonl"), tmp_path / "cache.sqlite", tmp_path / "res.jsonl"
    args = ("--base-url", judge_server.url + "/v1", "--model", JUDGE, "--pairs", str(pairs), "--cache", str(cache),
            "--out", str(out), "--max-tokens", "2")
    before = served_rows(judge_server)
    first = cli(*args, "--budget", "3")
    assert first.returncode == 0, first.stderr
    assert served_rows(judge_server) - before == 3
    assert "budget of 3 new requests reached: 3 pairs left" in first.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["combined"] == "pending" for r in rows] == [False, True, True, True]
    assert rows[1]["verdict_ab"] is not None and rows[1]["verdict_ba"] is None  # q1: one order asked, one left
    assert json.loads(out.with_suffix(".summary.json").read_text())["pairs_left"] == 3

    before = served_rows(judge_server)
    second = cli(*args)
    assert second.returncode == 0 and "5 new requests, 3 cached" in second.stderr
    assert served_rows(judge_server) - before == 5
    assert not any(json.loads(line)["combined"] == "pending" for line in out.read_text().splitlines())


def test_the_rate_limit_spaces_requests(judge_server, tmp_path):
    pairs = read_pairs(distinct_pairs(tmp_path / "pairs.jsonl", n=2))
    endpoint = ChatEndpoint(judge_server.url + "/v1", JUDGE, api_key=KEY, rpm=100, max_tokens=2)  # 0.6 s apart
    with JudgmentCache(tmp_path / "cache.sqlite") as cache:
        run = judge_pairs(pairs, endpoint, cache)
    endpoint.close()
    assert run.new_requests == 4 and len(run.request_starts) == 4
    gaps = [b - a for a, b in zip(run.request_starts, run.request_starts[1:])]
    assert min(gaps) >= 0.6 - 0.01, gaps
    assert run.request_starts[-1] - run.request_starts[0] >= 1.8 - 0.03


def test_a_refused_request_is_recorded_not_cached_and_the_run_goes_on(judge_server, tmp_path):
    long = "word " * 500  # over peo serve's 2000-character message limit: a 400 with its reason
    pairs = write_lines(tmp_path / "pairs.jsonl", [GOOD, {**GOOD, "id": "long", "answer_b": long}])
    os.environ["PEO_JUDGE_API_KEY"] = KEY
    try:
        run = run_judge(pairs, judge_server.url + "/v1", JUDGE, cache_path=tmp_path / "c.sqlite", max_tokens=2)
        again = run_judge(pairs, judge_server.url + "/v1", JUDGE, cache_path=tmp_path / "c.sqlite", max_tokens=2)
    finally:
        del os.environ["PEO_JUDGE_API_KEY"]
    good, refused = run.results
    assert good["combined"] != "refused" and refused["combined"] == "refused"
    assert refused["verdict_ab"] == refused["verdict_ba"] == "refused" and "characters" in refused["refused_ab"]
    assert run.summary["refused"] == 1 and run.new_requests == 4
    assert again.new_requests == 2 and again.cache_hits == 2  # refusals are asked again, judgments are not


def test_without_the_key_the_judge_stops_with_the_servers_reason(judge_server, tmp_path):
    pairs = distinct_pairs(tmp_path / "pairs.jsonl", n=1)
    result = cli("--base-url", judge_server.url + "/v1", "--model", JUDGE, "--pairs", str(pairs), key=None)
    assert result.returncode == 2 and "error: the judge endpoint" in result.stderr and "401" in result.stderr


def test_the_cli_names_a_bad_line_and_builds_pairs_from_assets(serve_assets, tmp_path):
    bad = write_lines(tmp_path / "bad.jsonl", [GOOD, {"id": "x", "prompt": "p"}])
    result = cli("--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--pairs", str(bad))
    assert result.returncode == 2 and f"error: {bad}:2: missing 'answer_a', 'answer_b'" in result.stderr

    answers = pd.read_parquet(serve_assets / "answers.parquet")
    test_models = sorted(set(answers[answers["split"] == "test"]["model_id"]))
    point, opponent = test_models[0], test_models[-1]
    out = tmp_path / "built.jsonl"
    built = cli("--from-assets", str(serve_assets), "--point", point, "--opponent", opponent, "--pairs", str(out))
    assert built.returncode == 0, built.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    shared = answers[(answers["split"] == "test") & (answers["model_id"] == point)]
    assert len(records) == len(shared) and f"wrote {len(records)} pairs" in built.stdout
    assert {r["aspect"] for r in records} == {"helpfulness", "harmlessness"}
    assert len(read_pairs(out)) == len(records)


def test_the_judges_verdicts_join_the_reports_win_rates_and_agreement(judge_server, serve_assets, tmp_path):
    """peo serve judges pairs built from the tiny assets' answers; the report built from those assets (as the report
    stage does: tiny.yaml's settings, the verdicts file read from its documented place) shows the judge."""
    import shutil

    from peo.config import load_config
    from peo.names import ANSWERS_FILE, GRID_FILE
    from peo.win_rates import judge_left_out, judge_record
    from precompute.report_fronts import compute_fronts
    from precompute.report_markdown import markdown

    assets = tmp_path / "assets"
    shutil.copytree(serve_assets, assets, ignore=shutil.ignore_patterns("adapters"))
    cfg = load_config(REPO / "precompute" / "configs" / "tiny.yaml")
    grid, answers = pd.read_csv(assets / GRID_FILE), pd.read_parquet(assets / ANSWERS_FILE)

    def report(verdicts):
        return compute_fronts(grid, answers, n_boot=cfg.report.n_boot, seed=cfg.seed,
                              max_loop_share=cfg.sweep.max_loop_share,
                              max_evasion_excess=cfg.sweep.max_benign_evasion_excess, judge_verdicts=verdicts)

    before = report(read_verdicts(assets / REPORT_DIR / JUDGE_VERDICTS_FILE))  # no verdicts file: no judge anywhere
    assert before["llm_judge"] is None and "## An LLM judge" not in markdown(before, None, False)
    point = before["win_rates"]["points"][0]
    key, entry = next((k, e) for k, e in point["against"].items() if not e["same_model"])
    assert "llm_judge" not in entry
    out = assets / REPORT_DIR / JUDGE_VERDICTS_FILE
    judged = cli("--from-assets", str(assets), "--point", point["model_id"], "--opponent", entry["model_id"],
                 "--pairs", str(tmp_path / "pairs.jsonl"), "--base-url", judge_server.url + "/v1", "--model", JUDGE,
                 "--cache", str(tmp_path / "cache.sqlite"), "--out", str(out), "--max-tokens", "2")
    assert judged.returncode == 0, judged.stderr

    verdicts = read_verdicts(out)
    n_test = len(answers[(answers["split"] == "test") & (answers["model_id"] == point["model_id"])])
    assert len(verdicts) == n_test and {v["judge_model"] for v in verdicts} == {JUDGE}
    assert {(v["point"], v["opponent"]) for v in verdicts} == {(point["model_id"], entry["model_id"])}
    result = report(verdicts)
    mine = next(p for p in result["win_rates"]["points"] if p["model_id"] == point["model_id"])["against"][key]
    by_aspect = mine["llm_judge"][JUDGE]
    assert set(by_aspect) == {v["aspect"] for v in verdicts}
    for aspect, cell in by_aspect.items():
        expected = judge_record(verdicts, point["model_id"], entry["model_id"], aspect)
        left = judge_left_out(verdicts, point["model_id"], entry["model_id"], aspect)
        assert {k: cell[k] for k in ("won", "tied", "lost", "n")} == {"won": expected.won, "tied": expected.tied,
                                                                       "lost": expected.lost, "n": expected.n}
        assert cell["left_out"] == left and cell["n"] + sum(left.values()) == sum(v["aspect"] == aspect
                                                                                  for v in verdicts)
    judge = result["llm_judge"]["judges"][JUDGE]
    assert judge["verdicts"] == n_test and sum(judge["outcomes"].values()) == n_test
    assert {(r["point"], r["opponent"]) for r in judge["records"]} == {(point["model_id"], entry["model_id"])}
    settled = [v for v in verdicts if v["combined"] in ("win", "tie", "loss")]
    for kind, aspect in (("reward", "helpfulness"), ("cost", "harmlessness")):
        agree = judge["agreement"][kind]  # every judged answer is in answers.parquet: none missing
        assert agree["missing"] == 0 and agree["pairs"] == sum(v["aspect"] == aspect for v in settled)
    assert judge["agreement"]["blind"] is None and judge["agreement"]["votes"] is None  # none in the tiny assets
    text = markdown(result, None, False)
    assert f"LLM judge `{JUDGE}`, helpfulness" in text and "## An LLM judge beside the evaluators" in text
    assert f"**Judge `{JUDGE}`**" in text and "| reward evaluator, same answers | helpfulness |" in text
    json.dumps(result, allow_nan=False)
