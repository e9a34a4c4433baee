"""`python -m bench.serve [--assets DIR] [--out bench/results-serve.json]`: `peo serve`'s throughput.

Starts `python -m peo serve` on the assets (default: the shipped ones, SmolLM2-135M on CPU) as a subprocess, then
sends 8 chat completions, each for a different point of the family and a different dev prompt (greedy,
max_tokens 48): once one after another (sequential: each request decodes alone in the server's running batch),
once all at the same moment from 8 client threads (concurrent: the requests join the one running batch at step
boundaries, each with its own prefill, and leave as each ends). Rounds alternate the two so that a change in the
machine's load touches both. Reports answers per second (requests / wall time of the round), per-request latency
p50 / p95 over every round, the server's `max_rows_in_batch` (from `/health`) after each round (the largest
running batch so far, so it shows how many of the 8 concurrent requests shared a step), and whether each
concurrent answer equals its sequential one (it must).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from app.screenshots import free_port
from bench.common import BENCH, REPO, machine_info, stop_process, write_json
from peo.records import RunMeta

N_CLIENTS = 8


def bench_points(run_meta: RunMeta, n: int = N_CLIENTS) -> list[str]:
    """n different models: PEO grid points spread over the grid (distinct coefficients), the soup at the middle λ
    and ExPO at its middle α."""
    from peo.model_names import FamilyRange, catalog

    family = FamilyRange.from_run_meta(run_meta)
    models = catalog(family)
    soup = [m for m in models if m.method == "soup"]
    expo = [m for m in models if m.method == "expo" and m.model_id != "joint"]
    peo, seen = [], set()
    for m in models:
        if m.method == "peo" and m.model_id not in seen:
            seen.add(m.model_id)
            peo.append(m)
    others = [soup[len(soup) // 2]] + expo[len(expo) // 2:][:1]
    k = n - len(others)
    picked = [peo[round(i * (len(peo) - 1) / (k - 1))] for i in range(k)] if k > 1 else peo[:k]
    return [m.name for m in picked + others]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def start_server(assets: str, n: int) -> tuple[subprocess.Popen, str, float, Path]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = Path(tempfile.mkstemp(prefix="peo-serve-bench-", suffix=".log")[1])
    env = {k: v for k, v in os.environ.items() if k != "PEO_API_KEY"}
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    with open(log, "wb") as log_file:
        server = subprocess.Popen([sys.executable, "-m", "peo", "serve", "--assets", assets, "--port", str(port),
                                   "--device", "cpu", "--max-batch", str(n)],
                                  cwd=REPO, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    start = time.perf_counter()
    while True:
        if server.poll() is not None:
            sys.exit(f"peo serve exited ({server.returncode}); its log: {log}")
        try:
            if httpx.get(url + "/health", timeout=2).json()["ready"]:
                return server, url, time.perf_counter() - start, log
        except httpx.HTTPError:
            pass
        if time.perf_counter() - start > 600:
            server.kill()
            sys.exit(f"peo serve did not come up in 600 s; its log: {log}")
        time.sleep(0.5)


def measure(url: str, points: list[str], prompts: list, max_tokens: int, n_rounds: int) -> dict:
    http = httpx.Client(timeout=600)

    def request(i: int) -> tuple[str, float]:
        body = {"model": points[i], "messages": prompts[i], "max_tokens": max_tokens, "temperature": 0.0}
        t0 = time.perf_counter()
        r = http.post(url + "/v1/chat/completions", json=body)
        r.raise_for_status()
        return r.json()["choices"][0]["message"]["content"], time.perf_counter() - t0

    request(0)  # warm-up: first-call costs (allocations, kernels) are not the server's steady state
    rounds, latencies, answers = [], {"sequential": [], "concurrent": []}, {}
    for r in range(n_rounds):
        for mode in ("sequential", "concurrent"):
            results: dict[int, tuple[str, float]] = {}
            before = http.get(url + "/health").json()
            t0 = time.perf_counter()
            if mode == "sequential":
                for i in range(len(points)):
                    results[i] = request(i)
            else:
                def run(i: int) -> None:
                    results[i] = request(i)

                threads = [threading.Thread(target=run, args=(i,)) for i in range(len(points))]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
            wall = time.perf_counter() - t0
            after = http.get(url + "/health").json()
            lat = [results[i][1] for i in range(len(points))]
            latencies[mode] += lat
            answers.setdefault(mode, []).append([results[i][0] for i in range(len(points))])
            rounds.append({"round": r, "mode": mode, "wall_s": round(wall, 3),
                           "answers_per_s": round(len(points) / wall, 3),
                           "max_rows_in_batch": after["max_rows_in_batch"],
                           "max_rows_in_batch_delta": after["max_rows_in_batch"] - before["max_rows_in_batch"],
                           "latencies_s": [round(x, 3) for x in lat], "load_average": load_average()})
            print(f"  round {r} {mode:10s}: {len(points) / wall:.2f} answers/s, wall {wall:.2f} s, largest batch "
                  f"so far {rounds[-1]['max_rows_in_batch']} row(s), latency p50 {statistics.median(lat):.2f} s")
    first = answers["sequential"][0]
    same = all(a == first for mode in answers for a in answers[mode])
    summary = {}
    for mode in ("sequential", "concurrent"):
        walls = [x["wall_s"] for x in rounds if x["mode"] == mode]
        summary[mode] = {"answers_per_s_median": round(len(points) / statistics.median(walls), 3),
                         "wall_s_median": round(statistics.median(walls), 3),
                         "latency_p50_s": round(percentile(latencies[mode], 0.5), 3),
                         "latency_p95_s": round(percentile(latencies[mode], 0.95), 3)}
    summary["concurrent_over_sequential"] = round(summary["concurrent"]["answers_per_s_median"]
                                                  / summary["sequential"]["answers_per_s_median"], 2)
    summary["max_rows_in_batch"] = rounds[-1]["max_rows_in_batch"]  # the server's largest batch over every round
    summary["every_answer_equals_the_first_sequential_round"] = same
    return {"summary": summary, "rounds": rounds, "answers": first}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.serve")
    parser.add_argument("--assets", default=str(REPO / "assets"))
    parser.add_argument("--out", type=Path, default=BENCH / "results-serve.json")
    parser.add_argument("--rounds", type=int, default=3, help="sequential/concurrent round pairs (default 3)")
    parser.add_argument("--max-tokens", type=int, default=48)
    args = parser.parse_args(argv)

    from bench.fixtures import dev_prompts
    from peo.assets import load_assets

    assets = load_assets(args.assets)
    points = bench_points(assets.run_meta)
    prompts = dev_prompts(assets, len(points))
    print("peo serve")
    server, url, load_seconds, log = start_server(args.assets, len(points))
    try:
        run = measure(url, points, prompts, args.max_tokens, args.rounds)
    finally:
        stop_process(server)
    for mode in ("sequential", "concurrent"):
        s = run["summary"][mode]
        print(f"  {mode:10s}: {s['answers_per_s_median']:.2f} answers/s (median round), latency p50 "
              f"{s['latency_p50_s']:.2f} s, p95 {s['latency_p95_s']:.2f} s")
    print(f"  concurrent / sequential: {run['summary']['concurrent_over_sequential']:.2f}x; every answer the "
          f"same in every round and mode: {run['summary']['every_answer_equals_the_first_sequential_round']}")
    results = {
        "what": f"peo serve: {len(points)} greedy requests for {len(points)} different points (one dev prompt each), "
                "all at once from as many client threads vs one after another",
        "settings": {"assets": args.assets, "base_model": assets.base_model_spec, "points": points,
                     "max_tokens": args.max_tokens, "temperature": 0.0, "rounds": args.rounds},
        "machine": {**machine_info("cpu"), "load_average_at_end": load_average(),
                    "note": "a shared machine: other engineers' jobs may have run on the same cores"},
        "server_load_seconds": round(load_seconds, 1),
        **run,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    write_json(args.out, results)
    print(f"wrote {args.out}")
    return 0 if run["summary"]["every_answer_equals_the_first_sequential_round"] else 1


if __name__ == "__main__":
    sys.exit(main())
