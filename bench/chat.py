"""3. Chat: one turn with 5 side-by-side columns against 1 column, as the app serves it.

Both run `peo.generation.stream_batch` (the app's path: one batched generate, streamed step by step) on the
AdapterMix with help, harm and joint adapters; 5 columns = rows PEO point, ref, help, harm, soup with their own
adapter scales; 1 column = the PEO point alone. Same prompt, greedy, exactly `chat_tokens` new tokens.
Diagnostics, no target: the same 1 and 5 rows through peft's own LoRA forward (`AdapterMix(fused=False)`); the
plain reference model generating the 1 row (what the adapters cost at batch 1) and
the 5 rows (base 5 rows / base 1 row is what this hardware charges for the 4 extra rows with no adapter at all:
the floor under the 5/1 figure).
"""

from __future__ import annotations

from app.engine import column_scales as app_column_scales
from bench.common import Check, Plan, interleaved, summary
from bench.fixtures import PlainModel, dev_prompts, fixed
from peo.aspects import DEFAULT_ASPECTS
from peo.assets import Assets, load_policy_mix
from peo.coefficients import coefficients
from peo.generation import Row, stream_batch
from peo.model_source import load_causal_lm, resolve_base_model
from peo.names import PEO

POINT = (0.4, 0.5, 0.5)  # (λ, ϕ_help, ϕ_harm)


def column_scales(lambda_help: float, c_help: float, c_harm: float) -> dict[str, dict[str, float]]:
    """The app's default columns, each with the adapter scales the app gives it (app/engine.py: column_scales)."""
    return {column: app_column_scales(column, lambda_help, c_help, c_harm)
            for column in DEFAULT_ASPECTS.default_chat_columns}


def run(assets: Assets, plan: Plan) -> dict:
    mix, tokenizer = load_policy_mix(assets, plan.device)
    peft_mix, _ = load_policy_mix(assets, plan.device, fused=False)
    prompt = dev_prompts(assets, 1)[0]
    settings = fixed(plan.chat_tokens)
    columns = column_scales(POINT[0], *coefficients(POINT[:1], POINT[1:]))
    five = [Row(prompt, s) for s in columns.values()]
    one = [Row(prompt, columns[PEO])]

    plain = PlainModel(load_causal_lm(resolve_base_model(assets.base_model_spec)).to(plan.device))

    def turn(rows, model=mix):
        def go() -> None:
            for _ in stream_batch(model, tokenizer, rows, settings):
                pass
        return go

    times = interleaved({"columns_5": turn(five), "columns_1": turn(one),
                         "columns_5_peft_forward": turn(five, peft_mix), "columns_1_peft_forward": turn(one, peft_mix),
                         "columns_1_base_model": turn([Row(prompt, {})], plain),
                         "columns_5_base_model": turn([Row(prompt, {})] * 5, plain)},
                        reps=plan.reps, warmup=plan.warmup, device=plan.device)
    result: dict = {"new_tokens": plan.chat_tokens, "columns": list(columns), "point": list(POINT)}
    for name, seconds in times.items():
        s = summary(seconds)
        s["seconds_per_step"] = s["median_s"] / plan.chat_tokens
        result[name] = s
    med = {k: v["median_s"] for k, v in result.items() if isinstance(v, dict) and "median_s" in v}
    ratio = med["columns_5"] / med["columns_1"]
    result["ratios"] = {"five_over_one": ratio,
                        "peft_forward_five_over_one": med["columns_5_peft_forward"] / med["columns_1_peft_forward"],
                        "peft_forward_one_over_base_model": med["columns_1_peft_forward"] / med["columns_1_base_model"],
                        "one_over_base_model": med["columns_1"] / med["columns_1_base_model"],
                        "base_model_five_over_one": med["columns_5_base_model"] / med["columns_1_base_model"]}
    result["checks"] = [Check("chat 5 columns / 1 column", ratio, "<=", 1.6)]
    return result
