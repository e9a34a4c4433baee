"""What DPO and evaluator training share: datasets in TRL's conversational form, checkpoints, publishing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch
from datasets import Dataset
from transformers import TrainerCallback

from peo.data.records import PreferencePair


def preference_dataset(pairs: list[PreferencePair]) -> Dataset:
    """TRL's conversational preference form: prompt messages, one assistant message each side."""
    return Dataset.from_list([
        {
            "prompt": p.prompt_messages(),
            "chosen": [{"role": "assistant", "content": p.chosen}],
            "rejected": [{"role": "assistant", "content": p.rejected}],
        }
        for p in pairs
    ])


def last_checkpoint(work_dir: Path) -> str | None:
    """The newest complete Trainer checkpoint, so a killed run resumes instead of starting over."""
    checkpoints = sorted(
        (p for p in work_dir.glob("checkpoint-*") if (p / "trainer_state.json").is_file()),
        key=lambda p: int(p.name.split("-")[-1]),
    )
    return str(checkpoints[-1]) if checkpoints else None


def publish_folder(source_dir: Path, target: Path) -> None:
    """Copy a finished folder into place via a temp folder and a rename: never half-written."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source_dir, tmp)
    if target.exists():
        old = target.parent / f".{target.name}.old-{os.getpid()}"
        target.rename(old)
        tmp.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(target)


def use_bf16(dtype: str) -> bool:
    return dtype == "bfloat16" and (torch.cuda.is_available() or torch.backends.mkldnn.is_available())


class ProgressCallback(TrainerCallback):
    """Forward step counts to a tqdm bar owned by the caller (the Trainer's own bar is turned off)."""

    def __init__(self, bar):
        self.bar = bar

    def on_train_begin(self, args, state, control, **kwargs):
        self.bar.reset(total=state.max_steps)
        self.bar.update(state.global_step)

    def on_step_end(self, args, state, control, **kwargs):
        self.bar.update(1)
        if state.log_history:
            last = state.log_history[-1]
            self.bar.set_postfix({k: round(v, 4) for k, v in last.items()
                                  if k in ("loss", "rewards/accuracies", "accuracy")})
