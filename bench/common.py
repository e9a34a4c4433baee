"""What every benchmark shares: timing (interleaved repetitions, medians), checks against targets, machine facts."""

from __future__ import annotations

import gc
import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"


@dataclass
class Plan:
    """How hard to measure: repetitions after warm-up, and the sizes of each benchmark."""

    quick: bool
    reps: int
    warmup: int
    device: str = "cpu"
    # 1. point switch
    switch_reps: int = 20  # set_scales / set_point are cheap: more repetitions for a stable median
    mergekit_reps: int = 5
    # 2. sweep
    sweep_points: int = 25  # G
    sweep_prompts: int = 8  # P
    sweep_tokens: int = 16  # fixed new tokens per row
    sweep_batch: int = 50  # rows per batched generate (multi-point and base limit)
    # 3. chat
    chat_tokens: int = 48
    # 4. memory
    memory_tokens: int = 32
    # 5. training
    dpo_pairs: int = 4  # pairs per DPO step (cpu profile: batch_size 4)
    dpo_length: int = 256  # tokens per sequence (cpu profile: max_prompt 128 + max_response 128)
    score_answers: int = 32
    score_batch: int = 16
    # 7. hardware
    hardware_max_batch: int = 50  # batch sizes 1, 2, 5, 8, 16, 50 up to this
    # 8. load: concurrent gradio_client sessions on the app, then a soak
    load_sessions: int = 8
    load_turns: int = 3
    load_tokens: int = 48
    load_concurrency: int = 16  # the app's --concurrency (its default)
    soak_sessions: int = 2
    soak_seconds: int = 600
    soak_sample_s: int = 30

    @classmethod
    def full(cls, device: str = "cpu") -> "Plan":
        return cls(quick=False, reps=5, warmup=1, device=device)

    @classmethod
    def smoke(cls, device: str = "cpu") -> "Plan":
        return cls(quick=True, reps=3, warmup=1, device=device, switch_reps=5, mergekit_reps=2, sweep_points=6,
                   sweep_prompts=3, sweep_tokens=4, sweep_batch=9, chat_tokens=8, memory_tokens=8, dpo_pairs=2,
                   dpo_length=48, score_answers=8, score_batch=8, hardware_max_batch=5, load_sessions=3,
                   load_turns=2, load_tokens=8, soak_seconds=10, soak_sample_s=2)

    def as_dict(self) -> dict:
        return asdict(self)


def sync(device: str | torch.device | None = None) -> None:
    if torch.cuda.is_available() and (device is None or str(device).startswith("cuda")):
        torch.cuda.synchronize()


def clock(fn: Callable[[], object], device: str | None = None) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def interleaved(variants: Mapping[str, Callable[[], object]], reps: int, warmup: int,
                device: str | None = None) -> dict[str, list[float]]:
    """Seconds of each repetition of each variant, run round-robin (A B C A B C ...) after `warmup` rounds,
    so drift of the machine (another job, thermal state) hits every variant alike."""
    for _ in range(warmup):
        for fn in variants.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(reps):
        for name, fn in variants.items():
            gc.collect()
            times[name].append(clock(fn, device))
    return times


def summary(seconds: list[float]) -> dict:
    return {"median_s": statistics.median(seconds), "min_s": min(seconds), "max_s": max(seconds),
            "reps": len(seconds), "all_s": [round(s, 6) for s in seconds]}


@dataclass
class Check:
    """One figure against its target: `value` (a ratio or seconds) `op` `threshold`."""

    name: str
    value: float | None
    op: str  # "<=" | ">=" | "<"
    threshold: float
    unit: str = "x"
    note: str = ""
    status: str = field(default="")

    def judge(self, quick: bool) -> "Check":
        if self.value is None:
            self.status = "n/a"
        elif quick:
            self.status = "smoke"  # tiny model: the numbers say nothing about the targets
        else:
            ok = {"<=": self.value <= self.threshold, ">=": self.value >= self.threshold,
                  "<": self.value < self.threshold}[self.op]
            self.status = "PASS" if ok else "MISS"
        return self

    @property
    def target(self) -> str:
        return f"{self.op} {self.threshold:g}{' ' + self.unit if self.unit != 'x' else 'x'}"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: str) -> dict:
    import peft
    import transformers

    info = {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "memory_gb": None,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": device,
        "cuda_available": torch.cuda.is_available(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    try:
        import psutil

        info["memory_gb"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    return info


def stop_process(process: subprocess.Popen, timeout: float = 30) -> None:
    """End a server the bench started: SIGTERM, then SIGKILL if it has not exited within `timeout` seconds."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)
