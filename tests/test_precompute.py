"""The tiny profile end to end: every output of the asset format, resume by manifest, corruption redone."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from peo.aspects import DEFAULT_ASPECTS
from peo.coefficients import coefficients, model_id
from peo.config import load_config
from peo.grid_table import SPLITS
from precompute.stages import STAGES, run_pipeline

from conftest import REPO

STATS = DEFAULT_ASPECTS.grid_stats
GRID_COLUMNS = (["model_id", "method", "lambda_help", "phi_help", "phi_harm", "c_help", "c_harm", "expo_alpha"]
                + [f"{stat}_{split}" for split in SPLITS for stat in STATS] + ["split", *STATS, "front_eligible"])


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
    assert len(peo) == len(cfg.sweep.lambdas) * len(cfg.sweep.phi["help"]) * len(cfg.sweep.phi["harm"])
    for row in peo.itertuples():
        assert (row.c_help, row.c_harm) == coefficients((row.lambda_help,), (row.phi_help, row.phi_harm))
        assert row.model_id == model_id(row.c_help, row.c_harm)
    soup = grid[grid.method == "soup"]
    assert (soup.phi_help == 0).all() and (soup.phi_harm == 0).all() and len(soup) == len(cfg.sweep.lambdas)
    assert set(grid.method) == {"peo", "soup", "expo", "ref", "help", "harm", "joint"}
    expo = grid[grid.method == "expo"].set_index("expo_alpha")["model_id"]
    assert list(expo.index) == cfg.sweep.expo_alphas and expo[1.0] == "joint"  # α = 1 is joint DPO itself
    assert grid.loc[grid.method == "help", "model_id"].item() == model_id(1.0, 0.0)

    answers = pd.read_parquet(tiny_assets / "answers.parquet")
    n_dev, n_test = 2 * cfg.data.splits.dev_prompts, 2 * cfg.data.splits.test_prompts
    dev, test = answers[answers.split == "dev"], answers[answers.split == "test"]
    # Every distinct model answered every dev prompt exactly once: shared coefficients were evaluated once.
    assert dev.groupby("model_id").size().eq(n_dev).all()
    assert set(dev.model_id) == set(grid.model_id)
    assert not answers.duplicated(["model_id", "prompt_id", "split"]).any()
    # Each answer's generated-token count, and "cut" exactly when it reached the limit
    assert answers.new_tokens.between(0, cfg.sweep.max_new_tokens).all()
    assert (answers.cut == (answers.new_tokens == cfg.sweep.max_new_tokens)).all()
    assert set(answers.prompt_kind) == {"help", "harm"}
    assert not set(dev.prompt_id) & set(test.prompt_id), "dev and test prompts are disjoint"
    # Test prompts: the baselines, every soup point and the dev front, each on every test prompt.
    baselines = grid.loc[grid.method.isin(["ref", "help", "harm", "joint", "soup", "expo"]), "model_id"]
    assert set(baselines) <= set(test.model_id)
    assert test.groupby("model_id").size().eq(n_test).all()
    for split, part in (("dev", dev), ("test", test)):
        for mid, group in part.groupby("model_id"):
            row = grid[grid.model_id == mid].iloc[0]
            benign, harmful = group[group.prompt_kind == "help"], group[group.prompt_kind == "harm"]
            # split-aware: reward over the benign prompts, cost (and safe share) over the harmful ones
            assert row[f"reward_mean_{split}"] == pytest.approx(benign.reward.mean())
            assert row[f"cost_mean_{split}"] == pytest.approx(harmful.cost.mean())
            assert row[f"reward_all_mean_{split}"] == pytest.approx(group.reward.mean())
            assert row[f"cost_all_mean_{split}"] == pytest.approx(group.cost.mean())
            assert row[f"safe_share_{split}"] == pytest.approx((harmful.cost <= 0).mean())
            assert row[f"evasion_share_benign_{split}"] == pytest.approx(benign.evades.mean())
            assert row[f"complied_share_{split}"] == pytest.approx((~harmful.refuses & ~harmful.evades).mean())
            assert row[f"loop_share_{split}"] == pytest.approx(group.loops.mean())
            assert row[f"n_{split}"] == len(group)
    shown = grid.set_index("model_id")
    for mid in set(grid.model_id):
        row = shown.loc[[mid]].iloc[0]
        assert row.split == ("test" if mid in set(test.model_id) else "dev")
        assert row.reward_mean == pytest.approx(row[f"reward_mean_{row.split}"])

    meta = json.loads((tiny_assets / "meta.json").read_text())
    assert set(meta["timings_seconds"]) == set(STAGES)
    assert set(meta["evaluators"]) == {"reward", "cost"}
    assert 0.0 <= meta["evaluators"]["reward"]["held_out_accuracy"] <= 1.0
    assert meta["grid"]["lambda_help"] == cfg.sweep.lambdas
    fronts = json.loads((tiny_assets / "report" / "fronts.json").read_text())
    assert (fronts["chosen_on"], fronts["scored_on"]) == ("dev", "test")
    assert fronts["difference"]["verdict"] in ("peo_better", "soup_better", "not_distinguishable")
    assert set(fronts["fronts"]["peo"]["model_ids"]) <= set(test.model_id), "front points have test scores"


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
    assert not any("sweep-test" in m for m in skipped)
    assert (ctx.out / "grid.csv").read_bytes() == grid_before  # rebuilt from the saved sweep parts, identical

    # A changed setting reruns the stages that depend on it, and only those.
    changed = load_config(REPO / "precompute" / "configs" / "tiny.yaml",
                          {"out": str(ctx.out), "work_dir": str(ctx.work), "data.root": cfg.data.root,
                           "report.n_boot": 20})
    caplog.clear()
    run_pipeline(changed)
    skipped = [r.message for r in caplog.records if "skipped" in r.message]
    assert len(skipped) == len(STAGES) - 1 and not any("report" in m for m in skipped)


def test_different_coefficients_give_different_outputs(tiny_assets):
    """The failure of weight-interpolation demos that merge nothing: on the trained tiny adapters, the reference,
    DPO-Help, DPO-Harm and an extrapolated point must give different next-token distributions."""
    import torch

    from peo.adapter_mix import AdapterMix
    from peo.generation import encode_prompts
    from peo.model_source import load_causal_lm, load_tokenizer, resolve_base_model

    base = resolve_base_model("tiny")
    tokenizer = load_tokenizer(base)
    mix = AdapterMix(load_causal_lm(base), {n: tiny_assets / "adapters" / n for n in ("help", "harm", "joint")})
    batch = encode_prompts(tokenizer, [[{"role": "user", "content": "Explain topic 3 briefly."}]], mix.device)
    logits = {}
    for name, scales in {"ref": {}, "help": {"help": 1.0}, "harm": {"harm": 1.0},
                         "point": {"help": 1.5, "harm": 2.0}}.items():
        mix.set_scales(scales)
        with torch.inference_mode():
            logits[name] = mix.model(**batch).logits[0, -1]
    mix.set_scales({})
    names = list(logits)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert (logits[a] - logits[b]).abs().max() > 1e-5, f"{a} and {b} give the same logits"


def test_headline_without_some_test_prompts(tiny_assets, tmp_path, capsys):
    """Leaving out no prompt gives the report's headline; leaving out some scores on the rest only."""
    from experiments.headline_without import headline_without, main

    fronts = json.loads((tiny_assets / "report" / "fronts.json").read_text())
    meta = json.loads((tiny_assets / "meta.json").read_text())
    n_boot, seed, limit = (meta["config"]["report"]["n_boot"], meta["config"]["seed"],
                           meta["config"]["sweep"]["max_loop_share"])
    same = headline_without(tiny_assets, set(), n_boot, seed, limit)
    assert same["excluded_test_prompts"] == 0 and same["difference"] == fronts["difference"]
    answers = pd.read_parquet(tiny_assets / "answers.parquet")
    test_ids = sorted(answers.loc[answers["split"] == "test", "prompt_id"].astype(str).unique())
    drop = test_ids[:2] + ["not-a-prompt"]
    fewer = headline_without(tiny_assets, set(drop), n_boot, seed, limit)
    assert fewer["excluded_test_prompts"] == 2
    assert fewer["n_test_prompts"] == fronts["n_prompts"]["test"] - 2
    ids_file = tmp_path / "ids.json"
    ids_file.write_text(json.dumps(drop))
    assert main(["--assets", str(tiny_assets), "--prompt-ids", str(ids_file)]) == 0
    assert json.loads(capsys.readouterr().out)["excluded_test_prompts"] == 2


def test_a_policy_work_dir_made_with_other_settings_is_not_reused(tmp_path):
    """Same settings: the checkpoints and final adapter stay (resume); other epochs (or none recorded): gone."""
    from peo.config import DPOSettings, LoraSettings
    from peo.data.records import Message, PreferencePair
    from precompute.stage_train_aspects import SETTINGS_FILE, forget_other_settings, policy_settings

    pairs = [PreferencePair(prompt=(Message("user", "hi"),), chosen="hello", rejected="go away", aspect="harm",
                            source="test", prompt_id="p0")]
    two = policy_settings(pairs, DPOSettings(epochs=2, epochs_per_policy={"harm": 2}), LoraSettings(), 0, 64)
    work = tmp_path / "train-dpo-harm"
    forget_other_settings(work, two)
    (work / "checkpoint-8").mkdir()
    forget_other_settings(work, two)
    assert (work / "checkpoint-8").is_dir(), "same settings: resumable"
    other_policy_epochs = policy_settings(pairs, DPOSettings(epochs=2, epochs_per_policy={"help": 5}),
                                          LoraSettings(), 0, 64)
    assert other_policy_epochs == two, "another policy's epochs do not touch this one"
    three = policy_settings(pairs, DPOSettings(epochs=3), LoraSettings(), 0, 64)
    forget_other_settings(work, three)
    assert not (work / "checkpoint-8").exists() and json.loads((work / SETTINGS_FILE).read_text()) == three
    (work / SETTINGS_FILE).unlink()
    (work / "final").mkdir()
    forget_other_settings(work, three)
    assert not (work / "final").exists(), "nothing recorded: not trusted"


def test_sweeps_reuse_saved_answers_and_generate_only_new_models(tmp_path, monkeypatch):
    """The work folder is not kept between machines: the assets' own answers stand in for it when they were made
    from the same inputs; a grown grid (one more ExPO α) generates only the new model's rows."""
    import shutil

    import pandas as pd

    import precompute.stage_sweep as stage_sweep

    from conftest import run_tiny_pipeline

    ctx = run_tiny_pipeline(tmp_path)
    before = pd.read_parquet(ctx.out / "answers.parquet")
    assert set(before.loc[before["split"] == "test", "model_id"]) >= {"joint", "joint+0.500", "joint+2.000"}
    shutil.rmtree(ctx.work / "sweep-dev")
    shutil.rmtree(ctx.work / "sweep-test")

    def no_generation(*args, **kwargs):
        raise AssertionError("generated answers although the assets hold every one of them")

    monkeypatch.setattr(stage_sweep, "generate_rows_counted", no_generation)
    run_pipeline(ctx.cfg, only="sweep-dev", force=True)
    run_pipeline(ctx.cfg, only="sweep-test", force=True)
    pd.testing.assert_frame_equal(pd.read_parquet(ctx.out / "answers.parquet"), before)

    generated: list[int] = []
    real = monkeypatch.undo() or stage_sweep.generate_rows_counted

    def counting(mix, tokenizer, rows, *args, **kwargs):
        generated.append(len(rows))
        return real(mix, tokenizer, rows, *args, **kwargs)

    monkeypatch.setattr(stage_sweep, "generate_rows_counted", counting)
    grown = load_config(REPO / "precompute" / "configs" / "tiny.yaml",
                        {"out": str(ctx.out), "work_dir": str(ctx.work), "data.root": ctx.cfg.data.root,
                         "sweep.expo_alphas": [0.5, 1.0, 1.5, 2.0, 3.0]})
    run_pipeline(grown, only="sweep-dev")
    assert sum(generated) == len(stage_sweep.sweep_prompts(ctx, "dev"))
    dev = pd.read_parquet(stage_sweep.dev_answers_path(ctx))
    assert (dev["model_id"] == "joint+3.000").sum() == sum(generated)
    kept = dev[dev["model_id"] != "joint+3.000"].reset_index(drop=True)
    old_dev = before[before["split"] == "dev"].reset_index(drop=True)
    pd.testing.assert_frame_equal(kept, old_dev)


def test_a_sweep_with_other_decoding_generates_again_though_meta_says_otherwise(tmp_path, monkeypatch):
    """Answers are reused by their recorded row_key, not by meta.json: sweep-dev rewrites meta.json with the new
    decoding before sweep-test runs, and the assets' old answers must not pass for the new ones then."""
    import shutil

    import pandas as pd

    import precompute.stage_sweep as stage_sweep

    from conftest import run_tiny_pipeline

    ctx = run_tiny_pipeline(tmp_path)
    shutil.rmtree(ctx.work / "sweep-test")
    longer = load_config(REPO / "precompute" / "configs" / "tiny.yaml",
                         {"out": str(ctx.out), "work_dir": str(ctx.work), "data.root": ctx.cfg.data.root,
                          "sweep.max_new_tokens": ctx.cfg.sweep.max_new_tokens + 3})
    run_pipeline(longer, only="sweep-dev")
    generated: list[int] = []
    real = stage_sweep.generate_rows_counted

    def counting(mix, tokenizer, rows, *args, **kwargs):
        generated.append(len(rows))
        return real(mix, tokenizer, rows, *args, **kwargs)

    monkeypatch.setattr(stage_sweep, "generate_rows_counted", counting)
    run_pipeline(longer, only="sweep-test")
    answers = pd.read_parquet(ctx.out / "answers.parquet")
    test = answers[answers["split"] == "test"]
    assert sum(generated) == test["row_key"].nunique() > 0
    assert test["new_tokens"].max() > ctx.cfg.sweep.max_new_tokens or not test["cut"].any()


def test_an_aspect_can_have_its_own_split_fractions_and_a_short_test_split_is_told(tmp_path, caplog):
    """data.splits.fractions_per_aspect replaces the fractions for one aspect only (the gpu profile gives most of
    AlpacaEval's few instructions to test); fewer test prompts than asked is logged and kept in the summary."""
    from conftest import write_tiny_data

    base = {"out": str(tmp_path / "assets"), "data.root": str(write_tiny_data(tmp_path / "data", n=60)),
            "data.splits.test_prompts": 40}
    summaries = {}
    for name, extra in (("shared", {}), ("own", {"data.splits.fractions_per_aspect": {
            "help": {"evaluator": 0.1, "policy": 0.1, "dev": 0.1, "test": 0.7}}})):
        cfg = load_config(REPO / "precompute" / "configs" / "tiny.yaml",
                          {**base, **extra, "work_dir": str(tmp_path / f"work-{name}")})
        with caplog.at_level("WARNING", logger="precompute"):
            ctx = run_pipeline(cfg, only="prepare-data")
        summaries[name] = json.loads((ctx.work / "data" / "summary.json").read_text())
    shared, own = summaries["shared"], summaries["own"]
    assert own["harm"]["available_per_split"] == shared["harm"]["available_per_split"]
    assert own["help"]["available_per_split"]["test"] > 2 * shared["help"]["available_per_split"]["test"]
    assert own["help"]["test_prompts_asked"] == 40
    short = [r.getMessage() for r in caplog.records if "fewer than data.splits.test_prompts" in r.getMessage()]
    assert any(m.startswith("data.harm:") for m in short)  # 60 prompts × the shared test share < 40
    assert own["help"]["distinct_prompts_used"]["test_prompts"] >= 30


def test_published_adapters_are_reused_without_their_work_dir_when_only_the_evaluators_change(tmp_path, monkeypatch):
    """Shipped assets travel without the work dir: a re-run that changes only the evaluators re-does the
    held-out check (it reads at the evaluators' length) but not the DPO training the adapters record."""
    import shutil

    import precompute.stage_train_aspects as stage_train_aspects
    from precompute.stage_train_aspects import SETTINGS_FILE

    from conftest import run_tiny_pipeline

    ctx = run_tiny_pipeline(tmp_path)
    for name in ("help", "harm", "joint"):
        assert (ctx.out / "adapters" / name / SETTINGS_FILE).is_file()
    weights = {p: p.read_bytes() for p in ctx.out.glob("adapters/*/adapter_model.safetensors")}
    for folder in ctx.work.glob("train-dpo-*"):
        shutil.rmtree(folder)

    def no_training(*args, **kwargs):
        raise AssertionError("trained again although the published adapter records the same training settings")

    monkeypatch.setattr(stage_train_aspects, "train_dpo", no_training)
    longer = load_config(REPO / "precompute" / "configs" / "tiny.yaml",
                         {"out": str(ctx.out), "work_dir": str(ctx.work), "data.root": ctx.cfg.data.root,
                          "evaluator.max_length": ctx.cfg.evaluator.max_length + 16})
    run_pipeline(longer, only="train-aspects")
    assert {p: p.read_bytes() for p in weights} == weights
    training = json.loads((ctx.out / "adapters" / "training.json").read_text())
    assert {"help", "harm"} <= {name for name, figures in training.items() if "heldout" in figures}

    # A published adapter whose recorded settings differ is trained again.
    (ctx.out / "adapters" / "help" / SETTINGS_FILE).write_text("{}")
    with pytest.raises(AssertionError, match="trained again"):
        run_pipeline(longer, only="train-aspects", force=True)
