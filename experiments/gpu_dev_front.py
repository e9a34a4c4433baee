"""The gpu profile's dev fronts from its sweep-dev answers alone (the 2026-12-04 H200 run did not reach sweep-test).

    python -m experiments.gpu_dev_front [--work runs/gpu/work] [--out bench/gpu-2026-12-04/dev_fronts.json]

Every figure here is IN-SAMPLE: the fronts are chosen on the same 80 dev prompts (16 benign, 64 harmful) they are
scored on, so they are optimistic and say nothing a held-out figure would. They show what the 394-model grid looks
like under the split-aware rule and the loop/evasion filters, using the library's own grid_table and dev_front.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from peo.atomic import write_json
from peo.config import load_config
from peo.grid_table import dev_front, grid_table, with_evasion
from peo.names import PEO, SOUP
from peo.sweep_plan import front_filters, sweep_models

SHOWN = ["model_id", "method", "c_help", "c_harm", "reward_mean_dev", "cost_mean_dev", "loop_share_dev",
         "evasion_share_benign_dev", "evasion_share_harmful_dev", "complied_share_dev", "cut_share_dev"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="precompute/configs/gpu.yaml")
    parser.add_argument("--work", type=Path, default=Path("runs/gpu/work"))
    parser.add_argument("--out", type=Path, default=Path("bench/gpu-2026-12-04/dev_fronts.json"))
    args = parser.parse_args()
    cfg = load_config(args.config)
    answers = with_evasion(pd.read_parquet(args.work / "sweep-dev" / "answers.parquet"))
    rows, models = sweep_models(cfg.sweep, cfg.aspect_set)
    loop, evasion = cfg.sweep.max_loop_share, cfg.sweep.max_benign_evasion_excess
    grid = grid_table(rows, answers, loop, evasion, aspects=cfg.aspect_set)
    by_id = grid.drop_duplicates("model_id").set_index("model_id")  # a soup point's model is also a PEO row's
    fronts = {}
    for method in (PEO, SOUP):
        for suffix, (loop_filter, evasion_filter) in front_filters(loop, evasion).items():
            ids = dev_front(grid, method, loop_filter, evasion_filter, aspects=cfg.aspect_set)
            fronts[method + suffix] = by_id.loc[ids].reset_index()[SHOWN].round(4).to_dict("records")
    baselines = grid[grid["method"].isin(cfg.aspect_set.baselines)][SHOWN].round(4).to_dict("records")
    summary = {"in_sample": True, "split": "dev", "n_models": len(models), "n_answers": len(answers),
               "n_prompts": answers.groupby("prompt_kind")["prompt_id"].nunique().to_dict(),
               "cut_share": round(float(answers["cut"].mean()), 4),
               "loop_share": round(float(answers["loops"].mean()), 4),
               "max_new_tokens": cfg.sweep.max_new_tokens, "baselines": baselines, "fronts": fronts}
    write_json(args.out, summary)
    for name, front in fronts.items():
        print(f"{name}: " + ", ".join(f"{p['model_id']} (r {p['reward_mean_dev']:+.3f}, c {p['cost_mean_dev']:+.3f}, "
                                      f"ev {p['evasion_share_benign_dev']:.2f})" for p in front))
    print(pd.DataFrame(baselines).to_string(index=False))
    print(f"answers {len(answers)}, cut at {cfg.sweep.max_new_tokens} tokens: {summary['cut_share']:.1%}, "
          f"loops {summary['loop_share']:.1%} -> {args.out}")


if __name__ == "__main__":
    main()
