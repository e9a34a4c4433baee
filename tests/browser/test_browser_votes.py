"""Votes, blind mode and share links in a real headless Chromium on the tiny assets: send a message in blind mode,
vote, see the names revealed, find the vote with its full state in the database, reload the shared link and land
on the same point. Skipped when playwright or /usr/bin/chromium is missing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from app.screenshots import CHAT_COLUMNS, CHROMIUM
from peo.names import CHAT_COLUMNS as COLUMN_LABELS

pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
if not Path(CHROMIUM).is_file():
    pytest.skip(f"no Chromium at {CHROMIUM}", allow_module_level=True)

TARGET = "c+1.500_+0.000"  # λ = 1, ϕ_help = 0.5, ϕ_harm = 0 on the tiny grid


@pytest.fixture(scope="module")
def served(request, tmp_path_factory):
    from app.screenshots import serve

    votes_dir = tmp_path_factory.mktemp("votes")
    old = os.environ.get("PEO_VOTES_DIR")
    os.environ["PEO_VOTES_DIR"] = str(votes_dir)  # build_demo opens the store from it
    prebuilt = os.environ.get("PEO_APP_TEST_ASSETS")
    assets = Path(prebuilt) if prebuilt else request.getfixturevalue("tiny_assets")
    try:
        demo, address = serve(assets)
    finally:
        if old is None:
            os.environ.pop("PEO_VOTES_DIR")
        else:
            os.environ["PEO_VOTES_DIR"] = old
    yield address, votes_dir
    demo.close()


@pytest.fixture(scope="module")
def page(served):
    from playwright.sync_api import sync_playwright

    from app.screenshots import launch_browser

    with sync_playwright() as p:
        browser = launch_browser(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(served[0])
        yield page
        browser.close()


def screen_order(page, columns) -> list[str]:
    """The chat columns as they stand left to right on the screen."""
    xs = {c: page.locator(f"#chat-{c}").bounding_box()["x"] for c in columns}
    return sorted(columns, key=xs.get)


def test_blind_vote_is_stored_with_its_state_and_the_link_restores_the_point(page, served):
    from app.screenshots import click_plot_point, picked_model, send_message, wait_for_pick, wait_for_plot
    from peo.votes import VoteStore

    url, votes_dir = served
    wait_for_plot(page)
    click_plot_point(page, 1.0, 0.5, 0.0, TARGET)
    wait_for_pick(page, TARGET)
    page.wait_for_function("() => window.location.search.includes('phi_help=0.5')")
    assert "lambda_help=1&phi_help=0.5&phi_harm=0&columns=" in page.url

    page.click("#blind-mode input[type=checkbox]")
    send_message(page, "Tell me about the weather.", CHAT_COLUMNS)
    page.wait_for_selector("#vote-0", state="visible", timeout=60_000)
    order = json.loads(page.input_value("#blind-order textarea"))
    assert sorted(order) == sorted(CHAT_COLUMNS)
    for col in CHAT_COLUMNS:  # no name shows before the vote
        assert COLUMN_LABELS[col] not in page.inner_text(f"#chat-{col}")
    assert screen_order(page, CHAT_COLUMNS) == order, "columns stand in the shuffled order"
    assert page.inner_text("#vote-0").strip() == "A is best"

    page.fill("#vote-comment textarea", "B was the most useful")
    page.click("#vote-1")
    page.wait_for_function("() => document.querySelector('#vote-status').innerText.includes('stored')",
                           timeout=30_000)
    status = page.inner_text("#vote-status")
    assert f"B was {COLUMN_LABELS[order[1]]}" in status
    page.wait_for_function("([c, name]) => document.querySelector('#chat-' + c).innerText.includes('A: ' + name)",
                           arg=[order[0], COLUMN_LABELS[order[0]]], timeout=30_000)  # names revealed
    assert not page.locator("#vote-0").is_visible(), "one vote per turn"

    with VoteStore(votes_dir, create=False) as store:
        (vote,) = store.votes()
    assert vote["blind_order"] == order and vote["choice"] == order[1]
    assert vote["comment"] == "B was the most useful"
    assert (vote["lambda_help"], vote["phi_help"], vote["phi_harm"]) == (1.0, 0.5, 0.0)
    assert (vote["c_help"], vote["c_harm"]) == (1.5, 0.0) and vote["model_id"] == TARGET
    assert [c["column_key"] for c in vote["columns"]] == order
    assert [c["blind_label"] for c in vote["columns"]] == list("ABCDE")[:len(order)]
    for c in vote["columns"]:
        assert c["conversation"][0] == {"role": "user", "content": "Tell me about the weather."}
        assert c["reward"] is not None and c["cost"] is not None
    assert set(vote["settings"]) >= {"max_new_tokens", "temperature", "top_p", "seed", "repetition_penalty"}

    page.click("#votes-view button, #votes-view .label-wrap")  # the aggregate view
    page.wait_for_function("() => document.querySelector('#votes-table').innerText.includes('DPO-Help')",
                           timeout=30_000)

    shared = page.url
    page.goto("about:blank")
    page.goto(shared)
    wait_for_plot(page)
    wait_for_pick(page, TARGET)
    assert picked_model(page) == TARGET
    assert page.input_value("#lambda-slider input[type=number]") in ("1", "1.0")
    assert page.input_value("#phi-help-slider input[type=number]") == "0.5"
    page.wait_for_function("t => document.querySelector('#pick-summary').innerText.includes(t)", arg=TARGET)


def test_copy_link_shows_the_current_link(page):
    page.click("#copy-link")
    page.wait_for_function("() => document.querySelector('#share-link textarea, #share-link input').value"
                           ".includes('lambda_help=')")
