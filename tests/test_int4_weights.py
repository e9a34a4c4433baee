"""bench/int4_weights.py: Q4_1 weights read back exactly into 4-bit form, and the int4 kernel computes the same map."""

from __future__ import annotations

import torch

from bench.int4_weights import Int4Linear, convert, q41_parts, weight_bytes


def q41_linear(out_features: int, in_features: int, seed: int = 0) -> torch.nn.Linear:
    """A linear layer whose weights are Q4_1 blocks as llama.cpp writes them: fp16 d and m, q spanning 0…15."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randint(0, 16, (out_features, in_features // 32, 32), generator=g).float()
    q[..., 0], q[..., 1] = 0.0, 15.0  # the block's minimum and maximum
    d = (torch.rand(out_features, in_features // 32, 1, generator=g) * 0.02 + 1e-3).half().float()
    m = (torch.randn(out_features, in_features // 32, 1, generator=g) * 0.05).half().float()
    linear = torch.nn.Linear(in_features, out_features, bias=False)
    linear.weight.data = (d * q + m).reshape(out_features, in_features)
    return linear


def test_q41_blocks_read_back_exactly_and_the_int4_layer_matches_the_float_one():
    linear = q41_linear(96, 128)
    q, d, m, error = q41_parts(linear.weight)
    assert error == 0.0 and q.min() == 0 and q.max() == 15
    x = torch.randn(5, 128)
    int4 = Int4Linear(linear, q, d, m)
    assert torch.allclose(int4(x), linear(x), atol=1e-4)
    assert int4(x[None]).shape == (1, 5, 96)  # batch and sequence dimensions pass through


def test_layers_that_are_not_q41_keep_their_float_weights():
    model = torch.nn.Sequential(q41_linear(64, 64), torch.nn.Linear(64, 64))  # the second: random floats
    converted, info = convert(model)
    assert info["converted_linears"] == 1 and info["kept_float"] == ["1"] and info["max_readback_error"] == 0.0
    assert isinstance(converted[0], Int4Linear) and isinstance(model[0], torch.nn.Linear)  # the original is kept
    x = torch.randn(3, 64)
    assert torch.allclose(converted(x), model(x), atol=1e-4)
    assert weight_bytes(converted) < weight_bytes(model)
