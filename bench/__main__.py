"""`python -m bench [--quick] [--assets DIR] [--out bench/results.json] [--only SECTION ...]`.

Runs the measurements described in bench/README.md, prints a table, writes the results as JSON (with the
machine they were taken on). --quick: the tiny assets (built once if --assets is not given), few repetitions,
small sizes, no mergekit venv creation: a smoke run whose numbers say nothing about the targets.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import asdict
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SECTIONS = ("point_switch", "sweep", "chat", "memory", "training", "app", "hardware", "load", "decode",
            "step_candidates")


def _fmt(value, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "x":
        return f"{value:.2f}x"
    return f"{value:.3g} {unit}"


def print_table(results: dict) -> None:
    m = results["machine"]
    print(f"\nmachine: {m['cpu_model']} | {m['cpu_count']} cores, torch threads {m['torch_threads']} | "
          f"torch {m['torch']} | device {m['device']}{' (' + m['gpu'] + ')' if m.get('gpu') else ''}")
    print(f"assets: {results['settings']['assets']} (base model {results['settings']['base_model']}); "
          f"{'QUICK smoke run' if results['settings']['quick'] else 'full run'}, medians of "
          f"{results['settings']['plan']['reps']} reps after {results['settings']['plan']['warmup']} warm-up\n")
    lines = [("section", "measurement", "value"), ("", "", "")]
    s = results["sections"]
    ms = lambda d: f"{d['median_s'] * 1000:.3g} ms"  # noqa: E731
    sec = lambda d: f"{d['median_s']:.3g} s"  # noqa: E731
    if "adapter_scaling" in s.get("point_switch", {}):
        p = s["point_switch"]
        lines += [("1 switch", "(a) AdapterMix.set_scales", ms(p["adapter_scaling"])),
                  ("", "(b) MergedPolicy.set_point", ms(p["fused_merge"]))]
        for k, v in p["usual_way"].items():
            lines.append(("", f"(c) {k}: merge + load", f"{sec(v)} (merge {v['merge_median_s']:.3g} s, "
                                                        f"load {v['load_median_s']:.3g} s)"))
    if "multi_point" in s.get("sweep", {}):
        w = s["sweep"]
        tag = f"G={w['G']} P={w['P']} T={w['new_tokens_per_row']}"
        for k in ("multi_point", "naive", "base_limit", "multi_point_peft_forward"):
            lines.append(("2 sweep" if k == "multi_point" else "", f"{k} ({tag})",
                          f"{w[k]['seconds_per_point']:.3g} s/point, {w[k]['tokens_per_s']:.3g} tok/s"))
    if "columns_5" in s.get("chat", {}):
        c = s["chat"]
        lines += [("3 chat", f"5 columns, {c['new_tokens']} tokens", sec(c["columns_5"])),
                  ("", f"1 column, {c['new_tokens']} tokens", sec(c["columns_1"])),
                  ("", f"1 row, base model alone, {c['new_tokens']} tokens", sec(c["columns_1_base_model"]))]
        for k in ("columns_5_peft_forward", "columns_1_peft_forward"):
            if k in c:
                lines.append(("", f"{k[8]} column(s), peft's own LoRA forward", sec(c[k])))
        if "columns_5_base_model" in c:
            lines.append(("", f"5 rows, base model alone, {c['new_tokens']} tokens", sec(c["columns_5_base_model"])))
    if "serve5" in s.get("memory", {}):
        mem = s["memory"]
        for k in ("imports", "base1", "serve5", "serve5_own_evaluator_copy"):
            lines.append(("4 memory" if k == "imports" else "", f"peak RSS {k}", f"{mem[k]['peak_rss']:.0f} MiB"))
    for dev, d in s.get("training", {}).get("devices", {}).items():
        lines += [("5 training", f"DPO step [{dev}]",
                   f"{sec(d['dpo_step'])}, {d['dpo_step']['tokens_per_s']:.3g} tok/s"),
                  ("", f"scoring [{dev}]", f"{d['scoring']['answers_per_s']:.3g} answers/s, "
                                           f"{d['scoring']['tokens_per_s']:.3g} tok/s")]
    if "columns_5" in s.get("app", {}):
        a = s["app"]
        lines += [("6 app", "start-up: page up / first answer",
                   f"{a['startup']['page_up_s']:.3g} s / {a['startup']['first_answer_s']:.3g} s"),
                  ("", "/pick round trip", ms(a["pick"])),
                  ("", f"/chat 1 column, <= {a['max_new_tokens']} tokens", sec(a["columns_1"])),
                  ("", f"/chat 5 columns, <= {a['max_new_tokens']} tokens", sec(a["columns_5"]))]
        if "columns_5_new_point" in a:
            lines.append(("", f"/chat 5 columns at a new point ({a.get('policy_form', '?')} form)",
                          sec(a["columns_5_new_point"])))
    if "load" in s.get("load", {}):
        ld = s["load"]
        lat, q, soak = ld["load"]["latency"], ld["load"]["queue_wait"], ld["soak"]
        lines += [("8 load", f"{ld['sessions']} sessions x {ld['turns_per_session']} turns, {len(ld['columns'])} "
                   f"columns, <= {ld['max_new_tokens']} tokens", f"p50 {lat['p50_s']:.3g} s, p95 {lat['p95_s']:.3g} s, "
                   f"max {lat['max_s']:.3g} s"),
                  ("", "queue wait p50 / max", f"{q['p50_s']:.3g} s / {q['max_s']:.3g} s"),
                  ("", "errors / answers differing from alone",
                   f"{len(ld['load']['errors'])} / {len(ld['load']['answers_differing_from_alone'])}"),
                  ("", "RSS before / after (MiB)",
                   f"{ld['rss_mib']['before']:.0f} / {ld['rss_mib']['after_load']:.0f}"),
                  ("", f"soak {soak['seconds']:.0f} s, {soak['sessions']} sessions: turns, RSS growth",
                   f"{soak['turns']}, {soak['rss_growth_mib']:+.0f} MiB"),
                  ("", "soak latency p50 first / last fifth",
                   f"{soak['latency_first_fifth_p50_s'] or 0:.3g} s / {soak['latency_last_fifth_p50_s'] or 0:.3g} s")]
    if "decode_1" in s.get("hardware", {}):
        h = s["hardware"]
        for i, b in enumerate(h["batches"]):
            lines.append(("7 hardware" if i == 0 else "", f"plain model, {b} rows: decode / prefill per row",
                          f"{h[f'decode_{b}']['ms_per_step']:.3g} ms/step, {h[f'decode_{b}']['ms_per_row_token']:.3g} "
                          f"ms/row; {h[f'prefill_{b}']['ms_per_row']:.3g} ms/row ({h['prompt_tokens']} tokens)"))
        m = h["matrix"]
        for b in h["batches"] + [512]:
            r = m[f"rows_{b}"]
            lines.append(("", f"{m['shape'][0]}x{m['shape'][1]} matrix x {b} rows",
                          f"{r['us_per_call']:.3g} us: {r['weight_GBps']:.3g} GB/s of weights, "
                          f"{r['GFLOPs']:.3g} GFLOP/s"))
        lines.append(("", "copy 256 MiB", f"{m['copy_256MiB']['GBps_read_plus_write']:.3g} GB/s (read + write)"))
    if "running" in s.get("step_candidates", {}):
        c = s["step_candidates"]
        for i, name in enumerate(c["over_floor"]):
            lines.append(("10 step" if i == 0 else "", f"plain step, {c['rows']} rows: {name}",
                          f"{ms(c[name])} ({c['over_floor'][name]:.2f}x floor)"))
        lines.append(("", f"compile ({c['compile_mode']})", f"{c['compile_seconds']:.3g} s"))
    width = [max(len(r[i]) for r in lines) for i in range(3)]
    for r in lines:
        print("  ".join(x.ljust(w) for x, w in zip(r, width)) if r[0] or r[1] else "  ".join("-" * w for w in width))
    print()
    checks = [c for sec_ in s.values() for c in sec_.get("checks", [])]
    rows = [("figure", "value", "target", "status"), ("", "", "", "")]
    rows += [(c["name"], _fmt(c["value"], c["unit"]), c["target"], c["status"]) for c in checks]
    width = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(x.ljust(w) for x, w in zip(r, width)) if r[0] else "  ".join("-" * w for w in width))
    for name, sec_ in s.items():
        for note in sec_.get("notes", []):
            print(f"note ({name}): {note}")
        if "error" in sec_:
            print(f"ERROR ({name}): {sec_['error']}")


def _git_commit() -> str | None:
    """The checked-out commit (with "+dirty" when the tree has changes), so a figure can be traced to its code."""
    import subprocess

    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True,
                             cwd=Path(__file__).resolve().parents[1]).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=Path(__file__).resolve().parents[1]).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny assets, few reps, small sizes: a smoke run")
    parser.add_argument("--assets", help="assets folder (default: assets/, or the tiny assets with --quick)")
    parser.add_argument("--out", type=Path, default=None, help="results JSON (default bench/results.json; "
                        "bench/results-quick.json with --quick)")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections")
    parser.add_argument("--eager-assets", type=Path, default=None,
                        help="decode section: a folder with answers.parquet and meta.json made by the eager path "
                             "(transformers' generate), to compare the running batch's answers with")
    parser.add_argument("--device", default="cpu", help="device for sections 1-4 (default cpu; training "
                        "always runs on the CPU and also on the GPU when there is one)")
    parser.add_argument("--update", action="store_true",
                        help="keep the other sections of an existing --out file (each section records when and at "
                             "which commit it was measured); the machine must be the same")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=INT",
                        help="change one size of the plan, e.g. --set sweep_prompts=2 (fields: bench/common.py Plan)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("httpx", "transformers", "peft"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()

    from bench import app_latency, chat, decode, hardware, load, memory, step_candidates, sweep, switch, training
    from bench.common import BENCH, Plan, machine_info, write_json
    from bench.fixtures import base_model, open_assets

    plan = Plan.smoke(args.device) if args.quick else Plan.full(args.device)
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or key not in plan.as_dict() or not isinstance(getattr(plan, key), int) or key == "quick":
            parser.error(f"--set expects FIELD=INT with a numeric field of bench.common.Plan, got {item!r}")
        setattr(plan, key, int(value))
    out = args.out or (BENCH / ("results-quick.json" if args.quick else "results.json"))
    assets = open_assets(args.assets, args.quick)
    results = {
        "machine": machine_info(args.device),
        "settings": {"quick": args.quick, "assets": str(assets.root), "assets_profile": assets.run_meta.profile,
                     "base_model": assets.base_model_spec, "resolved_base_model": base_model(assets),
                     "plan": plan.as_dict(), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
        "sections": {},
    }
    if args.update and out.is_file():
        previous = json.loads(out.read_text(encoding="utf-8"))
        if previous["machine"]["cpu_model"] != results["machine"]["cpu_model"]:
            parser.error(f"--update: {out} was measured on {previous['machine']['cpu_model']}, not this machine")
        results["sections"] = previous["sections"]
        results["settings"]["earlier_runs"] = previous["settings"].get("earlier_runs", []) + [
            {k: previous["settings"].get(k) for k in ("started", "finished", "plan")}]
    commit = _git_commit()
    scratch = Path(tempfile.mkdtemp(prefix="peo-bench-"))
    failed = False
    runners = {"point_switch": lambda: switch.run(assets, plan, scratch), "sweep": lambda: sweep.run(assets, plan),
               "chat": lambda: chat.run(assets, plan), "memory": lambda: memory.run(assets, plan),
               "training": lambda: training.run(assets, plan), "app": lambda: app_latency.run(assets, plan),
               "hardware": lambda: hardware.run(assets, plan), "load": lambda: load.run(assets, plan),
               "decode": lambda: decode.run(assets, plan, args.eager_assets),
               "step_candidates": lambda: step_candidates.run(assets, plan)}
    try:
        for name in args.only or SECTIONS:
            logging.getLogger("bench").info("section %s", name)
            start = time.perf_counter()
            try:
                section = runners[name]()
                section["checks"] = [asdict(c.judge(plan.quick)) | {"target": c.target} for c in section["checks"]]
            except Exception as err:
                failed = True
                traceback.print_exc()
                section = {"error": f"{type(err).__name__}: {err}", "checks": []}
            section["section_seconds"] = round(time.perf_counter() - start, 1)
            section["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            section["commit"] = commit
            results["sections"][name] = section
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            write_json(out, results)  # after every section: a killed run keeps what it measured
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    results["settings"]["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    write_json(out, results)
    print_table(results)
    print(f"\nresults: {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
