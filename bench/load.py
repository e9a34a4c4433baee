"""8. The app under load: several `gradio_client` sessions at once on the real model, then a soak.

`python -m app --assets A --port P --concurrency C` in a subprocess, as a user launches it. Measured:
- alone: every session's turns sent one at a time, one request in flight: the answers a session should get;
- load: `load_sessions` sessions at once, each a thread with its own Client and its own point, sending
  `load_turns` turns of `load_columns` columns (greedy, `load_tokens` new tokens, fixed seed): errors, whether
  every answer equals the same request made alone (no cross-talk between sessions), latency per turn
  (submit → result) and queue wait (submit → the job is first seen processing), and the app's RSS before and
  after (its process tree, VmRSS);
- soak: `soak_sessions` sessions sending turns back to back for `soak_seconds`: RSS sampled along the way,
  latency in the first and the last fifth of the soak (drift).
/chat is stateless (one turn, no history), so a turn's answer depends only on its own request.
"""

from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path

from bench.app_latency import served_app
from bench.common import Check, Plan
from bench.fixtures import dev_prompts
from peo.assets import Assets
from peo.names import PEO, REFERENCE, SOUP

COLUMNS = [PEO, REFERENCE, SOUP]
POLL_S = 0.05


def tree_rss_mib(pid: int) -> float:
    """VmRSS of a process and its children (the app runs as one process; children are counted if any)."""
    total_kib = 0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.is_file():
        pids += [int(c) for c in children.read_text().split()]
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kib += int(line.split()[1])
        except OSError:
            continue
    return total_kib / 1024


def session_points(assets: Assets, n: int) -> list[tuple[float, float, float]]:
    """n distinct points inside the grid's range, grid and off-grid, so each session forms its own policy."""
    grid = assets.run_meta.grid
    h, x = max(grid["phi_help"]), max(grid["phi_harm"])
    return [(round((i + 0.5) / n, 3), round(h * ((i * 3) % n) / n, 3), round(x * ((i * 5) % n) / n, 3))
            for i in range(n)]


def _turn(client, message: str, point: tuple[float, float, float], plan: Plan) -> tuple[dict, float, float]:
    """(answers, latency s, queue wait s) of one /chat request."""
    from gradio_client.utils import Status

    start = time.monotonic()
    job = client.submit(message, COLUMNS, *point, plan.load_tokens, 0.0, 1.0, 0, api_name="/chat")
    started = None
    while not job.done():
        if started is None and job.status().code == Status.PROCESSING:
            started = time.monotonic()
        time.sleep(POLL_S)
    result = job.result()
    end = time.monotonic()
    return result, end - start, (started or end) - start


def _answers(result: dict) -> dict[str, str]:
    return {col: result[col]["answer"] for col in COLUMNS}


def _percentiles(values: list[float]) -> dict:
    ordered = sorted(values)
    if not ordered:
        return {}
    pick = lambda q: ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]  # noqa: E731
    return {"p50_s": statistics.median(ordered), "p95_s": pick(0.95), "max_s": ordered[-1], "n": len(ordered)}


def run(assets: Assets, plan: Plan) -> dict:
    from gradio_client import Client

    prompts = [m[-1]["content"] for m in dev_prompts(assets, plan.load_sessions * plan.load_turns)]
    points = session_points(assets, plan.load_sessions)
    requests = {(s, t): (prompts[s * plan.load_turns + t], points[s])
                for s in range(plan.load_sessions) for t in range(plan.load_turns)}
    with served_app(assets, plan, "--concurrency", str(plan.load_concurrency), log_name="load") as (
            url, process, log_path, _):
        warm = Client(url, verbose=False)
        warm.predict("Hello", [PEO], *points[0], 1, 0.0, 1.0, 0, api_name="/chat")  # models loaded
        rss_before = tree_rss_mib(process.pid)

        alone: dict = {}
        alone_s = []
        for key, (message, point) in requests.items():
            result, seconds, _ = _turn(warm, message, point, plan)
            alone[key], _ = _answers(result), alone_s.append(seconds)

        errors: list[str] = []
        records: list[dict] = []
        lock = threading.Lock()

        def session(s: int) -> None:
            client = Client(url, verbose=False)
            for t in range(plan.load_turns):
                message, point = requests[(s, t)]
                try:
                    result, seconds, queued = _turn(client, message, point, plan)
                except Exception as err:  # noqa: BLE001 - every failure is a counted error, not a crash
                    with lock:
                        errors.append(f"session {s} turn {t}: {type(err).__name__}: {err}")
                    continue
                with lock:
                    records.append({"session": s, "turn": t, "latency_s": seconds, "queue_s": queued,
                                    "same_as_alone": _answers(result) == alone[(s, t)]})

        start = time.monotonic()
        threads = [threading.Thread(target=session, args=(s,)) for s in range(plan.load_sessions)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        load_wall = time.monotonic() - start
        rss_after = tree_rss_mib(process.pid)

        soak = _soak(url, requests, plan, process.pid)

    mismatched = [f"session {r['session']} turn {r['turn']}" for r in records if not r["same_as_alone"]]
    result = {
        "sessions": plan.load_sessions, "turns_per_session": plan.load_turns, "columns": COLUMNS,
        "max_new_tokens": plan.load_tokens, "concurrency": plan.load_concurrency, "points": points,
        "alone": _percentiles(alone_s),
        "load": {"wall_s": load_wall, "latency": _percentiles([r["latency_s"] for r in records]),
                 "queue_wait": _percentiles([r["queue_s"] for r in records]), "errors": errors,
                 "answers_differing_from_alone": mismatched, "turns": records},
        "rss_mib": {"before": rss_before, "after_load": rss_after, "growth": rss_after - rss_before},
        "soak": soak, "app_log": str(log_path),
    }
    result["checks"] = [
        Check("load: errors", len(errors), "<=", 0, unit=""),
        Check("load: answers differing from alone", len(mismatched), "<=", 0, unit=""),
        Check("load: RSS growth", rss_after - rss_before, "<=", 100, unit="MiB"),
        Check("soak: RSS growth", soak["rss_growth_mib"], "<=", 100, unit="MiB"),
    ]
    return result


def _soak(url: str, requests: dict, plan: Plan, pid: int) -> dict:
    """`soak_sessions` sessions sending turns back to back for `soak_seconds`; RSS every `soak_sample_s`."""
    from gradio_client import Client

    stop = time.monotonic() + plan.soak_seconds
    start = time.monotonic()
    turns: list[tuple[float, float]] = []  # (seconds since start, latency)
    errors: list[str] = []
    samples = [(0.0, tree_rss_mib(pid))]
    lock = threading.Lock()
    keys = list(requests)

    def session(s: int) -> None:
        client = Client(url, verbose=False)
        i = s
        while time.monotonic() < stop:
            message, point = requests[keys[i % len(keys)]]
            i += plan.soak_sessions
            try:
                _, seconds, _ = _turn(client, message, point, plan)
            except Exception as err:  # noqa: BLE001
                with lock:
                    errors.append(f"{type(err).__name__}: {err}")
                continue
            with lock:
                turns.append((time.monotonic() - start, seconds))

    threads = [threading.Thread(target=session, args=(s,)) for s in range(plan.soak_sessions)]
    for th in threads:
        th.start()
    while time.monotonic() < stop:
        time.sleep(min(plan.soak_sample_s, max(0.1, stop - time.monotonic())))
        samples.append((time.monotonic() - start, tree_rss_mib(pid)))
    for th in threads:  # the turns in flight at the stop time finish
        th.join()
    samples.append((time.monotonic() - start, tree_rss_mib(pid)))
    duration = time.monotonic() - start
    fifth = duration / 5
    first = [lat for at, lat in turns if at <= fifth]
    last = [lat for at, lat in turns if at >= duration - fifth]
    median = lambda xs: statistics.median(xs) if xs else None  # noqa: E731
    return {"seconds": duration, "sessions": plan.soak_sessions, "turns": len(turns), "errors": errors,
            "latency": _percentiles([lat for _, lat in turns]),
            "latency_first_fifth_p50_s": median(first), "latency_last_fifth_p50_s": median(last),
            "rss_samples_mib": [[round(at, 1), round(rss, 1)] for at, rss in samples],
            "rss_growth_mib": samples[-1][1] - samples[0][1]}
