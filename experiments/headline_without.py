"""The headline (PEO − soup hypervolume on test prompts, fronts chosen on dev) without some test prompts.

For a choice that saw prompts which later fell into the test split (e.g. the decoding, chosen on an earlier
run's dev prompts): the figure on the test prompts that played no part in it. Fronts are chosen on dev as in
the report; only the scoring set shrinks.

    python -m experiments.headline_without --assets assets --prompt-ids assets/report/decoding_probe_prompt_ids.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from peo.layout import AssetLayout
from peo.records import RunMeta
from precompute.report_fronts import compute_fronts


def headline_without(assets: Path, prompt_ids: set[str], n_boot: int, seed: int, max_loop_share: float,
                     max_evasion_excess: float | None = None) -> dict:
    layout = AssetLayout(assets)
    grid = pd.read_csv(layout.grid)
    answers = pd.read_parquet(layout.answers)
    is_test = answers["split"].astype(str) == "test"
    excluded = sorted(set(answers.loc[is_test, "prompt_id"].astype(str)) & prompt_ids)
    kept = answers[~(is_test & answers["prompt_id"].astype(str).isin(prompt_ids))]
    result = compute_fronts(grid, kept, n_boot=n_boot, seed=seed, max_loop_share=max_loop_share,
                            max_evasion_excess=max_evasion_excess)
    return {"excluded_test_prompts": len(excluded), "n_test_prompts": result["n_prompts"]["test"],
            "difference": result["difference"],
            "difference_no_evasion_filter": result["difference_no_evasion_filter"],
            "difference_unfiltered": result["difference_unfiltered"],
            "hypervolumes": {name: {k: front.get(k) for k in ("hypervolume", "interval")}
                             for name, front in result["fronts"].items()}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.headline_without", description=__doc__.split("\n")[0])
    parser.add_argument("--assets", type=Path, default=Path("assets"))
    parser.add_argument("--prompt-ids", type=Path, required=True, help="a JSON list of prompt ids to leave out")
    args = parser.parse_args(argv)
    config = RunMeta.load(AssetLayout(args.assets).meta).config
    ids = {str(x) for x in json.loads(args.prompt_ids.read_text())}
    print(json.dumps(headline_without(args.assets, ids, config["report"]["n_boot"], config["seed"],
                                      config["sweep"]["max_loop_share"],
                                      config["sweep"].get("max_benign_evasion_excess")), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
