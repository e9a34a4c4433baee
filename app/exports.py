"""Where the app's export zips and downloads (CSV, JSON lines) live: one folder the app owns, so that exports
never outlive the app.

Every export gets its own folder under `<root>/exports`. The root is also Gradio's cache (GRADIO_TEMP_DIR, set by
app/__main__.py before Gradio is imported): Gradio serves a file already in its cache where it is, so an export is
stored once, not once more as Gradio's copy, and whatever else Gradio keeps there is inside the root too. An
export expires after a time-to-live; everything under the root stays under a size cap (the oldest exports
removed first; one export larger than the cap alone is refused); the whole root is removed at exit (atexit, and
when the demo closes). A root left by a killed app (SIGKILL skips both) is removed when the next app makes its
own (at start, app/__main__.py): the root's name carries its app's process id. The settings are the app's CLI flags
`--export-ttl-minutes` and `--export-max-mb` (defaults below).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app.data import AppInputError

DEFAULT_TTL_MINUTES = 60.0  # long enough to download a merged model on a slow link
DEFAULT_MAX_MB = 2048.0  # about three merged SmolLM2-135M exports (fp32, ~520 MB each) or many adapters
MB = 1024 * 1024
ROOT_PREFIX = "peo-app-"  # the root is <tempdir>/peo-app-<pid>-<random>


class ExportTooLarge(AppInputError):
    """One export alone is larger than the app's cap on export storage."""


@dataclass(frozen=True)
class ExportLimits:
    ttl_s: float = DEFAULT_TTL_MINUTES * 60
    max_bytes: int = int(DEFAULT_MAX_MB * MB)

    def gradio_delete_cache(self) -> tuple[int, int]:
        """Gradio's `delete_cache=(frequency, age)`: its copies expire with the exports they copy."""
        age = max(1, int(self.ttl_s))
        return max(1, min(age, 600)), age


_lock = threading.RLock()  # root() is called with it held (admit)
_root: Path | None = None
_limits = ExportLimits()


def configure(ttl_minutes: float = DEFAULT_TTL_MINUTES, max_mb: float = DEFAULT_MAX_MB) -> ExportLimits:
    """Set the time-to-live and the size cap (the app's CLI flags); returns them."""
    global _limits
    if not ttl_minutes > 0 or not max_mb > 0:
        raise AppInputError(f"export time-to-live and size cap must be positive, got {ttl_minutes} min, {max_mb} MB")
    _limits = ExportLimits(ttl_s=ttl_minutes * 60, max_bytes=int(max_mb * MB))
    return _limits


def limits() -> ExportLimits:
    return _limits


def root() -> Path:
    """The app's own temp folder, created on first use (after removing those of killed apps) and removed at exit."""
    global _root
    with _lock:
        if _root is None or not _root.is_dir():
            remove_stale()
            _root = Path(tempfile.mkdtemp(prefix=f"{ROOT_PREFIX}{os.getpid()}-"))
            (_root / "exports").mkdir()
            atexit.register(remove_all)
        return _root


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale() -> list[Path]:
    """Remove the roots whose app is no longer running (killed before its exit handlers ran); returns them.
    A root without a process id in its name (an older app's) is left alone: nothing says whose it is."""
    gone = []
    for folder in Path(tempfile.gettempdir()).glob(f"{ROOT_PREFIX}*-*"):
        pid = folder.name[len(ROOT_PREFIX):].split("-", 1)[0]
        if folder.is_dir() and pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            gone.append(folder)
    return gone


def point_gradio_here() -> Path:
    """Make the app's folder Gradio's cache (GRADIO_TEMP_DIR) unless the user set one; call before Gradio is
    imported (it reads the variable when it builds the page). Gradio then serves the exports without copying them."""
    os.environ.setdefault("GRADIO_TEMP_DIR", str(root()))
    return Path(os.environ["GRADIO_TEMP_DIR"])


def remove_all() -> None:
    """Remove the app's folder with every export and Gradio copy in it (at exit, when the demo closes)."""
    global _root
    with _lock:
        if _root is not None:
            shutil.rmtree(_root, ignore_errors=True)
            _root = None


def _bytes(folder: Path) -> int:
    """The bytes of the files under `folder`, skipping those removed meanwhile (another session's eviction)."""
    total = 0
    for f in folder.rglob("*"):
        try:
            total += f.stat().st_size if f.is_file() else 0
        except FileNotFoundError:
            continue
    return total


def _exports() -> list[tuple[float, int, Path]]:
    """(created, bytes, folder) of every export, oldest first."""
    found = []
    for folder in (root() / "exports").iterdir():
        try:
            created = folder.stat().st_mtime
            size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        except FileNotFoundError:  # removed meanwhile by another session's export
            continue
        found.append((created, size, folder))
    return sorted(found, key=lambda item: (item[0], item[2].name))


def expire(now: float | None = None) -> list[Path]:
    """Remove the exports older than the time-to-live; returns them."""
    now = time.time() if now is None else now
    gone = [folder for created, _, folder in _exports() if now - created > _limits.ttl_s]
    for folder in gone:
        shutil.rmtree(folder, ignore_errors=True)
    return gone


def new_folder() -> Path:
    """A fresh folder for one export (expired ones are removed first)."""
    expire()
    return Path(tempfile.mkdtemp(prefix="export-", dir=root() / "exports"))


def admit(folder: Path) -> list[Path]:
    """Keep the app's folder under the size cap with the finished export in `folder`: the oldest other exports are
    removed until everything in the folder fits, Gradio's files included; an export larger than the cap by itself
    is removed and refused. Returns the folders removed."""
    mine = _bytes(folder)
    if mine > _limits.max_bytes:
        shutil.rmtree(folder, ignore_errors=True)
        raise ExportTooLarge(f"This export is {mine / MB:.0f} MB, more than the app keeps for exports "
                             f"({_limits.max_bytes / MB:.0f} MB, --export-max-mb): export the adapter instead, or "
                             f"run `python -m peo export` on your machine.")
    removed = []
    with _lock:
        others = [(created, size, f) for created, size, f in _exports() if f != folder]
        total = _bytes(root())  # the exports and whatever Gradio keeps in its cache here
        for _, size, old in others:  # oldest first
            if total <= _limits.max_bytes:
                break
            shutil.rmtree(old, ignore_errors=True)
            removed.append(old)
            total -= size
    return removed


def download(name: str, write: Callable[[Path], None]) -> Path:
    """A file for the page to offer as a download: `write(path)` fills it in its own export folder, kept and
    expired like an export (under the size cap, removed at exit). Returns its path."""
    folder = new_folder()
    path = folder / name
    write(path)
    admit(folder)
    return path


def remove_on_close(demo):
    """Make `demo.close()` (Gradio calls it on Ctrl-C; tests call it) also remove the app's folder."""
    close = demo.close

    def close_and_remove(*args, **kwargs):
        try:
            return close(*args, **kwargs)
        finally:
            remove_all()

    demo.close = close_and_remove
    return demo
