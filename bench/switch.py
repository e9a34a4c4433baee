"""1. Point switch: from a new (λ, ϕ_help, ϕ_harm) to weights ready.

(a) runtime adapter scaling: `AdapterMix.set_scales` on the reference + help/harm/joint LoRA adapters;
(b) fused merge: `MergedPolicy.set_point`, the weights rewritten in place (one addmm per matrix);
(c) the usual way: a mergekit `task_arithmetic` merge of the exported ref/help/harm models (the CLI
    `mergekit-yaml`, in its own venv), then loading the result with transformers. Where mergekit cannot be
    had, (c') a plain-transformers merge takes its place: load three models, θ_ref + Σ cᵢ(θᵢ − θ_ref), save
    safetensors, reload; it is labelled as such.
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from bench.common import BENCH, Check, Plan, interleaved, summary, sync
from bench.fixtures import base_model, sweep_points
from peo.adapter_mix import AdapterMix
from peo.aspects import DEFAULT_ASPECTS
from peo.assets import Assets
from peo.coefficients import scales
from peo.export import export_policy
from peo.model_source import load_causal_lm
from peo.names import REFERENCE
from peo.task_vector import MergedPolicy, lora_task_vectors

log = logging.getLogger("bench")
MERGEKIT_VENV = BENCH / ".venv-mergekit"


def mergekit_cli() -> Path:
    return MERGEKIT_VENV / "bin" / "mergekit-yaml"


def install_mergekit() -> str | None:
    """Create bench/.venv-mergekit with torch (the CPU wheel on disk) and mergekit; None or why it failed."""
    if mergekit_cli().is_file():
        return None
    log.info("installing mergekit into %s (benchmark-only dependency)", MERGEKIT_VENV)
    steps = [[sys.executable, "-m", "venv", str(MERGEKIT_VENV)],
             [str(MERGEKIT_VENV / "bin" / "pip"), "install", "-q", "torch==2.13.0"],
             [str(MERGEKIT_VENV / "bin" / "pip"), "install", "-q", "mergekit"]]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode != 0:
            return f"{' '.join(step[-2:])} failed: {(done.stderr or done.stdout).strip()[-800:]}"
    return None if mergekit_cli().is_file() else "mergekit installed but has no mergekit-yaml"


def mergekit_version() -> str | None:
    try:
        out = subprocess.run([str(MERGEKIT_VENV / "bin" / "python"), "-c",
                              "import importlib.metadata as m; print(m.version('mergekit'))"],
                             capture_output=True, text=True, timeout=60)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _cli_startup() -> float:
    start = time.perf_counter()
    subprocess.run([str(mergekit_cli()), "--help"], capture_output=True, text=True)
    return time.perf_counter() - start


def mergekit_config(ref: Path, help_dir: Path, harm_dir: Path, c_help: float, c_harm: float) -> str:
    return (
        "merge_method: task_arithmetic\n"
        f"base_model: {ref}\n"
        "models:\n"
        f"  - model: {help_dir}\n"
        f"    parameters: {{weight: {c_help!r}}}\n"
        f"  - model: {harm_dir}\n"
        f"    parameters: {{weight: {c_harm!r}}}\n"
        "parameters:\n"
        "  normalize: false\n"
        "dtype: float32\n"
    )


def run_mergekit(config_text: str, work: Path, out: Path) -> float:
    """Seconds the `mergekit-yaml` process took (start-up included: that is the usual way's cost)."""
    config = work / "merge.yml"
    config.write_text(config_text)
    env = dict(os.environ)
    start = time.perf_counter()
    done = subprocess.run([str(mergekit_cli()), str(config), str(out)], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"mergekit-yaml exited {done.returncode}: {(done.stderr or done.stdout).strip()[-1500:]}")
    return seconds


def transformers_merge(ref: Path, help_dir: Path, harm_dir: Path, c_help: float, c_harm: float, out: Path) -> None:
    """The fallback: three full models loaded, task arithmetic over their state dicts, saved as safetensors."""
    base = load_causal_lm(str(ref))
    models = {"help": load_causal_lm(str(help_dir)), "harm": load_causal_lm(str(harm_dir))}
    coeff = {"help": c_help, "harm": c_harm}
    states = {k: m.state_dict() for k, m in models.items()}
    with torch.no_grad():
        for name, value in base.state_dict().items():
            if not value.is_floating_point():
                continue
            merged = value.clone()
            for k, state in states.items():
                merged.add_(state[name] - value, alpha=coeff[k])
            value.copy_(merged)
    base.save_pretrained(out, safe_serialization=True)


def max_weight_diff(a: torch.nn.Module, b: torch.nn.Module) -> float:
    sa, sb = a.state_dict(), b.state_dict()
    diffs = [(sa[k].float().cpu() - sb[k].float().cpu()).abs().max().item() for k in sa if k in sb]
    return max(diffs) if diffs else float("nan")


def _cycling(move, points: list[tuple[float, float]]):
    """A call that moves `move` (set_scales or set_point) to the next of `points` (c_help, c_harm), round and round.

    It holds the bound method, not a name of `run`'s, so `run` can `del` its model once the timing is done.
    """
    cycle = itertools.cycle(points)
    return lambda: move(scales(next(cycle), DEFAULT_ASPECTS.names))


def run(assets: Assets, plan: Plan, scratch: Path) -> dict:
    base = base_model(assets)
    device = plan.device
    points = sweep_points(25)
    result: dict = {"notes": [], "points_cycled": len(points)}

    # (a) and (b), side by side
    mix = AdapterMix(load_causal_lm(base).to(device), {n: assets.adapter(n) for n in DEFAULT_ASPECTS.adapters})
    plain = load_causal_lm(base).to(device)
    merged = MergedPolicy(plain, lora_task_vectors({n: assets.adapter(n) for n in DEFAULT_ASPECTS.names}))
    times = interleaved({
        "adapter_scaling": _cycling(mix.set_scales, points),
        "fused_merge": _cycling(merged.set_point, points),
    }, reps=plan.switch_reps, warmup=plan.warmup, device=device)
    result["adapter_scaling"] = summary(times["adapter_scaling"])
    result["fused_merge"] = summary(times["fused_merge"])
    result["lora_layers"] = len(mix._layers)
    result["merged_matrices"] = len(merged._params)
    del mix

    # (c): the exported models, then merge + load per point
    exported = scratch / "exported"
    dirs = {}
    for policy in (REFERENCE, *DEFAULT_ASPECTS.names):
        dirs[policy] = exported / policy
        if not (dirs[policy] / "config.json").is_file():
            shutil.rmtree(dirs[policy], ignore_errors=True)
            export_policy(assets.root, dirs[policy], policy=policy, fmt="merged")

    mk_reason = None
    if not mergekit_cli().is_file():
        mk_reason = ("mergekit venv absent (bench/.venv-mergekit); --quick does not create it" if plan.quick
                     else install_mergekit())
        if mk_reason is None and not mergekit_cli().is_file():
            mk_reason = "mergekit-yaml not found after install"
    usual: dict[str, dict] = {}
    variants = []
    if mk_reason is None:
        variants.append("mergekit")
        result["mergekit_version"] = mergekit_version()
        if not plan.quick:  # what every CLI call pays before merging anything: interpreter, torch, mergekit
            result["mergekit_cli_startup_s"] = statistics.median(_cli_startup() for _ in range(3))
    else:
        result["notes"].append(f"(c) mergekit skipped: {mk_reason}")
    variants.append("transformers_fallback")

    reps = plan.mergekit_reps
    rows: dict[str, list[dict]] = {v: [] for v in variants}
    check_point = points[3 % len(points)]
    for i in range(plan.warmup + reps):
        c_help, c_harm = points[(i + 5) % len(points)] if i != plan.warmup else check_point
        for variant in list(variants):
            out = scratch / f"{variant}-out"
            shutil.rmtree(out, ignore_errors=True)
            work = Path(tempfile.mkdtemp(dir=scratch))
            try:
                sync(device)
                start = time.perf_counter()
                if variant == "mergekit":
                    merge_s = run_mergekit(mergekit_config(dirs["ref"], dirs["help"], dirs["harm"], c_help, c_harm),
                                           work, out)
                else:
                    t0 = time.perf_counter()
                    transformers_merge(dirs["ref"], dirs["help"], dirs["harm"], c_help, c_harm, out)
                    merge_s = time.perf_counter() - t0
                t1 = time.perf_counter()
                loaded = load_causal_lm(str(out)).to(device)
                sync(device)
                load_s = time.perf_counter() - t1
                total = time.perf_counter() - start
            except Exception as err:  # mergekit broke: say why, keep the fallback
                if variant != "mergekit":
                    raise
                result["notes"].append(f"(c) mergekit failed: {err}")
                variants.remove("mergekit")
                rows.pop("mergekit", None)
                continue
            finally:
                shutil.rmtree(work, ignore_errors=True)
            if i == plan.warmup:  # the same point formed in place: the merge must agree
                merged.set_point(scales((c_help, c_harm), DEFAULT_ASPECTS.names))
                result[f"{variant}_max_abs_diff_vs_fused"] = max_weight_diff(loaded, plain)
            del loaded
            if i >= plan.warmup:
                rows[variant].append({"total_s": total, "merge_s": merge_s, "load_s": load_s})
    for variant, reps_rows in rows.items():
        if reps_rows:
            usual[variant] = {**summary([r["total_s"] for r in reps_rows]),
                              "merge_median_s": statistics.median(r["merge_s"] for r in reps_rows),
                              "load_median_s": statistics.median(r["load_s"] for r in reps_rows)}
    result["usual_way"] = usual
    usual_label = "mergekit" if "mergekit" in usual else "transformers_fallback"
    result["usual_way_used"] = usual_label
    if usual_label != "mergekit":
        result["notes"].append("(c) figure is the plain-transformers fallback (load 3 models, task arithmetic, "
                               "save safetensors, reload), not mergekit")

    a = result["adapter_scaling"]["median_s"]
    b = result["fused_merge"]["median_s"]
    c = usual[usual_label]["median_s"]
    result["ratios"] = {"usual_over_adapter_scaling": c / a, "usual_over_fused_merge": c / b,
                        "fused_merge_over_adapter_scaling": b / a}
    result["checks"] = [
        Check("switch (a) adapter scaling", a * 1000, "<", 50, unit="ms"),
        Check(f"switch (c)/(a), (c)={usual_label}", c / a, ">=", 100),
    ]
    return result
