"""Weights and paths: pickle weights and remote code are refused before anything is unpickled or imported; export
writes only into the folder it was given; the served app takes no file paths from its users."""

from __future__ import annotations

import json
import pickle
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from peo.adapter_files import AdapterError, check_adapter_folder, read_lora_deltas
from peo.model_source import ModelSourceError, check_model_folder, load_causal_lm, load_tokenizer, resolve_base_model


class _Trap:
    """Unpickling this creates the sentinel file: proof that a pickle was loaded."""

    def __init__(self, sentinel: Path):
        self.sentinel = str(sentinel)

    def __reduce__(self):
        return open, (self.sentinel, "w")


def pickle_trap(path: Path, sentinel: Path) -> Path:
    path.write_bytes(pickle.dumps(_Trap(sentinel)))
    return path


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under root → (size, mtime_ns): what "nothing else changed" is checked against."""
    return {str(p.relative_to(root)): (p.stat().st_size if p.is_file() else -1, p.stat().st_mtime_ns)
            for p in root.rglob("*")}


# ---------------------------------------------------------------- pickle adapters

def test_pickle_only_adapter_is_refused_and_never_unpickled(tmp_path, tiny_base, tiny_adapters):
    from peo.adapter_mix import AdapterMix

    folder = tmp_path / "evil-adapter"
    folder.mkdir()
    shutil.copy(tiny_adapters["help"] / "adapter_config.json", folder)
    sentinel = tmp_path / "UNPICKLED"
    pickle_trap(folder / "adapter_model.bin", sentinel)

    with pytest.raises(AdapterError, match=r"only pickle weights \(adapter_model.bin\).*safetensors"):
        check_adapter_folder(folder)
    with pytest.raises(AdapterError, match="safetensors"):
        read_lora_deltas(folder)
    with pytest.raises(AdapterError, match="safetensors"):
        AdapterMix(load_causal_lm(tiny_base), {"help": tiny_adapters["help"], "harm": folder})
    (folder / "adapter_model.bin").rename(folder / "adapter_model.pt")
    with pytest.raises(AdapterError, match="adapter_model.pt"):
        check_adapter_folder(folder)
    assert not sentinel.exists(), "a pickle was loaded"


def test_assets_with_a_pickle_adapter_fail_with_a_message(tmp_path, tiny_assets):
    """The app shows the refusal on the first chat; export refuses with ExportError; nothing is unpickled."""
    from app import callbacks as cb
    from peo.export import ExportError, export_policy

    assets = tmp_path / "assets"
    shutil.copytree(tiny_assets, assets)
    weights = assets / "adapters" / "harm" / "adapter_model.safetensors"
    weights.unlink()
    sentinel = tmp_path / "UNPICKLED"
    pickle_trap(weights.with_suffix(".bin"), sentinel)

    app = cb.App.load(assets, device="cpu", form="adapters", load_evaluators=False)
    with pytest.raises(RuntimeError, match="failed to load.*pickle.*safetensors"):
        cb.chat(app, "hello", ["peo"], (0.5, 0.0, 0.0), {"max_new_tokens": 2})

    before = tree(tmp_path)
    for kwargs in ({"policy": "harm", "fmt": "adapter"}, {"policy": "harm", "fmt": "merged"},
                   {"point": (0.5, 0.0, 0.0), "fmt": "adapter"}, {"point": (0.5, 0.0, 0.0), "fmt": "merged"}):
        with pytest.raises(ExportError, match="safetensors"):
            export_policy(assets, tmp_path / "out", **kwargs)
    assert tree(tmp_path) == before, "a failed export left files behind"
    assert not sentinel.exists()


# ---------------------------------------------------------------- model folders

def _model_copy(tiny_base: str, folder: Path) -> Path:
    shutil.copytree(tiny_base, folder)
    return folder


def test_remote_code_model_folder_is_refused_and_its_code_never_runs(tmp_path, tiny_base):
    folder = _model_copy(tiny_base, tmp_path / "remote-code-model")
    sentinel = tmp_path / "REMOTE_CODE_RAN"
    (folder / "modeling_evil.py").write_text(f"open({str(sentinel)!r}, 'w').close()\n")
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "modeling_evil.EvilConfig", "AutoModelForCausalLM": "modeling_evil.Evil"}
    (folder / "config.json").write_text(json.dumps(config))

    with pytest.raises(ModelSourceError, match="remote code.*auto_map"):
        check_model_folder(folder)
    with pytest.raises(ModelSourceError, match="remote code"):
        resolve_base_model(str(folder))
    # Even bypassing the check, the loaders never trust remote code.
    try:
        load_causal_lm(str(folder))
    except Exception:
        pass
    assert not sentinel.exists(), "remote code ran"


def test_remote_code_tokenizer_is_never_run(tmp_path, tiny_base):
    """check_model_folder looks at config.json; a tokenizer's auto_map must not run code either."""
    folder = _model_copy(tiny_base, tmp_path / "remote-tokenizer")
    sentinel = tmp_path / "REMOTE_CODE_RAN"
    (folder / "tokenization_evil.py").write_text(f"open({str(sentinel)!r}, 'w').close()\n")
    tok_config = json.loads((folder / "tokenizer_config.json").read_text())
    tok_config["auto_map"] = {"AutoTokenizer": ["tokenization_evil.Evil", "tokenization_evil.Evil"]}
    (folder / "tokenizer_config.json").write_text(json.dumps(tok_config))
    try:
        load_tokenizer(str(folder))
    except Exception:
        pass
    assert not sentinel.exists(), "remote tokenizer code ran"


def test_pickle_only_model_folder_is_refused(tmp_path, tiny_base):
    folder = _model_copy(tiny_base, tmp_path / "pickle-model")
    sentinel = tmp_path / "UNPICKLED"
    for weights in folder.glob("*.safetensors"):
        weights.unlink()
    pickle_trap(folder / "pytorch_model.bin", sentinel)
    with pytest.raises(ModelSourceError, match="no .safetensors"):
        resolve_base_model(str(folder))
    try:
        load_causal_lm(str(folder))  # use_safetensors=True: refuses .bin even without the folder check
    except Exception:
        pass
    assert not sentinel.exists()
    with pytest.raises(ModelSourceError, match="not a model folder"):
        check_model_folder(tmp_path)


# ---------------------------------------------------------------- export paths

def test_export_writes_only_into_the_resolved_output_folder(tmp_path, tiny_assets):
    from peo.export import export_policy

    work = tmp_path / "work"
    work.mkdir()
    (work / "mine.txt").write_text("keep")
    before = tree(tmp_path)
    # `made-up/..` does not exist: it must not be created on the way
    out = export_policy(tiny_assets, f"{work}/made-up/../exported", policy="help", fmt="adapter")
    assert Path(out).resolve() == (work / "exported").resolve()
    after = tree(tmp_path)
    added = set(after) - set(before)
    assert added == {"work/exported", *(f"work/exported/{p.name}" for p in (work / "exported").iterdir())}, added
    assert {k: v for k, v in after.items() if k in before and k != "work"} == \
        {k: v for k, v in before.items() if k != "work"}, "export changed files outside its folder"
    assert sorted(p.name for p in (work / "exported").iterdir()) == \
        ["README.md", "adapter_config.json", "adapter_model.safetensors", "peo_export.json"]


def test_export_relative_out_with_dotdot_stays_in_its_folder(tmp_path, tiny_assets, monkeypatch):
    from peo.__main__ import main

    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    before = tree(tmp_path)
    assert main(["export", "--policy", "joint", "--format", "adapter", "--out", "../x/../y",
                 "--assets", str(tiny_assets)]) == 0
    added = set(tree(tmp_path)) - set(before)
    assert {a.split("/")[0] for a in added} == {"y"}, added


def test_export_refuses_existing_file_and_non_empty_folder_untouched(tmp_path, tiny_assets):
    from peo.export import ExportError, export_policy

    target = tmp_path / "a-file"
    target.write_text("precious")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("mine")
    before = tree(tmp_path)
    for out in (target, busy, tmp_path / "sub" / ".." / "busy"):
        with pytest.raises(ExportError, match="not an empty folder"):
            export_policy(tiny_assets, out, policy="help", fmt="adapter")
    assert tree(tmp_path) == before


# ---------------------------------------------------------------- the served app takes no paths

@pytest.fixture(scope="module")
def served(tiny_assets):
    from app.screenshots import serve

    demo, url = serve(tiny_assets)
    yield url, tiny_assets
    demo.close()


FILE_COMPONENTS = {"file", "files", "image", "audio", "video", "uploadbutton", "model3d", "gallery", "imageeditor",
                   "annotatedimage", "simpleimage", "dataset"}


def test_api_has_no_file_inputs(served):
    from gradio_client import Client

    url, _ = served
    api = Client(url, verbose=False).view_api(print_info=False, return_format="dict")
    assert set(api["named_endpoints"]) == {"/pick", "/chat"}, "only /pick and /chat are public"
    assert not api["unnamed_endpoints"]
    for name, endpoint in api["named_endpoints"].items():
        for param in endpoint["parameters"]:
            text = json.dumps(param).lower()
            assert "filepath" not in text and "filedata" not in text, (name, param)
            assert param["component"].lower() not in FILE_COMPONENTS, (name, param)

    # Every event in the page config: no file-like component is an input, and the only file output is the
    # export download (a zip the app itself wrote into its own temp folder).
    config = json.loads(urllib.request.urlopen(url + "config", timeout=30).read())
    kinds = {c["id"]: c["type"].lower() for c in config["components"]}
    file_like_inputs = [(dep.get("api_name"), kinds[i]) for dep in config["dependencies"] for i in dep["inputs"]
                        if kinds.get(i) in FILE_COMPONENTS]
    assert not file_like_inputs
    for c in config["components"]:
        if c["type"].lower() in FILE_COMPONENTS:
            assert c.get("props", {}).get("interactive") is False, c


@pytest.mark.parametrize("path", ["/etc/passwd", "README.md", "assets/meta.json", "peo/config.py",
                                  "../../../../etc/passwd", "%2e%2e/%2e%2e/etc/passwd"])
def test_file_route_serves_no_local_files(served, path):
    from conftest import REPO

    url, assets = served
    for candidate in {path, str(REPO / path), str(assets / "meta.json")}:
        try:
            status = urllib.request.urlopen(url + "gradio_api/file=" + candidate, timeout=30).status
        except urllib.error.HTTPError as err:
            status = err.code
        assert status in (403, 404), (candidate, status)


def test_private_events_are_not_callable_by_name(served):
    from gradio_client import Client

    url, _ = served
    client = Client(url, verbose=False)
    for name in ("/do_export", "/do_chat", "/do_pick"):
        with pytest.raises(Exception):
            client.predict("help", "adapter", {"lambda_help": 0.5}, api_name=name)


def test_server_binds_loopback_by_default(monkeypatch):
    from app.__main__ import parse_args, resolve_host

    monkeypatch.delenv("SPACE_ID", raising=False)
    assert resolve_host(parse_args([]).host) == "127.0.0.1"
