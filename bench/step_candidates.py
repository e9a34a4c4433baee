"""10. Candidates for a faster decode step (issue 22's "measure each candidate, keep what wins").

One decode step of the plain reference model at `rows` rows on an 80-token-ish prompt's cache, every candidate
on the same prompt, interleaved, against the memory floor (section 9's method):

- **running**: `RunningBatch.step`, what every path uses today (in-place KV cache, per-row sampling state);
- **eager_dynamic**: transformers' `model(...)` on a DynamicCache, as `generate` steps;
- **static_eager**: `model(...)` on a transformers StaticCache (fixed slots and length, no growth);
- **static_compiled**: the same step under `torch.compile` (inductor: C++/OpenMP kernels on a CPU; mode
  "reduce-overhead", CUDA graphs, on a GPU), gpt-fast's recipe; its compile time is reported.

The static step's logits are compared with the eager step's, and the compiled step's with the static one's
(max |Δ|, beside the logits' own scale), so a fast candidate that computes something else shows. A candidate
wins only if it beats `running` here; what it would take to put it behind the running batch (fixed slots,
per-row positions, the adapter mix inside the graph) is said in bench/README.md.
"""

from __future__ import annotations

import time

import torch
from transformers import DynamicCache, StaticCache

from bench.common import Check, Plan, interleaved, summary
from bench.decode import _floor_seconds, _step_variants
from bench.fixtures import dev_prompts
from peo import generation as running
from peo.assets import Assets
from peo.model_source import load_causal_lm, load_tokenizer, resolve_base_model

ROWS = 5


def _static_step(model, ids: torch.Tensor, max_len: int, compiled: bool, compile_mode: str = "default"):
    """A step function on a prefilled StaticCache, compiled or not, and the seconds its first call took."""
    cache = StaticCache(config=model.config, max_cache_len=max_len)
    length = ids.shape[1] - 1  # the prompt but its last token is prefilled; each step feeds that token
    with torch.inference_mode():
        model(input_ids=ids[:, :-1], past_key_values=cache, use_cache=True,
              cache_position=torch.arange(length, device=ids.device))
    token, position = ids[:, -1:], torch.tensor([length], device=ids.device)
    forward = torch.compile(model.forward, mode=compile_mode, dynamic=False) if compiled else model.forward

    def step() -> torch.Tensor:  # writes slot `length` each time: every repetition decodes at the same length
        with torch.inference_mode():
            return forward(input_ids=token, past_key_values=cache, use_cache=True, cache_position=position).logits

    start = time.perf_counter()
    step()  # the first call compiles
    if ids.device.type == "cuda":
        torch.cuda.synchronize()
    return step, time.perf_counter() - start


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
    variants["static_eager"], _ = _static_step(model, ids, ids.shape[1] + 64, compiled=False)
    compile_mode = "reduce-overhead" if ids.device.type == "cuda" else "default"  # CUDA graphs on a GPU
    variants["static_compiled"], compile_s = _static_step(model, ids, ids.shape[1] + 64, compiled=True,
                                                          compile_mode=compile_mode)

    eager_logits, static_logits = _eager_logits(model, ids)[:, -1], variants["static_eager"]()[:, -1]
    compiled_logits = variants["static_compiled"]()[:, -1]
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
    })
    result["checks"] = [
        Check("best candidate step at 5 rows / memory floor", min(result["over_floor"].values()), "<=", 1.5),
        Check("compiled static step, speed-up over the running batch", result["running_over"]["static_compiled"],
              ">=", 1.5),
    ]
    return result
