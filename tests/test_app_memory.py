"""The app's heap policy (app/memory.py): two malloc arenas, and freed memory returned after each model use."""

import os
import platform
import threading

import pytest

from app import memory
from bench.load import tree_rss_mib

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def rss_mib() -> float:
    return tree_rss_mib(os.getpid())


def test_the_app_limits_malloc_arenas_unless_the_variable_is_set(monkeypatch):
    """Two arenas bound the RSS growth measured under load; an explicit MALLOC_ARENA_MAX is left to glibc."""
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert memory.limit_malloc_arenas() is False
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    if GLIBC:
        assert memory.limit_malloc_arenas() is True


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's")
def test_freed_heap_memory_goes_back_to_the_os():
    """200 MB in 100 KB blocks (below glibc's mmap threshold: they live in the heap), all freed but the last,
    which pins the top of the heap so glibc's own trimming cannot return the rest; malloc_trim(0) does."""
    blocks = [bytearray(100 * 1024) for _ in range(2000)]
    for block in blocks:
        block[::4096] = b"x" * len(block[::4096])  # touch every page: resident
    pinned = blocks[-1]
    del blocks
    held = rss_mib()
    assert memory.return_freed_memory() is True
    assert rss_mib() < held - 100, "malloc_trim(0) returned less than 100 of the ~200 MB freed"
    assert len(pinned) == 100 * 1024


def test_the_model_lock_returns_freed_memory_on_release_and_releases_even_if_that_fails(monkeypatch):
    calls = []
    monkeypatch.setattr(memory, "return_freed_memory", lambda: calls.append(threading.current_thread()) or True)
    lock = memory.ModelLock()
    with lock:
        assert lock.locked() and calls == []
    assert not lock.locked() and len(calls) == 1

    def failing():
        raise RuntimeError("trim failed")

    monkeypatch.setattr(memory, "return_freed_memory", failing)
    with pytest.raises(RuntimeError, match="trim failed"):
        with lock:
            pass
    assert not lock.locked()
