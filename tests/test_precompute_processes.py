"""The tiny profile under `accelerate launch` with 2 processes (CPU, gloo).

DPO trained data-parallel on 2 processes sees twice the global batch, so its weights differ from one process's
(as they should: dpo.batch_size is per process). The sweep is what must not change: given the same trained
adapters and evaluators, 2 processes that split the chunks write the same grid.csv and answers.parquet as one.
So the one-process tiny run is copied, its sweep outputs removed, and the pipeline rerun under 2 processes;
separately, train-aspects runs under 2 processes and publishes each policy once.

accelerate 1.15's `--cpu` flag starts a single process unless given an mpirun hostfile; `--multi_gpu` on a
machine without a visible GPU starts N processes and peo (precompute/processes.py) joins them over gloo.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd

from conftest import REPO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_two(run: Path, data_root: Path, *extra: str) -> str:
    """`accelerate launch` of the tiny profile on `run` (assets, work) with 2 CPU processes; the log.

    `data_root` is the one-process run's data folder: it is part of the hashed config, so the same folder lets
    the stages that are done be skipped."""
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(free_port()),
               "-m", "precompute", "run", "--config", str(REPO / "precompute" / "configs" / "tiny.yaml"),
               "--set", f"out={run / 'assets'}", "--set", f"work_dir={run / 'work'}",
               "--set", f"data.root={data_root}", *extra]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": str(REPO)}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    log = done.stdout + done.stderr
    (run / "launch.log").write_text(log)
    errors = [line for line in log.splitlines() if "Error" in line]
    assert done.returncode == 0, "\n".join(errors[:10]) + "\n" + log[-3000:]
    return log


def copy_run(tiny_assets: Path, dest: Path) -> Path:
    """The one-process tiny run (assets, work dir) as a new folder, so the session's fixture is untouched."""
    source = tiny_assets.parent
    shutil.copytree(source, dest, ignore=lambda folder, names: ["data"] if Path(folder) == source else [])
    return dest


def test_two_processes_sweep_gives_the_same_grid_and_answers(tiny_assets, tmp_path):
    run = copy_run(tiny_assets, tmp_path / "run")
    for gone in (run / "work" / "sweep-dev", run / "work" / "sweep-test", run / "assets" / "report"):
        shutil.rmtree(gone)
    for gone in ("answers.parquet", "grid.csv"):
        (run / "assets" / gone).unlink()

    log = launch_two(run, tiny_assets.parent / "data")

    assert "process 2 of 2" in log and "process 1 of 2" in log
    assert "sweep-dev: process 2 of 2 generates" in log
    assert log.count("stage report: starting") == 1, "the report runs once, on rank 0"
    for stage in ("prepare-data", "train-evaluators", "train-aspects"):
        assert f"stage {stage}: starting" not in log, f"{stage} was done and must be skipped"
    assert (run / "assets" / "grid.csv").read_text() == (tiny_assets / "grid.csv").read_text()
    pd.testing.assert_frame_equal(pd.read_parquet(run / "assets" / "answers.parquet"),
                                  pd.read_parquet(tiny_assets / "answers.parquet"))
    assert (run / "assets" / "report" / "report.md").is_file()
    manifest = json.loads((run / "assets" / "manifest.json").read_text())
    assert {"sweep-test", "report"} <= set(manifest)
    # both processes generated: the dev sweep's chunks are split, so its parts come from more than one process
    assert len(list((run / "work" / "sweep-dev").glob("part-*.parquet"))) >= 2


def test_two_processes_train_dpo_data_parallel_and_publish_once(tiny_assets, tmp_path):
    run = copy_run(tiny_assets, tmp_path / "run")
    for folder in run.joinpath("work").glob("train-dpo-*"):
        shutil.rmtree(folder)
    shutil.rmtree(run / "assets" / "adapters")

    log = launch_two(run, tiny_assets.parent / "data", "--stage", "train-aspects")

    training = json.loads((run / "assets" / "adapters" / "training.json").read_text())
    for name in ("help", "harm", "joint"):
        assert (run / "assets" / "adapters" / name / "adapter_model.safetensors").is_file()
        assert training[name]["processes"] == 2, "the Trainer saw both processes (data-parallel)"
        assert training[name]["steps"] == 3
        settings = json.loads((run / "work" / f"train-dpo-{name}" / "settings.json").read_text())
        assert settings["processes"] == 2, "a 2-process checkpoint is not resumed by a 1-process run"
    assert set(training["help"]["heldout"]) == {"help"} and set(training["harm"]["heldout"]) == {"harm"}
    assert not list((run / "assets").rglob("*.bin")), "no pickle (training_args.bin) reaches the assets"
    assert not list((run / "assets" / "adapters").glob(".*")), "no temp folder left by a second writer"
    assert log.count("stage train-aspects: starting") == 2  # both processes train
