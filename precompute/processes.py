"""The processes of one precompute run: one (plain `python -m precompute`) or N under `accelerate launch`.

Under N processes (a torchrun-style launch: WORLD_SIZE > 1) DPO trains data-parallel through the Trainer's own
accelerate integration, the sweep's chunks are split across the processes, and rank 0 alone writes assets,
manifests and meta.json and runs the single-process stages while the others wait. A single process never
touches torch.distributed, so a plain run behaves exactly as before.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import TypeVar

import torch

T = TypeVar("T")
WORLD_SIZE_VARS = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")  # as accelerate reads
# Ranks wait at a barrier while rank 0 alone runs a stage (evaluators, the report, the held-out check): on a
# large profile that is far longer than torch.distributed's default 30 minutes.
BARRIER_TIMEOUT = timedelta(hours=12)


def launched_processes() -> int:
    """How many processes the launcher started (1 when not launched by accelerate/torchrun/mpirun)."""
    for name in WORLD_SIZE_VARS:
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return 1


class Processes:
    """Rank, count and the few collective steps the pipeline needs; a no-op for a single process."""

    def __init__(self, state=None):
        self.state = state  # accelerate.PartialState when distributed, else None

    @classmethod
    def start(cls) -> Processes:
        if launched_processes() <= 1:
            return cls()
        from accelerate import PartialState

        # cpu=True where there is no GPU: accelerate then uses gloo (MULTI_CPU); without it a CPU launch falls
        # back to N independent single processes that would each redo the whole run.
        return cls(PartialState(cpu=not torch.cuda.is_available(), timeout=BARRIER_TIMEOUT))

    @property
    def count(self) -> int:
        return self.state.num_processes if self.state else 1

    @property
    def index(self) -> int:
        return self.state.process_index if self.state else 0

    @property
    def is_main(self) -> bool:
        return self.index == 0

    def device(self, default: str) -> str:
        """This process's device: its own GPU under a multi-GPU launch, else `default`."""
        if self.state is None or self.state.device.type == "cpu":
            return default
        return str(self.state.device)

    def wait(self) -> None:
        if self.state is not None:
            self.state.wait_for_everyone()

    def from_main(self, compute: Callable[[], T]) -> T:
        """`compute()` on rank 0, its value sent to every rank: decisions (skip a stage, reuse a policy) that all
        ranks must take alike, or some would wait forever at a barrier the others never reach."""
        if self.state is None:
            return compute()
        from accelerate.utils import broadcast_object_list

        box = [compute() if self.is_main else None]
        return broadcast_object_list(box)[0]

    def share(self, items: Sequence[T]) -> list[T]:
        """This process's contiguous share of `items` (accelerate's split_between_processes)."""
        if self.state is None:
            return list(items)
        with self.state.split_between_processes(list(items)) as mine:
            return list(mine)
