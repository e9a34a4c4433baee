"""Every error peo raises on purpose is a PeoError, and every command prints it as one line, exit 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from app.data import AppInputError
from peo.adapter_files import AdapterError
from peo.assets import AssetsError
from peo.config import ConfigError
from peo.data.errors import DataError, DataSpecError
from peo.errors import PeoError
from peo.export import ExportError
from peo.model_source import ModelSourceError
from precompute.report_inputs import ReportInputError

from conftest import REPO


@pytest.mark.parametrize("error", [AppInputError, AdapterError, AssetsError, ConfigError, DataError, DataSpecError,
                                   ExportError, ModelSourceError, ReportInputError])
def test_every_deliberate_error_is_a_peo_error(error):
    assert issubclass(error, PeoError)


def run(*args: str, tmp_path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("args", [
    ["-m", "precompute", "run", "--config", "no/such/profile.yaml"],  # config
    ["-m", "precompute", "run", "--config", "precompute/configs/tiny.yaml", "--stage", "prepare-data",
     "--set", "base_model=/no/such/model/folder", "--set", "out=OUT", "--set", "work_dir=OUT/work"],  # model source
    ["-m", "precompute", "run", "--config", "precompute/configs/tiny.yaml", "--stage", "prepare-data",
     "--set", "data.root=/no/such/data", "--set", "out=OUT", "--set", "work_dir=OUT/work"],  # data
    ["-m", "peo", "export", "--policy", "help", "--out", "OUT/export", "--assets", "/no/such/assets"],  # assets
    ["-m", "peo", "validate-data", "/no/such/file.jsonl"],  # data file
    ["-m", "app", "--assets", "/no/such/assets"],  # assets, before anything loads
])
def test_commands_print_one_line_and_exit_2_never_a_traceback(args, tmp_path):
    done = run(*[a.replace("OUT", str(tmp_path)) for a in args], tmp_path=tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and len(errors[0]) > len("error: ") + 10, done.stderr[-2000:]
