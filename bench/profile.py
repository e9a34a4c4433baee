"""`python -m bench.profile [--assets DIR] [--out bench/profiles]`: where a generation step spends its time.

torch.profiler over decode steps of the plain reference model, the AdapterMix (fused, the default) and the
AdapterMix through peft's own LoRA forward, each with two adapters active at per-row scales, at 1, 5 and 50
rows (a chat column, five columns, a sweep batch). Writes one op table per case (self CPU time, top ops) and
`summary.json` (ms per step, and the share of aten::mm, the matrix products of the model itself). These tables
are how the benchmarks' misses were attributed; they are a diagnosis, not a figure with a target.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from bench.common import BENCH, write_json
from bench.fixtures import base_model, open_assets
from bench.hardware import DECODE_STEPS, decode_steps, prompt_tensor
from peo.adapter_mix import AdapterMix
from peo.aspects import DEFAULT_ASPECTS
from peo.model_source import load_causal_lm, load_tokenizer


def decode_profile(model: torch.nn.Module, prompt: torch.Tensor, rows: int):
    steps = decode_steps(model, prompt, rows)
    steps()  # warm-up
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        steps()
    return prof


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--assets", help="assets folder (default: assets/)")
    parser.add_argument("--out", type=Path, default=BENCH / "profiles")
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 5, 50])
    args = parser.parse_args(argv)
    assets = open_assets(args.assets, quick=False)
    base = base_model(assets)
    prompt = prompt_tensor(assets, load_tokenizer(base), "cpu")
    adapters = {n: assets.adapter(n) for n in DEFAULT_ASPECTS.adapters}
    models = {"plain": (load_causal_lm(base).eval(), None),
              "fused": (None, AdapterMix(load_causal_lm(base), adapters)),
              "peft_forward": (None, AdapterMix(load_causal_lm(base), adapters, fused=False))}
    args.out.mkdir(parents=True, exist_ok=True)
    summary: dict = {"prompt_tokens": int(prompt.shape[1]), "decode_steps": DECODE_STEPS, "cases": {}}
    with torch.no_grad():
        for rows in args.rows:
            for name, (plain, mix) in models.items():
                if mix is not None:
                    mix.set_row_scales([{"help": 0.5 + 0.1 * i, "harm": 1.2} for i in range(rows)])
                prof = decode_profile(plain if mix is None else mix.model, prompt, rows)
                events = prof.key_averages()
                total_us = sum(e.self_cpu_time_total for e in events)
                mm_us = sum(e.self_cpu_time_total for e in events if e.key == "aten::mm")
                case = f"decode_{rows}rows_{name}"
                summary["cases"][case] = {"ms_per_step": total_us / DECODE_STEPS / 1000, "mm_share": mm_us / total_us,
                                          "ops_per_step": sum(e.count for e in events) / DECODE_STEPS}
                (args.out / f"{case}.txt").write_text(
                    events.table(sort_by="self_cpu_time_total", row_limit=15) + "\n", encoding="utf-8")
                print(f"{case}: {summary['cases'][case]}", flush=True)
    write_json(args.out / "summary.json", summary)
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
