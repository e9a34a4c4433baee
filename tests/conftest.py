"""Shared fixtures: the tiny random model and LoRA adapters with known, non-zero weights."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_base() -> str:
    from peo.model_source import resolve_base_model

    return resolve_base_model("tiny")


def random_lora_adapter(base: str, folder: Path, seed: int, r: int = 4, alpha: int = 8) -> Path:
    """A LoRA adapter with random A and B (B is zero at init in peft, which would make every test trivial)."""
    from peft import LoraConfig, get_peft_model

    from peo.model_source import load_causal_lm

    model = load_causal_lm(base)
    peft_model = get_peft_model(model, LoraConfig(r=r, lora_alpha=alpha, target_modules=["q_proj", "v_proj", "up_proj", "down_proj"]))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.2)
    peft_model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_adapters(tiny_base, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("adapters")
    return {
        "help": random_lora_adapter(tiny_base, root / "help", seed=1),
        "harm": random_lora_adapter(tiny_base, root / "harm", seed=2),
        "joint": random_lora_adapter(tiny_base, root / "joint", seed=3),
    }
