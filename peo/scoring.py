"""Scoring answers with the two evaluators: reward (helpfulness) and cost (harmfulness)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from peft import PeftModel

from peo.adapter_files import check_adapter_folder
from peo.model_source import load_tokenizer, torch_dtype

Messages = list[dict[str, str]]


def load_sequence_classifier(base_model: str, tokenizer, dtype: str = "float32"):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(
        base_model, num_labels=1, dtype=torch_dtype(dtype), use_safetensors=True, trust_remote_code=False
    )
    model.config.pad_token_id = tokenizer.pad_token_id
    return model


@dataclass
class Evaluator:
    """A Bradley-Terry scorer; `score = sign · (raw − offset)`."""

    model: torch.nn.Module
    tokenizer: object
    sign: float
    offset: float
    max_length: int = 384

    @torch.inference_mode()
    def raw_scores(self, prompts: Sequence[Messages], answers: Sequence[str], batch_size: int = 16) -> torch.Tensor:
        texts = [
            self.tokenizer.apply_chat_template(list(p) + [{"role": "assistant", "content": a}], tokenize=False)
            for p, a in zip(prompts, answers)
        ]
        device = next(self.model.parameters()).device
        self.tokenizer.padding_side = "right"
        scores = []
        for start in range(0, len(texts), batch_size):
            batch = self.tokenizer(texts[start:start + batch_size], return_tensors="pt", padding=True,
                                   truncation=True, max_length=self.max_length, add_special_tokens=False)
            logits = self.model(**{k: v.to(device) for k, v in batch.items()}).logits
            scores.append(logits[:, 0].float().cpu())
        return torch.cat(scores) if scores else torch.zeros(0)

    def scores(self, prompts: Sequence[Messages], answers: Sequence[str], batch_size: int = 16) -> list[float]:
        raw = self.raw_scores(prompts, answers, batch_size)
        return (self.sign * (raw - self.offset)).tolist()


def load_evaluator(base_model: str, folder: str | Path, dtype: str = "float32", device: str | None = None) -> Evaluator:
    """Reference model + the evaluator's adapter (merged for speed) + its offset and sign."""
    folder = Path(folder)
    check_adapter_folder(folder)
    meta = json.loads((folder / "evaluator.json").read_text(encoding="utf-8"))
    tokenizer = load_tokenizer(base_model)
    model = load_sequence_classifier(base_model, tokenizer, dtype)
    model = PeftModel.from_pretrained(model, str(folder)).merge_and_unload().eval()
    if device:
        model.to(device)
    return Evaluator(model, tokenizer, sign=float(meta["sign"]), offset=float(meta["offset"]),
                     max_length=int(meta.get("max_length", 384)))


@dataclass
class Evaluators:
    reward: Evaluator
    cost: Evaluator

    @classmethod
    def load(cls, base_model: str, assets: str | Path, device: str | None = None) -> "Evaluators":
        assets = Path(assets)
        return cls(load_evaluator(base_model, assets / "evaluators" / "reward", device=device),
                   load_evaluator(base_model, assets / "evaluators" / "cost", device=device))

    def score(self, prompts: Sequence[Messages], answers: Sequence[str]) -> tuple[list[float], list[float]]:
        return self.reward.scores(prompts, answers), self.cost.scores(prompts, answers)
