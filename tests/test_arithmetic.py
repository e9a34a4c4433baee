"""PEO arithmetic: coefficients, and the unmerged, merged and exported forms agree with a hand-computed merge."""

from __future__ import annotations

import pytest
import torch

from peo.adapter_files import read_lora_deltas
from peo.adapter_mix import AdapterMix, rank_scale
from peo.coefficients import (
    Point,
    coefficients,
    grid_points,
    model_id,
    on_simplex,
    scales,
    simplex_lambdas,
    soup_points,
    unique_models,
)
from peo.model_source import load_causal_lm
from peo.task_vector import MergedPolicy, dense_task_vectors, lora_task_vectors

POINTS = [(1.0, 0.0), (0.5, 0.5), (1.7, 0.3), (-0.4, 1.2), (2.0, 2.0), (0.0, 0.0)]


def test_coefficients_map_points():
    assert coefficients((0.3,), (0.0, 0.0)) == (0.3, 0.7)
    assert coefficients((0.2,), (0.5, 1.0)) == (0.7, 1.8)
    assert coefficients((1.0,)) == (1.0, 0.0)
    assert coefficients((0.0,)) == (0.0, 1.0)
    assert Point((0.1,), (0.5, 0.0)).coefficients == Point((0.6,), (0.0, 0.5)).coefficients == (0.6, 0.9)


def test_three_aspects_put_lambda_on_the_simplex():
    # c_i = λ_i + ϕ_i, the last λ being 1 − the free ones' sum
    assert coefficients((0.2, 0.3), (0.5, 0.0, 1.0)) == (0.7, 0.3, 1.5)
    assert Point((0.2, 0.3), (0.0, 0.0, 0.0)).weights == (0.2, 0.3, 0.5)
    assert coefficients((0.5, 0.5)) == (0.5, 0.5, 0.0)
    with pytest.raises(ValueError, match="2 free λs for 2 aspects"):
        coefficients((0.2, 0.3), (0.0, 0.0))
    assert simplex_lambdas([0.0, 0.5, 1.0], 3) == [(0.0, 0.0), (0.0, 0.5), (0.0, 1.0), (0.5, 0.0), (0.5, 0.5),
                                                  (1.0, 0.0)]
    points = grid_points([0.0, 0.5, 1.0], [[0.0], [0.0, 1.0], [0.0]])
    assert len(points) == 12 and points[1] == Point((0.0, 0.0), (0.0, 1.0, 0.0))
    assert len(soup_points([0.0, 0.5, 1.0], 3)) == 6
    assert on_simplex((0.5, 0.5)) and on_simplex((0.7, 0.3 + 1e-10)) and not on_simplex((0.5, 0.5 + 1e-6))
    assert model_id(0.5, 0.0, 1.25) == "c+0.500_+0.000_+1.250"


def test_scales_give_each_aspect_adapter_its_coefficient():
    assert scales((0.7, 1.8), ("help", "harm")) == {"help": 0.7, "harm": 1.8}
    assert Point((0.2,), (0.5, 1.0)).scales(("help", "harm")) == {"help": 0.7, "harm": 1.8}
    with pytest.raises(ValueError, match="3 coefficients for 2 aspects"):
        scales((0.1, 0.2, 0.3), ("help", "harm"))


def test_points_sharing_coefficients_are_one_model():
    points = grid_points([0.0, 0.5, 1.0], [[0.0, 0.5], [0.0, 0.5]])
    models = unique_models(points)
    assert len(points) == 12
    # (0.5, 0, 0) and (0, 0.5, ... ) etc.: c_help = λ+ϕh ∈ {0,0.5,1,1.5}; c_harm = 1-λ+ϕa ∈ {0,0.5,1,1.5}
    expected = {coefficients(p.lambdas, p.phis) for p in points}
    assert set(models.values()) == expected
    assert len(models) == len(expected) < len(points)
    assert model_id(0.5, 1.0) == "c+0.500_+1.000"


def hand_merged_state(base: str, adapters: dict, c_help: float, c_harm: float) -> dict[str, torch.Tensor]:
    """θ_ref + c_help·s·B_h A_h + c_harm·s·B_s A_s, written out plainly."""
    state = {k: v.clone() for k, v in load_causal_lm(base).state_dict().items()}
    for aspect, c in (("help", c_help), ("harm", c_harm)):
        for name, d in read_lora_deltas(adapters[aspect]).items():
            state[name] = state[name] + c * d.scaling * (d.B @ d.A)
    return state


def logits_of(model, input_ids):
    with torch.no_grad():
        return model(input_ids=input_ids).logits


@pytest.mark.parametrize("c_help,c_harm", POINTS)
def test_unmerged_equals_merged_equals_hand_merge(tiny_base, tiny_adapters, c_help, c_harm):
    ids = torch.tensor([[1, 50, 200, 7, 900, 33]])
    hand = load_causal_lm(tiny_base)
    hand.load_state_dict(hand_merged_state(tiny_base, tiny_adapters, c_help, c_harm))
    expected = logits_of(hand, ids)

    mix = AdapterMix(load_causal_lm(tiny_base), {k: tiny_adapters[k] for k in ("help", "harm")})
    mix.set_scales({"help": c_help, "harm": c_harm})
    unmerged = logits_of(mix.model, ids)

    merged_model = load_causal_lm(tiny_base)
    merged = MergedPolicy(merged_model, lora_task_vectors({k: tiny_adapters[k] for k in ("help", "harm")}))
    merged.set_point({"help": 0.3, "harm": -1.0})  # a different point first: setting must not accumulate
    merged.set_point({"help": c_help, "harm": c_harm})
    merged_logits = logits_of(merged_model, ids)

    assert not torch.allclose(expected, logits_of(load_causal_lm(tiny_base), ids)) or (c_help, c_harm) == (0.0, 0.0)
    torch.testing.assert_close(unmerged, expected, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(merged_logits, expected, atol=1e-4, rtol=1e-4)


def test_per_row_scales_equal_each_point_alone(tiny_base, tiny_adapters):
    mix = AdapterMix(load_causal_lm(tiny_base), tiny_adapters)
    ids = torch.tensor([[1, 50, 200, 7, 900, 33]] * 4)
    rows = [{"help": 1.5, "harm": 0.2}, {}, {"joint": 1.0}, {"help": -0.5, "harm": 2.0}]
    with mix.row_scales(rows):
        together = logits_of(mix.model, ids)
    for i, row in enumerate(rows):
        mix.set_scales(row)
        alone = logits_of(mix.model, ids[i:i + 1])
        torch.testing.assert_close(together[i:i + 1], alone, atol=1e-5, rtol=1e-5)
    mix.set_scales({})
    torch.testing.assert_close(logits_of(mix.model, ids[:1]), logits_of(load_causal_lm(tiny_base), ids[:1]))


def test_zero_scale_adapters_are_left_out_of_the_forward_pass(tiny_base, tiny_adapters):
    mix = AdapterMix(load_causal_lm(tiny_base), tiny_adapters)
    ids = torch.tensor([[1, 50, 200, 7, 900, 33]] * 2)
    assert mix.active == []
    mix.set_scales({"help": 1.0, "harm": 0.5})
    assert mix.active == ["help", "harm"]
    first = logits_of(mix.model, ids)
    mix.set_scales({"joint": 1.0})
    assert mix.active == ["joint"]
    assert not torch.allclose(logits_of(mix.model, ids), first)
    mix.set_scales({"help": 1.0, "harm": 0.5, "joint": 0.0})  # back: the same model as before, joint left out
    assert mix.active == ["help", "harm"]
    torch.testing.assert_close(logits_of(mix.model, ids), first, atol=0, rtol=0)
    with mix.row_scales([{"help": 1.0}, {"harm": 0.0}]):
        assert mix.active == ["help"]
    assert mix.active == []
    assert not any(p.requires_grad for n, p in mix.model.named_parameters() if "lora_" in n)


def test_rank_scale_repeats_each_adapters_scale_over_its_rank():
    signature = ((2, 0.5), (3, 2.0))  # (rank, peft's unit scale alpha/r) of two adapters
    assert rank_scale(signature, ["a", "b"], {"a": 4.0, "b": -1.0}).tolist() == [2.0, 2.0, -2.0, -2.0, -2.0]
    per_row = rank_scale(signature, ["a", "b"], {"a": torch.tensor([1.0, 0.0]).view(-1, 1, 1), "b": 0.5})
    assert per_row.shape == (2, 1, 5)
    assert per_row[:, 0].tolist() == [[0.5, 0.5, 1.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0, 1.0]]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fused_low_rank_product_equals_peft_forward(tiny_base, tiny_adapters, dtype):
    """The fused form (stacked A's, per-rank scales) against peft's own per-adapter forward, same rows."""
    fused = AdapterMix(load_causal_lm(tiny_base).to(dtype), tiny_adapters)
    plain = AdapterMix(load_causal_lm(tiny_base).to(dtype), tiny_adapters, fused=False)
    ids = torch.tensor([[1, 50, 200, 7, 900, 33]] * 4)
    rows = [{"help": 1.5, "harm": 0.2}, {}, {"joint": 1.0, "help": -0.5}, {"help": 0.3, "harm": 2.0}]
    tol = {"atol": 1e-5, "rtol": 1e-5} if dtype == torch.float32 else {"atol": 1e-2, "rtol": 1e-2}
    with fused.row_scales(rows), plain.row_scales(rows):
        assert fused.active == plain.active == ["help", "harm", "joint"]
        expected = logits_of(plain.model, ids)
        torch.testing.assert_close(logits_of(fused.model, ids), expected, **tol)
        assert not torch.allclose(expected[0], expected[1])  # the rows really are different models
        with fused.model.disable_adapter():  # how the evaluators read the reference out of the policy
            reference = logits_of(fused.model, ids)
    torch.testing.assert_close(reference, logits_of(load_causal_lm(tiny_base).to(dtype), ids), atol=0, rtol=0)
    for point in ({"help": 1.2, "harm": 1.8}, {"harm": -1.0}):  # one float scale per adapter
        fused.set_scales(point)
        plain.set_scales(point)
        torch.testing.assert_close(logits_of(fused.model, ids), logits_of(plain.model, ids), **tol)


def test_dense_task_vectors_from_three_folders(tiny_base, tiny_adapters, tmp_path):
    """Users with fully fine-tuned aspect models: θ_ref + c·(θ_help − θ_ref) + c'·(θ_harm − θ_ref)."""
    folders = {}
    for aspect, point in (("help", (1.0, 0.0)), ("harm", (0.0, 1.0))):
        model = load_causal_lm(tiny_base)
        model.load_state_dict(hand_merged_state(tiny_base, tiny_adapters, *point))
        model.save_pretrained(tmp_path / aspect)
        folders[aspect] = tmp_path / aspect
    vectors = dense_task_vectors(tiny_base, folders)
    model = load_causal_lm(tiny_base)
    policy = MergedPolicy(model, vectors)
    ids = torch.tensor([[1, 5, 9, 200]])
    for c_help, c_harm in ((1.3, -0.2), (0.5, 0.5)):
        policy.set_point({"help": c_help, "harm": c_harm})
        hand = load_causal_lm(tiny_base)
        hand.load_state_dict(hand_merged_state(tiny_base, tiny_adapters, c_help, c_harm))
        torch.testing.assert_close(logits_of(model, ids), logits_of(hand, ids), atol=1e-4, rtol=1e-4)


def test_pickle_only_adapter_is_refused(tmp_path, tiny_adapters):
    import shutil

    from peo.adapter_files import AdapterError

    folder = tmp_path / "pickled"
    shutil.copytree(tiny_adapters["help"], folder)
    (folder / "adapter_model.safetensors").rename(folder / "adapter_model.bin")
    with pytest.raises(AdapterError, match="only pickle weights"):
        read_lora_deltas(folder)


def test_lora_scaling_is_peft_s_definition():
    """alpha / r, or alpha / √r with rsLoRA: the one factor both policy forms apply to B @ A, equal to what
    peft itself sets on a layer."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    from peo.adapter_files import lora_scaling

    assert lora_scaling({"r": 4, "lora_alpha": 8}) == 2.0
    assert lora_scaling({"r": 16, "lora_alpha": 32, "use_rslora": True}) == 8.0
    for rslora in (False, True):
        net = get_peft_model(torch.nn.Sequential(torch.nn.Linear(8, 8)),
                             PeftLoraConfig(r=4, lora_alpha=12, target_modules=["0"], use_rslora=rslora))
        layer = net.base_model.model[0]
        assert layer.scaling["default"] == pytest.approx(lora_scaling({"r": 4, "lora_alpha": 12, "use_rslora": rslora}))
