"""One entry point from a config's data spec (a small dict) to loaded pairs, whatever the format.

Specs are checked strictly (unknown keys and values are ValueErrors naming what is allowed),
because a typo in a config key would otherwise silently fall back to a default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from peo.data.alpaca_eval import alpaca_files, load_alpaca_eval
from peo.data.errors import DataError
from peo.data.hh_rlhf import load_hh_rlhf
from peo.data.jsonl import first_record
from peo.data.loading import LoadResult
from peo.data.pairs_jsonl import load_pairs_hub, load_pairs_jsonl
from peo.data.pku_saferlhf import load_pku_saferlhf, load_pku_saferlhf_hub

FORMATS: tuple[str, ...] = ("hh", "alpaca_eval", "pku", "pairs")
DEFAULT_ASPECT: dict[str, str] = {"hh": "harm", "alpaca_eval": "help"}
HUB_FORMATS: tuple[str, ...] = ("pku", "pairs")
SPEC_KEYS: tuple[str, ...] = ("format", "path", "aspect", "hub", "split", "derive_cross_model_pairs",
                              "max_derived_per_prompt", "limit")


def _allowed(name: str, value: Any, allowed: tuple[str, ...]) -> ValueError:
    return ValueError(f"data spec {name!r}: got {value!r}; allowed: {', '.join(allowed)}")


def check_spec(spec: dict[str, Any]) -> None:
    """ValueError naming the offending key (and what is allowed) for a malformed spec."""
    if not isinstance(spec, dict):
        raise ValueError(f"data spec must be a mapping with keys {', '.join(SPEC_KEYS)}; got {type(spec).__name__}")
    for key in spec:
        if key not in SPEC_KEYS:
            raise _allowed("key", key, SPEC_KEYS)
    fmt = spec.get("format")
    if fmt not in FORMATS:
        raise _allowed("format", fmt, FORMATS)
    if "aspect" in spec and spec["aspect"] not in ("help", "harm"):
        raise _allowed("aspect", spec["aspect"], ("help", "harm"))
    if "aspect" not in spec and fmt not in DEFAULT_ASPECT:
        raise ValueError(f"data spec 'aspect' is required for format {fmt!r}; allowed: help, harm")
    has_path, has_hub = spec.get("path") is not None, spec.get("hub") is not None
    if has_path == has_hub:
        raise ValueError("data spec needs exactly one of 'path' or 'hub'")
    if has_path and not isinstance(spec["path"], (str, Path)):
        raise ValueError(f"data spec 'path': expected a string, got {type(spec['path']).__name__}")
    if has_hub and (fmt not in HUB_FORMATS or not isinstance(spec["hub"], str)):
        raise ValueError(f"data spec 'hub': a dataset name, supported for formats {', '.join(HUB_FORMATS)}; "
                         f"got {spec['hub']!r} for format {fmt!r}")
    if "split" in spec and (not has_hub or not isinstance(spec["split"], str)):
        raise ValueError("data spec 'split': a string, only together with 'hub'")
    for key in ("derive_cross_model_pairs", "max_derived_per_prompt"):
        if key in spec and fmt != "alpaca_eval":
            raise ValueError(f"data spec {key!r} applies only to format 'alpaca_eval'; got format {fmt!r}")
    if "derive_cross_model_pairs" in spec and not isinstance(spec["derive_cross_model_pairs"], bool):
        raise _allowed("derive_cross_model_pairs", spec["derive_cross_model_pairs"], ("true", "false"))
    for key in ("limit", "max_derived_per_prompt"):
        if key in spec and (isinstance(spec[key], bool) or not isinstance(spec[key], int) or spec[key] < 0):
            raise ValueError(f"data spec {key!r}: expected a non-negative integer, got {spec[key]!r}")


def load_source(spec: dict[str, Any], *, base_dir: Path | None = None, skip_bad: bool = False) -> LoadResult:
    """Load the pairs a data spec names; relative paths are resolved against `base_dir`.

    spec = {"format": "hh"|"alpaca_eval"|"pku"|"pairs", "path": "...", "aspect": "help"|"harm",
    optional "hub", "split", "derive_cross_model_pairs", "max_derived_per_prompt", "limit"}.
    `limit` keeps the first N pairs (in file order); the rest are counted as "over limit".
    """
    check_spec(spec)
    fmt = spec["format"]
    aspect = spec.get("aspect", DEFAULT_ASPECT.get(fmt))
    if spec.get("hub") is not None:
        split = spec.get("split", "train")
        if fmt == "pku":
            result = load_pku_saferlhf_hub(spec["hub"], split, aspect=aspect, skip_bad=skip_bad)
        else:
            result = load_pairs_hub(spec["hub"], split, aspect=aspect, skip_bad=skip_bad)
    else:
        path = Path(spec["path"]).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = Path(base_dir) / path
        if fmt == "hh":
            result = load_hh_rlhf(path, aspect=aspect, skip_bad=skip_bad)
        elif fmt == "alpaca_eval":
            result = load_alpaca_eval(path, aspect=aspect, skip_bad=skip_bad,
                                      derive_cross_model_pairs=spec.get("derive_cross_model_pairs", False),
                                      max_derived_per_prompt=spec.get("max_derived_per_prompt", 4))
        elif fmt == "pku":
            result = load_pku_saferlhf(path, aspect=aspect, skip_bad=skip_bad)
        else:
            result = load_pairs_jsonl(path, aspect=aspect, skip_bad=skip_bad)
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
