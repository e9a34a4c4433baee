"""Batched generation where each row may be a different model of the PEO family.

A row is (chat messages, adapter scales). Rows are sorted by prompt length, cut into batches, and each batch
runs once with per-row adapter scales, so G points × P prompts cost about one batched generation of G·P rows.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch
from transformers.generation.streamers import BaseStreamer

from peo.adapter_mix import AdapterMix
from peo.chat_template import chat_text, encode_chat

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = 64
    temperature: float = 0.0  # 0: greedy, deterministic
    top_p: float = 1.0
    seed: int = 0
    repetition_penalty: float = 1.0  # > 1 divides the logits of tokens already in prompt or answer (CTRL's rule)
    no_repeat_ngram_size: int = 0  # > 0: no n-gram of this size occurs twice in a row's text

    def generate_kwargs(self) -> dict:
        common = {"max_new_tokens": self.max_new_tokens, "repetition_penalty": self.repetition_penalty,
                  "no_repeat_ngram_size": self.no_repeat_ngram_size}
        if self.temperature <= 0:
            return {"do_sample": False, **common}
        return {"do_sample": True, "temperature": self.temperature, "top_p": self.top_p, "top_k": 0, **common}


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


class _RowStreamer(BaseStreamer):
    """Receives each step's new token per row (transformers calls `put` once per step)."""

    def __init__(self, on_tokens: Callable[[torch.Tensor], None]):
        self._on_tokens = on_tokens
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:  # the first call carries the prompt ids
            self._prompt_seen = True
            return
        self._on_tokens(value.view(-1))

    def end(self) -> None:
        pass


@torch.inference_mode()
def generate_batch(mix: AdapterMix, tokenizer, rows: Sequence[Row], settings: GenerationSettings,
                   on_tokens: Callable[[torch.Tensor], None] | None = None) -> list[str]:
    """One `generate` call for all rows; returns each row's answer text."""
    batch = encode_prompts(tokenizer, [r.messages for r in rows], mix.device)
    torch.manual_seed(settings.seed)
    with mix.row_scales([r.scales for r in rows]):
        output = mix.model.generate(
            **batch,
            **settings.generate_kwargs(),
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            streamer=_RowStreamer(on_tokens) if on_tokens else None,
        )
    new_tokens = output[:, batch["input_ids"].shape[1]:]
    return [tokenizer.decode(t, skip_special_tokens=True).strip() for t in new_tokens]


def generate_rows(mix: AdapterMix, tokenizer, rows: Sequence[Row], settings: GenerationSettings,
                  batch_size: int, progress: Callable[[int], None] | None = None) -> list[str]:
    """All rows, batched by prompt length; answers come back in the rows' order."""
    lengths = [len(encode_chat(tokenizer, r.messages)) for r in rows]
    order = sorted(range(len(rows)), key=lambda i: lengths[i])
    answers: list[str] = [""] * len(rows)
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        for i, text in zip(chunk, generate_batch(mix, tokenizer, [rows[i] for i in chunk], settings)):
            answers[i] = text
        if progress:
            progress(len(chunk))
    return answers


def stream_batch(mix: AdapterMix, tokenizer, rows: Sequence[Row], settings: GenerationSettings,
                 lock: threading.Lock | None = None) -> Iterator[list[str]]:
    """Yield every row's text so far after each step; the last item is the final answers."""
    steps: queue.Queue = queue.Queue()
    token_lists: list[list[int]] = [[] for _ in rows]
    finished = [False] * len(rows)
    result: dict[str, object] = {}

    def on_tokens(tokens: torch.Tensor) -> None:
        for i, t in enumerate(tokens.tolist()):
            if finished[i]:
                continue
            if t == tokenizer.eos_token_id or t == tokenizer.pad_token_id:
                finished[i] = True
            else:
                token_lists[i].append(t)
        steps.put([tokenizer.decode(ids, skip_special_tokens=True) for ids in token_lists])

    def work() -> None:
        try:
            if lock:
                with lock:
                    result["answers"] = generate_batch(mix, tokenizer, rows, settings, on_tokens)
            else:
                result["answers"] = generate_batch(mix, tokenizer, rows, settings, on_tokens)
        except BaseException as err:  # re-raised in the consumer's thread
            result["error"] = err
        finally:
            steps.put(None)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    while (item := steps.get()) is not None:
        yield item
    thread.join()
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    yield result["answers"]  # type: ignore[misc]
