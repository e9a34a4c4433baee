"""The tiny profile end to end: every output of the asset format, resume by manifest, corruption redone."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from peo.coefficients import coefficients, model_id
from peo.config import load_config
from precompute.stages import STAGES, run_pipeline

from conftest import REPO

GRID_COLUMNS = ["model_id", "method", "lambda_help", "phi_help", "phi_harm", "c_help", "c_harm", "reward_mean",
                "reward_se", "cost_mean", "cost_se", "safe_share", "n"]


def test_tiny_pipeline_writes_the_asset_format(tiny_assets):
    for part in ("meta.json", "grid.csv", "answers.parquet", "manifest.json", "report/report.md",
                 "report/front.png", "report/fronts.json", "evaluators/reward/head.safetensors",
                 "evaluators/cost/evaluator.json", "adapters/help/adapter_model.safetensors",
                 "adapters/harm/adapter_config.json", "adapters/joint/adapter_model.safetensors"):
        assert (tiny_assets / part).is_file(), part
    assert not list(tiny_assets.rglob("*.bin")), "assets hold no pickle files"

    grid = pd.read_csv(tiny_assets / "grid.csv")
    assert list(grid.columns) == GRID_COLUMNS
    cfg = load_config(REPO / "precompute" / "configs" / "tiny.yaml")
    peo = grid[grid.method == "peo"]
    assert len(peo) == len(cfg.sweep.lambdas) * len(cfg.sweep.phi_help) * len(cfg.sweep.phi_harm)
    for row in peo.itertuples():
        assert (row.c_help, row.c_harm) == coefficients(row.lambda_help, row.phi_help, row.phi_harm)
        assert row.model_id == model_id(row.c_help, row.c_harm)
    soup = grid[grid.method == "soup"]
    assert (soup.phi_help == 0).all() and (soup.phi_harm == 0).all() and len(soup) == len(cfg.sweep.lambdas)
    assert set(grid.method) == {"peo", "soup", "ref", "help", "harm", "joint"}
    assert grid.loc[grid.method == "help", "model_id"].item() == model_id(1.0, 0.0)

    answers = pd.read_parquet(tiny_assets / "answers.parquet")
    n_prompts = 2 * cfg.data.splits.dev_prompts
    # Every distinct model answered every dev prompt exactly once: shared coefficients were evaluated once.
    assert answers.groupby("model_id").size().eq(n_prompts).all()
    assert set(answers.model_id) == set(grid.model_id)
    assert not answers.duplicated(["model_id", "prompt_id"]).any()
    assert set(answers.prompt_kind) == {"help", "harm"}
    for mid, group in answers.groupby("model_id"):
        row = grid[grid.model_id == mid].iloc[0]
        assert row.reward_mean == pytest.approx(group.reward.mean())
        assert row.cost_mean == pytest.approx(group.cost.mean())
        assert row.safe_share == pytest.approx((group.cost <= 0).mean())
        assert row.n == n_prompts

    meta = json.loads((tiny_assets / "meta.json").read_text())
    assert set(meta["timings_seconds"]) == set(STAGES)
    assert set(meta["evaluators"]) == {"reward", "cost"}
    assert 0.0 <= meta["evaluators"]["reward"]["held_out_accuracy"] <= 1.0
    assert meta["grid"]["lambda_help"] == cfg.sweep.lambdas
    fronts = json.loads((tiny_assets / "report" / "fronts.json").read_text())
    assert fronts["fronts"]["peo"]["hypervolume"] >= fronts["fronts"]["soup"]["hypervolume"] - 1e-12


def test_rerun_skips_valid_stages_and_redoes_a_corrupted_one(tmp_path, caplog):
    from conftest import run_tiny_pipeline

    ctx = run_tiny_pipeline(tmp_path)
    grid_before = (ctx.out / "grid.csv").read_bytes()
    caplog.set_level("INFO", logger="precompute")
    cfg = ctx.cfg
    run_pipeline(cfg)
    assert sum("skipped" in r.message for r in caplog.records) == len(STAGES)

    (ctx.out / "grid.csv").write_text("model_id\ncut short")
    caplog.clear()
    run_pipeline(cfg)
    skipped = [r.message for r in caplog.records if "skipped" in r.message]
    assert not any("sweep" in m for m in skipped)
    assert (ctx.out / "grid.csv").read_bytes() == grid_before  # rebuilt from the saved sweep parts, identical
