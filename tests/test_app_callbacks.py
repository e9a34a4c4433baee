"""The app's logic without a server, on the tiny assets: pick, figure, chat, history trimming, bad inputs.

The tiny assets are in the dev/test format (assets/FORMAT.md): figures shown are test figures where a model
has them, else dev figures labelled as such; points that loop too often are drawn hollow.
"""

from __future__ import annotations

import json
import math
import os
import re
import zipfile
from pathlib import Path

import pytest

from app import callbacks as cb
from app.data import PICKED_MARK, AppData, AppInputError
from app.engine import column_scales, same_model_columns
from peo.aspects import DEFAULT_ASPECTS
from peo.decode_loop import StreamResult


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


def with_fronts(data: AppData, **changes) -> AppData:
    """The same assets with some fronts.json keys changed (the loop limit, a front)."""
    return AppData(assets=data.assets, fronts={**data.fronts, **changes})


# ---------------------------------------------------------------- pick

def test_pick_on_grid_matches_grid_and_fronts(app):
    grid = app.data.grid
    front_ids = set(app.data.front_model_ids("peo"))
    for row in grid[grid["method"] == "peo"].itertuples():
        info = cb.pick(app, row.lambda_help, row.phi_help, row.phi_harm)
        assert info.model_id == row.model_id
        assert (info.c_help, info.c_harm) == pytest.approx((row.c_help, row.c_harm))
        assert info.c_help == pytest.approx(row.lambda_help + row.phi_help)
        assert info.c_harm == pytest.approx(1 - row.lambda_help + row.phi_harm)
        assert info.on_grid and info.in_range
        stats = info.precomputed
        assert stats["reward_mean"] == pytest.approx(row.reward_mean)
        assert stats["cost_mean"] == pytest.approx(row.cost_mean)
        assert stats["n"] == row.n
        for key in ("loop_share", "refusal_share", "over_refusal_share", "mean_words", "cut_share"):
            assert stats[key] == pytest.approx(getattr(row, key), nan_ok=True), key
        assert info.on_front == (row.model_id in front_ids)
    eligible = grid.loc[grid["method"] == "peo", "front_eligible"].astype(bool)
    assert bool(front_ids) == eligible.any(), "the front is empty exactly when no PEO point passes the loop filter"
    assert set(front_ids) <= set(grid.loc[grid["front_eligible"].astype(bool), "model_id"])
    json.dumps(info.to_json())  # what /pick returns must be JSON


def test_pick_reports_the_split_its_figures_come_from(app):
    """Test figures where the model was run on the test prompts, else dev figures, and the page says which."""
    grid = app.data.grid.drop_duplicates("model_id")
    seen = set()
    for row in grid[grid["method"] == "peo"].itertuples():
        info = cb.pick(app, row.lambda_help, row.phi_help, row.phi_harm)
        stats = info.precomputed
        split = "test" if row.n_test > 0 else "dev"
        seen.add(split)
        assert stats["split"] == split
        assert stats["n"] == getattr(row, f"n_{split}")
        assert stats["reward_mean"] == pytest.approx(getattr(row, f"reward_mean_{split}"))
        assert stats["loop_share"] == pytest.approx(getattr(row, f"loop_share_{split}"))
        summary = cb.pick_summary(info, app.data)
        if split == "test":
            assert f"{stats['n']} **test** prompts" in summary and "dev** prompts only" not in summary
        else:
            assert f"{stats['n']} **dev** prompts only" in summary
        assert f"loops in {stats['loop_share']:.0%} of answers" in summary
        # each score says which prompts it is on; the evasion shares tell a declined harm from a babbled one
        assert f"reward {stats['reward_mean']:.3f} ± {stats['reward_se']:.3f} on benign prompts" in summary
        assert f"cost {stats['cost_mean']:.3f} ± {stats['cost_se']:.3f} on harmful prompts" in summary
        assert (f"evades {stats['evasion_share_benign']:.0%} of benign and {stats['evasion_share_harmful']:.0%} of "
                f"harmful prompts, complies with {stats['complied_share']:.0%} of harmful prompts") in summary
        table = app.data.sample_answers(row.model_id)
        assert not table.empty and set(table["split"]) == {split}
        assert {"answer", "reward", "cost", "loops", "refuses"} <= set(table.columns)
        assert table["prompt"].str.len().max() <= 120
    assert seen == {"test", "dev"}, "the tiny sweep runs some grid points on test prompts and leaves others dev-only"


def test_pick_off_grid_has_no_scores(app):
    from app.ui import BOTH_KINDS, answers_update

    lam = sum(app.data.axis_range("lambda_help")) / 2 + 0.013
    info = cb.pick(app, lam, 0.0, 0.0)
    assert not info.on_grid and info.precomputed is None and not info.on_front
    assert info.model_id == f"c{lam:+.3f}_{1 - lam:+.3f}"
    summary = cb.pick_summary(info, app.data)
    assert "no precomputed scores or answers" in summary and cb.SCORE_BUTTON in summary
    table = answers_update(app.data, info, BOTH_KINDS)
    assert table["value"].empty  # the empty table is explained, in its label too
    assert "off the grid" in table["label"] and cb.SCORE_BUTTON in table["label"]


def test_pick_summary_has_no_stray_parenthesis_and_names_same_models(app):
    """The model id on a line of its own (inline it wrapped, leaving a lone ')' under it); same models named."""
    info = cb.pick(app, 0.5, 0.0, 0.0)
    summary = cb.pick_summary(info, app.data)
    assert f"model `{info.model_id}`" in summary and "(`" not in summary and "`)" not in summary
    assert "Soup (same λ) = PEO (picked point) at this point" in summary  # ϕ = 0: the soup is PEO
    assert "Soup (same λ) =" not in cb.pick_summary(cb.pick(app, 0.5, 0.5, 0.0), app.data)


def test_same_model_columns_at_the_special_points():
    """Columns that are one model at a point: the soup at ϕ = 0, PEO at c = (1, 0), (0, 1), (0, 0)."""
    columns = list(DEFAULT_ASPECTS.chat_columns)
    assert same_model_columns(columns, 0.5, 0.5, 0.5) == {"soup": "peo"}  # λ = 0.5, ϕ = 0
    assert same_model_columns(columns, 0.5, 1.0, 0.5) == {}
    assert same_model_columns(columns, 1.0, 1.0, 0.0) == {"help": "peo", "soup": "peo"}
    assert same_model_columns(columns, 0.0, 0.0, 1.0) == {"harm": "peo", "soup": "peo"}
    assert same_model_columns(columns, 0.5, 0.0, 0.0) == {"ref": "peo"}  # λ = 0.5, ϕ = (−0.5, −0.5)
    assert same_model_columns(["ref", "soup", "help"], 1.0, 2.0, 0.0) == {"help": "soup"}
    assert same_model_columns(["peo", "joint"], 0.5, 0.0, 0.0) == {}  # joint DPO is a model of its own


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
    from app.figure import FRONT_NAME, UNFILTERED_NAME, X_TITLE, Y_TITLE, figure_dict

    on = cb.pick(app, *app.data.grid[app.data.grid["method"] == "peo"].iloc[0][["lambda_help", "phi_help", "phi_harm"]])
    fig = figure_dict(app.data, on)
    names = [t["name"] for t in fig["data"]]
    for name in ("PEO grid point", "reference", "DPO-Help", "DPO-Harm", "joint DPO", "picked point"):
        assert name in names
    assert (UNFILTERED_NAME in names) == (set(app.data.front_model_ids("peo_unfiltered"))
                                          != set(app.data.front_model_ids("peo")))
    assert (FRONT_NAME in names) == bool(app.data.front_model_ids("peo"))  # empty when every point loops
    for name, front in ((FRONT_NAME, "peo"), (UNFILTERED_NAME, "peo_unfiltered")):
        if name in names:
            trace = fig["data"][names.index(name)]
            assert sorted(c[3] for c in trace["customdata"]) == sorted(app.data.front_model_ids(front))
            assert trace["x"] == sorted(trace["x"])  # drawn left to right
    assert any(n.startswith("weight soup") for n in names)
    assert fig["layout"]["xaxis"]["title"]["text"] == X_TITLE
    assert fig["layout"]["yaxis"]["title"]["text"] == Y_TITLE
    assert fig["layout"]["meta"]["picked"] == on.model_id
    picked = fig["data"][names.index("picked point")]
    assert picked["x"][0] == pytest.approx(on.precomputed["cost_mean"])
    hover = fig["data"][0]["hovertemplate"]
    for word in ("λ", "ϕ_help", "ϕ_harm", "c_help", "c_harm", "reward", "cost", "±", "loops", "refuses",
                 "over-refuses", "words"):
        assert word in hover
    n_models = app.data.grid[app.data.grid["method"] == "peo"]["model_id"].nunique()
    assert len(fig["data"][0]["x"]) == n_models
    assert not fig["layout"].get("annotations"), "the hypervolumes are shown once, under the figure"
    off_info = cb.pick(app, 0.123, 0.0, 0.0)
    off = figure_dict(app.data, off_info)
    # no star at all: at the nearest evaluated point it sat on another model's scores; the title says why
    assert not [t for t in off["data"] if t["name"].startswith("picked point")]
    assert off["layout"]["meta"]["picked"] == ""
    title = off["layout"]["title"]["text"]
    assert "off the grid" in title and "not scored, so no star" in title and cb.SCORE_BUTTON in title


def test_the_front_is_marked_points_in_cost_order_that_say_why_test_can_beat_them(app):
    """The front is chosen on dev and drawn at test scores: its markers are joined left to right, each hover says
    why a chosen point can be beaten on test, and names the front points that beat it there."""
    import pandas as pd

    from app.figure import FRONT_NAME, FRONT_NOTE, figure_dict, front_notes

    fig = figure_dict(app.data)
    names = [t["name"] for t in fig["data"]]
    if app.data.front_model_ids("peo"):
        front = fig["data"][names.index(FRONT_NAME)]
        assert front["mode"] == "lines+markers" and front["x"] == sorted(front["x"])
        assert "%{text}" in front["hovertemplate"] and all(FRONT_NOTE in t for t in front["text"])
    rows = {mid: pd.DataFrame({"reward_mean": [r], "cost_mean": [c]})
            for mid, r, c in (("a", 1.0, 0.0), ("b", 0.5, 0.5), ("c", 2.0, 1.0))}
    notes = front_notes(list(rows.items()))  # b, chosen on dev, is beaten by a on test
    assert "dominated" not in notes[0] + notes[2] and "dominated on test by a</b>" in notes[1]


def test_an_unfiltered_front_equal_to_the_front_is_not_drawn_twice(app):
    """Hovering a front point showed 'PEO front without the loop filter' first: an identical trace on top."""
    from dataclasses import replace

    from app.figure import FRONT_NAME, UNFILTERED_NAME, figure_dict

    fronts = dict(app.data.fronts["fronts"])
    fronts["peo_unfiltered"] = fronts["peo"]
    same = replace(app.data, fronts={**app.data.fronts, "fronts": fronts})
    names = [t["name"] for t in figure_dict(same)["data"]]
    assert UNFILTERED_NAME not in names and (FRONT_NAME in names) == bool(app.data.front_model_ids("peo"))


def test_hover_shows_split_and_text_checks_of_each_point(app):
    from app.figure import CUSTOM_FIELDS, figure_dict, split_label

    fig = figure_dict(app.data)
    grid = app.data.grid.drop_duplicates("model_id").set_index("model_id")
    field = CUSTOM_FIELDS.index
    checked = 0
    for trace in fig["data"]:
        for custom in trace.get("customdata") or []:
            row = grid.loc[custom[field("model_id")]]
            assert custom[field("split")] == split_label(row["split"], row["n"])
            assert custom[field("split")].startswith("test, n=" if row["n_test"] > 0 else "dev only, n=")
            assert custom[field("loop_share")] == f"{row['loop_share']:.0%}"
            assert custom[field("refusal_share")] == f"{row['refusal_share']:.0%}"
            assert custom[field("over_refusal_share")] == f"{row['over_refusal_share']:.0%}"
            assert custom[field("mean_words")] == f"{row['mean_words']:.1f}"
            assert custom[field("cut_share")] == f"{row['cut_share']:.0%}"
            checked += 1
    assert checked >= len(grid)
    for name in ("split", "loop_share", "refusal_share", "over_refusal_share", "mean_words", "cut_share"):
        assert f"customdata[{field(name)}]" in fig["data"][0]["hovertemplate"], name
    assert split_label("test", 200) == "test, n=200" and split_label("dev", 20) == "dev only, n=20"


def _hollow(trace: dict) -> list[bool]:
    return [symbol.endswith("-open") for symbol in trace["marker"]["symbol"]]


def test_points_over_the_loop_limit_are_hollow(app):
    from app.figure import COLORS, CUSTOM_FIELDS, figure_dict

    grid = app.data.grid.drop_duplicates("model_id").set_index("model_id")
    shares = grid["loop_share"]
    for limit, expect_any in ((float(shares.min()) - 0.01, True), (1.0, False), (app.data.max_loop_share, None)):
        fig = figure_dict(with_fronts(app.data, max_loop_share=limit))
        for trace in fig["data"]:
            if not trace.get("customdata") or trace["name"] == "picked point":
                continue
            ids = [c[CUSTOM_FIELDS.index("model_id")] for c in trace["customdata"]]
            over = [float(grid.loc[m, "loop_share"]) > limit for m in ids]
            assert _hollow(trace) == over, (trace["name"], limit)
            colors = trace["marker"]["color"]
            assert [c == COLORS["loops"] for c in colors] == over, trace["name"]
        names = [t["name"] for t in fig["data"]]
        legend = f"loops in > {limit:.0%} of answers"
        assert (legend in names) == bool((shares > limit).any()), limit
        if expect_any is not None:
            assert (legend in names) == expect_any
    baseline = next(t for t in figure_dict(with_fronts(app.data, max_loop_share=-1.0))["data"]
                    if t["name"] == "DPO-Help")
    assert baseline["marker"]["symbol"] == ["triangle-up-open"]


def test_hypervolume_text_says_test_and_dev_once(app):
    from app.figure import hypervolume_text

    text = hypervolume_text(app.data)
    n_test, n_dev = app.data.n_prompts("test"), app.data.n_prompts("dev")
    assert (f"PEO − soup hypervolume on {n_test} test prompts (split-aware: reward on benign, cost on harmful "
            f"prompts), fronts chosen on {n_dev} dev prompts") in text
    assert text.count("PEO − soup") == 1 and text.count("hypervolumes:") == 1
    diff = app.data.fronts["difference"]
    assert f"{diff['value']:.3g} [{diff['interval'][0]:.3g}, {diff['interval'][1]:.3g}]" in text
    for name in ("peo", "soup"):
        if app.data.hypervolume(name):
            assert f"{app.data.hypervolume(name)[0]:.3g}" in text


def test_front_table_rows_pick_front_points(app):
    """In test-cost order (the figure's line), test figures with the dev ones beside them, and a row picks its
    model; the label says why the rows are in this order."""
    from app.ui import FRONT_COLUMNS, front_row_point, front_table_label, picker_front_table

    # the tiny model may loop everywhere, leaving the filtered front empty: then the unfiltered one stands in
    front = app.data.fronts["fronts"]["peo" if app.data.front_model_ids("peo") else "peo_unfiltered"]
    assert front["points"], "the unfiltered front always has a point"
    data = with_fronts(app.data, fronts={**app.data.fronts["fronts"], "peo": front})
    table = picker_front_table(data)
    points = sorted(front["points"], key=lambda p: p["cost_mean"])
    assert list(table["model_id"]) == [p["model_id"] for p in points] and list(table.columns) == FRONT_COLUMNS
    assert set(table[""]) == {""}  # nothing picked: no row marked
    for row, point in zip(table.to_dict("records"), points):
        assert row["reward test (dev)"] == f"{point['reward_mean']:.3f} ({point['dev']['reward_mean']:.3f})"
        assert row["cost test (dev)"] == f"{point['cost_mean']:.3f} ({point['dev']['cost_mean']:.3f})"
        assert row["loops test (dev)"] == f"{point['loop_share']:.0%} ({point['dev']['loop_share']:.0%})"
        assert row["on the test front"] == ("yes" if point["on_test_front"] else "dominated")
        info = data.point_info(*front_row_point(data, row["model_id"]))
        assert info.model_id == row["model_id"] and info.on_front
        marked = picker_front_table(data, row["model_id"])
        assert list(marked[""]) == [PICKED_MARK if m == row["model_id"] else "" for m in marked["model_id"]]
    assert "ordered by test cost" in front_table_label(data) and "dev in brackets" in front_table_label(data)


def test_assets_without_the_split_columns_are_refused(app_assets, tmp_path):
    import shutil

    import pandas as pd

    from peo.assets import AssetsError

    for part in ("meta.json", "grid.csv", "answers.parquet", "report"):
        copy = shutil.copytree if part == "report" else shutil.copy
        copy(app_assets / part, tmp_path / part)
    AppData.load(tmp_path)
    grid = pd.read_csv(tmp_path / "grid.csv")
    grid.drop(columns=["split", "loop_share_test"]).to_csv(tmp_path / "grid.csv", index=False)
    with pytest.raises(AssetsError, match="split, loop_share_test"):
        AppData.load(tmp_path)


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
    steps = list(cb.chat_stream(app, message, list(DEFAULT_ASPECTS.chat_columns), point, settings))
    final = steps[-1]
    assert final.done and list(final.texts) == list(DEFAULT_ASPECTS.chat_columns)
    info = cb.pick(app, *point)
    prompt = [{"role": "user", "content": message}]
    for col in DEFAULT_ASPECTS.chat_columns:
        scales = column_scales(col, info.lambda_help, info.c_help, info.c_harm)
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
        assert "1 column(s) dropped" in last.blind_info  # blind mode's status names no column
        assert not any(label in last.blind_info for label in DEFAULT_ASPECTS.chat_columns.values())
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
    ({"settings": {"max_new_tokens": 513}}, "max_new_tokens must be in"),
    ({"settings": {"max_new_tokens": 2.5}}, "whole number"),
    ({"settings": {"temperature": 1.6}}, "temperature must be in"),
    ({"settings": {"temperature": float("nan")}}, "temperature must be in"),
    ({"settings": {"top_p": 0.0}}, "top_p must be in"),
    ({"settings": {"seed": -1}}, "seed must be in"),
    ({"settings": {"seed": "abc"}}, "seed must be a number"),
    ({"settings": {"repetition_penalty": 0.9}}, r"repetition_penalty must be in \[1.0, 2.0\]"),
    ({"settings": {"repetition_penalty": 2.1}}, "repetition_penalty must be in"),
    ({"settings": {"repetition_penalty": float("inf")}}, "repetition_penalty must be in"),
])
def test_chat_bad_inputs(app, kwargs, match):
    args = {"message": "hi", "columns": ["peo"], "point": (0.5, 0.0, 0.0), "settings": GREEDY, **kwargs}
    with pytest.raises(AppInputError, match=match):
        cb.chat(app, args["message"], args["columns"], args["point"], args["settings"])


def test_too_many_tokens_is_refused(app):
    with pytest.raises(AppInputError, match="tokens"):
        cb.chat(app, "🙂" * 1000, ["peo"], (0.5, 0.0, 0.0), GREEDY)


def test_settings_bounds_accept_edges():
    s = cb.check_settings(512, 1.5, 0.1, 2**31 - 1, 2.0)
    assert (s.max_new_tokens, s.temperature, s.top_p, s.seed, s.repetition_penalty) == (512, 1.5, 0.1, 2**31 - 1, 2.0)
    assert cb.check_settings(1, 0, 1, 0, 1).max_new_tokens == 1
    assert cb.check_settings() == cb.check_settings(**{name: cb.DEFAULT_SETTINGS[name] for name in cb.LIMITS})


def test_chat_settings_default_to_the_sweep_decoding_in_meta(app, monkeypatch):
    """Chat decodes as the sweep did (meta.json "generation"): repetition penalty and n-gram block included."""
    generation = app.data.assets.run_meta.generation
    assert cb.check_settings(defaults=app.default_settings).repetition_penalty == generation["repetition_penalty"]
    monkeypatch.setitem(generation, "repetition_penalty", 1.37)
    monkeypatch.setitem(generation, "no_repeat_ngram_size", 3)
    monkeypatch.setitem(generation, "top_p", 0.9)
    monkeypatch.setitem(generation, "seed", 5)
    seen = []

    def stream(prompts, scales, settings, point, stop=None):
        seen.append(settings)
        n = len(prompts)
        yield StreamResult(answers=["an answer"] * n, new_tokens=[2] * n, cut=[False] * n, ends=["eos"] * n, steps=2)

    monkeypatch.setattr(app.engine, "stream", stream)
    cb.chat(app, "hi", ["peo"], (0.5, 0.0, 0.0))
    cb.chat(app, "hi", ["peo"], (0.5, 0.0, 0.0), {"max_new_tokens": 5, "repetition_penalty": 1.1})
    first, second = seen
    assert (first.repetition_penalty, first.no_repeat_ngram_size, first.top_p, first.seed) == (1.37, 3, 0.9, 5)
    assert first.max_new_tokens == generation["max_new_tokens"]  # the sweep's answer length too
    assert (second.repetition_penalty, second.no_repeat_ngram_size, second.max_new_tokens) == (1.1, 3, 5)


def test_the_chat_starts_at_the_shipped_sweeps_decoding():
    """The shipped assets were swept with 448 new tokens and repetition penalty 1.15: the chat's boxes start there
    and the note under them says so."""
    import gradio as gr

    from app.chat_panel import chat_panel, decoding_note
    from peo.records import RunMeta

    from conftest import REPO

    run_meta = RunMeta.load(REPO / "assets" / "meta.json")
    generation = run_meta.generation
    defaults = cb.sweep_defaults(run_meta)
    for name in cb.SWEEP_SETTINGS:
        assert defaults[name] == generation[name], name
    assert (defaults["max_new_tokens"], defaults["repetition_penalty"]) == (448, 1.15)
    with gr.Blocks():
        panel = chat_panel(defaults)
    shown = dict(zip(("max_new_tokens", "temperature", "top_p", "seed", "repetition_penalty"),
                     (box.value for box in panel.settings)))
    assert shown == {name: generation[name] for name in shown}
    note = decoding_note(defaults)
    assert "at most 448 new tokens" in note and "greedy" in note and "repetition penalty 1.15" in note


def test_score_line_says_when_an_answer_loops(app):
    from app.chat_panel import render_column
    from app.score_context import live_score_line
    from peo.answer_checks import loops

    looping = "I am not sure I am ready. " * 4
    assert loops(looping) and not loops("Paris is the capital of France.")
    assert live_score_line((0.31, -0.52), looping) == "reward +0.310 · cost -0.520 · loops"
    assert live_score_line((0.31, -0.52), "Paris is the capital of France.") == "reward +0.310 · cost -0.520"
    assert live_score_line(None, looping) == "loops"
    state = cb.ChatState(histories={"peo": [{"role": "user", "content": "hi"},
                                            {"role": "assistant", "content": looping}]},
                         scores={"peo": [(0.31, -0.52)]})
    assert render_column(state, "peo")[-1]["content"].endswith(
        '*<span class="peo-score" title="reward +0.310 · cost -0.520 · loops">'
        'reward +0.31 · cost -0.52 · loops</span>*')
    out = cb.chat(app, "Hello!", ["peo", "ref"], (0.5, 0.0, 0.0), GREEDY)
    assert all(value["loops"] == loops(value["answer"]) for value in out.values())


def test_merged_form_gives_the_same_answers(app_assets, random_app, tiny_base, tiny_adapters):
    """The GPU path (picked point merged into the weights, other columns as offsets), checked on CPU."""
    merged = _random_app(app_assets, tiny_base, tiny_adapters, "merged")
    assert merged.engine.form == "merged"
    settings = {**GREEDY, "max_new_tokens": 8}
    for point in ((0.5, 0.5, 0.5), (1.0, 0.0, 0.0), (0.0, 0.5, 0.0)):
        a = cb.chat(random_app, "What is the capital of France?", list(DEFAULT_ASPECTS.chat_columns), point, settings)
        b = cb.chat(merged, "What is the capital of France?", list(DEFAULT_ASPECTS.chat_columns), point, settings)
        assert {k: v["answer"] for k, v in a.items()} == {k: v["answer"] for k, v in b.items()}
    assert all(v["reward"] is None for v in b.values())  # no evaluators attached there
    *_, last = cb.chat_stream(merged, "again", ["peo"], (1.0, 0.0, 0.0), settings)
    assert "merged weights" in last.info


def test_export_zip(app):
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


def test_an_export_records_its_sources_and_its_readme_gives_the_apps_answer(app, tmp_path):
    """peo_export.json: the sha256 of the adapters and of meta.json / grid.csv, and the decoding; the README's
    generate call uses that decoding (repetition_penalty included), so following it gives the app's answer."""
    import hashlib

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from peo.export import generate_arguments, sweep_decoding

    point = (0.5, 0.5, 0.0)
    with zipfile.ZipFile(cb.export_zip(app, "peo", point, "merged")) as archive:
        archive.extractall(tmp_path)
    (folder,) = tmp_path.iterdir()
    provenance = json.loads((folder / "peo_export.json").read_text())
    root = app.data.assets.root
    assert set(provenance["sha256"]) == {"meta.json", "grid.csv", *(f"adapters/{a}/{f}" for a in ("help", "harm")
                                                                    for f in ("adapter_config.json",
                                                                              "adapter_model.safetensors"))}
    for name, digest in provenance["sha256"].items():
        assert hashlib.sha256((root / name).read_bytes()).hexdigest() == digest
    decoding = sweep_decoding(app.data.assets.run_meta)
    assert provenance["generation"]["repetition_penalty"] == decoding.repetition_penalty
    readme = (folder / "README.md").read_text()
    kwargs = generate_arguments(provenance["generation"])
    assert f"model.generate(**batch, {kwargs})" in readme
    assert f"repetition_penalty={decoding.repetition_penalty!r}" in kwargs
    assert f"max_new_tokens={decoding.max_new_tokens}" in kwargs

    model = AutoModelForCausalLM.from_pretrained(folder)  # what a user following the README runs
    tokenizer = AutoTokenizer.from_pretrained(folder)
    batch = tokenizer.apply_chat_template([{"role": "user", "content": "Hi!"}], add_generation_prompt=True,
                                          return_tensors="pt", return_dict=True)
    out = eval(f"model.generate(**batch, {kwargs})", {"model": model, "batch": batch})  # the README's own call
    answer = tokenizer.decode(out[0, batch["input_ids"].shape[1]:], skip_special_tokens=True).strip()
    assert answer == cb.chat(app, "Hi!", ["peo"], point)["peo"]["answer"]


def test_host_and_args(monkeypatch):
    from app.__main__ import parse_args, resolve_host

    monkeypatch.delenv("SPACE_ID", raising=False)
    assert resolve_host(None) == "127.0.0.1"
    assert resolve_host("0.0.0.0") == "0.0.0.0"
    monkeypatch.setenv("SPACE_ID", "user/peo")
    assert resolve_host(None) == "0.0.0.0"
    args = parse_args(["--assets", "x", "--port", "7000", "--share-safe"])
    assert args.port == 7000 and args.share_safe and str(args.assets) == "x"


# ---------------------------------------------------------------- refused picks in the page (app/ui.py)

def _is_noop(update) -> bool:
    """gr.update() with nothing in it: the component is left as it is."""
    return isinstance(update, dict) and set(update) == {"__type__"}


@pytest.mark.parametrize("values, match", [
    ((7, 0.0, 0.0), "lambda_help=7 is outside the range"),
    ((-1, 0.0, 0.0), "lambda_help=-1 is outside the range"),
    ((0.5, None, 0.0), "phi_help must be a number, got None"),  # a browser number box sends null for 'abc'
    ((0.5, 0.0, "abc"), "phi_harm must be a number"),
])
def test_a_refused_typed_value_picks_nothing(app, values, match):
    """The page's pick step: a refused value leaves sliders, figure, tables and state as they were, puts the typed
    boxes back to the current pick and says why (no clamping to the nearest allowed value)."""
    from app.ui import AXES, pick_updates

    current = cb.pick(app, 0.5, 0.5, 0.0)
    out = pick_updates(app, values, current)
    n = len(AXES)
    sliders, boxes, rest, status = out[:n], out[n:2 * n], out[2 * n:-1], out[-1]
    assert all(_is_noop(u) for u in sliders) and all(_is_noop(u) for u in rest)  # figure ... state: unchanged
    assert [u["value"] for u in boxes] == [getattr(current, axis) for axis, *_ in AXES]
    assert "Not picked" in status and re.search(match, status) and "unchanged" in status


def test_an_accepted_typed_value_picks_everything(app):
    from app.ui import AXES, pick_updates

    current = cb.pick(app, 0.5, 0.5, 0.0)
    grid = app.data.grid
    row = grid[grid["method"] == "peo"].iloc[-1]
    out = pick_updates(app, (row.lambda_help, row.phi_help, row.phi_harm), current)
    n = len(AXES)
    point = [float(row.lambda_help), float(row.phi_help), float(row.phi_harm)]
    assert list(out[:n]) == point and list(out[n:2 * n]) == point  # sliders and boxes agree
    figure, summary, table, state, status = out[2 * n:]
    assert json.loads(figure)["layout"]["meta"]["picked"] == row.model_id
    assert row.model_id in summary and state["model_id"] == row.model_id and status == ""
    assert list(table.loc[table[""] == PICKED_MARK, "model_id"]) == (
        [row.model_id] if row.model_id in set(table["model_id"]) else [])
    # a click on a marker that is not a grid point is refused the same way
    refused = pick_updates(app, None, current, refused="that marker is not a PEO grid point")
    assert "that marker is not a PEO grid point" in refused[-1] and _is_noop(refused[-2])


def test_sliders_and_boxes_step_by_the_grids_step(app):
    """A 0.01 step made almost every drag land off the grid, and the boxes' step of 1 took 0.35 to 1 on ArrowUp."""
    import gradio as gr

    from app.ui import AXES, SINGLE_VALUE_STEP, grid_step, picker_panel, start_point

    assert grid_step([0.0, 0.25, 0.5, 1.0]) == 0.25 and grid_step([1.0, 0.0, 0.5]) == 0.5
    assert grid_step([0.3]) == SINGLE_VALUE_STEP
    start = start_point(app.data)
    with gr.Blocks():
        picker = picker_panel(app.data, start, cb.pick(app, *start))
    for (axis, *_), slider, box in zip(AXES, picker.sliders, picker.boxes):
        step = grid_step(app.data.grid_axis(axis))
        assert slider.step == box.step == step == grid_step(app.data.assets.meta["grid"][axis])
        assert f"grid step {step:g}" in slider.label


def test_the_answers_table_reaches_harmful_prompts_whatever_the_order(app):
    """The shipped c+0.500_+0.500's first 20 test rows are all benign: the table alternates the prompt kinds (half
    each), or shows every prompt of the kind chosen, whatever order the answers are stored in."""
    import dataclasses

    from app.ui import ANSWER_ROWS, BOTH_KINDS, answers_update, picked_answers

    answers = app.data.answers
    benign_first = answers.sort_values("prompt_kind", key=lambda k: k != "help", kind="stable")
    data = AppData(assets=dataclasses.replace(app.data.assets, answers=benign_first), fronts=app.data.fronts)
    peo = app.data.grid[app.data.grid["method"] == "peo"]
    tested = set(answers.loc[answers["split"] == "test", "model_id"])
    row = peo[peo["model_id"].isin(tested)].iloc[0]
    mid = str(row.model_id)
    of_model = answers[(answers["model_id"] == mid) & (answers["split"] == "test")]
    n_benign = int((of_model["prompt_kind"] == "help").sum())
    assert set(data.sample_answers(mid, limit=n_benign)["kind"]) == {"help"}, "the first rows: benign only"
    both = picked_answers(data, mid, BOTH_KINDS)
    # alternating from the top
    assert len(both) <= ANSWER_ROWS and list(both["kind"][:2]) == list(DEFAULT_ASPECTS.names)
    assert (both["kind"] == "harm").sum() == (both["kind"] == "help").sum() > 0
    for kind in DEFAULT_ASPECTS.names:
        alone = picked_answers(data, mid, kind)
        assert set(alone["kind"]) == {kind} and len(alone) == (of_model["prompt_kind"] == kind).sum()
    update = answers_update(data, app.data.point_info(row.lambda_help, row.phi_help, row.phi_harm), "harm")
    n_harm = len(update["value"])
    assert update["label"] == f"Precomputed answers of {mid} (0 helpful prompts, {n_harm} harmful prompts)"
    with pytest.raises(AppInputError, match="prompts must be one of"):
        picked_answers(data, mid, "everything")


# ---------------------------------------------------------------- chat: tags, fresh chats, cut answers

def test_answers_are_tagged_with_their_point_and_marked_when_cut(random_app):
    """PEO and soup answers carry the (c_help, c_harm) that produced them, shown on the page only; an answer cut at
    max_new_tokens gets a marker; the history fed back to the model keeps the bare answers."""
    from app.chat_panel import render_column

    settings = {**GREEDY, "max_new_tokens": 3}
    *_, last = cb.chat_stream(random_app, "Tell me a long story.", ["peo", "ref", "soup"], (0.5, 0.5, 0.0), settings)
    state = last.state
    assert state.tags["peo"][-1].coefficients == pytest.approx((1.0, 0.5))
    assert state.tags["soup"][-1].coefficients == pytest.approx((0.5, 0.5))
    assert state.tags["ref"][-1].coefficients is None  # a fixed model: nothing to tag
    for col in ("peo", "ref", "soup"):
        answer = state.histories[col][-1]["content"]
        assert "[cut at" not in answer and "at c =" not in answer  # what the model sees next turn
        shown = render_column(state, col)[-1]["content"]
        assert shown.startswith(answer)
        assert ("[cut at 3 tokens]" in shown) == last.cut[col] == (state.tags[col][-1].cut_at == 3)
    assert any(last.cut.values()), "a random tiny model does not end an answer within 3 tokens"
    assert "*at c = (1, 0.5)*" in render_column(state, "peo")[-1]["content"]
    assert "at c =" not in render_column(state, "ref")[-1]["content"]
    long = cb.chat(random_app, "Hi", ["ref"], (0.5, 0.5, 0.0), {**GREEDY, "max_new_tokens": 3})
    assert long["ref"]["cut"] == last.cut["ref"]


def test_sweep_token_counts_agree_with_the_chat_cut_marker(random_app):
    """The count the sweep stores (generate_rows_counted) says "cut" exactly when the chat's streamed generation
    does, and its texts are the ones generate_rows gives."""
    from peo.generation import GenerationSettings, Row, generate_rows, generate_rows_counted

    engine = random_app.engine
    settings = GenerationSettings(**{**GREEDY, "max_new_tokens": 3})
    rows = [Row([{"role": "user", "content": m}], s) for m in ("Hi", "Tell me a long story.")
            for s in ({}, {"help": 1.0}, {"harm": 1.5})]
    counted = generate_rows_counted(engine.mix, engine.tokenizer, rows, settings, batch_size=len(rows))
    assert [text for text, _ in counted] == generate_rows(engine.mix, engine.tokenizer, rows, settings, len(rows))
    assert all(0 <= n <= 3 for _, n in counted)
    *_, result = engine.stream([r.messages for r in rows], [r.scales for r in rows], settings, (0.0, 0.0))
    assert result.cut == [n == 3 for _, n in counted]
    assert any(result.cut), "a random tiny model does not end every answer within 3 tokens"


@pytest.mark.parametrize("fresh", [True, False])
def test_a_new_point_starts_a_fresh_chat_when_asked(random_app, fresh):
    state = None
    for point in ((0.5, 0.0, 0.0), (0.5, 0.0, 0.0), (1.0, 0.5, 0.0)):
        *_, last = cb.chat_stream(random_app, "hello", ["peo", "help"], point, GREEDY, state,
                                  fresh_on_new_point=fresh)
        state = last.state
    turns = len(state.histories["peo"]) // 2
    assert turns == (1 if fresh else 3)  # the same point twice continues; a new one restarts when asked
    assert ("started a fresh chat" in last.info) == fresh
    assert state.point == cb.point_key(cb.pick(random_app, 1.0, 0.5, 0.0))
    tags = [t.coefficients for t in state.tags["peo"]]
    assert tags == ([(1.5, 0.0)] if fresh else [(0.5, 0.5), (0.5, 0.5), (1.5, 0.0)])


def test_column_labels_mark_same_models(app):
    from app.chat_panel import column_labels

    columns = list(DEFAULT_ASPECTS.chat_columns)
    labels = dict(zip(columns, column_labels(cb.pick(app, 0.5, 0.0, 0.0), columns)))
    assert labels["soup"] == "Soup (same λ) = PEO (picked point) at this point"
    assert labels["peo"] == DEFAULT_ASPECTS.chat_columns["peo"] and labels["ref"] == DEFAULT_ASPECTS.chat_columns["ref"]
    labels = dict(zip(DEFAULT_ASPECTS.chat_columns, column_labels(cb.pick(app, 0.5, 0.0, 0.0), ["ref", "soup"])))
    assert labels["soup"] == DEFAULT_ASPECTS.chat_columns["soup"]  # PEO not shown: nothing to point to


def test_refused_chat_inputs_go_to_the_status_not_the_chatbots(app):
    """check_turn, the first step of a turn, refuses bad inputs with the message for the status beside the box;
    the streaming step then changes nothing."""
    from app.chat_panel import check_turn, stream_turn

    point = cb.pick(app, 0.5, 0.0, 0.0)
    outside = point.model_copy(update={"lambda_help": 7})
    settings = (4, 0.0, 1.0, 0, 1.0)
    for msg, cols, pt, match in (("", ["peo"], point, "empty message"), ("hi", [], point, "at least one column"),
                                 ("hi", ["peo"], outside, "lambda_help=7 is outside")):
        turn, status = check_turn(app, app.default_settings, msg, cols, pt, *settings)
        assert turn is None and status.startswith("⚠️") and match in status
        updates = list(stream_turn(app, turn, cb.ChatState(), True))
        assert len(updates) == 1 and all(_is_noop(u) for u in updates[0])
    turn, status = check_turn(app, app.default_settings, "hi", ["peo", "ref"], point, *settings)
    assert turn["columns"] == ["peo", "ref"] and status == "generating…"
    *_, final = stream_turn(app, turn, cb.ChatState(), True)
    assert isinstance(final[-3], cb.ChatState) and "one batch" in final[-2]
    assert _is_noop(final[-1]), "the turn's end leaves the message box alone (emptied when the turn was accepted)"
    turn, status = check_turn(app, app.default_settings, "hi", ["peo"], point, 9999, 0.0, 1.0, 0, 1.0)
    assert turn is None and "max_new_tokens must be in [1, 512], got 9999" in status  # refused, not snapped


def _chat_page(app):
    """The chat panel alone, wired as on the page: (its Blocks, the panel)."""
    import gradio as gr

    from app.chat_panel import BeforeStream, chat_panel, wire_chat

    with gr.Blocks() as demo:
        point_state, chat_state = gr.State(cb.pick(app, 0.5, 0.0, 0.0).to_json()), gr.State(cb.ChatState())
        chat = chat_panel(app.default_settings)
        blind = gr.Checkbox(False)
        nothing = BeforeStream(lambda turn: None, [], [], blind, "() => []")  # no votes panel here
        wire_chat(app, chat, point_state, chat_state, app.default_settings, blind, nothing)
    return demo, chat


def _event(demo, component, event: str):
    """The function wired to `component`'s `event` in `demo` (the first, when several are)."""
    return next(fn.fn for fn in demo.fns.values() if (component._id, event) in fn.targets)


def _request(session: str = "session-1"):
    from types import SimpleNamespace

    return SimpleNamespace(session_hash=session, query_params={})


def test_a_send_during_a_running_turn_is_refused_with_a_message_and_keeps_the_text(app):
    """One turn at a time per session: a send meanwhile says why it is refused and leaves the typed text in the box
    (an accepted send empties it at once, and the turn's end no longer does); other sessions are not affected."""
    from app.chat_panel import BUSY

    demo, chat = _chat_page(app)
    check = _event(demo, chat.send, "click")
    point = cb.pick(app, 0.5, 0.0, 0.0)
    settings = (4, 0.0, 1.0, 0, 1.0)
    turn, status, box = check("first", ["peo"], point, *settings, request=_request())
    assert turn is not None and box == ""
    running = chat.turns.start("session-1")  # what the streaming step holds while the turn runs
    try:
        turn, status, box = check("typed meanwhile", ["peo"], point, *settings, request=_request())
        assert turn is None and status == BUSY and _is_noop(box)
        assert check("another tab", ["peo"], point, *settings, request=_request("session-2"))[0] is not None
    finally:
        chat.turns.finish("session-1", running)
    assert check("after the turn", ["peo"], point, *settings, request=_request())[0] is not None


def test_a_columns_trash_icon_clears_its_history_for_good(app):
    """The trash icon of one chatbot empties that column's history (scores, tags) in the chat state, so the next
    turn does not bring it back; the other columns keep theirs."""
    demo, chat = _chat_page(app)
    *_, first = cb.chat_stream(app, "remember the word apple", ["peo", "ref"], (0.5, 0.0, 0.0), GREEDY)
    cleared = _event(demo, chat.chatbots["peo"], "clear")(first.state)
    assert "peo" not in cleared.histories and "peo" not in cleared.scores and "peo" not in cleared.tags
    assert cleared.histories["ref"] == first.state.histories["ref"] and first.state.histories["peo"], "a copy"
    *_, second = cb.chat_stream(app, "what was the word?", ["peo", "ref"], (0.5, 0.0, 0.0), GREEDY, cleared)
    assert [m["content"] for m in second.state.histories["peo"] if m["role"] == "user"] == ["what was the word?"]
    assert len(second.state.histories["ref"]) == 4 and len(second.state.scores["peo"]) == 1


# ---------------------------------------------------------------- stop, cancel, EOS

class _ForceTokens:
    """Steers the running batch: the i-th row it sees emits EOS as its token number eos_at[i] (None: never EOS);
    sleeps `delay` per step. Rows are told apart by identity, since rows leave the batch as they end."""

    def __init__(self, eos_id: int, eos_at: list[int | None], delay: float = 0.0):
        self.eos_id, self.eos_at, self.delay = eos_id, eos_at, delay
        self.seen: dict[int, int] = {}
        self.last_call = None

    def __call__(self, rows, scores):
        import time

        if self.last_call != id(scores):
            time.sleep(self.delay)
        self.last_call = id(scores)
        for j, row in enumerate(rows):
            i = self.seen.setdefault(id(row), len(self.seen))
            at = self.eos_at[i] if i < len(self.eos_at) else None
            if at is not None and len(row.tokens) >= at:
                scores[j, :] = -math.inf
                scores[j, self.eos_id] = 0.0
            else:
                scores[j, self.eos_id] = -math.inf
        return scores


def _steer(monkeypatch, processor) -> None:
    """Every running batch also applies `processor(rows, scores)` after its own logits processing."""
    from peo.running_batch import RunningBatch

    process = RunningBatch._process
    monkeypatch.setattr(RunningBatch, "_process",
                        lambda self, rows, scores: processor(rows, process(self, rows, scores)))


def _lock_free_within(lock, seconds: float) -> bool:
    if not lock.acquire(timeout=seconds):
        return False
    lock.release()
    return True


def test_generation_ends_when_every_row_has_hit_eos(random_app, monkeypatch):
    """A row leaves the running batch at its EOS, and the turn ends with its last row: it costs its longest row,
    not max_new_tokens; a row that never ends runs to the limit and is marked cut."""
    from peo.generation import GenerationSettings, Row, stream_batch

    engine = random_app.engine
    rows = [Row([{"role": "user", "content": "Hi"}], {}), Row([{"role": "user", "content": "Hello there"}],
                                                            {"help": 1.0})]
    settings = GenerationSettings(max_new_tokens=40)
    cases = (([2, 5], 6, [False, False]), ([0, 0], 1, [False, False]), ([3, None], 40, [False, True]))
    for eos_at, steps, cut in cases:
        monkeypatch.undo()
        _steer(monkeypatch, _ForceTokens(engine.tokenizer.eos_token_id, eos_at))
        items = list(stream_batch(engine.mix, engine.tokenizer, rows, settings))
        result = items[-1]
        assert (result.steps, result.cut) == (steps, cut), eos_at
        assert len(items) == steps + 1  # one update per step, then the result
        if eos_at[0] == 0:
            assert result.answers == ["", ""]


def test_a_closed_turn_frees_the_model_within_a_second(app, monkeypatch):
    """Closing a streaming turn (what Gradio does on Stop and when the page goes away) ends generation after the
    current step: the model lock is free again within a second, though the turn had ~10 s left to run."""
    import threading
    import time

    from app.chat_panel import check_turn, stream_turn

    engine = app.engine
    _steer(monkeypatch, _ForceTokens(engine.tokenizer.eos_token_id, [], delay=0.04))
    point = (0.5, 0.0, 0.0)
    steps = cb.chat_stream(app, "Tell me everything.", ["peo", "ref"], point, {**GREEDY, "max_new_tokens": 256})
    next(steps), next(steps)
    assert engine.lock.locked()
    steps.close()
    start = time.perf_counter()
    assert _lock_free_within(engine.lock, 1.0), "the cancelled turn still holds the model"
    assert time.perf_counter() - start < 1.0
    # the page's streaming step closed by Gradio: the same
    turn, _ = check_turn(app, app.default_settings, "Tell me everything.", ["peo"], cb.pick(app, *point),
                         256, 0.0, 1.0, 0, 1.0)
    page = stream_turn(app, turn, cb.ChatState(), True)
    next(page), next(page)
    assert engine.lock.locked()
    page.close()
    assert _lock_free_within(engine.lock, 1.0)
    time.sleep(0.2)
    assert not [t for t in threading.enumerate() if t.name == "peo-generate"], "a worker outlived its turn"
    # a stop event ends the turn with GenerationStopped, no answers, and the same free lock
    from peo.generation import GenerationStopped

    stop = threading.Event()
    steps = cb.chat_stream(app, "Tell me everything.", ["peo"], point, {**GREEDY, "max_new_tokens": 256},
                           stop=stop)
    next(steps)
    stop.set()
    with pytest.raises(GenerationStopped, match="stopped on request"):
        list(steps)
    assert _lock_free_within(engine.lock, 1.0)
    monkeypatch.undo()
    assert cb.chat(app, "Hello!", ["peo"], point, GREEDY)["peo"]["answer"] is not None  # the model works on


def test_a_stopped_turn_keeps_the_message_and_partial_answers_on_screen_not_in_the_history(app, monkeypatch):
    """Stop used to blank every column, the user's message included: now the columns keep both, marked [stopped];
    the chat state (what the model sees next) is left as before the turn."""
    import threading

    from app.chat_panel import STOPPED, STOPPED_MARK, check_turn, stream_turn

    engine = app.engine
    _steer(monkeypatch, _ForceTokens(engine.tokenizer.eos_token_id, [], delay=0.02))
    point = cb.pick(app, 0.5, 0.0, 0.0)
    turn, _ = check_turn(app, app.default_settings, "Write a long story.", ["peo", "ref"], point, 256, 1.0, 1.0, 0,
                         1.0)
    stop = threading.Event()
    updates = []
    for update in stream_turn(app, turn, cb.ChatState(), True, stop):
        updates.append(update)
        if len(updates) == 4:
            stop.set()
    n = len(DEFAULT_ASPECTS.chat_columns)
    *views, state, status, box = updates[-1]
    assert status == STOPPED and _is_noop(state) and _is_noop(box)
    partial = updates[-2][list(DEFAULT_ASPECTS.chat_columns).index("peo")][-1]["content"]
    for col in ("peo", "ref"):
        shown = views[list(DEFAULT_ASPECTS.chat_columns).index(col)]
        assert shown[0] == {"role": "user", "content": "Write a long story."}
        assert shown[-1]["content"].endswith(STOPPED_MARK)
    assert views[list(DEFAULT_ASPECTS.chat_columns).index("peo")][-1]["content"].startswith(partial.rstrip("…"))
    assert len(views) == n
