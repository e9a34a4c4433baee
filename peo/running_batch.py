"""The rows being decoded, one step at a time; rows join and leave between steps (continuous batching).

Each row carries its own prompt, adapter scales (so one batch holds many points of the PEO family), decoding
settings and stop signal. A row leaves as soon as it ends (EOS, its token limit, or its stop), so a finished
answer no longer rides along, and new rows join at the next step boundary after a prefill of their own.

Why a loop of our own: transformers' `generate` runs a fixed batch to its end (no row joins, a finished row is
padded until the last one ends), and its continuous batching (`ContinuousBatchingManager`) packs requests
into one paged sequence whose per-request layout is private to it: the per-row adapter scales (a (rows, 1, r)
tensor in `peo.adapter_mix.FusedLora`) would have to be rebuilt from its internals every step. Here the batch
is an ordinary left-padded batch over the model's own forward with a KV cache that grows in place
(`GrowingKV`), so everything else (attention, RoPE, the logits processors) is transformers' own.

A row's answer does not depend on the other rows: each row's repetition penalty and n-gram ban see only its
own tokens (not the padding transformers' batched `generate` includes), and a sampled row draws from its own
generator seeded with its `seed`. Up to float summation order (the same matrix product over a different number
of rows), a row decodes as it would alone; tests/test_running_batch.py checks that in float64.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch
from transformers.cache_utils import Cache, DynamicLayer
from transformers.generation.logits_process import (
    NoRepeatNGramLogitsProcessor,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopPLogitsWarper,
)

# how a row ended
EOS, LENGTH, STOPPED = "eos", "length", "stopped"
KV_HEADROOM = 64  # tokens of KV cache allocated ahead, so the cache is not copied every step


class StopSignal(Protocol):
    """What asks a row to stop: a threading.Event, or anything else with `is_set()`."""

    def is_set(self) -> bool: ...


class GrowingKV(DynamicLayer):
    """transformers' DynamicLayer, but written into a buffer with room ahead instead of concatenated every step
    (`torch.cat` of the whole cache per layer and step is most of what a long answer's later steps cost)."""

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        super().lazy_initialization(key_states, value_states)
        self._k = self._v = None
        self.length = 0

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        new = key_states.shape[-2]
        if self._k is None or self.length + new > self._k.shape[-2]:
            self._resize(self.length + new + KV_HEADROOM, like=key_states)
        self._k[:, :, self.length:self.length + new] = key_states
        self._v[:, :, self.length:self.length + new] = value_states
        self.length += new
        self.keys, self.values = self._k[:, :, :self.length], self._v[:, :, :self.length]
        return self.keys, self.values

    def _resize(self, capacity: int, like: torch.Tensor) -> None:
        shape = (like.shape[0], like.shape[1], capacity, like.shape[3])
        k, v = like.new_zeros(shape), like.new_zeros(shape)
        if self._k is not None and self.length:
            k[:, :, :self.length] = self._k[:, :, :self.length]
            v[:, :, :self.length] = self._v[:, :, :self.length]
        self._k, self._v = k, v

    def replace(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Hold exactly these (batch, heads, tokens, dim) states (after rows joined or left)."""
        self.is_initialized = True
        self.dtype, self.device = keys.dtype, keys.device
        self._k = self._v = None
        self.length = 0
        self._resize(keys.shape[-2] + KV_HEADROOM, like=keys)
        self.length = keys.shape[-2]
        self._k[:, :, :self.length] = keys
        self._v[:, :, :self.length] = values
        self.keys, self.values = self._k[:, :, :self.length], self._v[:, :, :self.length]


def new_cache() -> Cache:
    return Cache(layer_class_to_replicate=GrowingKV)


@dataclass(eq=False)
class DecodeRow:
    """One answer being generated. `on_token` gets each new token id as it is chosen (not the EOS)."""

    prompt_ids: list[int]
    scales: Mapping[str, float]
    max_new_tokens: int
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    seed: int = 0
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    penalize_eos: bool = False  # the repetition penalty spares the end-of-turn token unless this is set
    min_new_tokens: int = 0  # EOS is not allowed before this many tokens (benchmarks use it for fixed lengths)
    stop: StopSignal | None = None
    on_token: Callable[[int], None] | None = None
    tokens: list[int] = field(default_factory=list)
    end: str | None = None  # EOS, LENGTH or STOPPED once the row has left
    _generator: torch.Generator | None = None

    @property
    def stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def choice_key(self) -> tuple:
        """Rows with equal keys have their logits processed together."""
        return (self.repetition_penalty, self.penalize_eos, self.no_repeat_ngram_size, self.temperature, self.top_p,
                self.min_new_tokens > len(self.tokens))


class RunningBatch:
    """The live rows and their KV cache. `join` prefills new rows into it; `step` decodes one token for every
    row and lets the rows that ended leave. `offsets` (adapter → scale) is subtracted from every row's scales:
    the point already merged into the weights (app/engine.py's merged form)."""

    def __init__(self, mix, eos_ids: set[int], pad_id: int, compact_share: float = 0.0):
        self.mix = mix
        # a row that ended stays in the batch (its steps wasted) until more than this share of the rows have
        # ended: dropping rows copies the whole KV cache, which a large batch should not pay every step
        self.compact_share = compact_share
        self.eos_ids = set(eos_ids)
        self.pad_id = pad_id
        self.rows: list[DecodeRow] = []
        self.cache: Cache | None = None
        self.mask: torch.Tensor | None = None  # (rows, tokens): 1 where the cache holds a real token
        self.last: torch.Tensor | None = None  # (rows,): the token each row feeds to the next step
        self.offsets: dict[str, float] = {}
        self.steps = 0

    def __len__(self) -> int:
        """The live rows (not the ended ones still waiting to be dropped)."""
        return sum(r.end is None for r in self.rows)

    @property
    def device(self) -> torch.device:
        return self.mix.device

    # ------------------------------------------------------------------ the model

    def _set_scales(self, rows: Sequence[DecodeRow]) -> None:
        names = set(self.offsets).union(*(r.scales for r in rows))
        self.mix.set_row_scales([{n: float(r.scales.get(n, 0.0)) - self.offsets.get(n, 0.0) for n in names}
                                 for r in rows])

    def _forward(self, rows, ids, mask, positions, cache) -> torch.Tensor:
        self._set_scales(rows)
        out = self.mix.model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                             use_cache=True, logits_to_keep=1)
        return out.logits[:, -1, :].float()

    # ------------------------------------------------------------------ rows in and out

    @torch.inference_mode()
    def join(self, rows: Sequence[DecodeRow]) -> list[DecodeRow]:
        """Prefill `rows` (left-padded among themselves), choose each one's first token and add them to the
        batch; returns the rows that ended at once (stopped, EOS first, or a 0-token limit)."""
        rows = [r for r in rows if not self._ends_before_start(r)]
        if not rows:
            return []
        if len(self) < len(self.rows):
            self._compact()
        width = max(len(r.prompt_ids) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, width - len(r.prompt_ids):] = torch.tensor(r.prompt_ids, dtype=torch.long)
            mask[i, width - len(r.prompt_ids):] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = new_cache()
        logits = self._forward(rows, ids, mask, positions, cache)
        for r in rows:
            if r.temperature > 0:
                r._generator = torch.Generator(device=self.device).manual_seed(r.seed)
        first = self._choose(rows, logits)
        ended = self._record(rows, first)
        self._merge(rows, cache, mask, first)
        self._maybe_compact()
        return ended

    def _ends_before_start(self, row: DecodeRow) -> bool:
        if row.stopped:
            row.end = STOPPED
        elif row.max_new_tokens <= 0:
            row.end = LENGTH
        return row.end is not None

    def _merge(self, rows: list[DecodeRow], cache: Cache, mask: torch.Tensor, first: torch.Tensor) -> None:
        if not self.rows:
            self.rows, self.cache, self.mask, self.last = list(rows), cache, mask, first
            return
        width = max(self.mask.shape[1], mask.shape[1])
        for old, new in zip(self.cache.layers, cache.layers):
            old.replace(torch.cat([_left_pad(old.keys, width), _left_pad(new.keys, width)]),
                        torch.cat([_left_pad(old.values, width), _left_pad(new.values, width)]))
        self.mask = torch.cat([_left_pad(self.mask, width, dim=1), _left_pad(mask, width, dim=1)])
        self.last = torch.cat([self.last, first])
        self.rows += rows

    @torch.inference_mode()
    def step(self) -> list[DecodeRow]:
        """One token for every live row; returns the rows that ended (and left) at this step."""
        ended = []
        for r in self.rows:
            if r.end is None and r.stopped:
                r.end = STOPPED
                ended.append(r)
        self._maybe_compact()
        if not len(self):
            return ended
        self.mask = torch.cat([self.mask, self.mask.new_ones((len(self.rows), 1))], dim=1)
        positions = (self.mask.sum(-1, keepdim=True) - 1)
        logits = self._forward(self.rows, self.last.view(-1, 1), self.mask, positions, self.cache)
        self.steps += 1
        chosen = self._choose(self.rows, logits)
        self.last = chosen
        ended += self._record(self.rows, chosen)
        self._maybe_compact()
        return ended

    def _record(self, rows: Sequence[DecodeRow], chosen: torch.Tensor) -> list[DecodeRow]:
        """Give each row its chosen token; returns the rows that ended with it."""
        ended = []
        for r, token in zip(rows, chosen.tolist()):
            if r.end is not None:  # ended earlier, not yet dropped
                continue
            if token in self.eos_ids:
                r.end = EOS
            else:
                r.tokens.append(token)
                if r.on_token is not None:
                    r.on_token(token)
                if len(r.tokens) >= r.max_new_tokens:
                    r.end = LENGTH
            if r.end:
                ended.append(r)
        return ended

    def _maybe_compact(self) -> None:
        dead = len(self.rows) - len(self)
        if dead and (not len(self) or dead / len(self.rows) > self.compact_share):
            self._compact()

    def _compact(self) -> None:
        """Drop the rows that ended, then the cache columns that are padding in every remaining row."""
        keep = [i for i, r in enumerate(self.rows) if r.end is None]
        self.rows = [self.rows[i] for i in keep]
        if not keep:
            self.cache = self.mask = self.last = None
            return
        index = torch.tensor(keep, device=self.device)
        self.mask, self.last = self.mask[index], self.last[index]
        start = int(self.mask.any(0).nonzero()[0])
        self.mask = self.mask[:, start:]
        for layer in self.cache.layers:
            layer.replace(layer.keys[index, :, start:], layer.values[index, :, start:])

    # ------------------------------------------------------------------ choosing tokens

    def _choose(self, rows: Sequence[DecodeRow], logits: torch.Tensor) -> torch.Tensor:
        """Each row's next token, its logits processed as transformers' `generate` would for that row alone."""
        chosen = torch.empty(len(rows), dtype=torch.long, device=logits.device)
        groups: dict[tuple, list[int]] = {}
        for i, r in enumerate(rows):
            groups.setdefault(r.choice_key(), []).append(i)
        for members in groups.values():
            index = torch.tensor(members, device=logits.device)
            scores = self._process([rows[i] for i in members], logits[index])
            if rows[members[0]].temperature > 0:  # sample, each row from its own generator
                probs = torch.softmax(scores, dim=-1)
                picks = [torch.multinomial(probs[j], 1, generator=rows[i]._generator) for j, i in enumerate(members)]
                chosen[index] = torch.cat(picks)
            else:
                chosen[index] = scores.argmax(-1)
        return chosen

    def _process(self, rows: list[DecodeRow], scores: torch.Tensor) -> torch.Tensor:
        first = rows[0]
        if first.min_new_tokens > len(first.tokens):
            scores[:, sorted(self.eos_ids)] = -float("inf")
        if first.repetition_penalty != 1.0:
            eos = sorted(self.eos_ids)
            # the chat template puts EOS in every prompt: unless asked, the penalty does not discourage ending
            spared = None if first.penalize_eos else scores[:, eos].clone()
            scores = RepetitionPenaltyLogitsProcessor(first.repetition_penalty)(_seen_ids(rows, scores.device), scores)
            if spared is not None:
                scores[:, eos] = spared
        if first.no_repeat_ngram_size > 0:
            ban = NoRepeatNGramLogitsProcessor(first.no_repeat_ngram_size)
            scores = torch.cat([ban(torch.tensor([r.prompt_ids + r.tokens], device=scores.device), scores[j:j + 1])
                                for j, r in enumerate(rows)])
        if first.temperature > 0:
            scores = TemperatureLogitsWarper(first.temperature)(None, scores)
            if first.top_p < 1.0:
                scores = TopPLogitsWarper(first.top_p)(None, scores)
        return scores


def _seen_ids(rows: Sequence[DecodeRow], device: torch.device) -> torch.Tensor:
    """Each row's prompt and answer ids as one matrix, a short row filled up with its own first id (a repeat,
    so the penalty, which gathers and scatters by id, sees exactly that row's tokens and no padding)."""
    width = max(len(r.prompt_ids) + len(r.tokens) for r in rows)
    seen = [r.prompt_ids + r.tokens for r in rows]
    return torch.tensor([s + [s[0]] * (width - len(s)) for s in seen], device=device)


def _left_pad(x: torch.Tensor, width: int, dim: int = 2) -> torch.Tensor:
    missing = width - x.shape[dim]
    if missing <= 0:
        return x
    shape = list(x.shape)
    shape[dim] = missing
    return torch.cat([x.new_zeros(shape), x], dim=dim)
