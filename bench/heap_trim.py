"""`python -m bench.heap_trim [--assets DIR] [--pairs 10] [--out bench/results-heap-trim.json]`: what handing
freed memory back to the OS after each turn costs (app/memory.py ModelLock).

One process, the app's own chat path (`callbacks.chat`: 3 columns, ≤ 48 tokens, greedy, scored), each prompt run
twice in a row, once with `malloc_trim(0)` on the lock's release and once without, the order alternating: paired
turn times, so a slow machine or a long prompt counts against both. Also the time of each `malloc_trim` call.
The RSS it saves is measured by the load section (`python -m bench --only load`).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from app import memory
from bench.common import machine_info, write_json
from bench.fixtures import dev_prompts

COLUMNS = ["peo", "ref", "soup"]
POINT = (0.5, 0.5, 0.5)


def measure(assets: Path | None, pairs: int) -> dict:
    from app import callbacks as cb

    memory.limit_malloc_arenas()  # as the app does at start
    trim = memory.return_freed_memory
    trim_s: list[float] = []

    def timed_trim() -> bool:
        start = time.perf_counter()
        done = trim()
        trim_s.append(time.perf_counter() - start)
        return done

    app = cb.App.load(assets)
    app.engine.start()
    app.engine.wait_ready()
    prompts = [m[-1]["content"] for m in dev_prompts(app.data.assets, pairs)]
    settings = cb.check_settings(48, 0.0, 1.0, 0, app.default_settings["repetition_penalty"],
                                 defaults=app.default_settings)

    def turn(prompt: str) -> float:
        start = time.perf_counter()
        cb.chat(app, prompt, COLUMNS, POINT, settings)
        return time.perf_counter() - start

    turn(prompts[0])  # warm-up
    times: dict[str, list[float]] = {"trim": [], "no_trim": []}
    try:
        for i, prompt in enumerate(prompts):
            for mode in ("trim", "no_trim") if i % 2 == 0 else ("no_trim", "trim"):
                memory.return_freed_memory = timed_trim if mode == "trim" else (lambda: False)
                times[mode].append(turn(prompt))
    finally:
        memory.return_freed_memory = trim
    ratios = [t / n for t, n in zip(times["trim"], times["no_trim"])]
    return {
        "columns": COLUMNS, "point": POINT, "max_new_tokens": 48, "pairs": len(prompts),
        "turn_s": {mode: {"median": statistics.median(v), "all": v} for mode, v in times.items()},
        "paired_ratio_trim_over_no_trim": {"median": statistics.median(ratios), "min": min(ratios),
                                           "max": max(ratios)},
        "malloc_trim_ms": {"median": 1000 * statistics.median(trim_s), "max": 1000 * max(trim_s), "n": len(trim_s)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.heap_trim", description=__doc__.split("\n\n")[0])
    parser.add_argument("--assets", type=Path, default=None, help="assets folder (default: assets/)")
    parser.add_argument("--pairs", type=int, default=10, help="prompts, each run with and without trimming")
    parser.add_argument("--out", type=Path, default=Path("bench/results-heap-trim.json"))
    args = parser.parse_args()
    result = {"machine": machine_info("cpu"), "heap_trim": measure(args.assets, args.pairs)}
    write_json(args.out, result)
    r = result["heap_trim"]
    ratio = r["paired_ratio_trim_over_no_trim"]["median"]
    print(f"turn (3 columns, 48 tokens): trim {r['turn_s']['trim']['median']:.2f} s, no trim "
          f"{r['turn_s']['no_trim']['median']:.2f} s; paired ratio {ratio:.3f}; "
          f"malloc_trim {r['malloc_trim_ms']['median']:.1f} ms (max {r['malloc_trim_ms']['max']:.1f})")
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
