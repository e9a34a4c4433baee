"""Kill the pipeline (SIGKILL) in the middle of DPO training and in the middle of the sweep, restart it, and check
that it resumes and ends with exactly what an uninterrupted run with the same seeds gives. Also: stage outputs
that were cut short or corrupted after the fact are never trusted; the stage is redone.

The tiny profile runs as a subprocess (`python -m precompute run`) with its own out/work dirs and generated data.
Settings: 6 DPO steps with a checkpoint every 2 (4 steps per epoch, so a resume at step 2 also crosses an epoch
boundary: the data order of the second epoch is checked too), and sweep.batch_size=4 so the dev sweep has 5 chunks.

What a resumed run does NOT reproduce (checked and documented in test_training_kill_resumes_bit_identically):
`adapters/training.json` (and its copy in meta.json) reports `train_loss` and `final_loss` as averages of the
losses the resumed process itself saw. The Trainer keeps the loss running sum only in memory, so after a resume
from checkpoint-2 `train_loss` averages steps 3..6 instead of 1..6 and the loss logged at step 5 averages steps
3..5. Weights, optimizer state, LR schedule, RNG and data order are all restored, so the adapters, the answers and
the scores are bit-identical; only those loss summaries (and `seconds`) differ.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from safetensors.torch import load_file

from peo.aspects import DEFAULT_ASPECTS

from conftest import REPO, write_tiny_data

OVERRIDES = ["dpo.max_steps=6", "dpo.save_steps=2", "sweep.batch_size=4"]
N_CHUNKS = 5  # dev sweep: 12 models × 6 prompts = 72 rows, 16 rows (4 batches of 4) per chunk


def command(out: Path, work: Path, data: Path, extra: list[str] = ()) -> list[str]:
    cmd = [sys.executable, "-m", "precompute", "run", "--config", "precompute/configs/tiny.yaml",
           "--set", f"out={out}", "--set", f"work_dir={work}", "--set", f"data.root={data}"]
    for item in [*OVERRIDES, *extra]:
        cmd += ["--set", item]
    return cmd


def env() -> dict:
    return {**os.environ, "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}


def run_to_end(out: Path, work: Path, data: Path, log: Path, extra: list[str] = (), timeout: float = 600) -> str:
    with open(log, "w") as handle:
        done = subprocess.run(command(out, work, data, extra), cwd=REPO, env=env(), stdout=handle,
                              stderr=subprocess.STDOUT, timeout=timeout)
    text = log.read_text(errors="replace")
    assert done.returncode == 0, text[-4000:]
    return text


def run_and_kill(out: Path, work: Path, data: Path, log: Path, when, timeout: float = 600) -> float:
    """Start the pipeline; SIGKILL its process group as soon as `when()` is true. Returns seconds until the kill."""
    start = time.monotonic()
    with open(log, "w") as handle:
        proc = subprocess.Popen(command(out, work, data), cwd=REPO, env=env(), stdout=handle,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            while True:
                if when():
                    os.killpg(proc.pid, signal.SIGKILL)
                    break
                if proc.poll() is not None:
                    pytest.fail(f"the run ended (rc {proc.returncode}) before the kill point:\n"
                                + log.read_text(errors="replace")[-3000:])
                if time.monotonic() - start > timeout:
                    os.killpg(proc.pid, signal.SIGKILL)
                    pytest.fail("the kill point was never reached")
                time.sleep(0.02)
        finally:
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return time.monotonic() - start


def assert_same_results(out: Path, reference: Path) -> None:
    """grid.csv and answers.parquet equal: texts exactly, numbers to 1e-6. Not `row_key`: it hashes every file
    of the adapters and evaluators folders, training logs included (a resumed aspect's loss summaries in
    adapters/training.json differ), so it differs while the answers it keys are the same."""
    for name, read in (("grid.csv", pd.read_csv), ("answers.parquet", pd.read_parquet)):
        got, want = read(out / name), read(reference / name)
        assert list(got.columns) == list(want.columns), name
        assert len(got) == len(want), name
        for col in [c for c in want.columns if c != "row_key"]:
            if pd.api.types.is_float_dtype(want[col]):
                pd.testing.assert_series_equal(got[col], want[col], check_exact=False, atol=1e-6, rtol=0, obj=name)
            else:
                assert got[col].tolist() == want[col].tolist(), f"{name}: column {col} differs"


def assert_same_adapters(out: Path, reference: Path) -> None:
    for aspect in DEFAULT_ASPECTS.adapters:
        got = load_file(out / "adapters" / aspect / "adapter_model.safetensors")
        want = load_file(reference / "adapters" / aspect / "adapter_model.safetensors")
        assert got.keys() == want.keys()
        for key in want:
            assert got[key].equal(want[key]), f"{aspect}: {key} differs after resume"


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return write_tiny_data(tmp_path_factory.mktemp("reliability-data"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data_root) -> tuple[Path, Path]:
    """An uninterrupted run with the same settings and seeds: (out, work)."""
    root = tmp_path_factory.mktemp("reliability-reference")
    run_to_end(root / "out", root / "work", data_root, root / "run.log")
    return root / "out", root / "work"


def copy_run(reference: tuple[Path, Path], root: Path) -> tuple[Path, Path]:
    out, work = root / "out", root / "work"
    shutil.copytree(reference[0], out)
    shutil.copytree(reference[1], work)
    return out, work


def test_training_kill_resumes_bit_identically(tmp_path, data_root, reference):
    out, work = tmp_path / "out", tmp_path / "work"
    help_dir = work / "train-dpo-help"

    def mid_training() -> bool:  # a complete checkpoint exists, the help adapter is not published yet
        return (any(help_dir.glob("checkpoint-*/trainer_state.json"))
                and not (out / "adapters" / "help").exists())

    run_and_kill(out, work, data_root, tmp_path / "killed.log", mid_training)
    checkpoints = sorted(p.name for p in help_dir.glob("checkpoint-*"))
    assert checkpoints and not (out / "grid.csv").exists()
    manifest = json.loads((out / "manifest.json").read_text())
    assert "train-aspects" not in manifest and "train-evaluators" in manifest

    log = run_to_end(out, work, data_root, tmp_path / "resumed.log")
    assert "stage prepare-data: outputs present and valid, skipped" in log
    assert "stage train-evaluators: outputs present and valid, skipped" in log
    assert "train-aspects: help resumes from checkpoint-" in log
    assert "stage sweep-test: done" in log and "stage report: done" in log

    assert_same_adapters(out, reference[0])
    assert_same_results(out, reference[0])
    # What differs, and only that: the loss summaries of the resumed aspect (see the module docstring).
    got = json.loads((out / "adapters" / "training.json").read_text())
    want = json.loads((reference[0] / "adapters" / "training.json").read_text())
    for aspect in DEFAULT_ASPECTS.adapters:
        assert got[aspect]["steps"] == want[aspect]["steps"]
        assert got[aspect]["pairs"] == want[aspect]["pairs"]
    assert got["help"]["steps"] == 6
    for aspect in ("harm", "joint"):  # trained from scratch in the resumed process: the same numbers
        for key in ("train_loss", "final_loss", "final_reward_accuracy", "final_reward_margin"):
            assert got[aspect][key] == pytest.approx(want[aspect][key], abs=1e-6), (aspect, key)


def test_sweep_kill_resumes_from_saved_chunks(tmp_path, data_root, reference):
    out, work = copy_run(reference, tmp_path)
    shutil.rmtree(work / "sweep-dev")
    shutil.rmtree(work / "sweep-test")
    for name in ("grid.csv", "answers.parquet"):
        (out / name).unlink()
    shutil.rmtree(out / "report")
    parts = work / "sweep-dev"

    def mid_sweep() -> bool:
        return (parts / "part-0000.parquet").is_file() and not (parts / f"part-{N_CHUNKS - 1:04d}.parquet").is_file()

    run_and_kill(out, work, data_root, tmp_path / "killed.log", mid_sweep)
    saved = sorted(p.name for p in parts.glob("part-*.parquet"))
    assert 1 <= len(saved) < N_CHUNKS and not (out / "grid.csv").exists()
    assert not list(parts.glob(".part-*")) or all(p.suffix == ".tmp" for p in parts.glob(".part-*"))

    log = run_to_end(out, work, data_root, tmp_path / "resumed.log")
    for stage in ("prepare-data", "train-evaluators", "train-aspects"):
        assert f"stage {stage}: outputs present and valid, skipped" in log
    assert f"to generate in {N_CHUNKS - len(saved)} chunks" in log  # only the chunks not saved before the kill
    assert_same_results(out, reference[0])


def test_truncated_and_corrupted_outputs_are_redone(tmp_path, data_root, reference):
    """A cut-short adapter and a corrupted answers.parquet: their stages run again and the files are valid again."""
    out, work = copy_run(reference, tmp_path)
    adapter = out / "adapters" / "help" / "adapter_model.safetensors"
    adapter.write_bytes(adapter.read_bytes()[: adapter.stat().st_size // 2])
    answers = out / "answers.parquet"
    blob = bytearray(answers.read_bytes())
    blob[len(blob) // 2: len(blob) // 2 + 64] = b"\0" * 64
    answers.write_bytes(bytes(blob))
    with pytest.raises(Exception):
        load_file(adapter)

    log = run_to_end(out, work, data_root, tmp_path / "rerun.log")
    assert "stage train-aspects: starting" in log and "stage sweep-test: starting" in log
    assert "stage train-evaluators: outputs present and valid, skipped" in log
    assert_same_adapters(out, reference[0])  # resumed from the final checkpoint: the same adapter
    assert_same_results(out, reference[0])
    manifest = json.loads((out / "manifest.json").read_text())
    from peo.atomic import sha256

    assert manifest["train-aspects"]["files"]["adapters/help/adapter_model.safetensors"] == sha256(adapter)
    assert manifest["sweep-test"]["files"]["answers.parquet"] == sha256(answers)


def test_half_written_checkpoint_is_not_resumed_from(tmp_path, data_root, reference):
    """A kill while the Trainer writes trainer_state.json (its last file) leaves it cut short: that checkpoint is
    dropped and training resumes from the previous complete one, ending with the same adapter."""
    out, work = copy_run(reference, tmp_path)
    help_dir = work / "train-dpo-help"
    newest = max(help_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    state = newest / "trainer_state.json"
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 3])
    shutil.rmtree(out / "adapters" / "help")  # the published adapter is gone: help must train again

    log = run_to_end(out, work, data_root, tmp_path / "rerun.log")
    assert f"{newest.name} was cut short" in log
    assert "train-aspects: help resumes from checkpoint-" in log
    assert f"help resumes from {newest.name}" not in log
    assert_same_adapters(out, reference[0])
    assert_same_results(out, reference[0])


def test_forced_sweep_with_changed_settings_discards_old_chunks(tmp_path, data_root, reference):
    """Saved sweep chunks belong to one set of inputs: after a grid change, `--force` regenerates them instead of
    mixing the old grid's answers (other model ids) into the new table."""
    from peo.config import load_config
    from peo.sweep_plan import sweep_models
    from precompute.stages import run_pipeline

    out, work = copy_run(reference, tmp_path)
    overrides = {"out": str(out), "work_dir": str(work), "data.root": str(data_root),
                 **{k: int(v) for k, v in (o.split("=") for o in OVERRIDES)}, "sweep.lambdas": [0.0, 0.25, 1.0]}
    cfg = load_config(REPO / "precompute" / "configs" / "tiny.yaml", overrides)
    run_pipeline(cfg, only="sweep-dev", force=True)
    run_pipeline(cfg, only="sweep-test", force=True)
    answers = pd.read_parquet(out / "answers.parquet")
    dev = answers[answers["split"] == "dev"]
    grid = pd.read_csv(out / "grid.csv")
    _, models = sweep_models(cfg.sweep, cfg.aspect_set)
    assert set(dev["model_id"]) == set(models) == set(grid["model_id"])
    assert 0.25 in set(grid["lambda_help"]) and 0.5 not in set(grid["lambda_help"])
    assert grid["n_dev"].eq(dev.groupby("model_id").size().iloc[0]).all()
