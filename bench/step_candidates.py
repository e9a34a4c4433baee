"""10. Candidates for a faster decode step (issue 22's "measure each candidate, keep what wins").

One decode step of the plain reference model at `rows` rows on an 80-token-ish prompt's cache, every candidate
on the same prompt, interleaved, against the memory floor (section 9's method):

- **running**: `RunningBatch.step`, what every path uses today (in-place KV cache, per-row sampling state);
- **eager_dynamic**: transformers' `model(...)` on a DynamicCache, as `generate` steps;
- **static_eager**: `model(...)` on a transformers StaticCache (fixed slots and length, no growth);
- **static_compiled**: the same step under `torch.compile` (inductor: C++/OpenMP kernels on a CPU; mode
  "reduce-overhead", CUDA graphs, on a GPU), gpt-fast's recipe; its compile time is reported;
- **running_int4** (CPU only): the running batch on a copy of the model whose Q4_1 linear layers hold their
  weights as 4-bit values (bench/int4_weights.py), read at about a third of the bytes; its own memory floor
  (`int4_memory_floor_s`) is reported beside the float one; **running_int4_bf16**: the same with the kernel's
  bf16 activations (its fast path on CPUs with AMX/AVX512-BF16; the layers' inputs rounded, so not exact);
- **running_mkl_packed** (CPU with MKL): the running batch on a copy whose linear layers use MKL's packed-weight
  GEMM, packed for this step's rows (bench/packed_weights.py); the packed bytes are reported.

The static step's logits are compared with the eager step's, and the compiled step's with the static one's
(max |Δ|, beside the logits' own scale), so a fast candidate that computes something else shows. A candidate
wins only if it beats `running` here; what it would take to put it behind the running batch (fixed slots,
per-row positions, the adapter mix inside the graph) is said in bench/README.md.
"""

from __future__ import annotations

import time

import torch
from transformers import DynamicCache, StaticCache

from bench import packed_weights
from bench.common import Check, Plan, interleaved, summary
from bench.decode import _floor_seconds, _step_variants
from bench.fixtures import dev_prompts
from bench.int4_weights import convert, weight_bytes
from peo import generation as running
from peo.assets import Assets
from peo.model_source import load_causal_lm, load_tokenizer, resolve_base_model

ROWS = 5


def _static_step(model, ids: torch.Tensor, max_len: int, compiled: bool, compile_mode: str = "default"):
    """A step function on a StaticCache prefilled with all of `ids` but its last token, the logits of its first
    call (that token, at its own position) and the seconds that call took (compiling, for a compiled step).

    transformers 5 places a StaticCache step by the slots already filled, so each later call decodes one
    position further; `max_len` leaves room for every repetition, and a static step reads all `max_len` slots
    (masked) whatever the position, so its cost does not drift.
    """
    cache = StaticCache(config=model.config, max_cache_len=max_len)
    length = ids.shape[1] - 1
    with torch.inference_mode():
        model(input_ids=ids[:, :-1], past_key_values=cache, use_cache=True,
              cache_position=torch.arange(length, device=ids.device))
    token = ids[:, -1:]
    forward = torch.compile(model.forward, mode=compile_mode, dynamic=False) if compiled else model.forward

    def step() -> torch.Tensor:
        with torch.inference_mode():
            return forward(input_ids=token, past_key_values=cache, use_cache=True).logits

    start = time.perf_counter()
    first = step()[:, -1]
    if ids.device.type == "cuda":
        torch.cuda.synchronize()
    return step, first, time.perf_counter() - start


def _eager_logits(model, ids: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        cache = DynamicCache()
        model(input_ids=ids[:, :-1], past_key_values=cache, use_cache=True)
        return model(input_ids=ids[:, -1:], past_key_values=cache, use_cache=True).logits


def run(assets: Assets, plan: Plan) -> dict:
    base = resolve_base_model(assets.base_model_spec)
    model = load_causal_lm(base).to(plan.device).eval()
    tokenizer = load_tokenizer(base)
    prompt = dev_prompts(assets, 1)[0]
    ids = torch.tensor([running.encode_prompts(tokenizer, [prompt], "cpu")["input_ids"][0].tolist()] * ROWS,
                       device=plan.device)
    floor_s, bandwidth = _floor_seconds(model)
    variants = {name.removeprefix(f"step_{ROWS}_"): fn for name, fn in
                _step_variants(model, tokenizer, prompt, ROWS).items()}
    variants["eager_dynamic"] = variants.pop("eager")
    room = ids.shape[1] + 2 * (plan.warmup + 1 + plan.reps * 4)  # every call of the static steps, below
    variants["static_eager"], static_logits, _ = _static_step(model, ids, room, compiled=False)
    compile_mode = "reduce-overhead" if ids.device.type == "cuda" else "default"  # CUDA graphs on a GPU
    variants["static_compiled"], compiled_logits, compile_s = _static_step(model, ids, room, compiled=True,
                                                                           compile_mode=compile_mode)
    eager_logits = _eager_logits(model, ids)[:, -1]
    int4 = {}
    if ids.device.type == "cpu":  # the packed-int4 kernel used here is the CPU one
        model_int4, int4 = convert(model)
        model_bf16, _ = convert(model, activations=torch.bfloat16)
        variants["running_int4"] = _step_variants(model_int4, tokenizer, prompt, ROWS)[f"step_{ROWS}_running"]
        variants["running_int4_bf16"] = _step_variants(model_bf16, tokenizer, prompt, ROWS)[f"step_{ROWS}_running"]
        int4["int4_vs_eager"] = float((_eager_logits(model_int4, ids)[:, -1] - eager_logits).abs().max())
        int4["int4_bf16_vs_eager"] = float((_eager_logits(model_bf16, ids)[:, -1] - eager_logits).abs().max())
        int4["int4_memory_floor_s"] = floor_s * weight_bytes(model_int4) / weight_bytes(model)
        int4["weight_bytes"] = {"float32": weight_bytes(model), "int4": weight_bytes(model_int4)}
    packed = {}
    if ids.device.type == "cpu" and torch.backends.mkl.is_available():
        model_packed, packed = packed_weights.convert(model, ROWS)
        variants["running_mkl_packed"] = _step_variants(model_packed, tokenizer, prompt, ROWS)[f"step_{ROWS}_running"]
        packed["mkl_packed_vs_eager"] = float((_eager_logits(model_packed, ids)[:, -1] - eager_logits).abs().max())
    differences = {"static_eager_vs_eager": float((static_logits - eager_logits).abs().max()),
                   "static_compiled_vs_static_eager": float((compiled_logits - static_logits).abs().max()),
                   "eager_logit_scale": float(eager_logits.abs().max())}
    times = interleaved(variants, reps=plan.reps * 4, warmup=plan.warmup + 1, device=plan.device)
    result: dict = {name: summary(s) for name, s in times.items()}
    med = {name: result[name]["median_s"] for name in variants}
    result.update({
        "rows": ROWS,
        "prompt_tokens": int(ids.shape[1]),
        "compile_mode": compile_mode,
        "compile_seconds": compile_s,
        "memory_floor_s": floor_s,
        "copy_bandwidth_gb_s": bandwidth,
        "max_abs_logit_difference": differences,
        "over_floor": {name: med[name] / floor_s for name in variants},
        "running_over": {name: med["running"] / med[name] for name in variants if name != "running"},
        "int4": int4,
        "mkl_packed": packed,
    })
    result["checks"] = [
        Check("best candidate step at 5 rows / memory floor", min(result["over_floor"].values()), "<=", 1.5),
        Check("compiled static step, speed-up over the running batch", result["running_over"]["static_compiled"],
              ">=", 1.5),
    ]
    return result
