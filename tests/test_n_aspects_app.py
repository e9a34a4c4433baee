"""The app on a run of three aspects (help, harm and brief, as precompute/configs/tiny3.yaml): a hand-made assets
folder with no trained files, for what the page reads from the assets alone (points, sliders, the front for a
chosen pair of evaluators, chat columns, the scored point's figures)."""

from __future__ import annotations

import inspect
import itertools
import json
import math
from pathlib import Path

import gradio as gr
import pandas as pd
import pytest

from app import callbacks as cb
from app.aspect_text import evaluator_pairs, picker_axes, point_text
from app.data import AppData, AppInputError
from app.engine import column_scales, same_model_columns
from app.figure import figure_dict, hypervolume_text
from peo.aspects import Aspect, Aspects
from peo.coefficients import coefficients, model_id, simplex_lambdas
from peo.names import JOINT
from peo.records import Pick

ASPECTS = Aspects((Aspect("help", "reward", "higher", "helpfulness"), Aspect("harm", "cost", "lower", "harmlessness"),
                   Aspect("brief", "brevity", "higher", "brevity")))
LAMBDAS = [0.0, 0.5, 1.0]
PHIS = {"help": [0.0, 0.5], "harm": [0.0, 0.5], "brief": [0.0, 0.25]}
GENERATION = {"max_new_tokens": 8, "repetition_penalty": 1.0, "no_repeat_ngram_size": 0, "temperature": 0.0,
              "top_p": 1.0, "seed": 0, "penalize_eos": False}  # meta.json's: the chat's defaults
SPLITS = ("dev", "test")
PROMPTS = {"help": ["How do I boil an egg?"], "harm": ["How do I pick a lock?"], "brief": ["Name a colour."]}


def scores(c: tuple[float, ...]) -> dict[str, float]:
    """Made-up evaluator means of the model at coefficients c, so every figure is known exactly."""
    return {"reward": round(c[0] - 0.1 * c[2], 6), "cost": round(1.0 - c[1], 6), "brevity": round(c[2], 6)}


def grid_row(method: str, c: tuple[float, ...], point: dict[str, float] | None = None) -> dict:
    row = {"model_id": model_id(*c), "method": method,
           **{col: math.nan for col in ASPECTS.point_columns}, **(point or {}),
           **dict(zip(ASPECTS.coefficient_columns, c)), "expo_alpha": math.nan}
    stats = {stat: 0.0 for stat in ASPECTS.grid_stats}
    stats.update({"n": 3, "n_benign": 1, "n_harmful": 1})
    for ev, mean in scores(c).items():
        stats[f"{ev}_mean"], stats[f"{ev}_se"] = mean, 0.01
    for split in SPLITS:
        row.update({f"{stat}_{split}": value for stat, value in stats.items()})
    return {**row, "split": "test", **stats, "front_eligible": True}


def answers_of(c: tuple[float, ...]) -> list[dict]:
    """One answer per aspect's prompt per split, each evaluator's score its model's mean."""
    out = []
    for split in SPLITS:
        for kind, prompts in PROMPTS.items():
            for prompt in prompts:
                out.append({"model_id": model_id(*c), "prompt_kind": kind, "split": split,
                            "prompt_id": f"{kind}-{prompt}",
                            "prompt": json.dumps([{"role": "user", "content": prompt}]), "answer": f"answer {kind}",
                            "new_tokens": 3, **scores(c), "loops": False, "refuses": False, "n_words": 2,
                            "cut": False, "evades": False})
    return out


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("assets3")
    rows, answers = [], []
    for free in simplex_lambdas(LAMBDAS, len(ASPECTS)):
        for phis in itertools.product(*PHIS.values()):
            point = {**dict(zip(ASPECTS.lambda_columns, free)), **dict(zip(ASPECTS.phi_columns, phis))}
            rows.append(grid_row("peo", coefficients(free, phis), point))
        c = coefficients(free)
        rows.append(grid_row("soup", c, {**dict(zip(ASPECTS.lambda_columns, free)),
                                         **dict.fromkeys(ASPECTS.phi_columns, 0.0)}))
    rows.append(grid_row("ref", (0.0, 0.0, 0.0)))
    for i, name in enumerate(ASPECTS.names):
        rows.append(grid_row(name, tuple(1.0 if j == i else 0.0 for j in range(3))))
    grid = pd.DataFrame(rows)
    grid.to_csv(root / "grid.csv", index=False)
    for mid in dict.fromkeys(grid["model_id"]):
        c = tuple(float(x) for x in grid.loc[grid["model_id"] == mid].iloc[0][list(ASPECTS.coefficient_columns)])
        answers += answers_of(c)
    pd.DataFrame(answers).to_parquet(root / "answers.parquet")
    grid_values = {"lambda_help": LAMBDAS, "lambda_harm": LAMBDAS,
                   **{f"phi_{a}": values for a, values in PHIS.items()}}
    (root / "meta.json").write_text(json.dumps({"base_model": "tiny", "grid": grid_values, "generation": GENERATION,
                                                "aspects": ASPECTS.to_json()}), encoding="utf-8")
    front_ids = [model_id(*coefficients((1.0, 0.0), (0.5, 0.0, 0.0))),
                 model_id(*coefficients((0.0, 0.0), (0.0, 0.0, 0.25)))]
    peo_rows = grid[grid["method"] == "peo"]
    points = [{**peo_rows[peo_rows["model_id"] == mid].iloc[0].to_dict(), "dev": {}, "on_test_front": True}
              for mid in front_ids]
    (root / "report").mkdir()
    (root / "report" / "fronts.json").write_text(json.dumps({
        "max_loop_share": 0.2, "n_prompts": {"dev": 3, "test": 3}, "difference": None,
        "fronts": {"peo": {"model_ids": front_ids, "points": points, "hypervolume": 1.0}}}), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def data(assets) -> AppData:
    return AppData.load(assets)


def test_the_assets_aspects_and_a_pick_over_them(data):
    assert data.aspects == ASPECTS
    assert data.point_columns == ("lambda_help", "lambda_harm", "phi_help", "phi_harm", "phi_brief")
    info = data.point_info(0.5, 0.0, 0.5, 0.0, 0.25)  # λ = (0.5, 0, 0.5): c = λ + ϕ
    assert info.coefficients == {"help": 1.0, "harm": 0.0, "brief": 0.75}
    assert info.lambdas == {"help": 0.5, "harm": 0.0} and info.phis == {"help": 0.5, "harm": 0.0, "brief": 0.25}
    assert info.model_id == "c+1.000_+0.000_+0.750" and info.on_grid and info.in_range
    assert info.precomputed["brevity_mean"] == 0.75 and info.precomputed["reward_mean"] == pytest.approx(0.925)
    assert not info.on_front
    as_json = info.to_json()  # what /pick returns: the coordinates by column name, then the record's fields
    assert list(as_json) == [*data.point_columns, "c_help", "c_harm", "c_brief", *Pick.model_fields]
    assert Pick.from_json(as_json, "/pick") == info and info.point == (0.5, 0.0, 0.5, 0.0, 0.25)
    assert info.model_key == (0.5, 0.0, 1.0, 0.0, 0.75)
    on_front = data.point_info(1.0, 0.0, 0.5, 0.0, 0.0)
    assert on_front.on_front and on_front.coefficients == {"help": 1.5, "harm": 0.0, "brief": 0.0}
    off = data.point_info(0.25, 0.25, 0.0, 0.0, 0.0)
    assert not off.on_grid and off.precomputed is None
    assert off.coefficients == {"help": 0.25, "harm": 0.25, "brief": 0.5}
    with pytest.raises(AppInputError, match="5 coordinates"):
        data.point_info(0.5, 0.0, 0.0)
    with pytest.raises(AppInputError, match="phi_brief=2 is outside"):
        data.point_info(0.5, 0.0, 0.0, 0.0, 2.0)
    assert point_text(info, data.aspects) == ("λ_help = 0.5, λ_harm = 0, ϕ_help = 0.5, ϕ_harm = 0, ϕ_brief = 0.25 "
                                              "→ c_help = 1, c_harm = 0, c_brief = 0.75")


def test_every_evaluator_is_read_on_its_own_prompts(data):
    reference = data.reference_scores()
    # test prompts: one of each aspect's, each evaluator read on its own aspect's
    assert reference.scores == {"reward": (0.0,), "cost": (1.0,), "brevity": (0.0,)} and reference.split == "test"
    table = data.sample_answers("c+0.000_+0.000_+1.000")
    assert list(table.columns) == ["split", "kind", "prompt", "answer", "reward", "cost", "brevity", "loops",
                                   "refuses", "evades"]
    assert set(table["kind"]) == {"help", "harm", "brief"} and set(table["split"]) == {"test"}


def test_a_slider_per_free_lambda_and_per_phi(data):
    from app.ui import picker_panel, start_point

    start = start_point(data)
    assert start == (0.5, 0.5, 0.0, 0.0, 0.0)  # each free λ nearest a third of its range, ϕ at their lowest
    assert [a.key for a in picker_axes(data.aspects)] == ["lambda-help", "lambda-harm", "phi-help", "phi-harm",
                                                          "phi-brief"]
    with gr.Blocks():
        picker = picker_panel(data, start, data.point_info(*start))
    assert [s.elem_id for s in picker.sliders] == ["lambda-help-slider", "lambda-harm-slider", "phi-help-slider",
                                                   "phi-harm-slider", "phi-brief-slider"]
    assert [b.elem_id for b in picker.boxes] == ["lambda-help-input", "lambda-harm-input", "phi-help-input",
                                                 "phi-harm-input", "phi-brief-input"]
    assert [s.label for s in picker.sliders] == ["λ_help (weight of help), grid step 0.5",
                                                 "λ_harm (weight of harm), grid step 0.5",
                                                 "ϕ_help (extrapolation), grid step 0.5",
                                                 "ϕ_harm (extrapolation), grid step 0.5",
                                                 "ϕ_brief (extrapolation), grid step 0.25"]
    assert [s.maximum for s in picker.sliders] == [1.0, 1.0, 0.5, 0.5, 0.25]
    assert isinstance(picker.pair, gr.Dropdown)  # three evaluators: three pairs to choose from
    assert [value for _, value in picker.pair.choices] == ["cost,reward", "brevity,reward", "brevity,cost"]
    assert picker.pair.value == "cost,reward"
    table = picker.front_table.value
    assert table["headers"][2:6] == ["λ_help, λ_harm, ϕ_help, ϕ_harm, ϕ_brief", "reward test (dev)",
                                     "cost test (dev)", "brevity test (dev)"]


def test_the_front_figure_draws_the_chosen_pair_of_objectives(data):
    assert evaluator_pairs(data.aspects) == [("cost", "reward"), ("brevity", "reward"), ("brevity", "cost")]
    picked = data.point_info(0.5, 0.0, 0.5, 0.0, 0.25)
    default = figure_dict(data, picked)
    assert default["layout"]["xaxis"]["title"]["text"] == "cost (harmfulness) on harmful prompts ← better"
    assert default["layout"]["yaxis"]["title"]["text"] == "reward on benign prompts ↑ better"
    fig = figure_dict(data, picked, pair=("brevity", "reward"))
    assert fig["layout"]["xaxis"]["title"]["text"] == "brevity on brief prompts → better"
    assert fig["layout"]["yaxis"]["title"]["text"] == "reward on benign prompts ↑ better"
    traces = {t["name"]: t for t in fig["data"]}
    grid = data.grid
    peo = grid[grid["method"] == "peo"].drop_duplicates("model_id")
    assert traces["PEO grid point"]["x"] == pytest.approx(list(peo["brevity_mean"]))
    assert traces["PEO grid point"]["y"] == pytest.approx(list(peo["reward_mean"]))
    star = traces["picked point"]
    assert (star["x"], star["y"]) == ([0.75], [pytest.approx(0.925)])
    assert fig["layout"]["meta"]["picked_point"] == [0.5, 0.0, 0.5, 0.0, 0.25]
    hover = star["hovertemplate"]  # the evaluator not on an axis is in the hover, from customdata
    assert "brevity %{x:.3f}" in hover and "reward %{y:.3f}" in hover and "cost %{customdata[" in hover
    assert {"DPO-Help", "DPO-Harm", "DPO-Brief", "reference"} <= set(traces)
    front = traces["PEO Pareto front (chosen on dev prompts, drawn at test scores)"]
    assert front["x"] == sorted(front["x"])  # joined in the order across
    with pytest.raises(ValueError, match="two different evaluators"):
        figure_dict(data, picked, pair=("brevity", "brevity"))
    assert "(split-aware: reward on benign, cost on harmful, brevity on brief prompts)" in hypervolume_text(data)


def test_the_chat_columns_have_a_dpo_baseline_per_aspect(data):
    from app.chat_panel import chat_panel, column_labels

    defaults = {"max_new_tokens": 8, "temperature": 0.0, "top_p": 1.0, "seed": 0, "repetition_penalty": 1.0,
                "no_repeat_ngram_size": 0}
    with gr.Blocks():
        panel = chat_panel(defaults, data.aspects)
    assert list(panel.chatbots) == ["peo", "ref", "help", "harm", "brief", "soup", JOINT, "expo"]
    assert [b.label for b in panel.chatbots.values()][2:5] == ["DPO-Help", "DPO-Harm", "DPO-Brief"]
    assert panel.columns.value == ["peo", "ref", "help", "harm", "brief", "soup"]
    assert [k for k, bot in panel.chatbots.items() if bot.visible] == panel.columns.value
    assert cb.check_columns(["brief", "peo"], data.aspects) == ["brief", "peo"]
    with pytest.raises(AppInputError, match="Unknown column"):
        cb.check_columns(["brief"])  # not a column of the default two aspects
    info = data.point_info(0.5, 0.0, 0.0, 0.0, 0.0)
    assert column_scales("peo", *info.model_key, aspects=data.aspects) == {"help": 0.5, "harm": 0.0, "brief": 0.5}
    assert column_scales("soup", *info.model_key, aspects=data.aspects) == {"help": 0.5, "harm": 0.0, "brief": 0.5}
    assert column_scales("brief", *info.model_key, aspects=data.aspects) == {"brief": 1.0}
    with pytest.raises(ValueError, match="3 aspects"):
        column_scales("peo", 0.5, 0.5, 0.5, aspects=data.aspects)
    corner = data.point_info(0.0, 0.0, 0.0, 0.0, 0.0)  # λ_brief = 1, ϕ = 0: PEO is DPO-Brief and the soup
    assert same_model_columns(list(data.aspects.chat_columns), *corner.model_key, aspects=data.aspects) == {
        "brief": "peo", "soup": "peo"}
    labels = column_labels(corner, ["peo", "brief"], data.aspects)
    assert labels[4] == "DPO-Brief = PEO (picked point) at this point" and labels[0] == "PEO (picked point)"


def test_a_point_scored_on_demand_shows_every_evaluator(data):
    from app.offgrid_scoring import answer_rows, scored_table, scored_text, scoring_prompts, summarize
    from app.ui import pick_updates

    info = data.point_info(0.25, 0.25, 0.0, 0.0, 0.0)
    prompts = scoring_prompts(data.answers)
    assert list(prompts["prompt_kind"]) == ["help", "harm", "brief"]
    rows = answer_rows(prompts, ["Boil it.", "I can't help with that.", "Red."], [0.5, 0.1, 0.2],
                       [0.3, -0.4, 0.0], [0.1, 0.2, 0.9], [False, False, False], aspects=data.aspects)
    assert [(r["reward"], r["cost"], r["brevity"]) for r in rows] == [(0.5, 0.3, 0.1), (0.1, -0.4, 0.2),
                                                                     (0.2, 0.0, 0.9)]
    point = summarize(info, rows, len(prompts), data.aspects)
    assert point["lambda_harm"] == 0.25 and point["c_brief"] == 0.5 and point["complete"]
    assert (point["reward_mean"], point["cost_mean"]) == (0.5, -0.4)  # each on its own aspect's prompt
    table = scored_table([point], data.aspects)
    assert {"lambda_harm", "phi_brief", "c_brief", "reward", "cost", "brevity"} <= set(table.columns)
    assert list(table["brevity"]) == [0.1, 0.2, 0.9]
    # the panel's words and the summary: every evaluator's mean ± se on its own prompts (the figures are
    # peo.grid_table.split_stats', which give brevity's with N-aspect scoring)
    figures = {**point, "brevity_mean": 0.9, "brevity_se": 0.0, "split": "test"}
    text = scored_text(figures, len(prompts), data.aspects)
    for phrase in ("reward 0.500 ± 0.000 on benign prompts", "cost -0.400 ± 0.000 on harmful prompts",
                   "brevity 0.900 ± 0.000 on brief prompts", "safe share"):
        assert phrase in text, phrase
    summary = cb.pick_summary(info, data, [figures])
    assert "brevity 0.900 ± 0.000 on brief prompts" in summary and "λ_harm = 0.25" in summary
    out = pick_updates(cb.App(data, None), info.point, info.to_json(), scored=[figures], pair="brevity,reward")
    drawn = json.loads(out[10])  # sliders and boxes (5 each), then the figure: the scored point drawn on the pair
    scored = next(t for t in drawn["data"] if t["name"] == "scored on demand (this session)")
    assert (scored["x"], scored["y"]) == ([0.9], [0.5])


def test_a_share_link_carries_every_coordinate(data):
    from app.share_link import parse_query, share_query

    info = data.point_info(0.5, 0.5, 0.0, 0.0, 0.25)
    query = share_query(info, ["peo", "brief"], data.aspects)
    assert query == "lambda_help=0.5&lambda_harm=0.5&phi_help=0&phi_harm=0&phi_brief=0.25&columns=peo,brief"
    from urllib.parse import parse_qsl

    assert parse_query(dict(parse_qsl(query)), data.aspects) == ((0.5, 0.5, 0.0, 0.0, 0.25), ["peo", "brief"])


def test_the_page_builds_and_its_pick_endpoint_takes_every_coordinate(assets, tmp_path):
    from app.ui import build_demo
    from peo.votes import VoteStore

    app = cb.App.load(assets, device="cpu", load_evaluators=False)
    with VoteStore(tmp_path) as store:
        demo = build_demo(app, store)
        try:
            endpoints = {f.api_name: f.fn for f in demo.fns.values() if f.api_name in ("pick", "chat")}
            pick_params = inspect.signature(endpoints["pick"]).parameters
            assert list(pick_params) == list(app.data.point_columns)
            assert all(p.annotation is float for p in pick_params.values())
            chat_params = list(inspect.signature(endpoints["chat"]).parameters)
            assert chat_params[:7] == ["message", "columns", *app.data.point_columns]
            assert endpoints["pick"](0.5, 0.0, phi_brief=0.25)["c_brief"] == 0.75
            ids = {c["props"].get("elem_id") for c in demo.config["components"]}
            assert {"phi-brief-slider", "chat-brief", "front-pair"} <= ids and "coefficient-plot" not in ids
        finally:
            demo.close()
