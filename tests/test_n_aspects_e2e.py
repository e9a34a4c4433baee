"""Three aspects end to end on one run: precompute's tiny3 profile (help, harm and brief, a third aspect from
data the fixture writes) → its assets and report → the app over HTTP → export, the exported model answering as
the app's PEO column does."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from peo.coefficients import coefficients, model_id
from peo.records import RunMeta

from conftest import run_tiny_pipeline

POINT_COLUMNS = ("lambda_help", "lambda_harm", "phi_help", "phi_harm", "phi_brief")


@pytest.fixture(scope="module")
def tiny3_assets(tmp_path_factory):
    return run_tiny_pipeline(tmp_path_factory.mktemp("tiny3-run"), profile="tiny3.yaml").out


def test_precompute_writes_a_three_aspect_run(tiny3_assets):
    meta = RunMeta.load(tiny3_assets / "meta.json")
    aspects = meta.aspect_set
    assert aspects.names == ("help", "harm", "brief") and aspects.evaluators == ("reward", "cost", "brevity")
    assert tuple(meta.grid) == POINT_COLUMNS
    for folder in ("adapters/help", "adapters/harm", "adapters/brief", "adapters/joint", "evaluators/brevity"):
        assert (tiny3_assets / folder).is_dir(), folder

    grid = pd.read_csv(tiny3_assets / "grid.csv")
    assert list(grid.columns[:11]) == ["model_id", "method", *POINT_COLUMNS, "c_help", "c_harm", "c_brief",
                                       "expo_alpha"]
    assert {"brevity_mean_dev", "brevity_se_test", "brevity_all_mean", "cost_mean"} <= set(grid.columns)
    assert set(grid["method"]) == {"peo", "soup", "expo", "ref", "help", "harm", "brief", "joint"}
    peo = grid[grid["method"] == "peo"]
    for row in peo.itertuples():  # every point is θ_ref + Σ c_i·Δ_i with λ on the simplex
        c = coefficients((row.lambda_help, row.lambda_harm), (row.phi_help, row.phi_harm, row.phi_brief))
        assert (row.c_help, row.c_harm, row.c_brief) == c and row.model_id == model_id(*c)
        assert row.lambda_help + row.lambda_harm <= 1.0 + 1e-9
    assert grid.loc[grid["method"] == "brief", "model_id"].iloc[0] == "c+0.000_+0.000_+1.000"

    answers = pd.read_parquet(tiny3_assets / "answers.parquet")
    assert set(answers["prompt_kind"]) == {"help", "harm", "brief"}
    assert {"c_brief", "brevity"} <= set(answers.columns) and answers["brevity"].notna().all()
    # split-aware: a model's brevity is its mean over the brief prompts only
    ref = answers[(answers["model_id"] == "c+0.000_+0.000_+0.000") & (answers["split"] == "test")]
    shown = grid[grid["method"] == "ref"].iloc[0]
    assert shown.brevity_mean_test == pytest.approx(ref.loc[ref["prompt_kind"] == "brief", "brevity"].mean())

    fronts = json.loads((tiny3_assets / "report" / "fronts.json").read_text())
    assert math.isfinite(fronts["fronts"]["peo"]["hypervolume"]) and fronts["difference"] is not None
    report = (tiny3_assets / "report" / "report.md").read_text()
    assert "brevity (brief)" in report and "DPO-Brief" in report and "3 aspects" in report


def test_the_app_and_export_serve_the_same_three_aspect_policy(tiny3_assets, tmp_path):
    from gradio_client import Client
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from app.screenshots import serve
    from peo.export import export_policy

    grid = pd.read_csv(tiny3_assets / "grid.csv")
    row = grid[(grid["method"] == "peo") & (grid["phi_brief"] > 0) & (grid["lambda_harm"] > 0)].iloc[0]
    point = tuple(float(getattr(row, c)) for c in POINT_COLUMNS)
    demo, url = serve(tiny3_assets)
    try:
        client = Client(url, verbose=False)
        info = client.predict(*point, api_name="/pick")
        assert info["model_id"] == row.model_id and info["on_grid"] and info["c_brief"] == row.c_brief
        assert info["precomputed"]["brevity_mean"] == pytest.approx(row.brevity_mean)
        with pytest.raises(Exception, match="over 1|outside"):  # free λs past the simplex
            client.predict(1.0, 1.0, 0.0, 0.0, 0.0, api_name="/pick")
        out = client.predict("Explain topic 3 briefly.", ["peo", "brief"], *point, 6, 0.0, 1.0, 0, 1.0,
                             api_name="/chat")
    finally:
        demo.close()
    assert list(out) == ["peo", "brief"]
    for column in out.values():
        assert isinstance(column["answer"], str)
        assert all(math.isfinite(column[e]) for e in ("reward", "cost", "brevity"))

    folder = export_policy(tiny3_assets, tmp_path / "merged", point=point)
    provenance = json.loads((folder / "peo_export.json").read_text())
    assert provenance["c_brief"] == row.c_brief and provenance["phi_brief"] == row.phi_brief
    model, tokenizer = AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    messages = [{"role": "user", "content": "Explain topic 3 briefly."}]
    batch = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    generated = model.generate(**batch, do_sample=False, max_new_tokens=6)
    exported = tokenizer.decode(generated[0, batch["input_ids"].shape[1]:], skip_special_tokens=True).strip()
    assert out["peo"]["answer"] == exported


def test_a_vote_on_a_three_aspect_turn_keeps_the_whole_point(tiny3_assets, tmp_path):
    from app.data import AppData
    from app.votes_panel import make_vote
    from peo.votes import VoteStore

    data = AppData.load(tiny3_assets)
    pick = data.point_info(0.5, 0.0, 0.0, 0.0, 0.5)  # λ_help 0.5, λ_harm 0 (λ_brief 0.5), ϕ_brief 0.5
    point = {k: getattr(pick, k) for k in (*data.aspects.point_columns, *data.aspects.coefficient_columns)}
    answers = [{"column": col, "scales": scales, "answer": f"answer of {col}",
                "conversation": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "a"}]}
               for col, scales in (("peo", dict(zip(data.aspects.names, pick.coefficients.values()))),
                                   ("brief", {"brief": 1.0}))]
    session = {"session": "s1", "pending": {"turn": 1, "columns": answers, "point": point, "settings": {"seed": 0},
                                            "blind": False, "voted": None}}
    vote = make_vote(session, "1", aspects=data.aspects)
    assert vote.choice == "brief"
    with VoteStore(tmp_path) as store:
        store.record(vote)
        stored = store.votes()[0]
    assert stored["point"]["c_brief"] == 1.0 and stored["point"]["lambda_harm"] == 0.0
