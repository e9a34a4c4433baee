"""Batched generation where each row may be a different model of the PEO family.

A row is (chat messages, adapter scales). Every path here decodes through one running batch
(peo.running_batch): a row leaves the moment it ends (EOS, `max_new_tokens`, or its stop), so a finished answer
no longer rides along, and the sweep refills the freed places with the next rows instead of waiting for a
batch's longest answer. The app and `peo serve` share one such batch across users (peo.decode_loop).
A row's answer does not depend on its batch-mates: each row is decoded as it would be alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch
from pydantic import Field

from peo.adapter_mix import AdapterMix
from peo.chat_template import chat_text, encode_chat
from peo.decode_loop import DecodeLoop, StreamResult
from peo.decoding import Decoding
from peo.errors import PeoError
from peo.running_batch import DecodeRow, RunningBatch, StopSignal

Messages = list[dict[str, str]]
SWEEP_COMPACT_SHARE = 0.25  # the sweep drops ended rows (and refills) once a quarter of its batch has ended

__all__ = ["GenerationSettings", "GenerationStopped", "Row", "StopSignal", "StreamResult", "decode_rows",
           "encode_prompts", "generate_batch", "generate_batch_counted", "generate_rows", "generate_rows_counted",
           "recorded_settings", "stream_batch"]


class GenerationSettings(Decoding):
    """One answer's decoding: peo.decoding's settings (their defaults and bounds are declared there, once) and
    whether the repetition penalty spares the end-of-turn token."""

    # True: the repetition penalty divides the end-of-turn token's logit too (transformers' rule). The chat
    # template puts that token in every prompt, so under the penalty answers seldom end: measured on the cpu
    # profile's dev sweep at 1.15, 89 % of answers ran to a 160-token limit. False exempts it.
    penalize_eos: bool = Field(False, description="the repetition penalty divides the end-of-turn token's logit "
                                                  "too (transformers' rule); False spares it")

    def generate_kwargs(self) -> dict:
        """The same settings as transformers' `generate` arguments (bench/eager_generation.py, and what a
        subclass extends: bench's FixedLength adds `min_new_tokens`)."""
        common = {"max_new_tokens": self.max_new_tokens, "repetition_penalty": self.repetition_penalty,
                  "no_repeat_ngram_size": self.no_repeat_ngram_size}
        if self.temperature <= 0:
            return {"do_sample": False, **common}
        return {"do_sample": True, "temperature": self.temperature, "top_p": self.top_p, "top_k": 0, **common}


def recorded_settings(generation: Mapping) -> GenerationSettings:
    """The decoding a run recorded (meta.json "generation"). Answers recorded without a `decoder` came from
    transformers' generate, which penalizes the end-of-turn token: so `penalize_eos` defaults to that there."""
    names = set(GenerationSettings.model_fields)
    recorded = {k: v for k, v in generation.items() if k in names}
    return GenerationSettings(**{"penalize_eos": "decoder" not in generation, **recorded})


class GenerationStopped(PeoError, RuntimeError):
    """Generation was stopped on request (its `stop` event was set) before every row had finished."""


@dataclass(frozen=True)
class Row:
    messages: Messages
    scales: Mapping[str, float]


def encode_prompts(tokenizer, prompts: Sequence[Messages], device: torch.device) -> dict[str, torch.Tensor]:
    """The prompts as one left-padded batch; each row's ids are `encode_chat`'s for its messages."""
    tokenizer.padding_side = "left"
    texts = [chat_text(tokenizer, m) for m in prompts]
    batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    return {k: v.to(device) for k, v in batch.items()}


def decode_rows(tokenizer, rows: Sequence[Row], settings: GenerationSettings,
                stop: StopSignal | None = None) -> list[DecodeRow]:
    """The rows as the running batch takes them: token ids, scales and each row's decoding settings.

    A sampled row i draws from its own generator seeded `seed + i`: the columns of one turn get independent
    draws (as they did from transformers' one generator per batch), and the same request gives the same answers
    whatever else shares the batch."""
    min_new = int(settings.generate_kwargs().get("min_new_tokens", 0))
    return [DecodeRow(prompt_ids=encode_chat(tokenizer, r.messages), scales=dict(r.scales),
                      max_new_tokens=settings.max_new_tokens, temperature=settings.temperature,
                      top_p=settings.top_p, seed=settings.seed + i, repetition_penalty=settings.repetition_penalty,
                      no_repeat_ngram_size=settings.no_repeat_ngram_size, penalize_eos=settings.penalize_eos,
                      min_new_tokens=min_new, stop=stop)
            for i, r in enumerate(rows)]


def _answer(tokenizer, row: DecodeRow) -> tuple[str, int]:
    return tokenizer.decode(row.tokens, skip_special_tokens=True).strip(), len(row.tokens)


def generate_batch_counted(mix: AdapterMix, tokenizer, rows: Sequence[Row], settings: GenerationSettings,
                           stop: StopSignal | None = None) -> list[tuple[str, int]]:
    """All rows in one running batch; each row's (answer text, tokens generated), cut short when `stop` is set.
    The count is exact, unlike re-tokenizing the text, so it tells a cut answer from a finished one."""
    batch = RunningBatch(mix, {tokenizer.eos_token_id}, tokenizer.pad_token_id)
    decoded = decode_rows(tokenizer, rows, settings, stop)
    batch.join(decoded)
    while len(batch):
        batch.step()
    return [_answer(tokenizer, r) for r in decoded]


def generate_batch(mix: AdapterMix, tokenizer, rows: Sequence[Row], settings: GenerationSettings,
                   stop: StopSignal | None = None) -> list[str]:
    """generate_batch_counted's answer texts alone."""
    return [text for text, _ in generate_batch_counted(mix, tokenizer, rows, settings, stop)]


def generate_rows_counted(mix: AdapterMix, tokenizer, rows: Sequence[Row], settings: GenerationSettings,
                          batch_size: int, progress: Callable[[int], None] | None = None,
                          stop: StopSignal | None = None) -> list[tuple[str, int]]:
    """All rows, at most `batch_size` decoding at once, shortest prompts first (little padding); when a quarter
    of the batch has ended, the next rows join. (answer, tokens generated) come back in the rows' order.

    GenerationStopped when `stop` is set before the last row has finished (partial answers are not returned:
    they would pass for finished ones).
    """
    decoded = decode_rows(tokenizer, rows, settings, stop)
    waiting = sorted(decoded, key=lambda r: len(r.prompt_ids), reverse=True)  # pop() takes the shortest
    batch = RunningBatch(mix, {tokenizer.eos_token_id}, tokenizer.pad_token_id, compact_share=SWEEP_COMPACT_SHARE)
    refill_at = max(1, batch_size // 4)
    done = 0
    while waiting or len(batch):
        if waiting and (not len(batch) or batch_size - len(batch) >= refill_at):
            joining = [waiting.pop() for _ in range(min(batch_size - len(batch), len(waiting)))]
            ended = batch.join(joining)
        else:
            ended = batch.step()
        if stop is not None and stop.is_set():
            raise GenerationStopped(f"generation stopped on request after {done} of {len(rows)} rows")
        done += len(ended)
        if progress and ended:
            progress(len(ended))
    return [_answer(tokenizer, r) for r in decoded]


def generate_rows(mix: AdapterMix, tokenizer, rows: Sequence[Row], settings: GenerationSettings,
                  batch_size: int, progress: Callable[[int], None] | None = None,
                  stop: StopSignal | None = None) -> list[str]:
    """generate_rows_counted's answer texts alone."""
    return [text for text, _ in generate_rows_counted(mix, tokenizer, rows, settings, batch_size, progress, stop)]


def stream_batch(mix: AdapterMix, tokenizer, rows: Sequence[Row], settings: GenerationSettings,
                 lock: AbstractContextManager | None = None, stop: StopSignal | None = None,
                 loop: DecodeLoop | None = None,
                 point: Mapping[str, float] | None = None) -> Iterator[list[str] | StreamResult]:
    """Yield every row's text so far after each step; the last item is the StreamResult (answers, tokens, which
    were cut at `max_new_tokens`, steps, the seconds forming the point took).

    On `loop` (the app's shared one) the rows join whatever else is decoding; without it a loop of their own
    runs them (under `lock`). Setting `stop` ends them after the current step (GenerationStopped is then raised
    here instead of a result); closing this iterator does too, without waiting.
    """
    own = loop is None
    loop = loop or DecodeLoop(mix, tokenizer, lock=lock)
    try:
        result: StreamResult | None = None
        for item in loop.stream(decode_rows(tokenizer, rows, settings), stop=stop, point=point):
            if isinstance(item, StreamResult):
                result = item
            else:
                yield item
    finally:
        if own:
            loop.close()
    assert result is not None
    if result.stopped:
        raise GenerationStopped(f"generation stopped on request after {result.steps} step(s)")
    yield result
