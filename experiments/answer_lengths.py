"""How long the sweep's answers are when nothing cuts them: the token limit that would leave at most a given share
of answers cut, measured on one split's answers (choose a limit on dev, then check it on test).

The shipped answers that ended before the sweep's limit already have their natural length (greedy decoding ends
at the same token whatever the limit). The ones that reached it are generated again, as the sweep makes them (same
models, decoding and running batch), with a larger limit; their shipped text must be a prefix of the new one.

    python -m experiments.answer_lengths --assets assets --split dev --max-new-tokens 512 --out /tmp/lengths-dev.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from peo.adapter_mix import AdapterMix
from peo.atomic import write_with
from peo.config import load_config
from peo.generation import Row, generate_rows_counted
from peo.layout import AssetLayout
from peo.model_source import load_causal_lm, load_tokenizer, resolve_base_model
from peo.records import RunMeta
from peo.sweep_plan import sweep_models
from precompute.stage_sweep import sweep_settings


def cut_shares(lengths: pd.Series, limits: list[int]) -> dict[int, float]:
    """The share of answers each limit would cut: those whose natural length reaches it. Limits go up to the
    study's own, where an answer still cut has exactly that length, so it counts as cut at every limit."""
    return {limit: float((lengths >= limit).mean()) for limit in limits}


def summary(answers: pd.DataFrame, again: pd.DataFrame, counted: list[tuple[str, int]], shipped_limit: int,
            study_limit: int) -> dict:
    """The study's figures: every answer's natural length (the shipped count, or the count made again), the cut
    share per limit overall and per prompt kind, per model at the study's limit, and whether each shipped answer
    opens its longer twin."""
    lengths = answers["new_tokens"].astype(int).copy()
    lengths.loc[again.index] = [n for _, n in counted]
    # a shipped answer may end inside a character that its last token began (shown as U+FFFD)
    prefix = [new.startswith(old.rstrip("\ufffd")) for old, (new, _) in zip(again["answer"], counted)]
    limits = [x for x in sorted({shipped_limit, 192, 224, 256, 320, 384, 448, study_limit}) if x <= study_limit]
    return {
        "rows": len(answers), "generated_again": len(again), "shipped_limit": shipped_limit,
        "study_limit": study_limit, "shipped_text_is_prefix_share": sum(prefix) / max(1, len(prefix)),
        "cut_share_by_limit": cut_shares(lengths, limits),
        "cut_share_by_limit_and_kind": {kind: cut_shares(lengths[idx], limits)
                                        for kind, idx in answers.groupby("prompt_kind").groups.items()},
        "cut_share_by_model_at_study_limit": (lengths >= study_limit).groupby(answers["model_id"]).mean()
                                             .round(3).to_dict(),
        "length_quantiles": lengths.quantile([0.5, 0.8, 0.9]).to_dict(),
        "rows_detail": [{"model_id": m, "prompt_id": str(p), "new_tokens": int(n)}
                        for m, p, n in zip(answers["model_id"], answers["prompt_id"], lengths)],
        "answers_again": [{"model_id": m, "prompt_id": str(p), "answer": a}
                          for m, p, (a, _) in zip(again["model_id"], again["prompt_id"], counted)],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.answer_lengths", description=__doc__.split("\n")[0])
    parser.add_argument("--assets", type=Path, default=Path("assets"))
    parser.add_argument("--config", type=Path, default=Path("precompute/configs/cpu.yaml"),
                        help="the profile that made the assets (its sweep models and decoding)")
    parser.add_argument("--split", default="dev", choices=["dev", "test"])
    parser.add_argument("--max-new-tokens", type=int, default=512)
    parser.add_argument("--models", nargs="*", help="model ids (default: every model answering on the split)")
    parser.add_argument("--batch-size", type=int, default=48)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    layout = AssetLayout(args.assets)
    meta = RunMeta.load(layout.meta)
    cfg = load_config(args.config)
    shipped = sweep_settings(cfg)
    if args.max_new_tokens <= shipped.max_new_tokens:
        parser.error(f"--max-new-tokens must exceed the shipped limit ({shipped.max_new_tokens})")
    answers = pd.read_parquet(layout.answers)
    answers = answers[answers["split"].astype(str) == args.split]
    if args.models:
        answers = answers[answers["model_id"].isin(args.models)]
    answers = answers.drop_duplicates(["model_id", "prompt_id"]).reset_index(drop=True)
    _, models = sweep_models(cfg.sweep, cfg.aspect_set)
    again = answers[answers["new_tokens"] >= shipped.max_new_tokens]

    base = resolve_base_model(meta.base_model)
    tokenizer = load_tokenizer(base)
    model = load_causal_lm(base, cfg.sweep.dtype)
    mix = AdapterMix(model, layout.adapter_folders(cfg.aspect_set.adapters))
    settings = shipped.model_copy(update={"max_new_tokens": args.max_new_tokens})
    rows = [Row(messages=json.loads(p), scales=models[m]) for p, m in zip(again["prompt"], again["model_id"])]
    started = time.perf_counter()
    with tqdm(total=len(rows), desc="answers", unit="row") as bar:
        counted = generate_rows_counted(mix, tokenizer, rows, settings, args.batch_size, bar.update)
    seconds = time.perf_counter() - started

    result = {"assets": str(args.assets), "split": args.split, "seconds": round(seconds, 1),
              **summary(answers, again, counted, shipped.max_new_tokens, args.max_new_tokens)}
    write_with(args.out, lambda tmp: Path(tmp).write_text(json.dumps(result, indent=1, ensure_ascii=False)))
    print(json.dumps({k: v for k, v in result.items() if k not in ("rows_detail", "answers_again")}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
