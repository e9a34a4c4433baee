"""The benchmark suite's smoke run: `python -m bench --quick` on the tiny assets writes every section.

No thresholds: the tiny model's timings say nothing about the targets, only that every measurement runs.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SECTIONS = ("point_switch", "sweep", "chat", "memory", "training", "app", "hardware", "load")


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def test_quick_bench_writes_every_section(tiny_assets, tmp_path):
    out = tmp_path / "results.json"
    env = dict(os.environ, PYTHONPATH=str(REPO), TOKENIZERS_PARALLELISM="false")
    done = subprocess.run([sys.executable, "-m", "bench", "--quick", "--assets", str(tiny_assets), "--out", str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    assert "figure" in done.stdout and "status" in done.stdout  # the printed table

    results = json.loads(out.read_text())
    machine = results["machine"]
    for key in ("cpu_model", "cpu_count", "torch_threads", "torch", "device"):
        assert machine.get(key) not in (None, ""), key
    assert results["settings"]["quick"] is True

    sections = results["sections"]
    assert set(SECTIONS) <= set(sections)
    for name in SECTIONS:
        assert "error" not in sections[name], (name, sections[name].get("error"))

    switch = sections["point_switch"]
    assert _positive(switch["adapter_scaling"]["median_s"]) and _positive(switch["fused_merge"]["median_s"])
    assert switch["usual_way_used"] in switch["usual_way"]
    assert _positive(switch["usual_way"][switch["usual_way_used"]]["median_s"])
    assert all(_positive(v) for v in switch["ratios"].values())
    # the usual way and the fused merge form the same weights
    for key in (k for k in switch if k.endswith("_max_abs_diff_vs_fused")):
        assert switch[key] < 1e-3, (key, switch[key])

    sweep = sections["sweep"]
    for k in ("multi_point", "naive", "base_limit"):
        assert _positive(sweep[k]["seconds_per_point"]) and _positive(sweep[k]["tokens_per_s"])
        assert sweep[k]["reps"] >= 3
    assert all(_positive(v) for v in sweep["ratios"].values())

    load = sections["load"]  # concurrent sessions get what they get alone, without errors
    assert load["load"]["errors"] == [] and load["load"]["answers_differing_from_alone"] == []
    assert len(load["load"]["turns"]) == load["sessions"] * load["turns_per_session"]
    assert _positive(load["load"]["latency"]["p50_s"]) and load["soak"]["turns"] > 0

    chat = sections["chat"]
    assert _positive(chat["columns_5"]["median_s"]) and _positive(chat["columns_1"]["median_s"])
    assert _positive(chat["ratios"]["five_over_one"])

    memory = sections["memory"]
    for k in ("imports", "base1", "serve5", "serve5_own_evaluator_copy"):
        assert _positive(memory[k]["peak_rss"])
    assert _positive(memory["ratios"]["serve5_over_base1"])

    training = sections["training"]
    cpu = training["devices"]["cpu"]
    assert _positive(cpu["dpo_step"]["median_s"]) and _positive(cpu["dpo_step"]["tokens_per_s"])
    assert _positive(cpu["scoring"]["answers_per_s"]) and _positive(cpu["scoring"]["tokens_per_s"])

    app = sections["app"]
    assert 0 < app["startup"]["page_up_s"] <= app["startup"]["first_answer_s"]
    assert _positive(app["pick"]["median_s"]) and app["pick"]["reps"] >= 3
    assert set(app["answer_tokens"]["columns_5"]) == {"peo", "ref", "help", "harm", "soup"}
    assert _positive(app["ratios"]["five_over_one"])

    hardware = sections["hardware"]
    for b in hardware["batches"]:
        assert (_positive(hardware[f"decode_{b}"]["ms_per_row_token"])
                and _positive(hardware[f"prefill_{b}"]["ms_per_row"]))
        assert _positive(hardware["matrix"][f"rows_{b}"]["GFLOPs"])
    assert _positive(hardware["matrix"]["copy_256MiB"]["GBps_read_plus_write"])

    candidates = sections["step_candidates"]  # the compiled step computes what the eager one does
    assert all(_positive(candidates[name]["median_s"]) for name in candidates["over_floor"])
    assert candidates["compile_seconds"] > 0
    difference = candidates["max_abs_logit_difference"]
    assert difference["static_compiled_vs_static_eager"] <= 1e-3 * difference["eager_logit_scale"]
    assert difference["static_eager_vs_eager"] <= 1e-3 * difference["eager_logit_scale"]
    assert candidates["int4"]["int4_vs_eager"] <= 1e-3 * difference["eager_logit_scale"]  # 4-bit, fp32 activations
    if candidates["mkl_packed"]:  # MKL's packed GEMM: the same map
        assert candidates["mkl_packed"]["mkl_packed_vs_eager"] <= 1e-3 * difference["eager_logit_scale"]

    checks = [c for s in sections.values() for c in s["checks"]]
    assert len(checks) >= 6
    assert all(c["status"] in ("smoke", "n/a") for c in checks)  # a quick run judges nothing
