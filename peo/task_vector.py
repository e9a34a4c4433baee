"""The merged form: weights set in place to θ_ref + Σ_a c_a·Δ_a, for LoRA or full-model task vectors.

A copy of the reference weights of every touched matrix is kept, so moving to a new point is one fused
`addmm` (low-rank: [c_h·s_h·B_h | c_s·s_s·B_s] @ [A_h; A_s]) or two `add`s (dense) per matrix, written
straight into the live parameter: no new model, no reload. Runs on whatever device the model is on.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import safe_open

from peo.adapter_files import LowRankDelta, read_lora_deltas
from peo.model_source import check_model_folder

Delta = LowRankDelta | torch.Tensor


def merge_weight(ref: torch.Tensor, deltas: Mapping[str, Delta], coefficients: Mapping[str, float],
                 out: torch.Tensor | None = None) -> torch.Tensor:
    """ref + Σ_a coefficients[a]·deltas[a] for one matrix (the exact reference for the tests and the merger)."""
    low_rank = {a: d for a, d in deltas.items() if isinstance(d, LowRankDelta)}
    dense = {a: d for a, d in deltas.items() if not isinstance(d, LowRankDelta)}
    dtype = ref.dtype
    if low_rank:
        B = torch.cat([d.B.to(dtype) * (coefficients.get(a, 0.0) * d.scaling) for a, d in low_rank.items()], dim=1)
        A = torch.cat([d.A.to(dtype) for d in low_rank.values()], dim=0)
        out = torch.addmm(ref, B, A, out=out) if out is not None else torch.addmm(ref, B, A)
    elif out is not None:
        out.copy_(ref)
    else:
        out = ref.clone()
    for a, d in dense.items():
        out.add_(d.to(dtype), alpha=coefficients.get(a, 0.0))
    return out


class MergedPolicy:
    """A plain HF model whose touched weights are rewritten in place for each point."""

    def __init__(self, model: torch.nn.Module, task_vectors: Mapping[str, Mapping[str, Delta]]):
        self.model = model
        self.aspects = list(task_vectors)
        params = dict(model.named_parameters())
        names = sorted({name for vectors in task_vectors.values() for name in vectors})
        missing = [n for n in names if n not in params]
        if missing:
            raise KeyError(f"task vectors touch parameters the model lacks: {missing[:3]}")
        device = next(model.parameters()).device
        self._params = {n: params[n] for n in names}
        self._ref = {n: params[n].detach().clone() for n in names}
        self._deltas = {
            n: {a: _to(vectors[n], device) for a, vectors in task_vectors.items() if n in vectors} for n in names
        }

    @torch.no_grad()
    def set_point(self, coefficients: Mapping[str, float]) -> None:
        unknown = set(coefficients) - set(self.aspects)
        if unknown:
            raise KeyError(f"unknown aspects {sorted(unknown)}; known: {self.aspects}")
        for name, param in self._params.items():
            merge_weight(self._ref[name], self._deltas[name], coefficients, out=param.data)


def _to(delta: Delta, device: torch.device) -> Delta:
    if isinstance(delta, LowRankDelta):
        return LowRankDelta(A=delta.A.to(device), B=delta.B.to(device), scaling=delta.scaling)
    return delta.to(device)


def lora_task_vectors(adapters: Mapping[str, str | Path]) -> dict[str, dict[str, LowRankDelta]]:
    return {aspect: read_lora_deltas(folder) for aspect, folder in adapters.items()}


def _read_safetensors(folder: Path) -> dict[str, torch.Tensor]:
    tensors: dict[str, torch.Tensor] = {}
    for file in sorted(folder.glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as handle:
            for key in handle.keys():
                tensors[key] = handle.get_tensor(key)
    return tensors


def dense_task_vectors(ref: str | Path, aspects: Mapping[str, str | Path]) -> dict[str, dict[str, torch.Tensor]]:
    """Δ_a = θ_a − θ_ref for fully fine-tuned aspect models in plain HF folders (float tensors that differ)."""
    ref_folder = Path(ref)
    check_model_folder(ref_folder)
    ref_tensors = _read_safetensors(ref_folder)
    vectors: dict[str, dict[str, torch.Tensor]] = {}
    for aspect, folder in aspects.items():
        folder = Path(folder)
        check_model_folder(folder)
        tensors = _read_safetensors(folder)
        if set(tensors) != set(ref_tensors):
            diff = sorted(set(tensors) ^ set(ref_tensors))[:3]
            raise ValueError(f"{folder}: parameter names differ from the reference {ref_folder} (e.g. {diff})")
        vectors[aspect] = {}
        for name, ref_value in ref_tensors.items():
            value = tensors[name]
            if value.shape != ref_value.shape:
                raise ValueError(f"{folder}: {name} has shape {tuple(value.shape)}, reference {tuple(ref_value.shape)}")
            if ref_value.is_floating_point() and not torch.equal(value, ref_value):
                vectors[aspect][name] = value.float() - ref_value.float()
    return vectors
