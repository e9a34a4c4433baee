"""Prompt-disjoint, seed-deterministic splits, caps and token-length filters.

Splits hash (seed, prompt_id), so a prompt's split never depends on file order or on what else
was loaded, and no prompt leaks between train and evaluation.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from peo.chat_template import chat_text, token_ids
from peo.data.errors import DataSpecError
from peo.data.records import PreferencePair

TokenCounter = Callable[[PreferencePair], tuple[int, int, int]]


def _unit(*parts: object) -> float:
    digest = hashlib.sha256("\x00".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def check_fractions(fractions: Mapping[str, float]) -> None:
    """ValueError unless the fractions are non-negative, finite and sum to 1 (within 1e-9)."""
    if not fractions:
        raise DataSpecError("split fractions are empty; give e.g. {'train': 0.9, 'eval': 0.1}")
    values = list(fractions.values())
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0 for v in values):
        raise DataSpecError(f"split fractions must be non-negative numbers; got {dict(fractions)}")
    if abs(math.fsum(values) - 1.0) > 1e-9:
        raise DataSpecError(f"split fractions must sum to 1; got {dict(fractions)} (sum {math.fsum(values)!r})")


def assign_split(prompt_id: str, seed: int, fractions: Mapping[str, float]) -> str:
    """The split of one prompt: hash (seed, prompt_id) into [0, 1) and cut by the fractions in order."""
    check_fractions(fractions)
    u = _unit("split", seed, prompt_id)
    cumulative = 0.0
    names = list(fractions)
    for name in names:
        cumulative += fractions[name]
        if u < cumulative:
            return name
    return next(n for n in reversed(names) if fractions[n] > 0)  # float rounding at the top end


def pair_order_key(pair: PreferencePair, seed: int) -> float:
    return _unit("order", seed, pair.prompt_id, pair.aspect, pair.chosen, pair.rejected)


def split_pairs(pairs: Iterable[PreferencePair], fractions: Mapping[str, float], seed: int
                ) -> dict[str, list[PreferencePair]]:
    """Prompt-disjoint splits (every name in `fractions` present, maybe empty).

    Within a split, pairs are sorted by a seeded hash of their content: the order is random-looking,
    reproducible and independent of input order, so `cap` takes a fair subset.
    """
    check_fractions(fractions)
    out: dict[str, list[PreferencePair]] = {name: [] for name in fractions}
    cache: dict[str, str] = {}
    for pair in pairs:
        name = cache.get(pair.prompt_id)
        if name is None:
            name = cache[pair.prompt_id] = assign_split(pair.prompt_id, seed, fractions)
        out[name].append(pair)
    for name in out:
        out[name].sort(key=lambda p: (pair_order_key(p, seed), p.prompt_id, p.chosen, p.rejected))
    return out


def cap(pairs: Iterable[PreferencePair], n: int | None, per_prompt_max: int | None = None) -> list[PreferencePair]:
    """The first `n` pairs (all when None), taking at most `per_prompt_max` per prompt.

    AlpacaEval has ~20 pairs per instruction; without a per-prompt cap a small budget would
    spend itself on few prompts.
    """
    for name, value in (("n", n), ("per_prompt_max", per_prompt_max)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise DataSpecError(f"cap: {name} must be a non-negative integer or None; got {value!r}")
    taken: list[PreferencePair] = []
    per_prompt: dict[str, int] = {}
    for pair in pairs:
        if n is not None and len(taken) >= n:
            break
        count = per_prompt.get(pair.prompt_id, 0)
        if per_prompt_max is not None and count >= per_prompt_max:
            continue
        per_prompt[pair.prompt_id] = count + 1
        taken.append(pair)
    return taken


def render_prompt(tokenizer: Any, pair: PreferencePair) -> str:
    """The prompt as the model will see it: the chat template with a generation prompt if the
    tokenizer has one, else plain `role: content` blocks."""
    messages = pair.prompt_messages()
    if getattr(tokenizer, "chat_template", None):
        return chat_text(tokenizer, messages)
    return "".join(f"{m['role']}: {m['content']}\n\n" for m in messages)


def tokenizer_counter(tokenizer: Any) -> TokenCounter:
    """(prompt, chosen, rejected) token counts with a Hugging Face tokenizer."""

    def count(pair: PreferencePair) -> tuple[int, int, int]:
        return (len(token_ids(tokenizer, render_prompt(tokenizer, pair))),
                len(token_ids(tokenizer, pair.chosen)), len(token_ids(tokenizer, pair.rejected)))

    return count


def filter_by_length(pairs: Iterable[PreferencePair], count_tokens: TokenCounter | Any,
                     max_prompt_tokens: int | None, max_response_tokens: int | None
                     ) -> tuple[list[PreferencePair], int]:
    """Keep pairs whose prompt and both responses fit; return (kept, number dropped).

    `count_tokens` is a Hugging Face tokenizer (anything with `encode`) or a function returning
    (prompt, chosen, rejected) token counts. A None limit does not filter on that part.
    """
    counter: TokenCounter = tokenizer_counter(count_tokens) if hasattr(count_tokens, "encode") else count_tokens
    kept: list[PreferencePair] = []
    dropped = 0
    for pair in pairs:
        prompt_n, chosen_n, rejected_n = counter(pair)
        if ((max_prompt_tokens is not None and prompt_n > max_prompt_tokens)
                or (max_response_tokens is not None and max(chosen_n, rejected_n) > max_response_tokens)):
            dropped += 1
        else:
            kept.append(pair)
    return kept, dropped
