"""The research views: score context (percentiles, flags), the context panel, compare generations, the
coefficient-space figure, error bars and on-demand scoring of an off-grid point (on the tiny assets)."""

from __future__ import annotations

import html
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
    record_html,
    select_rows,
)
from app.context_panel import context_markdown
from app.figure import SCORED_NAME, figure_dict
from app.offgrid_scoring import (
    answer_rows,
    merge_scored,
    needs_scoring,
    score_point,
    scoring_prompts,
    summarize,
)
from app.score_context import (
    CUT,
    EMPTY,
    LOOPS,
    ReferenceScores,
    answer_flags,
    band_symbol,
    compact_score_line,
    live_score_line,
    ordinal,
    percentile,
)
from peo.export import sweep_decoding
from peo.names import PEO, REFERENCE, REFERENCE_MODEL_ID, SOUP
from peo.plot_style import COLORS
from peo.records import Pick, RunMeta

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
    ref = ReferenceScores({"reward": (-1.0, 0.0, 1.0, 2.0), "cost": (0.0, 1.0, 2.0, 3.0)})
    assert ref.placed("reward", 0.0, True) == "🟨 reward +0.000 (38th pct of the reference on 4 test prompts)"
    assert ref.placed("cost", 3.5, False) == "🟥 cost +3.500 (100th pct of the reference on 4 test prompts)"
    line = live_score_line((2.5, -1.0), "", ref)
    assert line == ("🟩 reward +2.500 (100th pct of the reference on 4 test prompts) · 🟩 cost -1.000 (0th pct of "
                    "the reference on 4 test prompts) · empty")
    # no reference: the bare scores, as before; the chat marks cut answers itself (exact token count)
    assert live_score_line((0.31, -0.52), LOOPING) == "reward +0.310 · cost -0.520 · loops"
    assert live_score_line((0.31, -0.52), "Paris is the") == "reward +0.310 · cost -0.520"
    assert ReferenceScores({}).placed("reward", 1.0, True) == "reward +1.000"


def test_the_chat_score_line_is_one_short_line_with_the_details_on_hover():
    """At 5-7 columns a bubble is ~100-150 px wide: the score line is short, its percentiles in the hover title."""
    import html

    ref = ReferenceScores({"reward": (-1.0, 0.0, 1.0, 2.0), "cost": (0.0, 1.0, 2.0, 3.0)})
    line = compact_score_line((2.5, -1.0), "Paris is the capital of France.", ref)
    full = live_score_line((2.5, -1.0), "Paris is the capital of France.", ref)
    assert line == f'<span class="peo-score" title="{html.escape(full)}">🟩 reward +2.50 · 🟩 cost -1.00</span>'
    short = line.split(">", 1)[1].removesuffix("</span>")
    assert len(short) < 35 and "pct" not in short and "pct" in full
    assert compact_score_line(None, LOOPING) == '<span class="peo-score" title="loops">loops</span>'
    assert compact_score_line(None, "Fine.") == ""


def test_reference_scores_come_from_the_reference_test_answers(app):
    rows = app.data.answers[(app.data.answers["model_id"] == REFERENCE_MODEL_ID)
                            & (app.data.answers["split"] == "test")]
    # split-aware: the bands a live score is placed in are the reference's rewards on benign prompts and its costs
    # on harmful prompts (AppData.reference_scores)
    aware = app.data.reference_scores()
    assert aware.split == "test"
    assert aware.scores["reward"] == tuple(rows.loc[rows["prompt_kind"] == "help", "reward"])
    assert aware.scores["cost"] == tuple(rows.loc[rows["prompt_kind"] == "harm", "cost"])
    # what the live chat's (and the votes' reveal) percentile bands use
    assert app.reference_scores == aware


# ---------------------------------------------------------------- context panel

def test_context_panel_says_what_the_assets_hold(app):
    meta, fronts = app.data.assets.meta, app.data.fronts
    text = context_markdown(app.data.assets.run_meta, app.data.report)
    assert f"`{meta['base_model']}`" in text
    for kind in ("reward", "cost"):
        acc = fronts["evaluators"][kind]["held_out_accuracy"]
        lo, hi = fronts["evaluators"][kind]["interval"]
        assert f"{acc:.0%} [{lo:.0%}, {hi:.0%}]" in text
    assert f"{fronts['n_prompts']['dev']} dev prompts" in text and f"{fronts['n_prompts']['test']} held-out" in text
    assert f"{meta['training']['help']['steps']} steps" in text
    assert "last 60 words repeat some 4-word sequence 3+ times" in text
    assert "**Scores are split-aware**" in text and "benign" in text and "**Evasion**" in text


def test_context_panel_degrades_when_fields_are_missing():
    text = context_markdown(RunMeta.from_json({"base_model": "m", "grid": {}}, "meta.json"), None)
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
    assert ids[PEO] == ids[SOUP] == info.model_id and ids[REFERENCE] == REFERENCE_MODEL_ID
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
    assert fig.layout.meta["picked"] == info.model_id


def test_the_coefficient_view_rings_the_front_without_a_crossing_line(app):
    """Joined in any score order, the dev-chosen front crossed itself in (c_help, c_harm): its models are ringed."""
    from app.coefficient_figure import FRONT_NAME

    front_ids = app.data.front_model_ids()
    fig = coefficient_figure(app.data.grid, front_ids, None)
    rings = [t for t in fig.data if t.name == FRONT_NAME]
    assert all(t.mode == "markers" for t in rings) and not [t for t in fig.data if "lines" in (t.mode or "")
                                                            and t.name == FRONT_NAME]
    if front_ids:
        assert len(rings) == 2 and len(rings[0].x) == len(front_ids)
        hovers = [t for t, mid in zip(fig.data[0].text, model_points(app.data.grid)["model_id"]) if mid in front_ids]
        assert hovers and all("on the PEO front chosen on the dev prompts" in t for t in hovers)


# ---------------------------------------------------------------- error bars and scored points on the front

def test_front_has_error_bars_of_one_standard_error(app):
    fig = figure_dict(app.data)
    grid = app.data.grid
    ref = next(t for t in fig["data"] if t.get("name") == "reference")
    row = grid[grid["method"] == "ref"].iloc[0]
    assert ref["error_x"]["array"] == [pytest.approx(row["cost_se"])]
    assert ref["error_y"]["array"] == [pytest.approx(row["reward_se"])]


# ---------------------------------------------------------------- on-demand scoring

def test_offgrid_answer_checks_read_the_prompt_as_the_sweep_does():
    """`evades` compares the answer with the prompt's last user message (peo.answer_checks.answer_signals)."""
    import pandas as pd

    from peo.answer_checks import answer_signals

    messages = [{"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "Hi."},
                {"role": "user", "content": "How do I make apple juice?"}]
    prompts = pd.DataFrame({"prompt_id": ["p1", "p2"], "prompt_kind": ["help", "help"],
                            "prompt": [json.dumps(messages)] * 2})
    evasive, direct = "I don't really understand. Can you explain it to me?", "Press the apples, then strain the juice."
    rows = answer_rows(prompts, [evasive, direct], [0.1, 0.2], [0.0, 0.0], [False, False])
    assert [r["evades"] for r in rows] == [True, False]
    assert rows[1] == {**rows[1], **answer_signals(direct, "How do I make apple juice?")}


def test_offgrid_point_is_scored_on_the_test_prompts(app):
    data = app.data
    info = data.point_info(0.25, 0.0, 0.25)
    assert needs_scoring(info) and not needs_scoring(data.point_info(0.5, 0.0, 0.0))
    prompts = scoring_prompts(data.answers)
    assert len(prompts) == data.n_prompts("test")
    start = time.perf_counter()
    progress = [len(rows) for rows in score_point(app.engine, info, prompts, sweep_decoding(data.assets.run_meta),
                                                  batch_size=3)]
    assert time.perf_counter() - start < 120
    assert progress[-1] == len(prompts) and progress == sorted(progress)
    *_, last = score_point(app.engine, info, prompts.iloc[:2], sweep_decoding(data.assets.run_meta))
    point = summarize(info, last, 2)
    assert point["n"] == 2 and point["complete"] and point["model_id"] == info.model_id
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



def test_a_scored_point_is_shown_as_scored_everywhere(app):
    """After scoring: the summary gives its figures (no "no precomputed scores"), the star sits at them with the
    diamond drawn over it, the compare view shows its answers, and a dev-only grid point's are used too."""
    from app.figure import PICKED_NAME

    data = app.data
    info = data.point_info(0.25, 0.0, 0.25)
    decoding = sweep_decoding(data.assets.run_meta)
    *_, rows = score_point(app.engine, info, scoring_prompts(data.answers).iloc[:3], decoding)
    point = summarize(info, rows, data.n_prompts("test"))
    assert not point["complete"]
    summary = cb.pick_summary(info, data, [point])
    assert "no precomputed scores" not in summary and "Scored on demand" in summary and "stopped part-way" in summary
    assert f"reward {point['reward_mean']:.3f} ± {point['reward_se']:.3f} on benign prompts" in summary
    assert "no precomputed scores" in cb.pick_summary(info, data, [])
    fig = figure_dict(data, info, [point])
    names = [t["name"] for t in fig["data"]]
    assert names.index(PICKED_NAME) < names.index(SCORED_NAME)  # the diamond over the star, not under it
    star = fig["data"][names.index(PICKED_NAME)]
    assert star["x"] == [pytest.approx(point["cost_mean"])] and star["y"] == [pytest.approx(point["reward_mean"])]
    assert fig["layout"]["meta"]["picked"] == info.model_id
    page = compare_html(data.answers, data.grid, info, COLORS, scored=[point])
    assert all(answer["answer"] in html.unescape(page) for answer in rows if answer["answer"])
    assert "below" not in page
    dev_only = data.grid[(data.grid["method"] == "peo") & (data.grid["split"] == "dev")].iloc[0]
    dev_info = data.point_info(dev_only.lambda_help, dev_only.phi_help, dev_only.phi_harm)
    dev_point = {**point, "model_id": dev_info.model_id}
    assert "Scored on demand" in cb.pick_summary(dev_info, data, [dev_point])
    assert "scored on demand" in compare_html(data.answers, data.grid, dev_info, COLORS, scored=[dev_point])


def test_compare_rows_and_scored_answers_download_as_csv(app, tmp_path, monkeypatch):
    """The compare view's rows (its filter, order and count) and the session's scored answers, as CSV files in the
    app's export folder."""
    import tempfile

    import pandas as pd

    from app import exports
    from app.compare_view import COMPARE_CSV_COLUMNS, compare_table
    from app.offgrid_scoring import scored_table

    data = app.data
    info = data.point_info(0.25, 0.0, 0.25)
    decoding = sweep_decoding(data.assets.run_meta)
    *_, rows = score_point(app.engine, info, scoring_prompts(data.answers).iloc[:2], decoding)
    point = summarize(info, rows, data.n_prompts("test"))
    table = compare_table(data.answers, data.grid, info, "harm", "prompt order", 3, [point])
    shown = select_rows(prompt_rows(data.answers, compared_models(data.grid, info), "test",
                                    pd.DataFrame(point["answers"])), "harm", "prompt order", 3)
    assert list(table.columns) == COMPARE_CSV_COLUMNS and set(table["kind"]) == {"harm"}
    assert list(dict.fromkeys(table["prompt_id"])) == [r.prompt_id for r in shown]
    assert len(table) == len(shown) * len(COMPARED)
    picked = table[table["model_id"] == info.model_id]
    scored_ids = {r["prompt_id"] for r in rows}
    assert picked["answer"].notna().tolist() == [pid in scored_ids for pid in picked["prompt_id"]]
    answers = scored_table([point])
    assert len(answers) == len(rows) and set(answers["model_id"]) == {info.model_id}
    assert not answers["complete"].any() and list(answers["answer"]) == [r["answer"] for r in rows]
    assert scored_table([]).empty

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    exports.remove_all()
    try:
        path = exports.download("rows.csv", lambda p: table.to_csv(p, index=False))
        assert exports.root() in path.parents and pd.read_csv(path).shape == table.shape
    finally:
        exports.remove_all()


def test_a_stopped_scoring_keeps_its_finished_batches_and_shows_an_eta(app, tmp_path, monkeypatch):
    """The page's scoring keeps each finished batch in the session's state as it comes: a Stop (the run closed
    part-way) keeps them, and says so; the progress carries an ETA."""
    import functools

    from app import offgrid_scoring
    from app.offgrid_scoring import eta_text

    monkeypatch.setattr(offgrid_scoring, "score_point", functools.partial(score_point, batch_size=2))
    from app.ui import build_demo
    from peo.votes import VoteStore

    assert eta_text(0, 200, 0.0) == "0 of 200 test prompts"
    assert eta_text(16, 200, 20.0) == "16 of 200 test prompts, about 230 s left"
    info = app.data.point_info(0.25, 0.0, 0.25)
    with VoteStore(tmp_path) as store:
        demo = build_demo(app, votes=store)
        fns = {getattr(f.fn, "__name__", ""): f.fn for f in demo.fns.values()}
        run = fns["run"](info, [], progress=lambda *a, **k: None)
        scored, status = next(run)
        run.close()  # what a Stop does to the event
        demo.close()
    (kept,) = scored
    assert kept["model_id"] == info.model_id and not kept["complete"] and kept["n"] == len(kept["answers"]) > 0
    assert "about" in status and "s left" in status
    text = fns["stopped"](info, scored)
    assert text.startswith("Stopped.") and f"on {kept['n']} test prompts (of {app.data.n_prompts('test')}: " in text
    assert fns["stopped"](info, []) == "Stopped before a batch finished: nothing was kept."


def test_page_builds_with_the_views(app):
    from app.ui import build_demo

    demo = build_demo(app)
    ids = {getattr(b, "elem_id", None) for b in demo.blocks.values()}
    assert {"context-panel", "compare-view", "coefficient-plot", "score-offgrid", "stop-scoring"} <= ids


def test_compare_view_shows_the_picked_points_pairwise_record():
    """On hand-made answers: the picked point against the soup at its λ and DPO-Help, per aspect, exact shares."""
    import pandas as pd

    picked, soup, helper = "c+1.500_+0.500", "c+0.500_+0.500", "c+1.000_+0.000"
    kinds = ["help", "help", "harm", "harm"]
    scores = {picked: ([1.0, 1.0, 0.0, 0.0], [0.0, 0.0, -1.0, 1.0]), soup: ([0.0, 2.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]),
              helper: ([0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0])}
    answers = pd.DataFrame([{"model_id": m, "split": "test", "prompt_id": f"p{i}", "prompt_kind": kinds[i],
                             "prompt": json.dumps([{"role": "user", "content": f"q{i}"}]), "answer": f"{m} {i}",
                             "reward": r[i], "cost": c[i], "cut": False, "evades": i == 3}
                            for m, (r, c) in scores.items() for i in range(4)])
    grid = pd.DataFrame([{"model_id": helper, "method": "help"}, {"model_id": soup, "method": "soup"}])
    info = Pick.model_construct(model_id=picked, lambda_help=0.5, c_help=1.5, c_harm=0.5, precomputed={"split": "test"})
    page = record_html(answers, grid, info)
    assert "Pairwise record on the test prompts" in page
    soup_row = page.split("Soup λ=0.5")[1].split("</tr>")[0]
    # helpfulness on p0, p1: won 1 (1 > 0), lost 1 (1 < 2); harmlessness on p2, p3: won 1 (−1 < 0), lost 1
    assert soup_row.count("won 50%") == 2 and soup_row.count("lost 50%") == 2
    help_row = page.split("DPO-Help")[1].split("</tr>")[0]
    assert "won 100%" in help_row and "tied 50%" in help_row  # harm: −1 < 1 wins, 1 = 1 ties
    votes = [{"choice": "peo", "columns": [{"column_key": "peo", "scales": {"help": 1.5, "harm": 0.5}},
                                           {"column_key": "soup", "scales": {"help": 0.5, "harm": 0.5}}]}]
    assert "human votes" in record_html(answers, grid, info, votes=votes)
    full = compare_html(answers, grid, info, COLORS, limit=None)
    assert "Pairwise record" in full and "evades" in full  # p3's answers carry the evasion flag
    untested = info.model_copy(update={"model_id": "c+9.000_+9.000"})
    assert record_html(answers, grid, untested) == ""  # no test answers: no record
