"""4. Memory: peak RSS of a fresh process serving 5 columns against the base model alone generating 1 row.

Each variant runs in its own subprocess (`python -m bench.memory --worker MODE ...`) and reports its peak
resident set (VmHWM of /proc/self/status; `ru_maxrss` alongside) and psutil's RSS after loading:
- serve5: what the app loads on the CPU (app/engine.py, adapters form): peo.assets.load_policy_mix (reference +
  help/harm/joint adapters) and peo.scoring.Evaluators.on_policy (the evaluators read the policy's own weights
  with its adapters disabled, which is exactly the reference), one 5-row streamed generation (PEO point, ref,
  help, harm, soup) and the scoring of the 5 answers;
- serve5_own_evaluator_copy: the same with Evaluators.load, i.e. a second copy of the reference for the
  evaluators (what the app does in the merged form, on a GPU, where the policy's weights are not the reference);
- base1: the plain reference model generating 1 row;
- imports: torch, transformers, peft and peo imported, nothing loaded (the floor every process pays).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys

from bench.common import REPO, Check, Plan

MODES = ("imports", "base1", "serve5", "serve5_own_evaluator_copy")


def _peak_bytes() -> int:
    """This process's peak resident set: VmHWM of /proc/self/status (reset at exec). ru_maxrss is not used for
    the figure because Linux carries the forking parent's high-water mark into it across exec."""
    try:
        for line in open("/proc/self/status", encoding="ascii"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: kilobytes


def _rss_bytes() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def worker(mode: str, assets_dir: str, device: str, tokens: int) -> dict:
    import peft  # noqa: F401
    import torch  # noqa: F401
    import transformers  # noqa: F401

    from bench.chat import POINT, column_scales
    from bench.fixtures import PlainModel, dev_prompts, fixed
    from peo.assets import load_assets, load_policy_mix
    from peo.coefficients import coefficients
    from peo.generation import Row, generate_batch, stream_batch
    from peo.model_source import load_causal_lm, load_tokenizer, resolve_base_model
    from peo.scoring import Evaluators

    assets = load_assets(assets_dir)
    prompt = dev_prompts(assets, 1)[0]
    settings = fixed(tokens)
    out: dict = {"mode": mode}
    if mode == "imports":
        pass
    elif mode == "base1":
        base = resolve_base_model(assets.base_model_spec)
        model = PlainModel(load_causal_lm(base).to(device))
        tokenizer = load_tokenizer(base)
        out["rss_after_load"] = _rss_bytes()
        generate_batch(model, tokenizer, [Row(prompt, {})], settings)
    else:
        base = resolve_base_model(assets.base_model_spec)
        mix, tokenizer = load_policy_mix(assets, device)
        if mode == "serve5":
            evaluators = Evaluators.on_policy(mix.model, tokenizer, assets.root, assets.run_meta.aspect_set)
        else:
            evaluators = Evaluators.load(base, assets.root, assets.run_meta.aspect_set, device=device)
        out["rss_after_load"] = _rss_bytes()
        rows = [Row(prompt, s) for s in column_scales(POINT[0], *coefficients(POINT[:1], POINT[1:])).values()]
        *_, result = stream_batch(mix, tokenizer, rows, settings)
        evaluators.score([prompt] * len(result.answers), result.answers)
    out["rss_end"] = _rss_bytes()
    out["peak_rss"] = _peak_bytes()
    out["ru_maxrss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return out


def measure(mode: str, assets_dir: str, device: str, tokens: int) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    done = subprocess.run([sys.executable, "-m", "bench.memory", "--worker", mode, "--assets", assets_dir,
                           "--device", device, "--tokens", str(tokens)],
                          capture_output=True, text=True, cwd=REPO, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"memory worker {mode} exited {done.returncode}: {done.stderr.strip()[-1500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(assets, plan: Plan) -> dict:
    result: dict = {"new_tokens": plan.memory_tokens, "unit": "MiB"}
    for mode in MODES:  # one fresh process each; peaks are deterministic enough that one run is the figure
        raw = measure(mode, str(assets.root), plan.device, plan.memory_tokens)
        result[mode] = {k: round(v / 2**20, 1) if isinstance(v, int) else v for k, v in raw.items()}
    peak = {m: result[m]["peak_rss"] for m in MODES}
    result["ratios"] = {"serve5_over_base1": peak["serve5"] / peak["base1"],
                        "serve5_own_evaluator_copy_over_base1": peak["serve5_own_evaluator_copy"] / peak["base1"]}
    result["above_imports_MiB"] = {m: round(peak[m] - peak["imports"], 1) for m in MODES if m != "imports"}
    if plan.device.startswith("cuda"):
        result["note"] = "host RSS only; GPU memory is not in these figures"
    result["checks"] = [
        Check("memory serve 5 columns / base 1 row (peak RSS)", result["ratios"]["serve5_over_base1"], "<=", 1.5),
    ]
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", choices=MODES, required=True)
    parser.add_argument("--assets", required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tokens", type=int, default=32)
    args = parser.parse_args()
    print(json.dumps(worker(args.worker, args.assets, args.device, args.tokens)))


if __name__ == "__main__":
    main()
