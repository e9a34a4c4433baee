"""5. Training and scoring throughput, on the CPU and (when there is one) the GPU.

- DPO step: one optimizer step of the LoRA policy on a DPO-shaped batch, timed directly: `dpo_pairs` pairs →
  2·pairs sequences of `dpo_length` tokens, forward + backward through the reference with the LoRA adapter of
  the assets' profile (peo.train.dpo.peft_lora_config), the sigmoid DPO loss on the response half against fixed
  reference log-probs (precompute computes those once per data set, so a step has no reference forward), AdamW.
  tokens/s counts every token of the 2·pairs sequences.
- Scoring: `peo.scoring.FeatureExtractor.features` on answers of the assets' answers.parquet (answers/s and
  tokens/s, tokens as the extractor encodes them: prompt + answer + EOS).
- For context, the DPO timings precompute itself recorded (meta.json `training`: TRL DPOTrainer, setup and
  reference log-probs included) are copied alongside.
"""

from __future__ import annotations

import functools
import json

import torch
import torch.nn.functional as F
from peft import get_peft_model

from bench.common import Plan, interleaved, summary
from peo.assets import Assets
from peo.config import LoraSettings
from peo.model_source import load_causal_lm, load_tokenizer
from peo.records import PolicyTraining
from peo.scoring import FeatureExtractor
from peo.train.dpo import peft_lora_config


def lora_config(assets: Assets) -> LoraSettings:
    raw = assets.run_meta.config.get("lora") or {}
    return LoraSettings(**{k: v for k, v in raw.items() if k in LoraSettings.model_fields})


def recorded_training(training: PolicyTraining) -> dict:
    """What precompute recorded of one policy's DPO run: pairs, steps, seconds (an extra field of meta.json's
    training entry) and seconds per step."""
    seconds = getattr(training, "seconds", None)
    return {"pairs": training.pairs, "steps": training.steps, "seconds": seconds} | (
        {"seconds_per_step": seconds / training.steps} if training.steps and seconds else {})


def dpo_step_fn(base: str, lora: LoraSettings, pairs: int, length: int, device: str, beta: float = 0.1):
    model = get_peft_model(load_causal_lm(base), peft_lora_config(lora)).to(device)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=5e-4)
    generator = torch.Generator().manual_seed(0)
    vocab = model.config.vocab_size
    ids = torch.randint(100, vocab, (2 * pairs, length), generator=generator).to(device)
    mask = torch.ones_like(ids)
    response = torch.zeros(2 * pairs, length - 1, device=device)
    response[:, length // 2:] = 1.0  # the second half is the answer: its log-probs enter the loss
    ref_logps = torch.zeros(2 * pairs, device=device)

    def step() -> None:
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
        logps = torch.gather(F.log_softmax(logits, -1), 2, ids[:, 1:, None]).squeeze(2)
        seq = (logps * response).sum(1) - ref_logps
        chosen, rejected = seq[:pairs], seq[pairs:]
        loss = -F.logsigmoid(beta * (chosen - rejected)).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    trainable = sum(p.numel() for p in params)
    return step, trainable


def run(assets: Assets, plan: Plan) -> dict:
    from bench.fixtures import base_model

    base = base_model(assets)
    tokenizer = load_tokenizer(base)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    lora = lora_config(assets)
    meta_eval = json.loads((assets.evaluator("reward") / "evaluator.json").read_text(encoding="utf-8"))
    max_length = int(meta_eval.get("max_length", 320))
    frame = assets.answers.head(plan.score_answers)
    prompts = [json.loads(p) for p in frame["prompt"]]
    answers = list(frame["answer"])
    result: dict = {"dpo_shape": {"pairs": plan.dpo_pairs, "sequences": 2 * plan.dpo_pairs,
                                  "tokens_per_sequence": plan.dpo_length, "lora_r": lora.r,
                                  "lora_targets": list(lora.target_modules)},
                    "scoring_shape": {"answers": len(answers), "batch_size": plan.score_batch,
                                      "max_length": max_length},
                    "devices": {}}
    for device in devices:
        step, trainable = dpo_step_fn(base, lora, plan.dpo_pairs, plan.dpo_length, device)
        extractor = FeatureExtractor(load_causal_lm(base).to(device), tokenizer, max_length=max_length,
                                     batch_size=plan.score_batch)
        score_tokens = sum(len(extractor.encode(p, a)[0]) for p, a in zip(prompts, answers))
        # a partial, not a lambda: no closure over `extractor`, which is deleted below to free the model
        times = interleaved({"dpo_step": step, "scoring": functools.partial(extractor.features, prompts, answers)},
                            reps=plan.reps, warmup=plan.warmup, device=device)
        dpo = summary(times["dpo_step"])
        dpo["tokens_per_s"] = 2 * plan.dpo_pairs * plan.dpo_length / dpo["median_s"]
        dpo["trainable_params"] = trainable
        score = summary(times["scoring"])
        score["answers_per_s"] = len(answers) / score["median_s"]
        score["tokens_per_s"] = score_tokens / score["median_s"]
        score["tokens"] = score_tokens
        result["devices"][device] = {"dpo_step": dpo, "scoring": score}
        del step, extractor
    result["precompute_recorded"] = {policy: recorded_training(v) for policy, v in assets.run_meta.training.items()}
    result["checks"] = []
    return result
