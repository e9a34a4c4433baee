"""DPO of one aspect policy as a LoRA adapter on the reference model, through TRL's DPOTrainer.

The reference is the same base with the adapter switched off, and its log-probs are computed once per
dataset (`precompute_ref_log_probs`), not every step. Checkpoints go to `work_dir`; a killed run resumes
from the newest one. The finished adapter is published to `out_dir` in one rename.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import torch
from peft import LoraConfig
from tqdm.auto import tqdm
from trl import DPOConfig, DPOTrainer

from peo.atomic import write_json
from peo.config import DPOSettings, LoraSettings
from peo.data.records import PreferencePair
from peo.model_source import load_causal_lm, load_tokenizer
from peo.train.common import ProgressCallback, last_checkpoint, preference_dataset, publish_folder, use_bf16

log = logging.getLogger(__name__)
METRICS_FILE = "metrics.json"  # beside each final and published adapter: its training figures
CURVE_KEYS = ("step", "epoch", "loss", "rewards/accuracies", "rewards/margins", "rewards/chosen", "rewards/rejected",
              "learning_rate")


def peft_lora_config(lora: LoraSettings, task_type: str = "CAUSAL_LM") -> LoraConfig:
    return LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                          target_modules=list(lora.target_modules), task_type=task_type, bias="none")


def _shared_on_disk(dataset, folder: Path, is_main: bool):
    """The dataset written once to the work dir and read back by every process: under several processes TRL
    caches the reference log-probs beside the dataset's files, and an in-memory dataset's cache would go to a
    per-process temp folder the other processes cannot read."""
    from accelerate import PartialState
    from datasets import load_from_disk

    if is_main:
        shutil.rmtree(folder, ignore_errors=True)
        dataset.save_to_disk(str(folder))
    PartialState().wait_for_everyone()
    return load_from_disk(str(folder))


def train_dpo(base_model: str, pairs: list[PreferencePair], out_dir: Path, work_dir: Path, cfg: DPOSettings,
              lora: LoraSettings, seed: int, max_length: int, name: str = "dpo") -> dict:
    """Train, publish the adapter to `out_dir`, return training metrics (loss, reward accuracy, seconds)."""
    if not pairs:
        raise ValueError(f"{name}: no training pairs")
    work_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = load_tokenizer(base_model)
    model = load_causal_lm(base_model, "bfloat16" if use_bf16(cfg.dtype) else "float32")
    args = DPOConfig(
        output_dir=str(work_dir),
        beta=cfg.beta,
        learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        lr_scheduler_type="cosine",
        warmup_steps=0.1,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=2,
        logging_steps=1,  # every step's loss, accuracy and margins go into the report's training curves
        max_length=max_length,
        precompute_ref_log_probs=True,
        bf16=use_bf16(cfg.dtype),
        seed=seed,
        data_seed=seed,
        report_to=[],
        disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
    )
    dataset = preference_dataset(pairs)
    if args.world_size > 1:
        dataset = _shared_on_disk(dataset, work_dir / "dataset", args.process_index == 0)
    trainer = DPOTrainer(model=model, args=args, train_dataset=dataset,
                         processing_class=tokenizer, peft_config=peft_lora_config(lora))
    start = time.time()
    with tqdm(desc=f"DPO {name}", unit="step") as bar:
        trainer.add_callback(ProgressCallback(bar))
        result = trainer.train(resume_from_checkpoint=last_checkpoint(work_dir))
    final = work_dir / "final"
    trainer.save_model(str(final))  # written by the main process only (several under `accelerate launch`)
    trainer.accelerator.wait_for_everyone()
    main = trainer.accelerator.is_main_process
    if main:
        (final / "training_args.bin").unlink(missing_ok=True)  # a pickle; assets hold safetensors and JSON only
    history = [h for h in trainer.state.log_history if "loss" in h]
    tail = history[-3:] if history else []
    mean = lambda key: sum(h.get(key, 0.0) for h in tail) / len(tail) if tail else None  # noqa: E731
    metrics = {
        "pairs": len(pairs),
        "steps": trainer.state.global_step,
        "processes": trainer.args.world_size,  # data-parallel processes (accelerate launch); global batch scales
        "train_loss": result.training_loss,
        "final_loss": mean("loss"),
        "final_reward_accuracy": mean("rewards/accuracies"),
        "final_reward_margin": mean("rewards/margins"),
        "seconds": round(time.time() - start, 1),
        "curve": [{k: h[k] for k in CURVE_KEYS if k in h} for h in history],
    }
    if main:
        write_json(final / METRICS_FILE, metrics)
        publish_folder(final, out_dir)
    trainer.accelerator.wait_for_everyone()  # every process returns with the adapter published
    return metrics
