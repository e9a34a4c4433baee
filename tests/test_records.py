"""peo.layout and peo.records: one place for asset paths, typed views of meta.json, fronts.json and a pick.

The shipped cpu assets must load unchanged through them, and a missing or bad field must name its file and field.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from app.data import AppData
from peo.errors import AssetsError, PeoError
from peo.layout import AssetLayout
from peo.records import FrontsReport, Pick, RecordError, RunMeta

from conftest import REPO

ASSETS = REPO / "assets"


def test_layout_joins_the_documented_paths():
    layout = AssetLayout("assets")  # a str root is accepted
    rel = {name: getattr(layout, name).relative_to("assets").as_posix()
           for name in ("grid", "answers", "meta", "manifest", "adapters", "training", "evaluators")}
    assert rel == {"grid": "grid.csv", "answers": "answers.parquet", "meta": "meta.json", "manifest": "manifest.json",
                   "adapters": "adapters", "training": "adapters/training.json", "evaluators": "evaluators"}
    assert layout.adapter("help") == Path("assets/adapters/help")
    assert layout.evaluator_meta("cost") == Path("assets/evaluators/cost/evaluator.json")
    assert layout.evaluator_head("reward") == Path("assets/evaluators/reward/head.safetensors")
    assert layout.ref_logps("reward") == Path("assets/evaluators/reward/heldout_ref_logps.json")
    report = layout.report
    assert report.root == Path("assets/report")
    assert [p.name for p in (report.fronts, report.markdown, report.front_figure, report.training_figure,
                             report.judgments, report.judgment_agreement, report.evasion_labels,
                             report.evasion_validation)] == [
        "fronts.json", "report.md", "front.png", "training.png", "blind_judgments.jsonl", "judgment_agreement.json",
        "evasion_labels.jsonl", "evasion_validation.json"]


def test_every_file_the_layout_names_is_in_the_shipped_assets():
    layout, report = AssetLayout(ASSETS), AssetLayout(ASSETS).report
    files = [layout.grid, layout.answers, layout.meta, layout.manifest, layout.training, report.fronts,
             report.markdown, report.front_figure, report.training_figure, report.judgments,
             report.judgment_agreement, report.evasion_labels, report.evasion_validation]
    files += [f(kind) for kind in ("reward", "cost") for f in (layout.evaluator_meta, layout.evaluator_head,
                                                                layout.ref_logps)]
    assert [str(f) for f in files if not f.is_file()] == []
    assert all(layout.adapter(name).is_dir() for name in ("help", "harm", "joint"))


def test_shipped_meta_and_fronts_load_and_read_by_attribute():
    raw_meta = json.loads((ASSETS / "meta.json").read_text(encoding="utf-8"))
    raw_fronts = json.loads((ASSETS / "report" / "fronts.json").read_text(encoding="utf-8"))
    meta, fronts = RunMeta.load(ASSETS / "meta.json"), FrontsReport.load(ASSETS / "report" / "fronts.json")
    assert meta.base_model == raw_meta["base_model"] and meta.grid == raw_meta["grid"]
    assert meta.training["help"].steps == raw_meta["training"]["help"]["steps"]
    assert meta.training["help"].heldout["help"].accuracy == raw_meta["training"]["help"]["heldout"]["help"]["accuracy"]
    assert meta.evaluators["cost"].held_out_pairs == raw_meta["evaluators"]["cost"]["held_out_pairs"]
    assert meta.data["help"].used_per_split == raw_meta["data"]["help"]["used_per_split"]
    assert fronts.max_loop_share == raw_fronts["max_loop_share"] and fronts.n_prompts == raw_fronts["n_prompts"]
    assert fronts.difference.value == raw_fronts["difference"]["value"]
    assert fronts.fronts["peo"].model_ids == raw_fronts["fronts"]["peo"]["model_ids"]
    assert fronts.fronts["peo"].points == raw_fronts["fronts"]["peo"]["points"]
    assert fronts.evasion_check.labels == raw_fronts["evasion_check"]["labels"]
    # keys a record does not name are kept, not dropped
    assert fronts.model_dump()["win_rates"] == raw_fronts["win_rates"]


def test_a_missing_or_bad_field_names_the_file_and_the_field():
    raw = json.loads((ASSETS / "report" / "fronts.json").read_text(encoding="utf-8"))
    broken = copy.deepcopy(raw)
    del broken["fronts"]["peo"]["hypervolume"]
    broken["n_prompts"]["test"] = "many"
    with pytest.raises(RecordError) as err:
        FrontsReport.from_json(broken, "assets/report/fronts.json")
    message = str(err.value)
    assert message.startswith("assets/report/fronts.json: ")
    assert "fronts.peo.hypervolume: field required" in message and "n_prompts.test:" in message
    assert issubclass(RecordError, AssetsError) and issubclass(RecordError, PeoError)
    with pytest.raises(RecordError, match="meta.json: base_model: field required"):
        RunMeta.from_json({"grid": {}}, "meta.json")
    with pytest.raises(RecordError, match="missing"):
        RunMeta.load(ASSETS / "no-such-meta.json")


def test_app_data_validates_once_and_a_pick_round_trips_its_dict():
    data = AppData.load(ASSETS)
    assert data.assets.run_meta.base_model == data.assets.meta["base_model"]
    assert data.report.max_loop_share == data.max_loop_share == data.fronts["max_loop_share"]
    info = data.point_info(0.5, 0.5, 0.0).to_json()  # what /pick returns and the page's state holds
    coordinates = ["lambda_help", "phi_help", "phi_harm", "c_help", "c_harm"]  # keyed by grid.csv's columns
    assert list(info) == [*coordinates, *Pick.model_fields] and Pick.from_json(info, "/pick").to_json() == info
    with pytest.raises(RecordError, match="fronts.json: difference: field required"):
        AppData(assets=data.assets, fronts={k: v for k, v in data.fronts.items() if k != "difference"})
