"""What 4-bit weights with bf16 activations cost in answers (issue 22's exactness rule for a faster step).

The reference model answers test prompts (half benign, half harmful, from the shipped answers) with the sweep's
decoding, once as shipped (fp32) and once with its Q4_1 layers as int4 and bf16 activations
(bench/int4_weights.py), each in the sweep's running batch. Reported: the share of greedy answers that are the
same text, each path's wall time, and, for the answers that differ, the evaluators' mean on both sides (reward on
the benign prompts, cost on the harmful ones) with the paired difference's standard error.

    python -m bench.int4_exactness [--prompts 100] [--out bench/results-int4-exactness.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from bench.fixtures import PlainModel
from bench.int4_weights import convert
from peo.assets import load_assets
from peo.atomic import write_json
from peo.export import sweep_decoding
from peo.generation import Row, generate_rows_counted
from peo.model_source import load_causal_lm, load_tokenizer, resolve_base_model
from peo.pareto import mean_and_se
from peo.scoring import Evaluators


def test_prompts(answers: pd.DataFrame, n: int) -> pd.DataFrame:
    """The first n/2 test prompts of each of the help and harm kinds, by prompt id (a fixed, unchosen set)."""
    test = answers[answers["split"] == "test"].drop_duplicates("prompt_id").sort_values("prompt_id")
    return pd.concat([test[test["prompt_kind"] == kind].head(n // 2) for kind in ("help", "harm")])


def run(assets_root: str | Path | None, n_prompts: int, batch_size: int = 32) -> dict:
    assets = load_assets(assets_root)
    base = resolve_base_model(assets.base_model_spec)
    model, tokenizer = load_causal_lm(base).eval(), load_tokenizer(base)
    settings = sweep_decoding(assets.run_meta)
    prompts = test_prompts(pd.read_parquet(assets.root / "answers.parquet"), n_prompts)
    rows = [Row(messages=json.loads(p), scales={}) for p in prompts["prompt"]]
    out: dict = {"prompts": len(rows), "settings": settings.model_dump(), "batch_size": batch_size, "paths": {}}
    answers = {}
    for name, path_model in (("fp32", model), ("int4_bf16", convert(model, activations=torch.bfloat16)[0])):
        start = time.perf_counter()
        with torch.inference_mode():
            counted = generate_rows_counted(PlainModel(path_model), tokenizer, rows, settings, batch_size)
        seconds = time.perf_counter() - start
        answers[name] = [text for text, _ in counted]
        tokens = sum(n for _, n in counted)
        out["paths"][name] = {"seconds": seconds, "new_tokens": tokens, "tokens_per_s": tokens / seconds,
                              "cut_share": float(np.mean([n >= settings.max_new_tokens for _, n in counted]))}
    same = [a == b for a, b in zip(answers["fp32"], answers["int4_bf16"])]
    out["identical_share"] = float(np.mean(same))
    out["identical_by_kind"] = {kind: float(np.mean([s for s, k in zip(same, prompts["prompt_kind"]) if k == kind]))
                                for kind in ("help", "harm")}
    out["speedup"] = out["paths"]["fp32"]["seconds"] / out["paths"]["int4_bf16"]["seconds"]
    evaluators = Evaluators.load(base, assets.root, assets.run_meta.aspect_set)
    messages = [json.loads(p) for p in prompts["prompt"]]
    differing = {}
    for kind, evaluator in (("help", "reward"), ("harm", "cost")):
        idx = [i for i, (s, k) in enumerate(zip(same, prompts["prompt_kind"])) if not s and k == kind]
        if not idx:
            continue
        scored = {name: np.array(evaluators.score([messages[i] for i in idx],
                                                  [answers[name][i] for i in idx])[evaluator]) for name in answers}
        diff_mean, diff_se = mean_and_se(scored["int4_bf16"] - scored["fp32"])
        differing[evaluator] = {"answers": len(idx), "fp32_mean": float(scored["fp32"].mean()),
                                "int4_bf16_mean": float(scored["int4_bf16"].mean()),
                                "difference": diff_mean, "difference_se": diff_se}
    out["differing_scores"] = differing
    out["examples"] = [{"prompt_id": pid, "fp32": a, "int4_bf16": b} for pid, a, b, s in
                       zip(prompts["prompt_id"], answers["fp32"], answers["int4_bf16"], same) if not s][:3]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assets", default=None)
    parser.add_argument("--prompts", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path("bench/results-int4-exactness.json"))
    args = parser.parse_args()
    result = run(args.assets, args.prompts)
    write_json(args.out, result)
    print(json.dumps({k: v for k, v in result.items() if k != "examples"}, indent=1))


if __name__ == "__main__":
    main()
