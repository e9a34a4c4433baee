"""7. What this machine charges per row: the plain reference model and one of its matrices against batch size.

No target: these are the floors under figures 2 and 3. A multi-point sweep can only win over the naive loop
what batching 50 rows instead of P saves per row, and 5 chat columns cost at least what 5 rows cost the plain
model. Measured here:
- decode: one new token for B rows on top of a prompt's KV cache (`model(input_ids, past_key_values)`), and
  prefill: the prompt itself for B rows, for B in 1, 2, 5, 8, 16, 50 (up to `hardware_max_batch`);
- one MLP matrix (`up_proj`, out × in) times B rows (`F.linear`), read as weight streaming (GB/s, the
  memory-bound view) and as arithmetic (GFLOP/s, the compute-bound view), with a 512-row product as the
  machine's practical GEMM peak and a large tensor copy as its practical memory bandwidth.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from bench.common import Plan, interleaved, summary
from bench.fixtures import base_model, dev_prompts
from peo.assets import Assets
from peo.generation import encode_prompts
from peo.model_source import load_causal_lm, load_tokenizer

DECODE_STEPS = 8


def prompt_tensor(assets: Assets, tokenizer, device: str) -> torch.Tensor:
    """The first dev prompt as the model sees it (chat template, generation prompt), shape (1, tokens)."""
    return encode_prompts(tokenizer, dev_prompts(assets, 1), device)["input_ids"]


def decode_steps(model: torch.nn.Module, prompt: torch.Tensor, rows: int) -> Callable[[], None]:
    """DECODE_STEPS new tokens for `rows` copies of the prompt on its KV cache (prefilled here, not timed)."""
    ids = prompt.expand(rows, -1).contiguous()
    with torch.no_grad():
        cache = model(input_ids=ids, use_cache=True).past_key_values
    token = ids[:, -1:]

    def steps() -> None:
        with torch.no_grad():
            for _ in range(DECODE_STEPS):
                model(input_ids=token, past_key_values=cache, use_cache=True)
        cache.crop(-DECODE_STEPS)  # back to the prompt: every repetition decodes at the same context length
    return steps


def run(assets: Assets, plan: Plan) -> dict:
    base = base_model(assets)
    model = load_causal_lm(base).to(plan.device).eval()
    prompt = prompt_tensor(assets, load_tokenizer(base), plan.device)
    batches = [b for b in (1, 2, 5, 8, 16, 50) if b <= plan.hardware_max_batch]

    def prefill(rows: int):
        ids = prompt.expand(rows, -1).contiguous()
        return lambda: model(input_ids=ids, use_cache=True)

    with torch.no_grad():
        variants = ({f"decode_{b}": decode_steps(model, prompt, b) for b in batches}
                    | {f"prefill_{b}": prefill(b) for b in batches})
        times = interleaved(variants, reps=plan.reps, warmup=plan.warmup, device=plan.device)
        result: dict = {"prompt_tokens": int(prompt.shape[1]), "decode_steps_per_rep": DECODE_STEPS, "batches": batches}
        for b in batches:
            d, p = summary(times[f"decode_{b}"]), summary(times[f"prefill_{b}"])
            result[f"decode_{b}"] = d | {"ms_per_step": d["median_s"] / DECODE_STEPS * 1000,
                                         "ms_per_row_token": d["median_s"] / DECODE_STEPS / b * 1000}
            result[f"prefill_{b}"] = p | {"ms_per_row": p["median_s"] / b * 1000}
        result["matrix"] = _matrix(model, batches, plan)
    one, five = result["decode_1"]["ms_per_step"], result.get("decode_5", {}).get("ms_per_step")
    result["ratios"] = {"decode_5_over_1": five / one if five else None,
                        "decode_per_row_8_over_50": (result["decode_8"]["ms_per_row_token"]
                                                     / result["decode_50"]["ms_per_row_token"])
                        if "decode_50" in result else None,
                        "prefill_per_row_8_over_50": (result["prefill_8"]["ms_per_row"]
                                                      / result["prefill_50"]["ms_per_row"])
                        if "prefill_50" in result else None}
    result["checks"] = []
    return result


def _matrix(model: torch.nn.Module, batches: list[int], plan: Plan) -> dict:
    weight = next(m.weight for n, m in model.named_modules() if n.endswith("mlp.up_proj")).detach()
    out_f, in_f = weight.shape
    xs = {b: torch.randn(b, in_f, device=weight.device, dtype=weight.dtype) for b in batches + [512]}
    big = torch.ones(64 * 2**20, device=weight.device, dtype=torch.float32)  # 256 MiB: past every cache
    target = torch.zeros_like(big)
    repeat = 50

    def product(b: int):
        return lambda: [torch.nn.functional.linear(xs[b], weight) for _ in range(repeat)]

    variants = {f"rows_{b}": product(b) for b in batches + [512]} | {"copy_256MiB": lambda: target.copy_(big)}
    times = interleaved(variants, reps=plan.reps, warmup=plan.warmup, device=plan.device)
    nbytes = weight.numel() * weight.element_size()
    result: dict = {"shape": [out_f, in_f], "weight_MiB": nbytes / 2**20}
    for b in batches + [512]:
        s = summary(times[f"rows_{b}"])
        per_call = s["median_s"] / repeat
        result[f"rows_{b}"] = s | {"us_per_call": per_call * 1e6, "weight_GBps": nbytes / per_call / 1e9,
                                   "GFLOPs": 2 * b * out_f * in_f / per_call / 1e9}
    copy = summary(times["copy_256MiB"])
    result["copy_256MiB"] = copy | {"GBps_read_plus_write": 2 * big.numel() * 4 / copy["median_s"] / 1e9}
    return result
