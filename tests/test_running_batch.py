"""The running batch (peo.running_batch) and the shared loop over it (peo.decode_loop): rows that join and leave
a running batch give the same answers as alone, a stop ends only its own rows, and every path agrees with
transformers' `generate` for a row alone.

The tiny random model runs in float64 here: its logits are nearly flat, so float32 summation-order noise (the
same product over a different number of rows) could flip a greedy choice and hide a real bug behind a flake.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest
import torch

from peo.adapter_mix import AdapterMix
from peo.decode_loop import DecodeLoop
from peo.generation import GenerationSettings, Row, decode_rows, generate_rows_counted
from peo.model_source import load_causal_lm, load_tokenizer
from peo.running_batch import EOS, LENGTH, STOPPED, DecodeRow, RunningBatch

PROMPTS = ["Hi", "Explain topic 3 briefly.", "Hello there, how are you today?", "Write a long poem about rivers "
           "and the sea and the sky above them.", "Why?", "List three colours."]
SCALES = [{}, {"help": 1.0}, {"harm": 1.0}, {"help": 1.5, "harm": 0.5}, {"joint": 1.5}, {"help": -0.5, "harm": 2.0}]


@pytest.fixture(scope="module")
def model(tiny_base, tiny_adapters):
    mix = AdapterMix(load_causal_lm(tiny_base).double(), tiny_adapters)
    return mix, load_tokenizer(tiny_base)


def _rows(n: int = 6) -> list[Row]:
    return [Row([{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}], SCALES[i % len(SCALES)]) for i in range(n)]


def _alone(mix, tokenizer, row: Row | DecodeRow, settings: GenerationSettings | None = None) -> tuple[list[int], str]:
    """A row decoded in a batch of its own: a Row with `settings`, or a fresh copy of a DecodeRow (its seed too)."""
    batch = RunningBatch(mix, {tokenizer.eos_token_id}, tokenizer.pad_token_id)
    if isinstance(row, DecodeRow):
        decoded = replace(row, tokens=[], end=None, stop=None, on_token=None, _generator=None)
    else:
        [decoded] = decode_rows(tokenizer, [row], settings)
    batch.join([decoded])
    while len(batch):
        batch.step()
    return decoded.tokens, decoded.end


GREEDY = GenerationSettings(max_new_tokens=12, repetition_penalty=1.3)  # EOS spared by the penalty (default)
SAMPLED = GenerationSettings(max_new_tokens=12, temperature=0.8, top_p=0.9, seed=5, repetition_penalty=1.1)


@pytest.mark.parametrize("settings", [GREEDY, SAMPLED], ids=["greedy", "sampled"])
def test_rows_joining_and_leaving_a_running_batch_give_the_same_answers_as_alone(model, settings):
    mix, tokenizer = model
    rows = _rows(6)
    decoded = decode_rows(tokenizer, rows, settings)
    alone = [_alone(mix, tokenizer, r) for r in decoded]
    assert len({r.seed for r in decoded}) == len(rows)  # a sampled row's draws are its own: seed + its index
    batch = RunningBatch(mix, {tokenizer.eos_token_id}, tokenizer.pad_token_id)
    batch.join(decoded[:2])
    batch.step()
    batch.step()
    batch.join(decoded[2:4])  # joins mid-answer: different cache lengths, left-padded to one width
    for _ in range(3):
        batch.step()
    batch.join(decoded[4:])
    sizes = []
    while len(batch):
        sizes.append(len(batch))
        batch.step()
    assert [(r.tokens, r.end) for r in decoded] == alone
    assert max(sizes) > 2 and {e for _, e in alone} <= {EOS, LENGTH}


def test_the_first_rows_agree_with_transformers_generate_alone(model):
    """The logits processing is transformers' own (repetition penalty over the row's prompt and answer, the
    end-of-turn token included when penalize_eos is set, as transformers does)."""
    mix, tokenizer = model
    settings = GenerationSettings(max_new_tokens=12, repetition_penalty=1.3, penalize_eos=True)
    for row in _rows(3):
        ids = torch.tensor([decode_rows(tokenizer, [row], settings)[0].prompt_ids])
        mix.set_scales(row.scales)
        with torch.inference_mode():
            out = mix.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                     max_new_tokens=GREEDY.max_new_tokens, repetition_penalty=GREEDY.repetition_penalty,
                                     pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        mix.set_scales({})
        expected = [t for t in out[0, ids.shape[1]:].tolist() if t != tokenizer.eos_token_id]
        tokens, _ = _alone(mix, tokenizer, row, settings)
        assert tokens == expected


def test_the_repetition_penalty_spares_the_end_of_turn_token(model):
    """The chat template puts EOS in every prompt; unless penalize_eos is set, its logit is left as it was while
    every other token of the prompt is divided by the penalty (CTRL's rule, positive logits)."""
    mix, tokenizer = model
    batch = RunningBatch(mix, {tokenizer.eos_token_id}, tokenizer.pad_token_id)
    eos = tokenizer.eos_token_id
    for penalize, expected_eos in ((False, 4.0), (True, 2.0)):
        [row] = decode_rows(tokenizer, _rows(1), GenerationSettings(repetition_penalty=2.0, penalize_eos=penalize))
        assert eos in row.prompt_ids
        other = next(t for t in row.prompt_ids if t != eos)
        scores = torch.zeros(1, mix.model.config.vocab_size, dtype=torch.float64)
        scores[0, eos] = scores[0, other] = 4.0
        out = batch._process([row], scores)
        assert (out[0, eos].item(), out[0, other].item()) == (expected_eos, 2.0)


def test_a_stop_ends_only_its_own_rows(model):
    mix, tokenizer = model
    rows = _rows(4)
    long = GenerationSettings(max_new_tokens=20, repetition_penalty=1.3)
    alone = [_alone(mix, tokenizer, r, long) for r in rows]
    stop = threading.Event()
    decoded = decode_rows(tokenizer, rows[:2], long, stop=stop) + decode_rows(tokenizer, rows[2:], long)
    batch = RunningBatch(mix, {tokenizer.eos_token_id}, tokenizer.pad_token_id)
    batch.join(decoded)
    for _ in range(3):
        batch.step()
    stop.set()
    ended = batch.step()
    assert {id(r) for r in decoded[:2] if r.end == STOPPED} <= {id(r) for r in ended}
    while len(batch):
        batch.step()
    assert [r.end for r in decoded[:2]] == [STOPPED, STOPPED] or any(e == EOS for _, e in alone[:2])
    assert all(len(r.tokens) <= 4 for r in decoded[:2])
    assert [(r.tokens, r.end) for r in decoded[2:]] == alone[2:]


def test_the_sweep_refills_its_batch_and_keeps_each_answer(model):
    """generate_rows_counted with a batch smaller than the rows: ended rows wait (a quarter of the batch),
    then leave together and the next rows join; every answer is the row's own."""
    mix, tokenizer = model
    rows = _rows(11)
    settings = GenerationSettings(max_new_tokens=9, repetition_penalty=1.3)
    alone = [_alone(mix, tokenizer, r, settings) for r in rows]
    progress: list[int] = []
    counted = generate_rows_counted(mix, tokenizer, rows, settings, batch_size=4, progress=progress.append)
    assert [n for _, n in counted] == [len(t) for t, _ in alone]
    assert [text for text, _ in counted] == [tokenizer.decode(t, skip_special_tokens=True).strip() for t, _ in alone]
    assert sum(progress) == len(rows)


def test_the_shared_loop_serves_concurrent_requests_each_as_alone(model):
    mix, tokenizer = model
    loop = DecodeLoop(mix, tokenizer, max_rows=16)
    try:
        requests = [_rows(6)[i:i + 2] for i in (0, 2, 4)]
        settings = [GREEDY, SAMPLED, GenerationSettings(max_new_tokens=7)]
        alone = [[_alone(mix, tokenizer, r)[0] for r in decode_rows(tokenizer, rows, s)]
                 for rows, s in zip(requests, settings)]
        results: dict[int, list[list[int]]] = {}

        def run(i: int) -> None:
            decoded = decode_rows(tokenizer, requests[i], settings[i])
            loop.run(decoded)
            results[i] = [r.tokens for r in decoded]

        threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert [results.get(i) for i in range(3)] == alone
    finally:
        loop.close()


def test_closing_a_stream_ends_its_rows_within_a_second_and_not_the_others(model):
    mix, tokenizer = model
    loop = DecodeLoop(mix, tokenizer)
    try:
        endless = GenerationSettings(max_new_tokens=400)
        mine = decode_rows(tokenizer, _rows(2), endless)
        other = decode_rows(tokenizer, _rows(3)[2:], GenerationSettings(max_new_tokens=30))
        for r in mine:  # EOS never wins, so only the stop can end these rows early
            r.min_new_tokens = 400
        other_done = threading.Thread(target=loop.run, args=(other,))
        stream = loop.stream(mine)
        next(stream)
        other_done.start()
        next(stream)
        stream.close()
        start = time.perf_counter()
        while any(r.end is None for r in mine) and time.perf_counter() - start < 1.0:
            time.sleep(0.01)
        assert [r.end for r in mine] == [STOPPED, STOPPED]
        other_done.join(60)
        assert other[0].end in (EOS, LENGTH)
        expected = _alone(mix, tokenizer, _rows(3)[2], GenerationSettings(max_new_tokens=30))
        assert (other[0].tokens, other[0].end) == expected
    finally:
        loop.close()
