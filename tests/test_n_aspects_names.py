"""Served names, export, votes, judge pairs and the CLI over three aspects (help, harm, brief) read from meta.json:
every N-aspect name form and its range errors, the catalog, and an exported 3-aspect point equal to the
hand-merged weights."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from itertools import product

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from peo.aspects import DEFAULT_ASPECTS
from peo.model_names import FamilyRange, ModelNameError, catalog, in_family, parse_model, syntax
from peo.records import RunMeta

ASPECTS = [{"name": "help", "evaluator": "reward", "better": "higher", "label": "helpfulness"},
           {"name": "harm", "evaluator": "cost", "better": "lower", "label": "harmlessness"},
           {"name": "brief", "evaluator": "brevity", "better": "higher", "label": "brevity"}]
GRID = {"lambda_help": [0.0, 0.5, 1.0], "lambda_harm": [0.0, 0.5, 1.0], "phi_help": [0.0, 0.5],
        "phi_harm": [0.0, 0.5], "phi_brief": [0.0, 1.0]}
META = RunMeta.from_json({"base_model": "tiny", "aspects": ASPECTS, "grid": GRID,
                          "config": {"sweep": {"expo_alphas": [0.5, 1.5]}}}, "meta.json")
FAMILY = FamilyRange.from_run_meta(META)


# ---------------------------------------------------------------- names


def test_the_range_holds_the_run_aspects_and_every_point_column():
    assert FAMILY.aspects == META.aspect_set and FAMILY.aspects.names == ("help", "harm", "brief")
    assert set(FAMILY.axes) == set(GRID) and FAMILY.expo_alpha == (0.5, 1.5)
    described = FAMILY.describe()
    assert list(described) == [*GRID, "expo_alpha", "c_help", "c_harm", "c_brief"]
    # free λ weights on the simplex: each in [0, 1]; λ_brief = 1 − their sum in [0, 1]
    assert [described[c] for c in ("c_help", "c_harm", "c_brief")] == [
        {"min": 0.0, "max": 1.5}, {"min": 0.0, "max": 1.5}, {"min": 0.0, "max": 2.0}]


def test_a_point_by_its_free_lambdas_and_phis():
    p = parse_model("peo:lambda_help=0.5,lambda_harm=0.25,phi_brief=0.5", FAMILY)
    assert p.method == "peo" and p.point == (0.5, 0.25, 0.0, 0.0, 0.5)
    assert p.coefficients == (0.5, 0.25, 0.75) and p.scales == {"help": 0.5, "harm": 0.25, "brief": 0.75}
    assert p.model_id == "c+0.500_+0.250_+0.750"
    assert p.name == "peo:lambda_help=0.5,lambda_harm=0.25,phi_help=0,phi_harm=0,phi_brief=0.5"
    assert parse_model(p.name, FAMILY) == p


def test_a_point_by_its_coefficients_and_by_its_model_id_are_the_same_model():
    by_c = parse_model("peo:c_help=0.5,c_harm=0.25,c_brief=0.75", FAMILY)
    by_lam = parse_model("peo:lambda_help=0.5,lambda_harm=0.25,phi_brief=0.5", FAMILY)
    by_id = parse_model("c+0.500_+0.250_+0.750", FAMILY)
    assert by_c.scales == by_lam.scales == by_id.scales and by_c.model_id == by_lam.model_id == by_id.model_id
    assert by_c.point is None and by_c.name == "peo:c_help=0.5,c_harm=0.25,c_brief=0.75"
    assert by_id.name == "c+0.500_+0.250_+0.750" and "," not in by_id.name and "=" not in by_id.name


@pytest.mark.parametrize("name, method, scales, model_id", [
    ("reference", "ref", {}, "c+0.000_+0.000_+0.000"),
    ("dpo-help", "help", {"help": 1.0}, "c+1.000_+0.000_+0.000"),
    ("dpo-harm", "harm", {"harm": 1.0}, "c+0.000_+1.000_+0.000"),
    ("dpo-brief", "brief", {"brief": 1.0}, "c+0.000_+0.000_+1.000"),
    ("joint", "joint", {"joint": 1.0}, "joint"),
    ("soup:lambda_help=0.5,lambda_harm=0.5", "soup", {"help": 0.5, "harm": 0.5, "brief": 0.0},
     "c+0.500_+0.500_+0.000"),
    ("soup:lambda_help=0.25,lambda_harm=0", "soup", {"help": 0.25, "harm": 0.0, "brief": 0.75},
     "c+0.250_+0.000_+0.750"),
    ("expo:alpha=1.5", "expo", {"joint": 1.5}, "joint+1.500"),
    ("c+0.000_+0.000_+1.000", "brief", {"brief": 1.0}, "c+0.000_+0.000_+1.000"),  # the grid's DPO-Brief row
    ("c+0.000_+0.000_+0.000", "ref", {}, "c+0.000_+0.000_+0.000"),
])
def test_baselines_soup_and_expo(name, method, scales, model_id):
    p = parse_model(name, FAMILY)
    assert (p.method, p.scales, p.model_id) == (method, scales, model_id)


def test_soup_names_every_free_lambda_and_reads_back():
    p = parse_model("soup:lambda_harm=0.5,lambda_help=0.25", FAMILY)
    assert p.name == "soup:lambda_help=0.25,lambda_harm=0.5" and p.point == (0.25, 0.5, 0.0, 0.0, 0.0)
    assert parse_model(p.name, FAMILY) == p


@pytest.mark.parametrize("name, reason", [
    ("peo:lambda_help=1.5,lambda_harm=0", "lambda_help=1.5 is outside the range these assets support: [0, 1]"),
    ("peo:lambda_help=0.75,lambda_harm=0.5",
     "lambda_help + lambda_harm = 1.25 is over 1: the free lambdas are weights on the simplex "
     "(lambda_brief = 1 minus their sum)"),
    ("soup:lambda_help=0.5,lambda_harm=0.75", "lambda_help + lambda_harm = 1.25 is over 1"),
    ("peo:lambda_help=0.5,lambda_harm=0,phi_brief=2", "phi_brief=2 is outside the range these assets support: [0, 1]"),
    ("peo:lambda_help=0.5", "lambda_harm is required (phi_help, phi_harm and phi_brief default to 0)"),
    ("soup:lambda_help=0.5", "lambda_harm is required"),
    ("peo:lambda=0.5,lambda_harm=0", "unknown key 'lambda'"),  # `lambda` is the two-aspect spelling only
    ("peo:c_help=1,c_harm=0", "not a mix"),
    ("peo:lambda_help=0.5,lambda_harm=0,c_brief=1", "by all of c_help, c_harm, c_brief, not a mix"),
    ("c+1.000_+0.000", "has 2 coefficients; these assets have 3 aspects (help, harm, brief)"),
    ("dpo-fun", "unknown model 'dpo-fun'"),
    # every coefficient within its own bounds, but no λ on the simplex and ϕ in the box gives them together
    ("peo:c_help=1.5,c_harm=1.5,c_brief=0", "outside the family these assets support"),
    ("c+1.500_+1.500_+0.000", "outside the family"),
    ("peo:c_help=0,c_harm=0,c_brief=0", "outside the family"),  # the reference: the weights sum to 1
    ("peo:c_help=0,c_harm=0,c_brief=2.5", "c_brief in [0, 2]"),
])
def test_out_of_range_and_malformed_names_say_why(name, reason):
    with pytest.raises(ModelNameError, match=re.escape(reason)):
        parse_model(name, FAMILY)


def brute_force_in_family(c: tuple[float, ...], step: float = 0.05) -> bool:
    """Whether a point of a fine lattice of the grid's box on the simplex gives `c` (within half a step)."""
    lams = [i * step for i in range(int(1 / step) + 1)]
    for lh, la in product(lams, lams):
        if lh + la > 1 + 1e-9:
            continue
        phis = (c[0] - lh, c[1] - la, c[2] - (1 - lh - la))
        bounds = [(0, 0.5), (0, 0.5), (0, 1)]
        if all(lo - step / 2 - 1e-9 <= p <= hi + step / 2 + 1e-9 for p, (lo, hi) in zip(phis, bounds)):
            return True
    return False


def test_the_coefficient_check_is_exact_against_a_brute_force_search():
    """Random coefficient tuples away from the boundary: the interval check and a lattice search agree."""
    generator = torch.Generator().manual_seed(0)
    checked = 0
    for c in (torch.rand(400, 3, generator=generator) * torch.tensor([1.8, 1.8, 2.4]) - 0.2).tolist():
        c = tuple(round(x, 2) for x in c)
        near = [brute_force_in_family(c, 0.05), brute_force_in_family(c, 0.01)]
        if near[0] != near[1]:
            continue  # at the boundary the lattice's tolerance decides; skip
        assert in_family(c, FAMILY) == near[1], c
        checked += 1
    assert checked > 300


def test_catalog_lists_the_n_aspect_family_by_names_that_parse_back():
    names = [p.name for p in catalog(FAMILY)]
    assert names[:5] == ["reference", "dpo-help", "dpo-harm", "dpo-brief", "joint"]
    simplex = [(a, b) for a in GRID["lambda_help"] for b in GRID["lambda_harm"] if a + b <= 1]
    assert len(simplex) == 6
    assert names[5:11] == [f"soup:lambda_help={a:g},lambda_harm={b:g}" for a, b in simplex]
    assert names[11:13] == ["expo:alpha=0.5", "expo:alpha=1.5"]
    assert len(names) == 5 + 6 + 2 + 6 * 2 * 2 * 2 and len(set(names)) == len(names)
    assert "peo:lambda_help=0.5,lambda_harm=0.5,phi_help=0.5,phi_harm=0,phi_brief=1" in names
    assert all(parse_model(n, FAMILY).name == n for n in names)


def test_two_aspects_keep_lambda_and_also_read_lambda_help():
    two = FamilyRange.from_run_meta(RunMeta(base_model="tiny", grid={"lambda_help": [0.0, 1.0], "phi_help": [0.0, 1.0],
                                                                      "phi_harm": [0.0, 1.0]}))
    assert two.aspects is DEFAULT_ASPECTS
    p = parse_model("peo:lambda_help=0.25,phi_help=1", two)
    assert p.name == "peo:lambda=0.25,phi_help=1,phi_harm=0" and p.point == (0.25, 1.0, 0.0)
    assert parse_model("soup:lambda_help=0.5", two).name == "soup:lambda=0.5"
    assert syntax(DEFAULT_ASPECTS)[0].startswith("peo:lambda=L,phi_help=P,phi_harm=Q")
    assert syntax(FAMILY.aspects)[0].startswith("peo:lambda_help=L1,lambda_harm=L2,phi_help=P1,phi_harm=P2,"
                                                "phi_brief=P3")


def test_a_grid_without_a_point_column_is_refused_at_load():
    meta = RunMeta.from_json({"base_model": "tiny", "aspects": ASPECTS,
                              "grid": {k: v for k, v in GRID.items() if k != "phi_brief"}}, "meta.json")
    with pytest.raises(ModelNameError, match="meta.json grid lacks phi_brief"):
        FamilyRange.from_run_meta(meta)


# ---------------------------------------------------------------- votes


def vote3(**changes):
    from peo.votes import ColumnAnswer, Vote

    point = {"lambda_help": 0.5, "lambda_harm": 0.25, "phi_help": 0.0, "phi_harm": 0.0, "phi_brief": 0.5,
             "c_help": 0.5, "c_harm": 0.25, "c_brief": 0.75}
    conversation = [{"role": "user", "content": "hi"}]
    columns = tuple(ColumnAnswer(col, scales, answer, [*conversation, {"role": "assistant", "content": answer}])
                    for col, scales, answer in (("peo", {"help": 0.5, "harm": 0.25, "brief": 0.75}, "Hello."),
                                                ("brief", {"brief": 1.0}, "Hi.")))
    fields = dict(session_id="s3", turn=1, point=point, columns=columns, choice="brief", settings={"seed": 1},
                  aspects=META.aspect_set)
    return Vote(**{**fields, **changes})


def test_votes_store_a_three_aspect_point_as_json_and_read_it_back(tmp_path):
    from peo.votes import VotesError, VoteStore

    with VoteStore(tmp_path) as store:
        store.record(vote3())
        (row,) = store.votes()
        assert row["point"] == vote3().point and list(row["point"]) == list(vote3().point)
        assert row["model_id"] == "c+0.500_+0.250_+0.750"
        assert (row["lambda_help"], row["c_harm"]) == (0.5, 0.25)  # help's and harm's own columns, as ever
        assert [c["label"] for c in row["columns"]] == ["PEO (picked point)", "DPO-Brief"]
        assert [g["column"] for g in store.aggregate()] == ["peo", "brief"]
        with pytest.raises(VotesError, match="point phi_brief"):
            store.record(vote3(turn=2, point={k: v for k, v in vote3().point.items() if k != "phi_brief"}))
        with pytest.raises(VotesError, match="expected distinct columns"):  # `brief` is no column of help/harm
            store.record(vote3(turn=2, aspects=DEFAULT_ASPECTS, point={
                "lambda_help": 0.5, "phi_help": 0.0, "phi_harm": 0.0, "c_help": 0.5, "c_harm": 0.5}))
    stored = sqlite3.connect(tmp_path / "votes.sqlite3").execute("SELECT point FROM votes").fetchall()
    assert [json.loads(p) for (p,) in stored] == [vote3().point]


def test_a_two_aspect_vote_keeps_its_columns_and_a_null_point(tmp_path):
    import sys

    from conftest import REPO

    sys.path.insert(0, str(REPO / "tests"))
    from test_votes import POINT, make_vote

    from peo.votes import VoteStore

    with VoteStore(tmp_path) as store:
        store.record(make_vote())
        (row,) = store.votes()
    assert row["point"] == POINT and row["model_id"] == "c+0.900_+0.600"
    assert sqlite3.connect(tmp_path / "votes.sqlite3").execute("SELECT point FROM votes").fetchall() == [(None,)]


def test_a_version_2_database_gets_the_point_column_and_keeps_its_votes(tmp_path):
    from peo.votes import DB_FILE, SCHEMA_VERSION, VoteStore, migrate

    conn = sqlite3.connect(tmp_path / DB_FILE, isolation_level=None)
    assert migrate(conn, upto=2) == 2
    conn.execute("INSERT INTO votes (created_at, session_id, turn, lambda_help, phi_help, phi_harm, c_help, c_harm, "
                 "model_id, choice, settings, seed) VALUES ('t', 'old', 1, 0.5, 0, 0, 0.5, 0.5, 'c', 'tie', '{}', 0)")
    conn.close()
    with VoteStore(tmp_path) as store:
        assert store.schema_version() == SCHEMA_VERSION == 3
        (old,) = store.votes()
        assert old["point"] == {"lambda_help": 0.5, "phi_help": 0.0, "phi_harm": 0.0, "c_help": 0.5, "c_harm": 0.5}
        store.record(vote3())
        assert store.count() == 2


# ---------------------------------------------------------------- judge pairs


def test_judge_pairs_leave_out_the_prompts_of_an_aspect_it_has_no_question_for():
    from peo.judge import JudgeError, pairs_from_answers

    def row(model, pid, kind):
        return {"model_id": model, "prompt_id": pid, "prompt_kind": kind, "split": "test", "answer": f"{model}{pid}",
                "prompt": json.dumps([{"role": "user", "content": f"prompt {pid}"}])}

    frame = pd.DataFrame([row(m, pid, kind) for m in "PO" for pid, kind in (("1", "help"), ("2", "harm"),
                                                                          ("3", "brief"))])
    records = pairs_from_answers(frame, "P", "O", aspects=META.aspect_set)
    assert [(r["prompt_kind"], r["aspect"]) for r in records] == [("harm", "harmlessness"), ("help", "helpfulness")]
    only_brief = RunMeta.from_json({"base_model": "tiny", "grid": {}, "aspects": [
        {"name": "brief", "evaluator": "brevity", "better": "higher", "label": "brevity"},
        {"name": "calm", "evaluator": "calmness", "better": "higher", "label": "calmness"}]}, "meta.json")
    with pytest.raises(JudgeError, match="none of these assets' aspects"):
        pairs_from_answers(frame, "P", "O", aspects=only_brief.aspect_set)


# ---------------------------------------------------------------- export


@pytest.fixture(scope="module")
def three_aspect_assets(tiny_base, tiny_adapters, tmp_path_factory):
    """A hand-built assets folder of three aspects: meta.json, grid.csv, answers.parquet and four adapters."""
    from conftest import random_lora_adapter

    root = tmp_path_factory.mktemp("assets3")
    (root / "adapters").mkdir()
    for name in ("help", "harm", "joint"):
        shutil.copytree(tiny_adapters[name], root / "adapters" / name)
    random_lora_adapter(tiny_base, root / "adapters" / "brief", seed=4)
    meta = {"base_model": "tiny", "aspects": ASPECTS, "grid": GRID, "profile": "hand3",
            "generation": {"max_new_tokens": 8, "temperature": 0.0, "top_p": 1.0, "seed": 0,
                           "repetition_penalty": 1.0, "no_repeat_ngram_size": 0}}
    (root / "meta.json").write_text(json.dumps(meta))
    (root / "grid.csv").write_text("model_id,method\nc+0.500_+0.250_+0.750,peo\n")
    pd.DataFrame({"model_id": ["c+0.500_+0.250_+0.750"], "answer": ["x"]}).to_parquet(root / "answers.parquet")
    return root


def hand_merged(base: str, adapters: dict, c: dict[str, float]) -> dict[str, torch.Tensor]:
    """The base's weights plus Σ c_a·(alpha/r)·B_a·A_a, read straight from each adapter's files."""
    from peo.model_source import load_causal_lm

    weights = {k: v.clone() for k, v in load_causal_lm(base).state_dict().items()}
    for name, scale in c.items():
        config = json.loads((adapters[name] / "adapter_config.json").read_text())
        tensors = load_file(str(adapters[name] / "adapter_model.safetensors"))
        for key, A in tensors.items():
            if ".lora_A." not in key:
                continue
            B = tensors[key.replace(".lora_A.", ".lora_B.")]
            target = key.removeprefix("base_model.model.").replace(".lora_A.weight", ".weight")
            weights[target] += scale * config["lora_alpha"] / config["r"] * (B @ A)
    return weights


def test_export_of_a_three_aspect_point_equals_the_hand_merged_weights(three_aspect_assets, tiny_base, tmp_path,
                                                                       capsys):
    from transformers import AutoModelForCausalLM

    from peo.__main__ import main
    from peo.export import ExportError, export_policy
    from peo.model_source import load_causal_lm

    adapters = {n: three_aspect_assets / "adapters" / n for n in ("help", "harm", "brief")}
    expected = hand_merged(tiny_base, adapters, {"help": 0.5, "harm": 0.25, "brief": 0.75})

    folder = export_policy(three_aspect_assets, tmp_path / "merged", point=(0.5, 0.25, 0.0, 0.0, 0.5))
    got = AutoModelForCausalLM.from_pretrained(folder).state_dict()
    base_weights = load_causal_lm(tiny_base).state_dict()
    changed = [k for k in expected if not torch.equal(expected[k], base_weights[k])]
    assert changed, "the adapters touch some weights"
    for key, value in expected.items():
        torch.testing.assert_close(got[key], value, atol=1e-5, rtol=1e-5)
    provenance = json.loads((folder / "peo_export.json").read_text())
    assert {k: provenance[k] for k in (*GRID, "c_help", "c_harm", "c_brief")} == {
        "lambda_help": 0.5, "lambda_harm": 0.25, "phi_help": 0.0, "phi_harm": 0.0, "phi_brief": 0.5,
        "c_help": 0.5, "c_harm": 0.25, "c_brief": 0.75}
    assert "adapters/brief/adapter_model.safetensors" in provenance["sha256"]
    assert "θ_ref + 0.5·Δ_help + 0.25·Δ_harm + 0.75·Δ_brief" in (folder / "README.md").read_text()

    # the CLI's --point takes the model-name syntax; the adapter format is the cat of the three adapters
    assert main(["export", "--point", "c_help=0.5,c_harm=0.25,c_brief=0.75", "--format", "adapter",
                 "--out", str(tmp_path / "adapter"), "--assets", str(three_aspect_assets)]) == 0
    from peft import PeftModel

    peft_model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_base), str(tmp_path / "adapter"))
    ids = torch.tensor([[1, 50, 200, 7, 900, 33]])
    with torch.no_grad():
        torch.testing.assert_close(peft_model(input_ids=ids).logits,
                                   AutoModelForCausalLM.from_pretrained(folder)(input_ids=ids).logits,
                                   atol=1e-4, rtol=1e-4)
    assert json.loads((tmp_path / "adapter" / "peo_export.json").read_text())["model"] == \
        "peo:c_help=0.5,c_harm=0.25,c_brief=0.75"
    assert main(["export", "--point", "lambda_help=0.75,lambda_harm=0.5", "--out", str(tmp_path / "bad"),
                 "--assets", str(three_aspect_assets)]) == 2
    assert "is over 1" in capsys.readouterr().err
    with pytest.raises(ExportError, match="has 5 coordinates"):
        export_policy(three_aspect_assets, tmp_path / "short", point=(0.5, 0.0, 0.0))
    brief = AutoModelForCausalLM.from_pretrained(export_policy(three_aspect_assets, tmp_path / "brief",
                                                               policy="brief")).state_dict()
    for key, value in hand_merged(tiny_base, adapters, {"brief": 1.0}).items():
        torch.testing.assert_close(brief[key], value, atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------- serve


def test_serve_lists_and_answers_three_aspect_points_as_the_exported_model_does(three_aspect_assets, tmp_path):
    """In-process: /v1/models shows the run's aspects, and a 3-aspect point's greedy answer is the exported merged
    model's own greedy answer (transformers' generate)."""
    from fastapi.testclient import TestClient
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from peo.assets import load_assets
    from peo.export import export_policy
    from peo.serve import ServedModel, create_app

    api = create_app(ServedModel.load(load_assets(three_aspect_assets), "cpu"), max_batch=4)
    name = "peo:lambda_help=0.5,lambda_harm=0.25,phi_brief=0.5"
    messages = [{"role": "user", "content": "Explain topic 3 briefly."}]
    try:
        with TestClient(api) as client:
            models = client.get("/v1/models").json()
            ids = [m["id"] for m in models["data"]]
            assert "dpo-brief" in ids and "soup:lambda_help=0.5,lambda_harm=0.5" in ids
            assert models["peo"]["range"]["c_brief"] == {"min": 0.0, "max": 2.0}
            assert models["peo"]["syntax"][0].startswith("peo:lambda_help=L1,lambda_harm=L2,")
            card = client.get(f"/v1/models/{name}").json()
            assert card["peo"]["model_id"] == "c+0.500_+0.250_+0.750"
            assert (card["peo"]["c_help"], card["peo"]["c_harm"], card["peo"]["c_brief"]) == (0.5, 0.25, 0.75)
            bad = client.get("/v1/models/peo:lambda_help=0.75,lambda_harm=0.5")
            assert bad.status_code == 400 and "is over 1" in bad.json()["error"]["message"]

            def answer(model: str) -> str:
                reply = client.post("/v1/chat/completions", json={"model": model, "messages": messages,
                                                                  "max_tokens": 6, "temperature": 0.0})
                assert reply.status_code == 200, reply.text
                return reply.json()["choices"][0]["message"]["content"]

            served = answer(name)
            assert served and served != answer("reference")  # words, and the point's own
            assert answer("c+0.500_+0.250_+0.750") == served
    finally:
        api.state.worker.close()
    folder = export_policy(three_aspect_assets, tmp_path / "merged", model=name)
    model, tokenizer = AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    batch = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**batch, do_sample=False, max_new_tokens=6)
    assert served == tokenizer.decode(out[0, batch["input_ids"].shape[1]:], skip_special_tokens=True).strip()
