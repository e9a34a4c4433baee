"""The unmerged form: the reference model with every aspect's LoRA adapter loaded side by side.

The output of each adapted layer is W_ref·x + Σ_a c_a·s_a·B_a·A_a·x, so a PEO point is nothing but a set of
adapter scales: switching points copies no weights. A scale may also be a tensor of shape (batch, 1, 1),
one value per row, so one batch can hold many PEO points, the baselines and the joint policy at once.

By default the active adapters of a layer run as one fused low-rank product (`FusedLora`): their A's stacked
on the rank dimension, their B's side by side, the scales applied to the rank activations. peft's own forward
runs each adapter as its own chain of module calls (dropout, A, B, scale, add on the full output width); on a
CPU that per-call overhead, not arithmetic, is most of what the adapters cost (bench sections 2 and 3 and
`python -m bench.profile` compare both).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import torch
from peft import PeftModel
from peft.tuners.lora import Linear as LoraLinear
from peft.tuners.lora import LoraLayer

from peo.adapter_files import check_adapter_folder, lora_scaling

Scale = float | torch.Tensor


class FusedLora:
    """One adapted Linear: W·x + Σ_a c_a·s_a·B_a·A_a·x computed as W·x + (scale ⊙ A_cat·x)·B_catᵀ.

    It takes the place of peft's forward on that layer (an instance attribute, as accelerate's hooks do), so a
    step pays one call per layer instead of peft's chain of calls per adapter; peft's `disable_adapter()` still
    turns it off.
    """

    def __init__(self, layer: LoraLinear, names: list[str]):
        for name in names:
            if name in getattr(layer, "lora_variant", {}):
                raise ValueError(f"adapter {name!r}: only plain LoRA can be fused (this one is "
                                 f"{type(layer.lora_variant[name]).__name__}); use AdapterMix(..., fused=False)")
        self.layer = layer
        # each adapter's LoRA scaling (alpha / r, or / √r): its contribution at scale 1, as in the merged form
        self.unit = {name: lora_scaling({"r": layer.r[name], "lora_alpha": layer.lora_alpha[name],
                                         "use_rslora": layer.use_rslora.get(name, False)}) for name in names}
        self.rank = {name: int(layer.r[name]) for name in names}
        self.active: list[str] = []  # the adapters of this layer that take part, in AdapterMix's order
        self.signature: tuple = ()  # (rank, unit) per active adapter: layers alike share one scale tensor
        self.A: torch.Tensor | None = None  # (Σr, in) of the active adapters
        self.Bt: torch.Tensor | None = None  # (Σr, out)
        self.scale: torch.Tensor | None = None  # (Σr,) or (batch, 1, Σr)
        # peft's own forward no longer runs; its active set stays empty so that leaving `disable_adapter()`
        # (which re-activates peft's active adapters as trainable) leaves every adapter frozen
        layer.set_adapter([], inference_mode=True)
        layer.forward = self.forward

    def activate(self, active: list[str]) -> None:
        self.active = [name for name in active if name in self.unit]
        self.signature = tuple((self.rank[name], self.unit[name]) for name in self.active)
        if not self.active:
            self.A = self.Bt = None
            return
        self.A = torch.cat([self.layer.lora_A[name].weight for name in self.active], dim=0)
        self.Bt = torch.cat([self.layer.lora_B[name].weight for name in self.active], dim=1).t().contiguous()

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        result = self.layer.base_layer(x, *args, **kwargs)
        if self.A is None or self.layer.disable_adapters:
            return result
        h = torch.nn.functional.linear(x.to(self.A.dtype), self.A) * self.scale
        if result.dtype != h.dtype:  # a bf16 model with float32 adapters (peft's default): add in float32, as peft
            return (result + h @ self.Bt).to(result.dtype)
        flat = torch.addmm(result.reshape(-1, result.shape[-1]), h.reshape(-1, h.shape[-1]), self.Bt)
        return flat.view(result.shape)


def rank_scale(signature: tuple, active: list[str], scales: Mapping[str, Scale]) -> torch.Tensor:
    """The scale of every rank dimension: c_a·s_a repeated r_a times; per row when c_a is a (batch, 1, 1) tensor."""
    parts = []
    for (rank, unit), name in zip(signature, active):
        c = scales[name]
        if isinstance(c, torch.Tensor) and c.dim() > 0:
            parts.append((c.reshape(-1, 1, 1) * unit).expand(-1, 1, rank))
        else:
            parts.append(torch.full((rank,), float(c) * unit))
    rows = max((p.shape[0] for p in parts if p.dim() == 3), default=None)
    if rows is None:
        return torch.cat(parts)
    return torch.cat([p if p.dim() == 3 else p.expand(rows, 1, -1) for p in parts], dim=-1)


class AdapterMix:
    """A PeftModel with named adapters; what each one contributes is set by `set_scales`.

    fused=False keeps peft's own forward (each adapter its own chain of calls): the reference the fused form is
    tested against, and the baseline the benchmarks compare it with.
    """

    def __init__(self, base_model: torch.nn.Module, adapters: Mapping[str, str | Path], fused: bool = True):
        if not adapters:
            raise ValueError("AdapterMix needs at least one adapter folder")
        names = list(adapters)
        for name in names:
            check_adapter_folder(Path(adapters[name]))
        model = PeftModel.from_pretrained(base_model, str(adapters[names[0]]), adapter_name=names[0])
        for name in names[1:]:
            model.load_adapter(str(adapters[name]), adapter_name=name)
        model.eval()
        self.model = model
        self.names = names
        self.fused = fused
        self._layers = [m for m in model.modules() if isinstance(m, LoraLayer)]
        if fused:
            odd = [type(m).__name__ for m in self._layers if not isinstance(m, LoraLinear)]
            if odd:
                raise ValueError(f"fused adapters need LoRA on Linear layers only; found {sorted(set(odd))}: "
                                 "use AdapterMix(..., fused=False)")
            self._fused = [FusedLora(layer, [n for n in names if n in layer.lora_A]) for layer in self._layers]
        self._active: list[str] | None = None
        self.set_scales({})

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def set_scales(self, scales: Mapping[str, Scale]) -> None:
        """Scale of each adapter (0 for the ones not named); a float, or a (batch, 1, 1) tensor per row."""
        unknown = set(scales) - set(self.names)
        if unknown:
            raise KeyError(f"unknown adapters {sorted(unknown)}; loaded: {self.names}")
        # An adapter at scale 0 in every row adds exactly nothing: take it out of the forward pass (a sweep row
        # or a chat column that does not use the joint adapter then pays nothing for it).
        active = [name for name in self.names if _nonzero(scales.get(name, 0.0))]
        if self.fused:
            self._set_fused(active, scales)
        else:
            self._set_peft(active, scales)

    def _set_peft(self, active: list[str], scales: Mapping[str, Scale]) -> None:
        if active != self._active:
            for layer in self._layers:
                layer.set_adapter(active, inference_mode=True)
            self._active = active
        for layer in self._layers:
            for name in active:
                layer.set_scale(name, scales[name])

    def _set_fused(self, active: list[str], scales: Mapping[str, Scale]) -> None:
        if active != self._active:
            for fused in self._fused:
                fused.activate(active)
            self._active = active
        shared: dict[tuple, torch.Tensor] = {}
        for fused in self._fused:
            if fused.A is None:
                continue
            if fused.signature not in shared:
                shared[fused.signature] = rank_scale(fused.signature, fused.active, scales).to(
                    device=fused.A.device, dtype=fused.A.dtype)
            fused.scale = shared[fused.signature]

    @property
    def active(self) -> list[str]:
        """The adapters that take part in the forward pass (a non-zero scale in some row)."""
        return list(self._active or [])

    def set_row_scales(self, rows: list[Mapping[str, float]]) -> None:
        """One scale mapping per batch row."""
        dtype = next(self.model.parameters()).dtype
        per_adapter = {
            name: torch.tensor([row.get(name, 0.0) for row in rows], dtype=dtype, device=self.device).view(-1, 1, 1)
            for name in self.names
        }
        self.set_scales(per_adapter)

    @contextmanager
    def row_scales(self, rows: list[Mapping[str, float]]) -> Iterator[None]:
        self.set_row_scales(rows)
        try:
            yield
        finally:
            self.set_scales({})


def _nonzero(scale: Scale) -> bool:
    if isinstance(scale, torch.Tensor):
        return bool(scale.ne(0).any())
    return scale != 0


