"""The app's heap: few malloc arenas, and freed memory handed back to the OS after each use of the model.

glibc keeps memory that Python and torch free in its arenas instead of returning it, so the app's RSS climbs
with every turn's temporary tensors until it plateaus well above what it holds. Measured on the real model
(bench/README.md, "Results under load"): the first 3-column turns alone add ~90 MiB that `malloc_trim(0)` gives
back in full, and an 8-session burst with two arenas still grew RSS by 165 MiB. So the app limits the arenas
at start-up and trims once a turn, while it still holds the model lock (no turn is running then).
Both are no-ops where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
from functools import cache

M_ARENA_MAX = -8  # glibc's mallopt parameter behind the MALLOC_ARENA_MAX variable
MALLOC_ARENAS = 2


@cache
def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt, libc.malloc_trim  # noqa: B018 - both exist in glibc only (not in musl)
    except (OSError, AttributeError):
        return None
    return libc


def limit_malloc_arenas(n: int = MALLOC_ARENAS) -> bool:
    """Two malloc arenas instead of glibc's default (8 per core), set before any thread starts.

    Gradio runs events on a thread pool and glibc gives threads their own arenas. The variable wins when set.
    """
    libc = _glibc()
    if os.environ.get("MALLOC_ARENA_MAX") or libc is None:
        return False
    return bool(libc.mallopt(M_ARENA_MAX, n))


def return_freed_memory() -> bool:
    """`malloc_trim(0)`: give the arenas' free pages back to the OS (a few ms on the app's heap)."""
    libc = _glibc()
    return bool(libc.malloc_trim(0)) if libc is not None else False


class ModelLock:
    """The lock around the model: releasing it first returns the turn's freed memory to the OS, so RSS tracks
    what the app holds, not the high-water mark of every turn so far."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return self._lock.acquire(blocking, timeout)

    def release(self) -> None:
        try:
            return_freed_memory()
        finally:
            self._lock.release()

    def without_trim(self) -> "_Untrimmed":
        """The same lock, released without trimming: what a decoding step takes (the decode loop trims once it
        goes idle, not after every step)."""
        return _Untrimmed(self._lock)

    def locked(self) -> bool:
        return self._lock.locked()

    def __enter__(self) -> "ModelLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class _Untrimmed:
    def __init__(self, lock: threading.Lock):
        self._lock = lock

    def __enter__(self) -> "_Untrimmed":
        self._lock.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self._lock.release()
