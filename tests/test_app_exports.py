"""The app's exports stay in one folder it owns: expired after a time-to-live, kept under a size cap (oldest
removed first, one too large alone refused), and gone, Gradio's copies included, once the app has stopped."""

from __future__ import annotations

import os
import tempfile
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from app import callbacks as cb
from app import exports
from peo.aspects import DEFAULT_ASPECTS


@pytest.fixture
def store(tmp_path, monkeypatch):
    """app/exports.py with its root under this test's folder, fresh limits, and nothing left afterwards."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    exports.remove_all()
    yield tmp_path
    exports.remove_all()
    exports.configure()


def fake_app(assets):
    """What export_zip reads of the App: the run's aspects (which fixed policies there are) and the assets folder
    (fixed policies need no point)."""
    return SimpleNamespace(aspects=DEFAULT_ASPECTS, data=SimpleNamespace(assets=SimpleNamespace(root=assets)))


def test_cli_defaults_are_the_documented_ones():
    from app.__main__ import parse_args

    args = parse_args([])
    assert args.export_ttl_minutes == exports.DEFAULT_TTL_MINUTES
    assert args.export_max_mb == exports.DEFAULT_MAX_MB
    with pytest.raises(SystemExit):
        parse_args(["--export-max-mb", "0"])


def test_an_export_zip_lives_in_the_app_folder_with_its_readme(tiny_assets, store):
    path = cb.export_zip(fake_app(tiny_assets), "help", None, "adapter")
    assert path.is_file() and path.suffix == ".zip"
    assert exports.root() in path.parents and exports.root().parent == store
    names = zipfile.ZipFile(path).namelist()
    assert "peo-help-adapter/README.md" in names and "peo-help-adapter/adapter_config.json" in names
    assert [p.name for p in path.parent.iterdir()] == [path.name], "the unzipped folder is not kept"


def test_expired_exports_are_removed(tiny_assets, store):
    exports.configure(ttl_minutes=1)
    old = cb.export_zip(fake_app(tiny_assets), "help", None, "adapter")
    an_hour_ago = time.time() - 3600
    os.utime(old.parent, (an_hour_ago, an_hour_ago))
    new = cb.export_zip(fake_app(tiny_assets), "harm", None, "adapter")  # a new export sweeps expired ones
    assert not old.parent.exists() and new.is_file()
    assert exports.expire(now=time.time() + 120) == [new.parent] and not new.exists()


def test_the_size_cap_removes_the_oldest_first_and_refuses_one_too_large(tiny_assets, store):
    app = fake_app(tiny_assets)
    first = cb.export_zip(app, "help", None, "adapter")
    size = first.stat().st_size
    exports.configure(max_mb=2.5 * size / exports.MB)  # room for two exports, not three
    second = cb.export_zip(app, "harm", None, "adapter")
    os.utime(first.parent, (time.time() - 20, time.time() - 20))  # same-second stamps: make the order plain
    os.utime(second.parent, (time.time() - 10, time.time() - 10))
    third = cb.export_zip(app, "joint", None, "adapter")
    assert not first.exists() and second.is_file() and third.is_file()
    total = sum(f.stat().st_size for f in (exports.root() / "exports").rglob("*") if f.is_file())
    assert total <= exports.limits().max_bytes

    exports.configure(max_mb=0.5 * size / exports.MB)
    with pytest.raises(exports.ExportTooLarge, match="more than the app keeps for exports"):
        cb.export_zip(app, "help", None, "adapter")
    assert sorted(p.name for p in (exports.root() / "exports").iterdir()) == sorted(
        [second.parent.name, third.parent.name]), "the refused export left nothing, and evicted nothing"


def test_gradio_serves_exports_in_place_and_everything_goes_at_exit(tiny_assets, store, monkeypatch):
    """The app's folder is Gradio's cache: an export handed to a gr.File is served where it is, not copied."""
    import gradio as gr

    monkeypatch.delenv("GRADIO_TEMP_DIR", raising=False)
    gradio_dir = exports.point_gradio_here()
    assert gradio_dir == exports.root()
    assert exports.limits().gradio_delete_cache() == (600, 3600)
    path = cb.export_zip(fake_app(tiny_assets), "help", None, "adapter")
    before = sorted(exports.root().rglob("*"))
    assert gr.File().move_resource_to_block_cache(str(path)) == str(path)
    assert sorted(exports.root().rglob("*")) == before, "Gradio made a copy"
    root = exports.root()
    exports.remove_all()
    assert not root.exists() and list(store.iterdir()) == []


def test_the_size_cap_counts_what_gradio_keeps_in_the_folder(tiny_assets, store):
    """1.4 GB of exports once took 2.7 GB against a 2 GB cap: Gradio's files in the app's folder count too."""
    app = fake_app(tiny_assets)
    first = cb.export_zip(app, "help", None, "adapter")
    size = first.stat().st_size
    os.utime(first.parent, (time.time() - 20, time.time() - 20))
    exports.configure(max_mb=2.5 * size / exports.MB)  # two exports fit, or one and a copy of it
    kept = exports.root() / "0123abcd" / first.name  # a file Gradio keeps in its cache (here: the app's folder)
    kept.parent.mkdir()
    kept.write_bytes(first.read_bytes())
    second = cb.export_zip(app, "harm", None, "adapter")
    assert not first.exists() and second.is_file()
    total = sum(f.stat().st_size for f in exports.root().rglob("*") if f.is_file())
    assert total <= exports.limits().max_bytes


def test_a_killed_apps_folder_is_removed_at_the_next_start(store):
    """SIGKILL skips atexit: the folder stays until the next app makes its own; a live app's folder is kept."""
    import signal
    import subprocess
    import sys

    from conftest import REPO

    code = ("import sys, tempfile, time; tempfile.tempdir = sys.argv[1]; from app import exports; "
            "print(exports.root(), flush=True); time.sleep(60)")
    killed = subprocess.Popen([sys.executable, "-c", code, str(store)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    left = Path(killed.stdout.readline().strip())
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    killed.stdout.close()
    live = Path(tempfile.mkdtemp(prefix=f"{exports.ROOT_PREFIX}{os.getppid()}-"))  # a running process's folder
    older = Path(tempfile.mkdtemp(prefix=exports.ROOT_PREFIX))  # no process id: whose it is is unknown
    assert left.is_dir() and left.parent == store
    mine = exports.root()
    assert not left.exists() and live.is_dir() and older.is_dir() and mine.is_dir()
