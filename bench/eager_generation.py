"""The eager path the benchmarks compare against: transformers' `generate` over a fixed batch (peo.generation
before the running batch, kept verbatim apart from this note, its imports and what nothing calls any more:
`generate_rows`, the per-row `rows_done` stop that only `peo serve` used).

Batched generation where each row may be a different model of the PEO family.

A row is (chat messages, adapter scales). Rows are sorted by prompt length, cut into batches, and each batch
runs once with per-row adapter scales, so G points × P prompts cost about one batched generation of G·P rows.

A row that emits EOS is finished: transformers pads it from then on and `generate` returns as soon as every row
is finished (tests/test_app_callbacks.py checks this), so a turn whose rows all end early costs only as many
steps as its longest row. A finished row still rides along in the batch until then (dropping it would mean
reshaping the KV cache every step); a row that never ends (a loop) runs to `max_new_tokens`, which is what the
`stop` event is for: set it (the app's Stop button, a closed page) and generation ends after the current step.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext

import torch
from transformers.generation.stopping_criteria import StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from peo.adapter_mix import AdapterMix
from peo.chat_template import encode_chat
from peo.decode_loop import AnyEvent, StreamResult
from peo.generation import GenerationSettings, GenerationStopped, Row, StopSignal, encode_prompts
from peo.running_batch import EOS, LENGTH


class _StopWhenSet(StoppingCriteria):
    """Ends `generate` after the current step once `event` is set (checked once per step, for every row)."""

    def __init__(self, event: StopSignal):
        self.event = event

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs) -> torch.Tensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


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


def new_token_counts(new_tokens: torch.Tensor, stop_ids: set[int]) -> list[int]:
    """Tokens each row generated before it stopped: transformers pads a row after its EOS, so the count is the
    position of the first EOS or pad, or the whole width (the row reached max_new_tokens, or it was stopped)."""
    stopped = torch.isin(new_tokens, torch.tensor(sorted(stop_ids), dtype=new_tokens.dtype))
    width = new_tokens.shape[1]
    return [int(row.nonzero()[0]) if row.any() else width for row in stopped]


@torch.inference_mode()
def generate_batch_counted(mix: AdapterMix, tokenizer, rows: Sequence[Row], settings: GenerationSettings,
                           on_tokens: Callable[[torch.Tensor], None] | None = None,
                           stop: StopSignal | None = None) -> list[tuple[str, int]]:
    """One `generate` call for all rows; returns each row's (answer text, tokens generated), cut short when
    `stop` is set (every row).
    The count is exact, unlike re-tokenizing the text, so it tells a cut answer from a finished one."""
    batch = encode_prompts(tokenizer, [r.messages for r in rows], mix.device)
    criteria = [_StopWhenSet(stop)] if stop is not None else []
    torch.manual_seed(settings.seed)
    with mix.row_scales([r.scales for r in rows]):
        output = mix.model.generate(
            **batch,
            **settings.generate_kwargs(),
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            streamer=_RowStreamer(on_tokens) if on_tokens else None,
            stopping_criteria=StoppingCriteriaList(criteria) if criteria else None,
        )
    new_tokens = output[:, batch["input_ids"].shape[1]:]
    counts = new_token_counts(new_tokens.cpu(), {tokenizer.eos_token_id, tokenizer.pad_token_id})
    return [(tokenizer.decode(t, skip_special_tokens=True).strip(), n) for t, n in zip(new_tokens, counts)]


def generate_batch(mix: AdapterMix, tokenizer, rows: Sequence[Row], settings: GenerationSettings,
                   on_tokens: Callable[[torch.Tensor], None] | None = None,
                   stop: StopSignal | None = None) -> list[str]:
    """One `generate` call for all rows; returns each row's answer text (cut short when `stop` is set)."""
    return [text for text, _ in generate_batch_counted(mix, tokenizer, rows, settings, on_tokens, stop)]


def generate_rows_counted(mix: AdapterMix, tokenizer, rows: Sequence[Row], settings: GenerationSettings,
                          batch_size: int, progress: Callable[[int], None] | None = None,
                          stop: StopSignal | None = None) -> list[tuple[str, int]]:
    """All rows, batched by prompt length; (answer, tokens generated) come back in the rows' order.

    GenerationStopped when `stop` is set before the last batch has finished (partial answers are not returned:
    they would pass for finished ones).
    """
    lengths = [len(encode_chat(tokenizer, r.messages)) for r in rows]
    order = sorted(range(len(rows)), key=lambda i: lengths[i])
    answers: list[tuple[str, int]] = [("", 0)] * len(rows)
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        results = generate_batch_counted(mix, tokenizer, [rows[i] for i in chunk], settings, stop=stop)
        if stop is not None and stop.is_set():
            raise GenerationStopped(f"generation stopped on request after {start} of {len(rows)} rows")
        for i, result in zip(chunk, results):
            answers[i] = result
        if progress:
            progress(len(chunk))
    return answers


def stream_batch(mix: AdapterMix, tokenizer, rows: Sequence[Row], settings: GenerationSettings,
                 lock: AbstractContextManager | None = None,
                 stop: StopSignal | None = None) -> Iterator[list[str] | StreamResult]:
    """Yield every row's text so far after each step; the last item is a StreamResult, as peo.generation's.

    Generation runs in a worker thread. It ends early when `stop` is set (then GenerationStopped is raised
    here instead of final answers) or when this iterator is closed (a cancelled consumer): either way the worker
    leaves `generate` after the current step and releases `lock`, and closing does not wait for it (it may run on
    a server's event loop).
    """
    steps: queue.Queue = queue.Queue()
    token_lists: list[list[int]] = [[] for _ in rows]
    finished = [False] * len(rows)
    n_steps = [0]
    result: dict[str, object] = {}
    cancel = threading.Event()  # set when the consumer goes away; `stop` is the caller's

    def on_tokens(tokens: torch.Tensor) -> None:
        n_steps[0] += 1
        for i, t in enumerate(tokens.tolist()):
            if finished[i]:
                continue
            if t == tokenizer.eos_token_id or t == tokenizer.pad_token_id:
                finished[i] = True
            else:
                token_lists[i].append(t)
        steps.put([tokenizer.decode(ids, skip_special_tokens=True) for ids in token_lists])

    either = AnyEvent(cancel, stop)

    def work() -> None:
        try:
            with lock if lock is not None else nullcontext():
                if not either.is_set():  # stopped while waiting for the lock: do not start
                    result["answers"] = generate_batch(mix, tokenizer, rows, settings, on_tokens, either)
        except BaseException as err:  # re-raised in the consumer's thread
            result["error"] = err
        finally:
            steps.put(None)

    thread = threading.Thread(target=work, name="peo-generate", daemon=True)
    thread.start()
    try:
        while (item := steps.get()) is not None:
            yield item
    finally:
        cancel.set()  # a no-op after a normal end; on close it ends the worker after its current step
    thread.join()
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    at_limit = n_steps[0] >= settings.max_new_tokens
    if stop is not None and stop.is_set() and not (at_limit or all(finished)):
        raise GenerationStopped(f"generation stopped on request after {n_steps[0]} step(s)")
    cut = [at_limit and not done for done in finished]
    yield StreamResult(answers=result["answers"], new_tokens=[len(t) for t in token_lists], cut=cut,  # type: ignore[arg-type]
                       ends=[LENGTH if c else EOS for c in cut], steps=n_steps[0])
