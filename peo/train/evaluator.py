"""Bradley-Terry evaluators: a scalar head plus LoRA on the reference model, trained with TRL's RewardTrainer.

The helpfulness evaluator's score is the reward; the harmlessness evaluator's score, negated, is the cost
(higher = more harmful). Both are centred on their held-out pairs so that 0 means "between a chosen and a
rejected answer", which gives the safe share (cost ≤ 0) a meaning.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm
from trl import RewardConfig, RewardTrainer

from peo.atomic import write_json
from peo.config import EvaluatorConfig, LoraConfig
from peo.data.records import PreferencePair
from peo.model_source import load_tokenizer, torch_dtype
from peo.scoring import Evaluator, load_sequence_classifier
from peo.train.common import ProgressCallback, last_checkpoint, preference_dataset, publish_folder, use_bf16
from peo.train.dpo import peft_lora_config

EVALUATOR_META = "evaluator.json"


def train_evaluator(base_model: str, pairs: list[PreferencePair], test_pairs: list[PreferencePair], out_dir: Path,
                    work_dir: Path, cfg: EvaluatorConfig, lora: LoraConfig, seed: int, kind: str) -> dict:
    """Train on `pairs`, measure pairwise accuracy on `test_pairs`, publish adapter + evaluator.json."""
    if kind not in ("reward", "cost"):
        raise ValueError(f"kind must be 'reward' or 'cost', got {kind!r}")
    if not pairs or not test_pairs:
        raise ValueError(f"{kind} evaluator: needs training and held-out pairs, got {len(pairs)} and {len(test_pairs)}")
    work_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = load_tokenizer(base_model)
    model = load_sequence_classifier(base_model, tokenizer, "bfloat16" if use_bf16(cfg.dtype) else "float32")
    args = RewardConfig(
        output_dir=str(work_dir),
        learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size,
        lr_scheduler_type="cosine",
        warmup_steps=0.1,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=2,
        logging_steps=5,
        max_length=cfg.max_length,
        bf16=use_bf16(cfg.dtype),
        seed=seed,
        data_seed=seed,
        report_to=[],
        disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(),
        center_rewards_coefficient=0.01,
    )
    trainer = RewardTrainer(model=model, args=args, train_dataset=preference_dataset(pairs),
                            processing_class=tokenizer, peft_config=peft_lora_config(lora, "SEQ_CLS"))
    start = time.time()
    with tqdm(desc=f"evaluator {kind}", unit="step") as bar:
        trainer.add_callback(ProgressCallback(bar))
        trainer.train(resume_from_checkpoint=last_checkpoint(work_dir))
    train_seconds = time.time() - start
    final = work_dir / "final"
    trainer.save_model(str(final))

    evaluator = Evaluator(trainer.model.eval(), tokenizer, sign=1.0, offset=0.0, max_length=cfg.max_length)
    chosen = evaluator.raw_scores([p.prompt_messages() for p in test_pairs], [p.chosen for p in test_pairs])
    rejected = evaluator.raw_scores([p.prompt_messages() for p in test_pairs], [p.rejected for p in test_pairs])
    accuracy = float((chosen > rejected).float().mean())
    offset = float(((chosen + rejected) / 2).mean())
    meta = {
        "kind": kind,
        "sign": 1.0 if kind == "reward" else -1.0,
        "offset": offset,
        "max_length": cfg.max_length,
        "dtype": cfg.dtype,
        "held_out_pairs": len(test_pairs),
        "held_out_accuracy": accuracy,
        "train_pairs": len(pairs),
        "steps": trainer.state.global_step,
        "train_seconds": round(train_seconds, 1),
    }
    write_json(final / EVALUATOR_META, meta)
    publish_folder(final, out_dir)
    return meta


def read_evaluator_meta(folder: Path) -> dict:
    return json.loads((folder / EVALUATOR_META).read_text(encoding="utf-8"))
