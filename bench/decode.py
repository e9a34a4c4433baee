"""9. Decoding: the running batch (peo.running_batch, what every path now uses) against the eager path it
replaced (transformers' `generate` over fixed batches, kept in bench/eager_generation.py), in the same run.

- **step**: one decode step of the plain reference model at 1 and 5 rows on an 80-token-ish prompt's cache,
  running batch (`RunningBatch.step`) vs eager (`model(...)` on a DynamicCache, as `generate` steps), against
  the memory floor: the model's weight bytes read once at this machine's copy bandwidth (section 7's method).
- **chat**: a 5-column turn of exactly `chat_tokens` tokens (EOS suppressed, as section 3) through each path's
  `stream_batch`, the app's adapter mix; answers compared.
- **sweep**: 8 points × 8 dev prompts = 64 rows (per-row scales), greedy with the assets' repetition penalty
  (on the end-of-turn token too, transformers' rule, on both paths) and natural EOS up to `chat_tokens`, through
  each path's `generate_rows_counted` at `sweep_batch`: answers per second; answers compared.
- **exactness** (with `--eager-assets DIR`: answers.parquet and meta.json made by the eager path, e.g. the
  assets of the commit before the running batch): the reference, DPO-Help, DPO-Harm and one front point on
  every test prompt there, decoded by the running batch with that decoding (and transformers' penalty on the
  end-of-turn token, `penalize_eos`), against those answers: the share identical, and for the answers that
  differ, the evaluators' scores of both versions (paired mean difference with a bootstrap interval).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from transformers.cache_utils import DynamicCache

from app.engine import column_scales as app_column_scales
from bench import eager_generation as eager
from bench.common import Check, Plan, interleaved, summary
from bench.fixtures import PlainModel, dev_prompts, fixed
from peo import generation as running
from peo.aspects import DEFAULT_ASPECTS
from peo.assets import Assets, load_policy_mix
from peo.coefficients import coefficients, model_id, scales
from peo.export import sweep_decoding
from peo.generation import GenerationSettings, Row, decode_rows
from peo.model_source import load_causal_lm, resolve_base_model
from peo.names import ANSWERS_FILE, FRONTS_FILE, META_FILE, REPORT_DIR
from peo.records import RunMeta
from peo.running_batch import RunningBatch

POINT = (0.4, 0.5, 0.5)  # (λ, ϕ_help, ϕ_harm), as section 3
SWEEP_POINTS = [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (1.5, 0.5), (0.5, 1.5), (1.0, 1.0), (2.0, 0.0), (0.75, 0.75)]


def _floor_seconds(model: torch.nn.Module) -> tuple[float, float]:
    """(seconds to read every weight once at the copy bandwidth, that bandwidth in GB/s)."""
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    src = torch.empty(64 * 2**20, dtype=torch.float32)
    dst = torch.empty_like(src)
    best = min(_timed(lambda: dst.copy_(src)) for _ in range(5))
    bandwidth = 2 * src.numel() * 4 / best  # read + write, as section 7
    return weight_bytes / bandwidth, bandwidth / 1e9


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _step_variants(model, tokenizer, prompt, rows: int) -> dict:
    plain = PlainModel(model)
    ids = torch.tensor([running.encode_prompts(tokenizer, [prompt], "cpu")["input_ids"][0].tolist()] * rows)
    with torch.inference_mode():
        cache = DynamicCache()
        model(input_ids=ids, past_key_values=cache, use_cache=True)
    token = ids[:, -1:]

    def eager_step() -> None:
        with torch.inference_mode():
            model(input_ids=token, past_key_values=cache, use_cache=True)
        cache.crop(-1)

    batch = RunningBatch(plain, {tokenizer.eos_token_id}, tokenizer.pad_token_id)
    decoded = decode_rows(tokenizer, [Row(prompt, {})] * rows, GenerationSettings(max_new_tokens=10**6))
    for r in decoded:
        r.min_new_tokens = 10**6
    batch.join(decoded)

    def running_step() -> None:
        batch.step()
        for layer in batch.cache.layers:  # back to the prompt: every repetition decodes at the same length
            layer.length -= 1
            layer.keys, layer.values = layer._k[:, :, :layer.length], layer._v[:, :, :layer.length]
        batch.mask = batch.mask[:, :-1]
    return {f"step_{rows}_running": running_step, f"step_{rows}_eager": eager_step}


def _equal_share(a: list, b: list) -> float:
    return float(np.mean([x == y for x, y in zip(a, b)]))


def _exactness(eager_assets: Path, mix, tokenizer, batch_size: int) -> dict:
    """The running batch on the eager path's own test prompts, models and decoding (penalize_eos: transformers'
    rule, which the eager answers were made under), against its answers."""
    from peo.scoring import Evaluators

    answers = pd.read_parquet(eager_assets / ANSWERS_FILE)
    run_meta = RunMeta.load(eager_assets / META_FILE)
    if "decoder" in run_meta.generation:
        raise ValueError(f"{eager_assets}: these answers were made by {run_meta.generation['decoder']!r}, not by "
                         "the eager path; give --eager-assets a folder with the eager path's answers.parquet and "
                         "meta.json (e.g. from git: the commit before the running batch)")
    test = answers[answers["split"] == "test"]
    points = [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0)]  # the reference, DPO-Help, DPO-Harm
    fronts = eager_assets / REPORT_DIR / FRONTS_FILE
    if fronts.is_file():  # and the first point of that run's PEO front
        first = json.loads(fronts.read_text(encoding="utf-8"))["fronts"]["peo"]["points"][0]
        points.append((float(first["c_help"]), float(first["c_harm"])))
    models = {model_id(*c): scales(c, DEFAULT_ASPECTS.names) for c in points}
    missing = [m for m in models if not (test["model_id"] == m).any()]
    if missing:
        raise ValueError(f"{eager_assets / ANSWERS_FILE}: no test answers of {missing}")
    settings = sweep_decoding(run_meta).model_copy(
        update={"penalize_eos": True})
    out: dict = {"eager_assets": str(eager_assets), "settings": settings.model_dump(), "models": {}}
    evaluators = Evaluators.on_policy(mix.model, tokenizer, eager_assets, run_meta.aspect_set)
    for mid, model_scales in models.items():
        shipped = test[test["model_id"] == mid].sort_values("prompt_id")
        rows = [Row(json.loads(p), model_scales) for p in shipped["prompt"]]
        start = time.perf_counter()
        new = running.generate_rows_counted(mix, tokenizer, rows, settings, batch_size)
        seconds = time.perf_counter() - start
        texts = [t for t, _ in new]
        same = [a == b for a, b in zip(texts, shipped["answer"])]
        differ = [i for i, s in enumerate(same) if not s]
        entry = {"prompts": len(rows), "identical": int(sum(same)), "identical_share": float(np.mean(same)),
                 "seconds": seconds}
        if differ:
            scored = evaluators.score([rows[i].messages for i in differ], [texts[i] for i in differ])
            rewards, costs = scored["reward"], scored["cost"]
            d_reward = np.asarray(rewards, float) - shipped["reward"].to_numpy()[differ]
            d_cost = np.asarray(costs, float) - shipped["cost"].to_numpy()[differ]
            entry["differing"] = {"n": len(differ), "reward_diff": _mean_ci(d_reward), "cost_diff": _mean_ci(d_cost),
                                  "reward_sd_all": float(shipped["reward"].std()),
                                  "cost_sd_all": float(shipped["cost"].std())}
        out["models"][mid] = entry
    out["identical_share_min"] = min(m["identical_share"] for m in out["models"].values())
    return out


def _mean_ci(diffs: np.ndarray, n_boot: int = 2000) -> dict:
    rng = np.random.default_rng(0)
    boots = [rng.choice(diffs, len(diffs)).mean() for _ in range(n_boot)]
    return {"mean": float(diffs.mean()), "interval": [float(np.quantile(boots, 0.025)),
                                                      float(np.quantile(boots, 0.975))]}


def run(assets: Assets, plan: Plan, eager_assets: Path | None = None) -> dict:
    mix, tokenizer = load_policy_mix(assets, plan.device)
    plain_model = load_causal_lm(resolve_base_model(assets.base_model_spec)).to(plan.device).eval()
    prompts = dev_prompts(assets, max(8, plan.sweep_prompts))
    result: dict = {}

    # step: the plain model, 1 and 5 rows
    floor_s, bandwidth = _floor_seconds(plain_model)
    variants = _step_variants(plain_model, tokenizer, prompts[0], 1) | _step_variants(plain_model, tokenizer,
                                                                                       prompts[0], 5)
    times = interleaved(variants, reps=plan.reps * 4, warmup=plan.warmup + 1, device=plan.device)
    step = {name: summary(s) for name, s in times.items()}
    step["memory_floor_s"] = floor_s
    step["copy_bandwidth_gb_s"] = bandwidth
    med = {k: v["median_s"] for k, v in step.items() if isinstance(v, dict)}
    step["ratios"] = {"step_5_running_over_floor": med["step_5_running"] / floor_s,
                      "step_5_eager_over_floor": med["step_5_eager"] / floor_s,
                      "step_1_eager_over_running": med["step_1_eager"] / med["step_1_running"],
                      "step_5_eager_over_running": med["step_5_eager"] / med["step_5_running"]}
    result["step"] = step

    # chat: 5 columns, fixed length
    settings = fixed(plan.chat_tokens)
    columns = {c: app_column_scales(c, POINT[0], *coefficients(POINT[:1], POINT[1:]))
               for c in DEFAULT_ASPECTS.default_chat_columns}
    five = [Row(prompts[0], s) for s in columns.values()]
    answers: dict[str, list[str]] = {}

    def turn(module, name):
        def go() -> None:
            *_, result = module.stream_batch(mix, tokenizer, five, settings)
            answers[name] = result.answers
        return go

    times = interleaved({"columns_5_running": turn(running, "running"), "columns_5_eager": turn(eager, "eager")},
                        reps=plan.reps, warmup=plan.warmup, device=plan.device)
    chat = {name: summary(s) for name, s in times.items()}
    chat["eager_over_running"] = chat["columns_5_eager"]["median_s"] / chat["columns_5_running"]["median_s"]
    chat["answers_equal_share"] = _equal_share(answers["running"], answers["eager"])
    result["chat"] = chat

    # sweep: answers per second, natural lengths
    decoding = sweep_decoding(assets.run_meta)
    # transformers' rule for the end-of-turn token on both paths, so that their answers can be compared
    sweep_settings = GenerationSettings(max_new_tokens=plan.chat_tokens, repetition_penalty=decoding.repetition_penalty,
                                        penalize_eos=True)
    rows = [Row(p, scales(c, DEFAULT_ASPECTS.names)) for c in SWEEP_POINTS for p in prompts[:8]]
    outputs: dict[str, list] = {}

    def sweep(module, name):
        def go() -> None:
            outputs[name] = module.generate_rows_counted(mix, tokenizer, rows, sweep_settings, plan.sweep_batch)
        return go

    times = interleaved({"sweep_running": sweep(running, "running"), "sweep_eager": sweep(eager, "eager")},
                        reps=max(1, plan.reps // 2), warmup=0, device=plan.device)
    sweep_result = {name: summary(s) for name, s in times.items()}
    for name in ("running", "eager"):
        sweep_result[f"answers_per_s_{name}"] = len(rows) / sweep_result[f"sweep_{name}"]["median_s"]
        sweep_result[f"mean_new_tokens_{name}"] = float(np.mean([n for _, n in outputs[name]]))
    sweep_result["rows"] = len(rows)
    sweep_result["running_over_eager_throughput"] = (sweep_result["answers_per_s_running"]
                                                    / sweep_result["answers_per_s_eager"])
    sweep_result["answers_equal_share"] = _equal_share([t for t, _ in outputs["running"]],
                                                       [t for t, _ in outputs["eager"]])
    result["sweep"] = sweep_result

    if eager_assets is not None:
        result["exactness"] = _exactness(Path(eager_assets), mix, tokenizer, batch_size=64)

    result["checks"] = [
        Check("chat 5-column turn, eager / running", chat["eager_over_running"], ">=", 3.0),
        Check("plain step at 5 rows / memory floor", step["ratios"]["step_5_running_over_floor"], "<=", 1.5),
        Check("sweep answers/s, running / eager", sweep_result["running_over_eager_throughput"], ">=", 2.0),
    ]
    if "exactness" in result:
        result["checks"].append(Check("greedy answers identical to the eager path (min over 4 models)",
                                      result["exactness"]["identical_share_min"], ">=", 0.95))
    return result
