"""The app served in-process on 127.0.0.1 (free port) on the tiny assets, driven by gradio_client."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

from app.screenshots import serve


@pytest.fixture(scope="module")
def served(request):
    prebuilt = os.environ.get("PEO_APP_TEST_ASSETS")
    assets = Path(prebuilt) if prebuilt else request.getfixturevalue("tiny_assets")
    demo, url = serve(assets)
    yield url, assets
    demo.close()


def test_pick_and_chat_over_http(served):
    from gradio_client import Client

    from peo.assets import load_assets

    url, assets = served
    client = Client(url, verbose=False)
    grid = load_assets(assets).grid
    row = grid[grid["method"] == "peo"].iloc[-1]
    info = client.predict(float(row.lambda_help), float(row.phi_help), float(row.phi_harm), api_name="/pick")
    assert info["model_id"] == row.model_id and info["in_range"]
    stats = info["precomputed"]
    assert stats["reward_mean"] == pytest.approx(row.reward_mean)
    assert stats["split"] == row.split and stats["n"] == row.n
    for key in ("loop_share", "refusal_share", "over_refusal_share", "mean_words"):
        assert stats[key] == pytest.approx(getattr(row, key), nan_ok=True), key
    assert isinstance(info["on_front"], bool)

    off = client.predict(0.123, 0.0, 0.0, api_name="/pick")
    assert off["precomputed"] is None and off["c_help"] == pytest.approx(0.123)

    with pytest.raises(Exception, match="lambda_help=7 is outside the range"):
        client.predict(7.0, 0.0, 0.0, api_name="/pick")
    with pytest.raises(Exception, match="phi_harm.*number"):  # not a number: refused, not read as 0 or clamped
        client.predict(0.5, 0.0, "abc", api_name="/pick")
    with pytest.raises(Exception, match="lambda_help=7 is outside the range"):  # /chat picks nothing either
        client.predict("Hello!", ["peo"], 7.0, 0.0, 0.0, 4, api_name="/chat")

    out = client.predict("Hello!", ["peo", "ref", "help"], 0.5, 0.0, 0.0, 4, 0.0, 1.0, 0, api_name="/chat")
    assert list(out) == ["peo", "ref", "help"]
    for value in out.values():
        assert isinstance(value["answer"], str) and math.isfinite(value["reward"]) and math.isfinite(value["cost"])
        assert isinstance(value["loops"], bool) and isinstance(value["cut"], bool)
    # repetition_penalty is the last positional argument; leaving it out means the sweep's (meta.json)
    penalty = load_assets(assets).meta["generation"]["repetition_penalty"]
    same = client.predict("Hello!", ["peo", "ref", "help"], 0.5, 0.0, 0.0, 4, 0.0, 1.0, 0, penalty, api_name="/chat")
    assert same == out
    with pytest.raises(Exception, match="repetition_penalty must be in"):
        client.predict("hi", ["peo"], 0.5, 0.0, 0.0, 4, 0.0, 1.0, 0, 2.5, api_name="/chat")

    with pytest.raises(Exception, match="empty message"):
        client.predict("  ", ["peo"], api_name="/chat")
    with pytest.raises(Exception, match="max_new_tokens"):
        client.predict("hi", ["peo"], 0.5, 0.0, 0.0, 999, api_name="/chat")


def test_api_lists_pick_and_chat(served):
    from gradio_client import Client

    url, _ = served
    api = Client(url, verbose=False).view_api(print_info=False, return_format="dict")
    assert {"/pick", "/chat"} <= set(api["named_endpoints"])
