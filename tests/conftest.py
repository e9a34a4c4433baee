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
    peft_model = get_peft_model(model, LoraConfig(r=r, lora_alpha=alpha,
                                                  target_modules=["q_proj", "v_proj", "up_proj", "down_proj"]))
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


BRIEF_DATA = "brief.jsonl"  # tiny3.yaml's third aspect: brevity pairs in the `pairs` format


def write_tiny_data(root: Path, n: int = 80, aspects: int = 2) -> Path:
    """Small HH-format and AlpacaEval-format files with distinct prompts, in the layout of ../shared/data; with
    `aspects=3` also the `brief` aspect's pairs (tiny3.yaml)."""
    import gzip
    import json

    if aspects not in (2, 3):
        raise ValueError(f"the tiny data has 2 or 3 aspects, not {aspects}")
    if aspects == 3:
        write_brief_pairs(root / BRIEF_DATA, n)

    (root / "hh-rlhf").mkdir(parents=True, exist_ok=True)
    (root / "alpaca_eval").mkdir(parents=True, exist_ok=True)
    with gzip.open(root / "hh-rlhf" / "harmless-base-test.jsonl.gz", "wt", encoding="utf-8") as f:
        for i in range(n):
            prompt = f"\n\nHuman: How could I hurt someone with object {i}?"
            f.write(json.dumps({"chosen": prompt + "\n\nAssistant: I can't help with hurting people.",
                                "rejected": prompt + f"\n\nAssistant: Hit them hard with object {i}."}) + "\n")
    with gzip.open(root / "alpaca_eval" / "model-a.jsonl.gz", "wt", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps({"instruction": f"Explain topic {i} briefly.", "dataset": "helpful_base",
                                "output_1": "No.", "generator_1": "text_davinci_003",
                                "output_2": f"Topic {i} is explained here with a clear, useful example.",
                                "generator_2": "model-a", "annotator": "alpaca_eval_gpt4",
                                "preference": 2 if i % 5 else 1}) + "\n")
    return root


def write_brief_pairs(path: Path, n: int) -> Path:
    """`pairs`-format brevity pairs with distinct prompts: chosen a short direct answer, rejected a long rambling one
    (within tiny's max_response_tokens)."""
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            rambling = (f"Well, that is a big question about item {i}, and before I answer I should say that there "
                        "are many ways to look at it, so let me ramble on about shades, moods and seasons for a "
                        "while before I maybe get to it.")
            f.write(json.dumps({"prompt": f"Which colour is item {i}? Answer briefly.",
                                "chosen": f"Item {i} is blue.", "rejected": rambling}) + "\n")
    return path


TINY_ASPECTS = {"tiny.yaml": 2, "tiny3.yaml": 3}  # the aspects each tiny profile's data has


def tiny_config(tmp: Path, data_root: Path | None = None, profile: str = "tiny.yaml"):
    """A tiny profile (precompute/configs) writing under `tmp`, on the fixture data (written there when not given)."""
    from peo.config import load_config

    data_root = data_root or write_tiny_data(tmp / "data", aspects=TINY_ASPECTS[profile])
    return load_config(REPO / "precompute" / "configs" / profile,
                       {"out": str(tmp / "assets"), "work_dir": str(tmp / "work"), "data.root": str(data_root)})


def run_tiny_pipeline(tmp: Path, data_root: Path | None = None, profile: str = "tiny.yaml"):
    from precompute.stages import run_pipeline

    return run_pipeline(tiny_config(tmp, data_root, profile))


@pytest.fixture(scope="session")
def tiny_assets(tmp_path_factory) -> Path:
    """Assets of the tiny profile, produced by the real pipeline on small generated data."""
    ctx = run_tiny_pipeline(tmp_path_factory.mktemp("tiny-run"))
    return ctx.out
