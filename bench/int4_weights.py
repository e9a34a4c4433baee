"""The base model's linear layers as 4-bit weights: a candidate for issue 22's decode step (bench section 10).

The bundled base model is SmolLM2-135M-Instruct's Q4_1 GGUF, dequantized: in every block of 32 input weights of a
row, w = d·q + m with q in 0…15 (llama.cpp's Q4_1 sets m to the block's minimum and d to its range / 15, so q = 0
and q = 15 both occur). torch's CPU int4 matmul (`aten._weight_int4pack_mm_for_cpu`, the kernel torchao's int4
weight-only path calls) computes with w = (q − 8)·s + z per group of 32, so s = d and z = m + 8·d hold the same
weights, up to the float rounding of recovering d from the block's range. A layer whose blocks do not read back
that way (not Q4_1) keeps its float weights; `convert` says how many did and the largest read-back error.

The kernel takes its activations in fp32 or bf16 (`activations`): the weights are exact either way, bf16
activations round the inputs of every layer (8 bits of mantissa), so their answers are not the float model's.
"""

from __future__ import annotations

import copy

import torch

GROUP = 32  # Q4_1's block, one of the group sizes the kernel takes
LEVELS = 15


def q41_parts(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float] | None:
    """(q, d, m, largest |d·q + m − w|) of a weight read back as Q4_1 blocks; None when its shape does not fit."""
    rows, cols = weight.shape
    if cols % GROUP:
        return None
    blocks = weight.detach().float().reshape(rows, cols // GROUP, GROUP)
    m = blocks.amin(-1, keepdim=True)
    d = (blocks.amax(-1, keepdim=True) - m) / LEVELS
    q = torch.where(d > 0, torch.round((blocks - m) / torch.where(d > 0, d, 1.0)), 0.0).clamp(0, LEVELS)
    error = float((d * q + m - blocks).abs().max())
    return q.reshape(rows, cols).to(torch.int32), d.squeeze(-1), m.squeeze(-1), error


class Int4Linear(torch.nn.Module):
    """y = x Wᵀ (+ b) with W held as packed 4-bit values and a scale and zero per group of 32 inputs."""

    def __init__(self, linear: torch.nn.Linear, q: torch.Tensor, d: torch.Tensor, m: torch.Tensor,
                 activations: torch.dtype = torch.float32):
        super().__init__()
        self.activations = activations
        self.out_features, self.in_features = linear.weight.shape
        self.packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, 1)
        # the kernel's groups run along the input: (groups, out, 2) = (scale, zero) with w = (q − 8)·s + z
        self.scales_zeros = torch.stack([d.T, (m + 8 * d).T], dim=-1).contiguous().to(activations)
        self.bias = linear.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features).to(self.activations)
        y = torch.ops.aten._weight_int4pack_mm_for_cpu(flat, self.packed, GROUP, self.scales_zeros)
        y = y.to(x.dtype).reshape(*x.shape[:-1], self.out_features)
        return y if self.bias is None else y + self.bias


def convert(model: torch.nn.Module, max_error: float = 1e-5,
            activations: torch.dtype = torch.float32) -> tuple[torch.nn.Module, dict]:
    """A copy of `model` whose Q4_1 linear layers are Int4Linear, and what was converted (count, kept, error)."""
    model = copy.deepcopy(model)
    converted, kept, worst = 0, [], 0.0
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if not isinstance(child, torch.nn.Linear):
                continue
            parts = q41_parts(child.weight)
            full = f"{name}.{child_name}" if name else child_name
            if parts is None or parts[3] > max_error:
                kept.append(full)
                continue
            q, d, m, error = parts
            setattr(module, child_name, Int4Linear(child, q, d, m, activations))
            converted, worst = converted + 1, max(worst, error)
    return model, {"converted_linears": converted, "kept_float": kept, "max_readback_error": worst}


def weight_bytes(model: torch.nn.Module) -> int:
    """Bytes a step reads: parameters, packed 4-bit weights and their scales (tied weights once)."""
    seen, total = set(), 0
    for tensor in [*model.parameters(), *(t for m in model.modules() if isinstance(m, Int4Linear)
                                          for t in (m.packed, m.scales_zeros))]:
        if id(tensor) not in seen:
            seen.add(id(tensor))
            total += tensor.numel() * tensor.element_size()
    return total
