"""The unmerged form: the reference model with every aspect's LoRA adapter loaded side by side.

The output of each adapted layer is W_ref·x + Σ_a c_a·s_a·B_a·A_a·x, so a PEO point is nothing but a set of
adapter scales: switching points copies no weights. A scale may also be a tensor of shape (batch, 1, 1),
one value per row, so one batch can hold many PEO points, the baselines and the joint policy at once.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import torch
from peft import PeftModel
from peft.tuners.lora import LoraLayer

from peo.adapter_files import check_adapter_folder

Scale = float | torch.Tensor


class AdapterMix:
    """A PeftModel with named adapters all active; what each one contributes is set by `set_scales`."""

    def __init__(self, base_model: torch.nn.Module, adapters: Mapping[str, str | Path]):
        if not adapters:
            raise ValueError("AdapterMix needs at least one adapter folder")
        names = list(adapters)
        for name in names:
            check_adapter_folder(Path(adapters[name]))
        model = PeftModel.from_pretrained(base_model, str(adapters[names[0]]), adapter_name=names[0])
        for name in names[1:]:
            model.load_adapter(str(adapters[name]), adapter_name=name)
        model.base_model.set_adapter(names)  # all active at once; scales decide the mix
        model.eval()
        self.model = model
        self.names = names
        self._layers = [m for m in model.modules() if isinstance(m, LoraLayer)]
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
        if active != self._active:
            for layer in self._layers:
                layer.set_adapter(active, inference_mode=True)
            self._active = active
        for layer in self._layers:
            for name in active:
                layer.set_scale(name, scales[name])

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


def point_scales(c_help: float, c_harm: float) -> dict[str, float]:
    return {"help": c_help, "harm": c_harm}
