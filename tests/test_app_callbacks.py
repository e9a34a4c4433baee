"""The app's logic without a server, on the tiny assets: pick, figure, chat, history trimming, bad inputs."""

from __future__ import annotations

import json
import math
import os
import zipfile
from pathlib import Path

import pytest

from app import callbacks as cb
from app.data import AppInputError
from app.engine import COLUMNS, column_scales


@pytest.fixture(scope="session")
def app_assets(request) -> Path:
    """The tiny assets (conftest's `tiny_assets`), or a prebuilt folder named by PEO_APP_TEST_ASSETS."""
    prebuilt = os.environ.get("PEO_APP_TEST_ASSETS")
    if prebuilt:
        return Path(prebuilt)
    return request.getfixturevalue("tiny_assets")


@pytest.fixture(scope="module")
def app(app_assets) -> cb.App:
    application = cb.App.load(app_assets, device="cpu", form="adapters")
    application.engine.wait_ready()
    return application


@pytest.fixture(scope="module")
def random_app(app_assets, tiny_base, tiny_adapters):
    """The tiny assets' tables, served by the tiny model with conftest's random non-zero adapters.

    The tiny assets' own adapters barely moved in 3 DPO steps (every column answers the same), so the
    per-column checks use adapters whose columns really differ.
    """
    return _random_app(app_assets, tiny_base, tiny_adapters, "adapters")


def _random_app(app_assets, tiny_base, tiny_adapters, form):
    from peo.adapter_mix import AdapterMix
    from peo.model_source import load_causal_lm, load_tokenizer

    application = cb.App.load(app_assets, device="cpu", form=form, load_evaluators=False)
    mix = AdapterMix(load_causal_lm(tiny_base), tiny_adapters)
    application.engine.attach(mix, load_tokenizer(tiny_base), None, tiny_adapters)
    return application


GREEDY = {"max_new_tokens": 6, "temperature": 0.0, "top_p": 1.0, "seed": 0}


# ---------------------------------------------------------------- pick

def test_pick_on_grid_matches_grid_and_fronts(app):
    grid = app.data.grid
    front_ids = set(app.data.front_model_ids("peo"))
    for row in grid[grid["method"] == "peo"].itertuples():
        info = cb.pick(app, row.lambda_help, row.phi_help, row.phi_harm)
        assert info["model_id"] == row.model_id
        assert (info["c_help"], info["c_harm"]) == pytest.approx((row.c_help, row.c_harm))
        assert info["c_help"] == pytest.approx(row.lambda_help + row.phi_help)
        assert info["c_harm"] == pytest.approx(1 - row.lambda_help + row.phi_harm)
        assert info["on_grid"] and info["in_range"]
        stats = info["precomputed"]
        assert stats["reward_mean"] == pytest.approx(row.reward_mean)
        assert stats["cost_mean"] == pytest.approx(row.cost_mean)
        assert stats["n"] == row.n
        assert info["on_front"] == (row.model_id in front_ids)
    assert front_ids, "the tiny report has a PEO front"
    json.dumps(info)  # what /pick returns must be JSON


def test_pick_off_grid_has_no_scores(app):
    lam = sum(app.data.axis_range("lambda_help")) / 2 + 0.013
    info = cb.pick(app, lam, 0.0, 0.0)
    assert not info["on_grid"] and info["precomputed"] is None and not info["on_front"]
    assert info["model_id"] == f"c{lam:+.3f}_{1 - lam:+.3f}"
    assert "no precomputed scores" in cb.pick_summary(info, app.data)


@pytest.mark.parametrize("point, match", [
    ((1.5, 0.0, 0.0), "lambda_help=1.5 is outside the range"),
    ((-0.1, 0.0, 0.0), "lambda_help=-0.1 is outside"),
    ((0.5, 99.0, 0.0), "phi_help=99 is outside"),
    ((0.5, 0.0, -3.0), "phi_harm=-3 is outside"),
    ((float("nan"), 0.0, 0.0), "finite"),
    (("abc", 0.0, 0.0), "must be a number"),
    ((None, 0.0, 0.0), "must be a number"),
])
def test_pick_bad_points_raise_clear_errors(app, point, match):
    with pytest.raises(AppInputError, match=match):
        cb.pick(app, *point)


def test_figure_has_every_point_fronts_baselines_and_the_pick(app):
    from app.figure import X_TITLE, Y_TITLE, figure_dict

    on = cb.pick(app, *app.data.grid[app.data.grid["method"] == "peo"].iloc[0][["lambda_help", "phi_help", "phi_harm"]])
    fig = figure_dict(app.data, on)
    names = [t["name"] for t in fig["data"]]
    for name in ("PEO grid point", "PEO Pareto front", "reference", "DPO-Help", "DPO-Harm", "joint DPO",
                 "picked point"):
        assert name in names
    assert any(n.startswith("weight soup") for n in names)
    assert fig["layout"]["xaxis"]["title"]["text"] == X_TITLE
    assert fig["layout"]["yaxis"]["title"]["text"] == Y_TITLE
    assert fig["layout"]["meta"]["picked"] == on["model_id"]
    picked = fig["data"][names.index("picked point")]
    assert picked["x"][0] == pytest.approx(on["precomputed"]["cost_mean"])
    hover = fig["data"][0]["hovertemplate"]
    for word in ("λ", "ϕ_help", "ϕ_harm", "c_help", "c_harm", "reward", "cost", "±"):
        assert word in hover
    n_models = app.data.grid[app.data.grid["method"] == "peo"]["model_id"].nunique()
    assert len(fig["data"][0]["x"]) == n_models
    assert "hypervolume" in fig["layout"]["annotations"][0]["text"]
    off = figure_dict(app.data, cb.pick(app, 0.123, 0.0, 0.0))
    assert "picked point" not in [t["name"] for t in off["data"]]
    assert off["layout"]["meta"]["picked"] == ""
    assert "off-grid" in off["layout"]["title"]["text"]


def test_front_table_rows_pick_front_points(app):
    table = app.data.front_table()
    assert list(table["model_id"]) == app.data.front_model_ids("peo")
    for row in table.itertuples(index=False):
        info = cb.pick(app, row[0], row[1], row[2])
        assert info["model_id"] == row.model_id and info["on_front"]


# ---------------------------------------------------------------- chat

def test_column_scales():
    assert column_scales("peo", 0.3, 0.5, 0.9) == {"help": 0.5, "harm": 0.9}
    assert column_scales("ref", 0.3, 0.5, 0.9) == {}
    assert column_scales("help", 0.3, 0.5, 0.9) == {"help": 1.0}
    assert column_scales("harm", 0.3, 0.5, 0.9) == {"harm": 1.0}
    assert column_scales("soup", 0.3, 0.5, 0.9) == pytest.approx({"help": 0.3, "harm": 0.7})
    assert column_scales("joint", 0.3, 0.5, 0.9) == {"joint": 1.0}
    with pytest.raises(KeyError):
        column_scales("nope", 0.3, 0.5, 0.9)


def test_chat_returns_one_scored_answer_per_chosen_column(app):
    out = cb.chat(app, "Hello, how are you?", ["peo", "ref", "soup"], (0.5, 0.5, 0.0), GREEDY)
    assert list(out) == ["peo", "ref", "soup"]
    for value in out.values():
        assert isinstance(value["answer"], str)
        assert math.isfinite(value["reward"]) and math.isfinite(value["cost"])
    json.dumps(out)


def test_each_column_equals_its_policy_generated_alone(random_app):
    """One batched generation with a row per column gives what each column's policy gives on its own."""
    from peo.generation import GenerationSettings, Row, generate_batch

    app = random_app
    point = (0.5, 0.5, 0.0)
    message = "Write a short poem about the sea."
    settings = GenerationSettings(**{**GREEDY, "max_new_tokens": 8})
    steps = list(cb.chat_stream(app, message, list(COLUMNS), point, settings))
    final = steps[-1]
    assert final.done and list(final.texts) == list(COLUMNS)
    info = cb.pick(app, *point)
    prompt = [{"role": "user", "content": message}]
    for col in COLUMNS:
        scales = column_scales(col, info["lambda_help"], info["c_help"], info["c_harm"])
        alone = generate_batch(app.engine.mix, app.engine.tokenizer, [Row(prompt, scales)], settings)[0]
        assert final.texts[col] == alone, col
    assert len(set(final.texts.values())) >= 4, final.texts  # the columns really are different models


def test_stream_yields_growing_text_then_scores(app, random_app):
    steps = list(cb.chat_stream(app, "Count to five.", ["peo", "ref"], (0.0, 0.0, 0.0), GREEDY))
    assert [s.done for s in steps].count(True) == 1 and steps[-1].done
    assert set(steps[-1].scores) == {"peo", "ref"}
    assert "one batch" in steps[-1].info and "policy formed in" in steps[-1].info
    steps = list(cb.chat_stream(random_app, "Count to five.", ["peo", "help"], (0.0, 0.0, 0.0), GREEDY))
    assert len(steps) >= GREEDY["max_new_tokens"] + 1
    for col in ("peo", "help"):
        texts = [s.texts[col] for s in steps[:-2]]  # the last two are the final (stripped) answers
        assert all(b.startswith(a) for a, b in zip(texts, texts[1:]))
        assert texts[-1].strip() == steps[-1].texts[col]


def test_multi_turn_history_per_column(app):
    state = None
    for turn in range(3):
        *_, last = cb.chat_stream(app, f"turn {turn}", ["peo", "help"], (0.5, 0.0, 0.0), GREEDY, state)
        state = last.state
    for col in ("peo", "help"):
        history = state.histories[col]
        assert [m["role"] for m in history] == ["user", "assistant"] * 3
        assert [m["content"] for m in history if m["role"] == "user"] == ["turn 0", "turn 1", "turn 2"]
        assert len(state.scores[col]) == 3
    assert "harm" not in state.histories


def test_trim_history_drops_oldest_turns():
    def count(messages):  # one token per word
        return sum(len(m["content"].split()) for m in messages)

    history = []
    for i in range(4):
        history += [{"role": "user", "content": f"q{i} " * 3}, {"role": "assistant", "content": f"a{i} " * 3}]
    messages, dropped = cb.trim_history(count, history, "new question", budget=100)
    assert dropped == 0 and len(messages) == 9
    messages, dropped = cb.trim_history(count, history, "new question", budget=14)
    assert dropped == 2 and messages[0]["content"].startswith("q2") and messages[-1]["content"] == "new question"
    messages, dropped = cb.trim_history(count, history, "new question", budget=2)
    assert dropped == 4 and messages == [{"role": "user", "content": "new question"}]
    with pytest.raises(AppInputError, match="too long"):
        cb.trim_history(count, history, "one two three", budget=2)


def test_chat_trims_history_to_the_context(app):
    engine = app.engine
    old = engine.max_context_tokens
    try:
        state = None
        for turn in range(3):
            *_, last = cb.chat_stream(app, f"tell me about topic number {turn}", ["ref"], (0.5, 0.0, 0.0), GREEDY,
                                      state)
            state = last.state
        one_turn = engine.prompt_tokens(state.histories["ref"][-2:-1])
        engine.max_context_tokens = one_turn + 3 * 8 + GREEDY["max_new_tokens"]  # room for about one old turn
        *_, last = cb.chat_stream(app, "and another one", ["ref"], (0.5, 0.0, 0.0), GREEDY, state)
        history = last.state.histories["ref"]
        assert "dropped" in last.info
        assert len(history) < 8 and history[-2]["content"] == "and another one"
        assert engine.prompt_tokens(history[:-1]) <= engine.max_context_tokens - GREEDY["max_new_tokens"]
        assert len(last.state.scores["ref"]) == len(history) // 2
        engine.max_context_tokens = 5
        with pytest.raises(AppInputError, match="too long"):
            list(cb.chat_stream(app, "hello", ["ref"], (0.5, 0.0, 0.0), GREEDY))
    finally:
        engine.max_context_tokens = old


@pytest.mark.parametrize("kwargs, match", [
    ({"message": ""}, "empty message"),
    ({"message": "   \n "}, "empty message"),
    ({"message": None}, "empty message"),
    ({"message": "x" * (cb.MAX_MESSAGE_CHARS + 1)}, "characters; the limit is"),
    ({"columns": []}, "at least one column"),
    ({"columns": ["peo", "gpt4"]}, "Unknown column"),
    ({"point": (2.0, 0.0, 0.0)}, "outside the range"),
    ({"settings": {"max_new_tokens": 0}}, "max_new_tokens must be in"),
    ({"settings": {"max_new_tokens": 257}}, "max_new_tokens must be in"),
    ({"settings": {"max_new_tokens": 2.5}}, "whole number"),
    ({"settings": {"temperature": 1.6}}, "temperature must be in"),
    ({"settings": {"temperature": float("nan")}}, "temperature must be in"),
    ({"settings": {"top_p": 0.0}}, "top_p must be in"),
    ({"settings": {"seed": -1}}, "seed must be in"),
    ({"settings": {"seed": "abc"}}, "seed must be a number"),
])
def test_chat_bad_inputs(app, kwargs, match):
    args = {"message": "hi", "columns": ["peo"], "point": (0.5, 0.0, 0.0), "settings": GREEDY, **kwargs}
    with pytest.raises(AppInputError, match=match):
        cb.chat(app, args["message"], args["columns"], args["point"], args["settings"])


def test_too_many_tokens_is_refused(app):
    with pytest.raises(AppInputError, match="tokens"):
        cb.chat(app, "🙂" * 1000, ["peo"], (0.5, 0.0, 0.0), GREEDY)


def test_settings_bounds_accept_edges():
    s = cb.check_settings(256, 1.5, 0.1, 2**31 - 1)
    assert (s.max_new_tokens, s.temperature, s.top_p, s.seed) == (256, 1.5, 0.1, 2**31 - 1)
    assert cb.check_settings(1, 0, 1, 0).max_new_tokens == 1
    assert cb.check_settings() == cb.check_settings(**cb.DEFAULT_SETTINGS)


def test_merged_form_gives_the_same_answers(app_assets, random_app, tiny_base, tiny_adapters):
    """The GPU path (picked point merged into the weights, other columns as offsets), checked on CPU."""
    merged = _random_app(app_assets, tiny_base, tiny_adapters, "merged")
    assert merged.engine.form == "merged"
    settings = {**GREEDY, "max_new_tokens": 8}
    for point in ((0.5, 0.5, 0.5), (1.0, 0.0, 0.0), (0.0, 0.5, 0.0)):
        a = cb.chat(random_app, "What is the capital of France?", list(COLUMNS), point, settings)
        b = cb.chat(merged, "What is the capital of France?", list(COLUMNS), point, settings)
        assert {k: v["answer"] for k, v in a.items()} == {k: v["answer"] for k, v in b.items()}
    assert all(v["reward"] is None for v in b.values())  # no evaluators attached there
    *_, last = cb.chat_stream(merged, "again", ["peo"], (1.0, 0.0, 0.0), settings)
    assert "merged weights" in last.info


def test_export_zip(app):
    if not cb.export_available():
        with pytest.raises(AppInputError, match="not available"):
            cb.export_zip(app, "peo", (0.5, 0.0, 0.0), "adapter")
        pytest.skip("peo.export is not there yet")
    path = cb.export_zip(app, "peo", (0.5, 0.5, 0.0), "adapter")
    assert path.suffix == ".zip" and path.is_file() and cb.export_root() in path.parents
    with zipfile.ZipFile(path) as archive:
        assert archive.namelist()
    with pytest.raises(AppInputError):
        cb.export_zip(app, "peo", (0.5, 0.0, 0.0), "exe")
    with pytest.raises(AppInputError, match="no adapter"):
        cb.export_zip(app, "ref", (0.5, 0.0, 0.0), "adapter")
    merged = cb.export_zip(app, "help", (0.5, 0.0, 0.0), "merged")
    with zipfile.ZipFile(merged) as archive:
        assert any(n.endswith(".safetensors") for n in archive.namelist())


def test_host_and_args(monkeypatch):
    from app.__main__ import parse_args, resolve_host

    monkeypatch.delenv("SPACE_ID", raising=False)
    assert resolve_host(None) == "127.0.0.1"
    assert resolve_host("0.0.0.0") == "0.0.0.0"
    monkeypatch.setenv("SPACE_ID", "user/peo")
    assert resolve_host(None) == "0.0.0.0"
    args = parse_args(["--assets", "x", "--port", "7000", "--share-safe"])
    assert args.port == 7000 and args.share_safe and str(args.assets) == "x"
