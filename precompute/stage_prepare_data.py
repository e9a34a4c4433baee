"""Stage prepare-data: load each aspect's pairs, drop the too long, split by prompt, write the pair files.

Splits (prompt-disjoint, by a hash of the prompt): evaluator (Bradley-Terry training pairs), policy (DPO pairs),
dev (the prompts the front is chosen on), test (held-out pairs for the evaluators and the policy check, and the
test prompts every reported figure is scored on).
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

from peo.atomic import write_json
from peo.config import ConfigError, RunConfig, SplitSizes
from peo.data.loading import LoadResult
from peo.data.records import PreferencePair
from peo.data.sources import load_source
from peo.data.splits import cap, filter_by_length, split_pairs
from peo.model_source import load_tokenizer
from precompute.extra_pairs import load_extra_pairs
from precompute.pair_files import data_path, summary_path, write_pairs
from precompute.run_context import RunContext, resolve_path

log = logging.getLogger("precompute")


def source_spec(cfg: RunConfig, aspect: str) -> dict:
    """An aspect's data source as the profile names it (peo.data.sources.load_source's spec)."""
    spec = {k: v for k, v in cfg.data.sources[aspect].model_dump().items() if v is not None}
    return {**spec, "aspect": aspect}


def aspect_source(cfg: RunConfig, aspect: str) -> LoadResult:
    """Every pair of an aspect's data source."""
    return load_source(source_spec(cfg, aspect), base_dir=resolve_path(cfg.data.root), skip_bad=cfg.data.skip_bad_rows)


def capped_splits(parts: dict[str, list[PreferencePair]], sizes: SplitSizes, aspect: str
                  ) -> dict[str, list[PreferencePair]]:
    """The pairs each use takes from the prompt-disjoint splits (split_pairs), within the profile's caps."""
    return {
        "evaluator": cap(parts["evaluator"], sizes.evaluator_pairs, sizes.evaluator_pairs_per_prompt),
        "policy": cap(parts["policy"], sizes.policy_pairs_per_aspect.get(aspect, sizes.policy_pairs),
                      sizes.pairs_per_prompt),
        "test": cap(parts["test"], sizes.evaluator_test_pairs, sizes.test_pairs_per_prompt),
        "dev": cap(parts["dev"], sizes.dev_prompts, 1),  # one pair per prompt: the prompt is what counts
        "test_prompts": cap(parts["test"], sizes.test_prompts, 1),
    }


def prepare_data(ctx: RunContext) -> list[Path]:
    cfg = ctx.cfg
    tokenizer = load_tokenizer(ctx.base_model)
    data_root = resolve_path(cfg.data.root)
    sizes = cfg.data.splits
    summary: dict = {}
    outputs: list[Path] = []
    for aspect in cfg.aspect_set.names:
        result = aspect_source(cfg, aspect)
        kept, too_long = filter_by_length(result.pairs, tokenizer, cfg.data.max_prompt_tokens,
                                          cfg.data.max_response_tokens)
        parts = split_pairs(kept, sizes.fractions_of(aspect), cfg.seed)
        chosen = capped_splits(parts, sizes, aspect)
        extra = None
        if aspect in cfg.data.extra_pairs:  # e.g. exported votes: DPO training pairs only
            others = {p.prompt_id for split in ("evaluator", "dev", "test") for p in parts[split]}
            added, extra = load_extra_pairs(cfg.data.extra_pairs[aspect], aspect, data_root, tokenizer,
                                            cfg.data.max_prompt_tokens, cfg.data.max_response_tokens, others,
                                            cfg.data.skip_bad_rows)
            chosen["policy"] = chosen["policy"] + added
        for split, pairs in chosen.items():
            if not pairs:
                raise ConfigError(f"data.{aspect}: the '{split}' split is empty after filtering; "
                                  f"give more data or change data.splits")
            path = data_path(ctx.work, aspect, split)
            write_pairs(path, pairs)
            outputs.append(path)
        short = sizes.test_prompts - len(chosen["test_prompts"])
        if short > 0:  # every figure rests on the test prompts: say when there are fewer than asked
            log.warning("data.%s: %d test prompts, %d fewer than data.splits.test_prompts; a larger test share "
                        "(data.splits.fractions_per_aspect) or more data gives more", aspect,
                        len(chosen["test_prompts"]), short)
        summary[aspect] = {
            "source": source_spec(cfg, aspect),
            "load": asdict(result.summary),
            "dropped_too_long": too_long,
            "after_length_filter": len(kept),
            "available_per_split": {k: len(v) for k, v in parts.items()},
            "used_per_split": {k: len(v) for k, v in chosen.items()},
            "distinct_prompts_used": {k: len({p.prompt_id for p in v}) for k, v in chosen.items()},
            "test_prompts_asked": sizes.test_prompts,
            "extra_pairs": extra,
        }
    summary_file = summary_path(ctx.work)
    write_json(summary_file, summary)
    outputs.append(summary_file)
    return outputs
