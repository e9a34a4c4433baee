"""bench/packed_weights.py: MKL's packed-weight GEMM computes the linear layers' map, at any row count."""

from __future__ import annotations

import pytest
import torch

from bench.packed_weights import PackedLinear, convert

pytestmark = pytest.mark.skipif(not torch.backends.mkl.is_available(), reason="MKL's packed GEMM is CPU/MKL only")


def test_a_packed_layer_computes_the_linear_map_at_any_row_count():
    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 48, bias=True)
    packed = PackedLinear(linear, rows=5)
    with torch.inference_mode():
        for rows in (1, 5, 13):
            x = torch.randn(rows, 64)
            assert torch.allclose(packed(x), linear(x), atol=1e-5)
        assert packed(torch.randn(2, 7, 64)).shape == (2, 7, 48)  # batch and sequence dimensions pass through


def test_convert_packs_a_copy_and_leaves_the_model_alone():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(32, 32, bias=False), torch.nn.ReLU(), torch.nn.Linear(32, 8))
    converted, info = convert(model, rows=4)
    assert info["layers"] == 2 and info["packed_bytes"] > 0
    assert isinstance(converted[0], PackedLinear) and type(model[0]) is torch.nn.Linear
    with torch.inference_mode():
        x = torch.randn(4, 32)
        assert torch.allclose(converted(x), model(x), atol=1e-5)
