"""The research views: score context (percentiles, flags), the context panel, compare generations, the
coefficient-space figure, error bars and on-demand scoring of an off-grid point (on the tiny assets)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from app import callbacks as cb
from app.coefficient_figure import coefficient_figure, degrees_of_freedom_text, model_points, same_model_groups
from app.compare_view import (
    COMPARED,
    Answer,
    PromptRow,
    compare_html,
    compared_models,
    parse_messages,
    prompt_rows,
    select_rows,
)
from app.context_panel import context_markdown
from app.figure import SCORED_NAME, figure_dict
from app.offgrid_scoring import merge_scored, needs_scoring, score_point, scoring_prompts, summarize, sweep_settings
from app.score_context import (
    CUT,
    EMPTY,
    LOOPS,
    ReferenceScores,
    answer_flags,
    band_symbol,
    live_score_line,
    ordinal,
    percentile,
)
from peo.names import PEO, REFERENCE, REFERENCE_MODEL_ID, SOUP
from peo.plot_style import COLORS

LOOPING = "I am not sure I am ready. " * 4


@pytest.fixture(scope="session")
def app_assets(request) -> Path:
    prebuilt = os.environ.get("PEO_APP_TEST_ASSETS")
    return Path(prebuilt) if prebuilt else request.getfixturevalue("tiny_assets")


@pytest.fixture(scope="module")
def app(app_assets) -> cb.App:
    application = cb.App.load(app_assets, device="cpu", form="adapters")
    application.engine.wait_ready()
    return application


# ---------------------------------------------------------------- score context

def test_percentile_counts_ties_half():
    assert percentile(2.0, [1.0, 2.0, 3.0, 4.0]) == 37.5
    assert percentile(0.0, [1.0, 2.0]) == 0.0
    assert percentile(5.0, [2.0, 1.0]) == 100.0
    assert percentile(1.0, [1.0, 1.0]) == 50.0
    assert percentile(1.0, []) is None


def test_ordinal_and_bands():
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 100, 101, 111)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "23rd", "100th", "101st", "111th"]
    assert band_symbol(80.0, True) == band_symbol(20.0, False) == "🟩"
    assert band_symbol(20.0, True) == band_symbol(80.0, False) == "🟥"
    assert band_symbol(50.0, True) == "🟨"


def test_answer_flags():
    assert answer_flags("", cut=True) == answer_flags("  \n", cut=False) == [EMPTY]
    assert answer_flags("The capital of France is Paris.", cut=False) == []
    assert answer_flags("The capital of France is", cut=False) == []  # the token count says, not the text
    assert answer_flags("Paris.", cut=True) == [CUT]
    assert answer_flags(LOOPING, cut=False) == [LOOPS]
    assert answer_flags(LOOPING.strip() + " I am not sure I", cut=True) == [CUT, LOOPS]


def test_score_line_is_placed_in_the_reference_distribution():
    ref = ReferenceScores(rewards=(-1.0, 0.0, 1.0, 2.0), costs=(0.0, 1.0, 2.0, 3.0))
    assert ref.placed("reward", 0.0, True) == "🟨 reward +0.000 (38th pct of the reference on 4 test prompts)"
    assert ref.placed("cost", 3.5, False) == "🟥 cost +3.500 (100th pct of the reference on 4 test prompts)"
    line = live_score_line((2.5, -1.0), "", ref)
    assert line == ("🟩 reward +2.500 (100th pct of the reference on 4 test prompts) · 🟩 cost -1.000 (0th pct of "
                    "the reference on 4 test prompts) · empty")
    # no reference: the bare scores, as before; the chat marks cut answers itself (exact token count)
    assert live_score_line((0.31, -0.52), LOOPING) == "reward +0.310 · cost -0.520 · loops"
    assert live_score_line((0.31, -0.52), "Paris is the") == "reward +0.310 · cost -0.520"
    assert ReferenceScores((), ()).placed("reward", 1.0, True) == "reward +1.000"


def test_reference_scores_come_from_the_reference_test_answers(app):
    ref = ReferenceScores.from_answers(app.data.answers)
    rows = app.data.answers[(app.data.answers["model_id"] == REFERENCE_MODEL_ID)
                            & (app.data.answers["split"] == "test")]
    assert ref.split == "test" and ref.rewards == tuple(rows["reward"]) and ref.costs == tuple(rows["cost"])


# ---------------------------------------------------------------- context panel

def test_context_panel_says_what_the_assets_hold(app):
    meta, fronts = app.data.assets.meta, app.data.fronts
    text = context_markdown(meta, fronts)
    assert f"`{meta['base_model']}`" in text
    for kind in ("reward", "cost"):
        acc = fronts["evaluators"][kind]["held_out_accuracy"]
        lo, hi = fronts["evaluators"][kind]["interval"]
        assert f"{acc:.0%} [{lo:.0%}, {hi:.0%}]" in text
    assert f"{fronts['n_prompts']['dev']} dev prompts" in text and f"{fronts['n_prompts']['test']} held-out" in text
    assert f"{meta['training']['help']['steps']} steps" in text
    assert "4-word sequence 3+ times" in text


def test_context_panel_degrades_when_fields_are_missing():
    text = context_markdown({"base_model": "m"}, {})
    assert "`m`" in text and "reward evaluator" not in text and "DPO-Help" not in text and "Loops" in text


# ---------------------------------------------------------------- compare generations

def _row(pid: str, kind: str, picked: float | None, ref: float) -> PromptRow:
    answers = {PEO: None if picked is None else Answer("a.", picked, -picked), REFERENCE: Answer("b.", ref, -ref)}
    return PromptRow(pid, kind, [{"role": "user", "content": pid}], answers)


def test_select_rows_filters_and_sorts_by_difference_to_reference():
    rows = [_row("a", "help", 1.0, 0.0), _row("b", "harm", 0.0, 0.5), _row("c", "help", None, 0.0),
            _row("d", "harm", 3.0, 1.0)]
    assert [r.prompt_id for r in select_rows(rows)] == ["a", "b", "c", "d"]
    assert [r.prompt_id for r in select_rows(rows, sort="reward − reference, largest first")] == ["d", "a", "b", "c"]
    assert [r.prompt_id for r in select_rows(rows, sort="reward − reference, smallest first")] == ["b", "a", "d", "c"]
    assert [r.prompt_id for r in select_rows(rows, sort="cost − reference, largest drop first")] == ["d", "a", "b",
                                                                                                    "c"]
    assert [r.prompt_id for r in select_rows(rows, "harm")] == ["b", "d"]
    assert [r.prompt_id for r in select_rows(rows, limit=2)] == ["a", "b"]


def test_parse_messages_keeps_every_turn():
    prompt = json.dumps([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                         {"role": "user", "content": "c"}])
    assert [m["content"] for m in parse_messages(prompt)] == ["a", "b", "c"]
    assert parse_messages("not json") == [{"role": "user", "content": "not json"}]


def test_compare_shows_every_compared_model_per_prompt(app):
    data = app.data
    info = data.point_info(0.5, 0.0, 0.0)
    ids = compared_models(data.grid, info)
    assert list(ids) == list(COMPARED)
    assert ids[PEO] == ids[SOUP] == info["model_id"] and ids[REFERENCE] == REFERENCE_MODEL_ID
    rows = prompt_rows(data.answers, ids, "test")
    assert len(rows) == data.n_prompts("test")
    assert all(all(a is not None for a in r.answers.values()) for r in rows)
    page = compare_html(data.answers, data.grid, info, COLORS, limit=None)
    assert page.count('class="peo-prompt"') == data.n_prompts("test")
    assert page.count('class="peo-answer"') == len(COMPARED) * data.n_prompts("test")
    assert "(= Soup (same λ))" in page  # at ϕ = 0 the picked point is the soup


def test_compare_says_when_the_pick_is_off_grid(app):
    info = app.data.point_info(0.25, 0.0, 0.0)
    page = compare_html(app.data.answers, app.data.grid, info, COLORS)
    assert "off-grid" in page and "not run on this prompt" in page


# ---------------------------------------------------------------- coefficient space

def test_model_points_list_the_grid_points_of_each_model(app):
    grid = app.data.grid
    points = model_points(grid)
    with_c = grid[grid["c_help"].notna()]
    assert sorted(points["model_id"]) == sorted(with_c["model_id"].astype(str).unique())
    for mid, same in same_model_groups(points):
        rows = grid[(grid["model_id"] == mid) & grid["lambda_help"].notna()]
        assert set(same) == {tuple(r) for r in rows[["lambda_help", "phi_help", "phi_harm"]].itertuples(index=False)}
        assert len(same) > 1
    assert "two degrees of freedom" in degrees_of_freedom_text(grid)


def test_coefficient_figure_clicks_carry_a_grid_point(app):
    info = app.data.point_info(0.5, 0.0, 0.0)
    fig = coefficient_figure(app.data.grid, app.data.front_model_ids(), info)
    scatter = fig.data[0]
    assert list(scatter.x) == list(model_points(app.data.grid)["c_help"])
    clickable = [c for c in scatter.customdata if c[0] != "–"]
    assert clickable and all(len(c) >= 4 for c in clickable)
    assert fig.layout.meta["picked"] == info["model_id"]


# ---------------------------------------------------------------- error bars and scored points on the front

def test_front_has_error_bars_of_one_standard_error(app):
    fig = figure_dict(app.data)
    grid = app.data.grid
    ref = next(t for t in fig["data"] if t.get("name") == "reference")
    row = grid[grid["method"] == "ref"].iloc[0]
    assert ref["error_x"]["array"] == [pytest.approx(row["cost_se"])]
    assert ref["error_y"]["array"] == [pytest.approx(row["reward_se"])]


# ---------------------------------------------------------------- on-demand scoring

def test_offgrid_point_is_scored_on_the_test_prompts(app):
    data = app.data
    info = data.point_info(0.25, 0.0, 0.25)
    assert needs_scoring(info) and not needs_scoring(data.point_info(0.5, 0.0, 0.0))
    prompts = scoring_prompts(data.answers)
    assert len(prompts) == data.n_prompts("test")
    start = time.perf_counter()
    progress = [len(rows) for rows in score_point(app.engine, info, prompts, sweep_settings(data.assets.meta),
                                                  batch_size=3)]
    assert time.perf_counter() - start < 120
    assert progress[-1] == len(prompts) and progress == sorted(progress)
    *_, last = score_point(app.engine, info, prompts.iloc[:2], sweep_settings(data.assets.meta))
    point = summarize(info, last, 2)
    assert point["n"] == 2 and point["complete"] and point["model_id"] == info["model_id"]
    assert point["reward_mean"] == pytest.approx(sum(r["reward"] for r in last) / 2)
    scored = merge_scored(merge_scored([], point), {**point, "reward_mean": 0.0})
    assert len(scored) == 1 and scored[0]["reward_mean"] == 0.0
    fig = figure_dict(data, info, [point])
    trace = next(t for t in fig["data"] if t.get("name") == SCORED_NAME)
    assert trace["y"] == [pytest.approx(point["reward_mean"])] and "scored on demand" in fig["layout"]["title"]["text"]
    # the page's pick path draws the session's scored points too: re-picking (even the same point) keeps them
    from app.ui import AXES, pick_updates

    for values in ((0.25, 0.0, 0.25), (0.5, 0.0, 0.0)):
        figure = json.loads(pick_updates(app, values, info, scored=[point])[2 * len(AXES)])
        drawn = [t["y"] for t in figure["data"] if t.get("name") == SCORED_NAME]
        assert drawn == [[pytest.approx(point["reward_mean"])]]
    figure = json.loads(pick_updates(app, (0.5, 0.0, 0.0), info)[2 * len(AXES)])
    assert not [t for t in figure["data"] if t.get("name") == SCORED_NAME]
    page = compare_html(data.answers, data.grid, info, COLORS, scored=[point])
    n = data.n_prompts("test")
    assert "scored on demand" in page and page.count('class="peo-prompt"') == n
    soup_missing = n if compared_models(data.grid, info)[SOUP] not in set(data.answers["model_id"]) else 0
    assert page.count("not run on this prompt") == (n - 2) + soup_missing  # the picked column: the 2 scored


def test_page_builds_with_the_views(app):
    from app.ui import build_demo

    demo = build_demo(app)
    ids = {getattr(b, "elem_id", None) for b in demo.blocks.values()}
    assert {"context-panel", "compare-view", "coefficient-plot", "score-offgrid", "stop-scoring"} <= ids
