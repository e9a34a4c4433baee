"""Extra preference pairs for one aspect's DPO policy (`data.extra_pairs`), e.g. the app's exported votes.

Why only the policy split: such pairs are few and judged by people, so they go where they change a model (DPO
training), never into the evaluators or the prompts that choose and score the front. A pair whose prompt is one
of those other splits' prompts is dropped, so the splits stay prompt-disjoint. Extra pairs are added after the
`policy_pairs` cap (they are few and chosen on purpose); too-long pairs are dropped like any other.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from peo.data.records import PreferencePair
from peo.data.sources import load_source
from peo.data.splits import filter_by_length

SOURCE_PREFIX = "extra:"  # the `source` of an extra pair: extra:pairs


def load_extra_pairs(path: str, aspect: str, data_root: Path, tokenizer, max_prompt_tokens: int,
                     max_response_tokens: int, other_prompts: set[str], skip_bad: bool = False
                     ) -> tuple[list[PreferencePair], dict]:
    """(pairs to add to `aspect`'s policy split, a summary for data/summary.json)."""
    result = load_source({"format": "pairs", "path": path, "aspect": aspect}, base_dir=data_root, skip_bad=skip_bad)
    kept, too_long = filter_by_length(result.pairs, tokenizer, max_prompt_tokens, max_response_tokens)
    pairs = [replace(p, source=SOURCE_PREFIX + p.source) for p in kept if p.prompt_id not in other_prompts]
    return pairs, {"path": path, "loaded": len(result.pairs), "dropped_too_long": too_long,
                   "dropped_prompt_in_other_split": len(kept) - len(pairs), "added_to_policy": len(pairs)}
