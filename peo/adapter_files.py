"""Reading PEFT LoRA adapter folders as low-rank task vectors, from safetensors only."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from peo.errors import PeoError

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"


class AdapterError(PeoError, ValueError):
    """An adapter folder that peo will not load."""


@dataclass(frozen=True)
class LowRankDelta:
    """Δ = scaling · B @ A for one weight matrix (shape of B @ A = out × in)."""

    A: torch.Tensor
    B: torch.Tensor
    scaling: float


def lora_scaling(config: Mapping[str, Any]) -> float:
    """s = lora_alpha / r, or lora_alpha / √r with rsLoRA: the factor in Δ = s · B @ A, as PEFT defines it.

    The one definition in peo, modelled on PEFT's `LoraLayer.update_layer` (peft 0.21: `lora_alpha / math.sqrt(r)`
    if `use_rslora` else `lora_alpha / r`). `config` has the keys of adapter_config.json (`r`, `lora_alpha`,
    `use_rslora`). Both forms use it: `read_lora_deltas` (merged form and exports, from the file, no peft model)
    and `peo.adapter_mix.FusedLora` (unmerged form, from the r, lora_alpha and use_rslora that peft stored on each
    layer, so per-layer rank/alpha patterns still hold there). One function rather than reading peft's
    `layer.scaling` in one place and recomputing it in the other: the merged form has no peft layer to read,
    and `layer.scaling` is overwritten by `set_scale`. tests/test_arithmetic.py checks both forms against
    peft's own forward and against each other.
    """
    r, alpha = int(config["r"]), float(config["lora_alpha"])
    return alpha / math.sqrt(r) if config.get("use_rslora") else alpha / r


def check_adapter_folder(folder: Path) -> None:
    if not (folder / ADAPTER_CONFIG).is_file():
        raise AdapterError(f"{folder}: not a PEFT adapter folder (no {ADAPTER_CONFIG})")
    if not (folder / ADAPTER_WEIGHTS).is_file():
        pickles = [p.name for p in folder.glob("*.bin")] + [p.name for p in folder.glob("*.pt")]
        what = f"only pickle weights ({', '.join(pickles)})" if pickles else f"no {ADAPTER_WEIGHTS}"
        raise AdapterError(f"{folder}: {what}; peo loads adapter weights only from safetensors")


def read_lora_deltas(folder: str | Path) -> dict[str, LowRankDelta]:
    """Base-model parameter name (e.g. `model.layers.0.mlp.up_proj.weight`) → its low-rank delta."""
    folder = Path(folder)
    check_adapter_folder(folder)
    config = json.loads((folder / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    if config.get("peft_type", "LORA") != "LORA":
        raise AdapterError(f"{folder / ADAPTER_CONFIG}: peft_type {config.get('peft_type')!r}, expected 'LORA'")
    if config.get("modules_to_save"):
        raise AdapterError(f"{folder / ADAPTER_CONFIG}: modules_to_save is not a low-rank task vector")
    rank_pattern, alpha_pattern = config.get("rank_pattern") or {}, config.get("alpha_pattern") or {}
    if rank_pattern or alpha_pattern:
        raise AdapterError(f"{folder / ADAPTER_CONFIG}: rank_pattern/alpha_pattern are not supported")
    scaling = lora_scaling(config)  # one value for every module: no rank/alpha patterns (refused above)
    tensors = load_file(str(folder / ADAPTER_WEIGHTS))
    deltas: dict[str, LowRankDelta] = {}
    for key, A in tensors.items():
        if ".lora_A." not in key:
            continue
        B = tensors[key.replace(".lora_A.", ".lora_B.")]
        module = key.split(".lora_A.")[0].removeprefix("base_model.model.")
        deltas[f"{module}.weight"] = LowRankDelta(A=A.float(), B=B.float(), scaling=scaling)
    if not deltas:
        raise AdapterError(f"{folder / ADAPTER_WEIGHTS}: no lora_A/lora_B tensors")
    return deltas
