"""The model's linear layers on MKL's packed-weight GEMM: a candidate for issue 22's decode step (bench section 10).

At a decode step's few rows, 80 % of a step is `aten::mm` (bench/profiles), and MKL's plain sgemm reads the
weights well below the copy bandwidth. MKL can re-lay a weight matrix once for a given number of rows
(`cblas_sgemm_pack`, exposed by torch as `mkl._mkl_reorder_linear_weight` / `mkl._mkl_linear`, what inductor's
CPU freezing uses for fp32 linears); the products then read it in the kernel's own order. The sums run in
another order, so results differ from the plain product in the last bits (reported beside the timing).
"""

from __future__ import annotations

import copy

import torch


class PackedLinear(torch.nn.Module):
    """y = x Wᵀ (+ b) with W packed for MKL's GEMM at `rows` rows (other row counts use the same packing)."""

    def __init__(self, linear: torch.nn.Linear, rows: int):
        super().__init__()
        self.weight = linear.weight  # the kernel takes the original too (its fallback)
        self.packed = torch.ops.mkl._mkl_reorder_linear_weight(linear.weight.detach(), rows)
        self.bias = linear.bias
        self.out_features, self.in_features = linear.weight.shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features)
        y = torch.ops.mkl._mkl_linear(flat, self.packed, self.weight, self.bias, flat.shape[0])
        return y.reshape(*x.shape[:-1], self.out_features)


def convert(model: torch.nn.Module, rows: int) -> tuple[torch.nn.Module, dict]:
    """A copy of `model` whose float32 linear layers (the LM head too) are PackedLinear, and the packed bytes."""
    model = copy.deepcopy(model)
    packed_bytes = layers = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is torch.nn.Linear and child.weight.dtype == torch.float32:
                layer = PackedLinear(child, rows)
                setattr(parent, name, layer)
                packed_bytes += layer.packed.numel() * layer.packed.element_size()
                layers += 1
    return model, {"layers": layers, "packed_bytes": packed_bytes}
