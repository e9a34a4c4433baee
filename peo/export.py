"""Export one policy of the family as a folder other tools load: merged HF weights or a PEFT adapter.

A point (λ, ϕ_help, ϕ_harm) exported as an adapter is the exact `cat` combination of the two aspect adapters
(rank r_help + r_harm, scaling 1), so `PeftModel.from_pretrained(base, DIR)` gives the same model as the
merged folder. Everything is written into a temp folder next to `out_dir` and renamed into place.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from peo.adapter_files import ADAPTER_CONFIG, ADAPTER_WEIGHTS, AdapterError, check_adapter_folder
from peo.assets import AssetsError, load_assets
from peo.atomic import write_json
from peo.coefficients import coefficients
from peo.errors import PeoError
from peo.model_source import ModelSourceError, load_causal_lm, load_tokenizer, resolve_base_model
from peo.names import ASPECTS, BASELINE_SCALES, BASELINES, REFERENCE
from peo.task_vector import MergedPolicy, lora_task_vectors

POLICIES = BASELINES  # the fixed policies: ref, help, harm, joint
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


def _finish(tmp: Path, out_dir: Path) -> Path:
    if out_dir.exists():
        out_dir.rmdir()  # empty, checked above
    tmp.rename(out_dir)
    return out_dir


def export_policy(assets_root: str | Path | None, out_dir: str | Path, *, policy: str | None = None,
                  point: tuple[float, float, float] | None = None, fmt: str = "merged") -> Path:
    """Write `policy` (ref|help|harm|joint) or the PEO `point` (λ, ϕ_help, ϕ_harm) to `out_dir`."""
    if (policy is None) == (point is None):
        raise ExportError("give exactly one of policy or point")
    if policy is not None and policy not in POLICIES:
        raise ExportError(f"policy must be one of {', '.join(POLICIES)}, got {policy!r}")
    if fmt not in FORMATS:
        raise ExportError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if policy == REFERENCE and fmt == "adapter":
        raise ExportError("the reference policy has no adapter; export it with --format merged")
    if point is not None and not 0.0 <= point[0] <= 1.0:
        raise ExportError(f"lambda_help must be in [0, 1], got {point[0]}")
    # The folder as the OS resolves it: `new/../x` must not create `new` on the way.
    out_dir = Path(out_dir).expanduser().resolve()
    needed = list(BASELINE_SCALES[policy]) if policy is not None else list(ASPECTS)  # the adapters it reads
    try:  # refuse (with a message) before anything is written: missing parts, pickle weights, remote code
        assets = load_assets(assets_root)
        for name in needed:
            check_adapter_folder(assets.adapter(name))
        base = resolve_base_model(assets.base_model_spec)
    except (AssetsError, AdapterError, ModelSourceError) as err:
        raise ExportError(str(err)) from None
    tmp = _prepare_target(out_dir)
    try:
        provenance: dict = {"base_model": assets.base_model_spec, "format": fmt,
                            "assets_profile": assets.meta.get("profile")}
        if policy is not None:
            provenance["policy"] = policy
            if fmt == "adapter":
                for name in ADAPTER_FILES:
                    shutil.copy2(assets.adapter(policy) / name, tmp / name)
            else:
                _write_merged(base, dict(BASELINE_SCALES[policy]), assets, tmp)
        else:
            c_help, c_harm = coefficients(*point)
            provenance.update({"lambda_help": point[0], "phi_help": point[1], "phi_harm": point[2],
                               "c_help": c_help, "c_harm": c_harm})
            if fmt == "adapter":
                _write_cat_adapter(base, assets, c_help, c_harm, tmp)
            else:
                _write_merged(base, {"help": c_help, "harm": c_harm}, assets, tmp)
        write_json(tmp / "peo_export.json", provenance)
        return _finish(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _write_merged(base: str, coefficients_by_adapter: dict[str, float], assets, folder: Path) -> None:
    model = load_causal_lm(base)
    if coefficients_by_adapter:
        adapters = {name: assets.adapter(name) for name in coefficients_by_adapter}
        MergedPolicy(model, lora_task_vectors(adapters)).set_point(coefficients_by_adapter)
    model.save_pretrained(folder, safe_serialization=True)
    load_tokenizer(base).save_pretrained(folder)


def _write_cat_adapter(base: str, assets, c_help: float, c_harm: float, folder: Path) -> None:
    from peft import PeftModel

    model = PeftModel.from_pretrained(load_causal_lm(base), str(assets.adapter("help")), adapter_name="help")
    model.load_adapter(str(assets.adapter("harm")), adapter_name="harm")
    model.add_weighted_adapter(["help", "harm"], [c_help, c_harm], adapter_name="point", combination_type="cat")
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        model.save_pretrained(scratch, selected_adapters=["point"])
        saved = Path(scratch) / "point"
        for name in ADAPTER_FILES:
            shutil.copy2(saved / name, folder / name)
    config_path = folder / ADAPTER_CONFIG
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = assets.base_model_spec
    config_path.write_text(json.dumps(config, indent=2))
