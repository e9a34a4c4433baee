"""A stage is redone when an earlier stage's outputs changed under it, not only when its own settings did."""

from __future__ import annotations

import json

from peo.config import load_config
from precompute.manifest import Manifest
from precompute.stages import STAGES, run_pipeline

from conftest import REPO, write_tiny_data


def test_an_entry_with_other_upstream_outputs_is_not_done_and_an_old_entry_without_one_is(tmp_path):
    out = tmp_path / "out.txt"
    out.write_text("x")
    manifest = Manifest(tmp_path / "manifest.json", tmp_path)
    manifest.record("b", [out], 1.0, "s1", upstream="u1")
    assert manifest.is_done("b", "s1", "u1")
    assert not manifest.is_done("b", "s1", "u2")  # an earlier stage's outputs changed
    assert not manifest.is_done("b", "s2", "u1")  # its own settings changed
    manifest.record("old", [out], 1.0, "s1")  # recorded before `upstream` existed (the shipped assets)
    assert manifest.is_done("old", "s1", "u9")
    assert Manifest(tmp_path / "manifest.json", tmp_path).files("b") == {"out.txt": manifest.files("b")["out.txt"]}


def test_a_stage_rerun_upstream_with_new_outputs_reruns_every_later_stage(tmp_path):
    cfg = load_config(REPO / "precompute" / "configs" / "tiny.yaml",
                      {"out": str(tmp_path / "assets"), "work_dir": str(tmp_path / "work"),
                       "data.root": str(write_tiny_data(tmp_path / "data"))})
    run_pipeline(cfg)
    again = run_pipeline(cfg)
    assert again.timings == {}, "nothing changed: every stage is skipped"
    # train-evaluators is rerun with the same settings and gives other outputs (as after new data or a --force on
    # another machine): its recorded files change, so train-aspects and everything after it is redone
    meta = tmp_path / "assets" / "evaluators" / "reward" / "evaluator.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "note": "rerun"}))
    manifest = Manifest(tmp_path / "assets" / "manifest.json", tmp_path / "assets")
    entry = manifest.stages["train-evaluators"]
    manifest.record("train-evaluators", [tmp_path / "assets" / "evaluators"], entry["seconds"], entry["settings"],
                    entry["upstream"])
    redone = run_pipeline(cfg)
    assert list(redone.timings) == list(STAGES[STAGES.index("train-aspects"):])
