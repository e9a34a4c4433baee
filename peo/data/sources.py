"""One entry point from a config's data spec (a small dict) to loaded pairs, whatever the format.

Specs are checked strictly (unknown keys and values are ValueErrors naming what is allowed),
because a typo in a config key would otherwise silently fall back to a default.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from peo.data.alpaca_eval import alpaca_files, load_alpaca_eval
from peo.data.errors import DataError, DataSpecError
from peo.data.hh_rlhf import load_hh_rlhf
from peo.data.jsonl import first_record
from peo.data.loading import ASPECT_NAME_RULE, LoadResult, is_aspect_name
from peo.data.pairs_jsonl import load_pairs_hub, load_pairs_jsonl
from peo.data.pku_saferlhf import ASPECTS as PKU_ASPECTS
from peo.data.pku_saferlhf import load_pku_saferlhf, load_pku_saferlhf_hub


@dataclass(frozen=True)
class Loader:
    """How one data format is read: everything that differs between formats, so no caller branches on one."""

    read_file: Callable[..., LoadResult]  # (path, *, aspect, skip_bad, **options) -> LoadResult
    read_hub: Callable[..., LoadResult] | None = None  # (dataset name, split, *, aspect, skip_bad); None: files only
    default_aspect: str | None = None  # the aspect a spec gets when it names none; None: the spec must name one
    options: tuple[str, ...] = ()  # spec keys only this format takes, passed on to `read_file` when given
    aspects: tuple[str, ...] | None = None  # the aspects its labels can give (PKU: help, harm); None: any aspect


# The one table of data formats: load_source, validate_file, the config check and the CLI's --format read it.
LOADERS: dict[str, Loader] = {
    "hh": Loader(load_hh_rlhf, default_aspect="harm"),
    "alpaca_eval": Loader(load_alpaca_eval, default_aspect="help",
                          options=("derive_cross_model_pairs", "max_derived_per_prompt")),
    "pku": Loader(load_pku_saferlhf, read_hub=load_pku_saferlhf_hub, aspects=PKU_ASPECTS),
    "pairs": Loader(load_pairs_jsonl, read_hub=load_pairs_hub),
}
FORMATS: tuple[str, ...] = tuple(LOADERS)
DEFAULT_ASPECT: dict[str, str] = {fmt: ld.default_aspect for fmt, ld in LOADERS.items() if ld.default_aspect}
HUB_FORMATS: tuple[str, ...] = tuple(fmt for fmt, ld in LOADERS.items() if ld.read_hub is not None)
FORMAT_OPTIONS: tuple[str, ...] = tuple(dict.fromkeys(key for ld in LOADERS.values() for key in ld.options))
SPEC_KEYS: tuple[str, ...] = ("format", "path", "aspect", "hub", "split", *FORMAT_OPTIONS, "limit")


def _allowed(name: str, value: Any, allowed: tuple[str, ...]) -> DataSpecError:
    return DataSpecError(f"data spec {name!r}: got {value!r}; allowed: {', '.join(allowed)}")


def check_spec(spec: dict[str, Any]) -> None:
    """ValueError naming the offending key (and what is allowed) for a malformed spec."""
    if not isinstance(spec, dict):
        raise DataSpecError(f"data spec must be a mapping with keys {', '.join(SPEC_KEYS)}; got {type(spec).__name__}")
    for key in spec:
        if key not in SPEC_KEYS:
            raise _allowed("key", key, SPEC_KEYS)
    fmt = spec.get("format")
    if fmt not in FORMATS:
        raise _allowed("format", fmt, FORMATS)
    labels = LOADERS[fmt].aspects
    if "aspect" in spec:
        if not is_aspect_name(spec["aspect"]):
            raise DataSpecError(f"data spec 'aspect': got {spec['aspect']!r}; allowed: {ASPECT_NAME_RULE}")
        if labels is not None and spec["aspect"] not in labels:
            raise DataSpecError(f"data spec 'aspect': format {fmt!r} labels only {', '.join(labels)}; "
                                f"got {spec['aspect']!r}")
    if "aspect" not in spec and fmt not in DEFAULT_ASPECT:
        allowed = ", ".join(labels) if labels is not None else ASPECT_NAME_RULE
        raise DataSpecError(f"data spec 'aspect' is required for format {fmt!r}; allowed: {allowed}")
    has_path, has_hub = spec.get("path") is not None, spec.get("hub") is not None
    if has_path == has_hub:
        raise DataSpecError("data spec needs exactly one of 'path' or 'hub'")
    if has_path and not isinstance(spec["path"], (str, Path)):
        raise DataSpecError(f"data spec 'path': expected a string, got {type(spec['path']).__name__}")
    if has_hub and (fmt not in HUB_FORMATS or not isinstance(spec["hub"], str)):
        raise DataSpecError(f"data spec 'hub': a dataset name, supported for formats {', '.join(HUB_FORMATS)}; "
                         f"got {spec['hub']!r} for format {fmt!r}")
    if "split" in spec and (not has_hub or not isinstance(spec["split"], str)):
        raise DataSpecError("data spec 'split': a string, only together with 'hub'")
    for key in FORMAT_OPTIONS:
        if key in spec and key not in LOADERS[fmt].options:
            takers = " or ".join(repr(name) for name, ld in LOADERS.items() if key in ld.options)
            raise DataSpecError(f"data spec {key!r} applies only to format {takers}; got format {fmt!r}")
    if "derive_cross_model_pairs" in spec and not isinstance(spec["derive_cross_model_pairs"], bool):
        raise _allowed("derive_cross_model_pairs", spec["derive_cross_model_pairs"], ("true", "false"))
    for key in ("limit", "max_derived_per_prompt"):
        if key in spec and (isinstance(spec[key], bool) or not isinstance(spec[key], int) or spec[key] < 0):
            raise DataSpecError(f"data spec {key!r}: expected a non-negative integer, got {spec[key]!r}")


def load_source(spec: dict[str, Any], *, base_dir: Path | None = None, skip_bad: bool = False) -> LoadResult:
    """Load the pairs a data spec names; relative paths are resolved against `base_dir`.

    spec = {"format": "hh"|"alpaca_eval"|"pku"|"pairs", "path": "...", "aspect": an aspect's name (pku: help|harm),
    optional "hub", "split", "derive_cross_model_pairs", "max_derived_per_prompt", "limit"}.
    `limit` keeps the first N pairs (in file order); the rest are counted as "over limit".
    """
    check_spec(spec)
    loader = LOADERS[spec["format"]]
    aspect = spec.get("aspect", loader.default_aspect)
    if spec.get("hub") is not None:  # check_spec allows a hub only where the loader has `read_hub`
        result = loader.read_hub(spec["hub"], spec.get("split", "train"), aspect=aspect, skip_bad=skip_bad)
    else:
        path = Path(spec["path"]).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = Path(base_dir) / path
        options = {key: spec[key] for key in loader.options if key in spec}  # absent: the loader's defaults
        result = loader.read_file(path, aspect=aspect, skip_bad=skip_bad, **options)
    limit = spec.get("limit")
    if limit is not None and len(result.pairs) > limit:
        result.summary.drop("over limit", len(result.pairs) - limit)
        result.pairs = result.pairs[:limit]
        result.summary.kept = len(result.pairs)
        result.summary.derived = sum(p.source.endswith(":derived") for p in result.pairs)
        result.summary.prompts = len({p.prompt_id for p in result.pairs})
    return result


def detect_format(path: str | Path) -> str:
    """Guess a file's format from its first record's keys (a folder: from its first *.jsonl(.gz) file)."""
    p = Path(path)
    if p.is_dir():
        p = alpaca_files(p)[0]
    line_no, obj = first_record(p)
    keys = set(obj)
    if {"instruction", "output_1", "output_2"} <= keys:
        return "alpaca_eval"
    if {"response_0", "response_1"} <= keys:
        return "pku"
    if {"chosen", "rejected"} <= keys:
        if "prompt" in keys:
            return "pairs"
        if isinstance(obj["chosen"], str) and obj["chosen"].lstrip().startswith("Human:"):
            return "hh"
    shown = ", ".join(sorted(keys)[:8]) or "none"
    raise DataError(p, line_no, expected="the keys of a known format (hh: chosen/rejected transcripts; alpaca_eval: "
                    "instruction/output_1/output_2/preference; pku: prompt/response_0/response_1; "
                    "pairs: prompt/chosen/rejected)", got=f"keys {shown}")
