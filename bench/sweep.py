"""2. Sweep: seconds per point for G points × P prompts.

- multi-point: `peo.generation.generate_rows` over all G·P rows, each row with its own adapter scales
  (the AdapterMix with help, harm and joint adapters, as precompute's sweep runs it);
- naive: for each point, `MergedPolicy.set_point` on a plain model, then its P answers in one batch;
- base limit: the plain reference model alone generating the same G·P rows in the same batches;
- diagnostic, no target: the same multi-point pass through peft's own LoRA forward (`AdapterMix(fused=False)`:
  each adapter its own chain of calls), what the fused low-rank product of `peo.adapter_mix.FusedLora` saves.
Every row makes exactly `sweep_tokens` new tokens (greedy, min_new_tokens = max_new_tokens).
"""

from __future__ import annotations

from bench.common import Check, Plan, interleaved, summary
from bench.fixtures import PlainModel, base_model, dev_prompts, fixed, sweep_points
from peo.adapter_mix import AdapterMix
from peo.aspects import DEFAULT_ASPECTS
from peo.assets import Assets
from peo.coefficients import scales
from peo.generation import Row, generate_rows
from peo.model_source import load_causal_lm, load_tokenizer
from peo.task_vector import MergedPolicy, lora_task_vectors


def run(assets: Assets, plan: Plan) -> dict:
    base = base_model(assets)
    device = plan.device
    tokenizer = load_tokenizer(base)
    points = sweep_points(plan.sweep_points)
    prompts = dev_prompts(assets, plan.sweep_prompts)
    settings = fixed(plan.sweep_tokens)
    G, P, T = len(points), len(prompts), plan.sweep_tokens

    adapters = {n: assets.adapter(n) for n in DEFAULT_ASPECTS.adapters}
    mix = AdapterMix(load_causal_lm(base).to(device), adapters)
    peft_mix = AdapterMix(load_causal_lm(base).to(device), adapters, fused=False)  # diagnostic
    merged_model = load_causal_lm(base).to(device)
    merged = MergedPolicy(merged_model, lora_task_vectors({n: assets.adapter(n) for n in DEFAULT_ASPECTS.names}))
    reference = PlainModel(load_causal_lm(base).to(device))
    naive_model = PlainModel(merged_model)

    rows = [Row(messages=p, scales=scales(c, DEFAULT_ASPECTS.names)) for c in points for p in prompts]
    outputs: dict[str, list[str]] = {}

    def multi() -> None:
        outputs["multi"] = generate_rows(mix, tokenizer, rows, settings, batch_size=plan.sweep_batch)

    def multi_peft_forward() -> None:
        outputs["multi_peft_forward"] = generate_rows(peft_mix, tokenizer, rows, settings, batch_size=plan.sweep_batch)

    def naive() -> None:
        answers: list[str] = []
        for c in points:
            merged.set_point(scales(c, DEFAULT_ASPECTS.names))
            answers += generate_rows(naive_model, tokenizer, [Row(p, {}) for p in prompts], settings, batch_size=P)
        outputs["naive"] = answers

    def limit() -> None:
        generate_rows(reference, tokenizer, rows, settings, batch_size=plan.sweep_batch)

    times = interleaved({"multi_point": multi, "naive": naive, "base_limit": limit,
                         "multi_point_peft_forward": multi_peft_forward},
                        reps=plan.reps, warmup=plan.warmup, device=device)
    result: dict = {"G": G, "P": P, "new_tokens_per_row": T, "batch_rows": plan.sweep_batch, "rows": G * P,
                    "adapters_loaded": mix.names}
    for name, seconds in times.items():
        s = summary(seconds)
        s["seconds_per_point"] = s["median_s"] / G
        s["tokens_per_s"] = G * P * T / s["median_s"]
        result[name] = s
    same = sum(a == b for a, b in zip(outputs["multi"], outputs["naive"]))
    result["answers_equal_multi_vs_naive"] = f"{same}/{len(rows)}"
    same = sum(a == b for a, b in zip(outputs["multi"], outputs["multi_peft_forward"]))
    result["answers_equal_multi_vs_peft_forward"] = f"{same}/{len(rows)}"
    m, n, b = (result[k]["median_s"] for k in ("multi_point", "naive", "base_limit"))
    m2 = result["multi_point_peft_forward"]["median_s"]
    result["ratios"] = {"naive_over_multi": n / m, "multi_over_base": m / b, "multi_peft_forward_over_base": m2 / b,
                        "naive_over_multi_peft_forward": n / m2}
    result["checks"] = [
        Check(f"sweep naive/multi (G={G})", n / m, ">=", 3),
        Check("sweep multi/base limit", m / b, "<=", 1.3),
    ]
    return result
