"""Votes, blind mode and share links in a real headless Chromium on the tiny assets: send a message in blind mode,
see no tag, score or name before the vote, vote, see them revealed, find the vote with its full state in the
database, reload the shared link and land on the same point; a share link's point in the number boxes too.
Skipped when playwright or /usr/bin/chromium is missing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from app.screenshots import CHAT_COLUMNS, CHROMIUM
from peo.aspects import DEFAULT_ASPECTS

pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
if not Path(CHROMIUM).is_file():
    pytest.skip(f"no Chromium at {CHROMIUM}", allow_module_level=True)

TARGET = "c+1.500_+0.000"  # λ = 1, ϕ_help = 0.5, ϕ_harm = 0 on the tiny grid
# what would tell a blind voter which column is which, or anchor them: tags, scores, bands, names
GIVEAWAYS = ("at c =", "reward", "cost", "pct", "🟩", "🟨", "🟥", *DEFAULT_ASPECTS.chat_columns.values(), "PEO",
             "Soup", "DPO", "Reference")


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


def giveaways(text: str) -> list[str]:
    return [g for g in GIVEAWAYS if g in text]


def screen_order(page, columns) -> list[str]:
    """The chat columns as they stand left to right on the screen."""
    xs = {c: page.locator(f"#chat-{c}").bounding_box()["x"] for c in columns}
    return sorted(columns, key=xs.get)


def test_blind_vote_is_stored_with_its_state_and_the_link_restores_the_point(page, served):
    from app.screenshots import click_plot_point, picked_model, wait_for_pick, wait_for_plot
    from peo.votes import VoteStore

    url, votes_dir = served
    wait_for_plot(page)
    click_plot_point(page, 1.0, 0.5, 0.0, TARGET)
    wait_for_pick(page, TARGET)
    page.wait_for_function("() => window.location.search.includes('phi_help=0.5')")
    assert "lambda_help=1&phi_help=0.5&phi_harm=0&columns=" in page.url

    page.click("#blind-mode input[type=checkbox]")
    page.fill("#message textarea", "Tell me about the weather.")
    page.click("#send")
    seen = []  # each column's text while the answers stream and once they are in: nothing but the answers
    for _ in range(200):
        seen.append({col: page.inner_text(f"#chat-{col}") for col in CHAT_COLUMNS})
        if page.locator("#vote-0").is_visible():
            break
        page.wait_for_timeout(100)
    page.wait_for_selector("#vote-0", state="visible", timeout=60_000)
    seen.append({col: page.inner_text(f"#chat-{col}") for col in CHAT_COLUMNS})
    for texts in seen:
        for col, text in texts.items():  # from the moment a column shows the message (before, it is empty)
            assert "Tell me about the weather." not in text or not giveaways(text), (col, text)
    assert all("Tell me about the weather." in text for text in seen[-1].values())
    status = page.inner_text("#chat-status")
    assert "after your vote" in status and not giveaways(status)
    order = json.loads(page.input_value("#blind-order textarea"))
    assert sorted(order) == sorted(CHAT_COLUMNS)
    assert screen_order(page, CHAT_COLUMNS) == order, "columns stand in the shuffled order"
    assert page.inner_text("#vote-0").strip() == "A is best"
    assert not giveaways(" ".join(page.inner_text(f"#vote-{i}") for i in range(len(order))))

    page.fill("#vote-comment textarea", "B was the most useful")
    page.click("#vote-1")
    page.wait_for_function("() => document.querySelector('#vote-status').innerText.includes('stored')",
                           timeout=30_000)
    status = page.inner_text("#vote-status")
    assert f"B was {DEFAULT_ASPECTS.chat_columns[order[1]]}" in status
    page.wait_for_function("([c, name]) => document.querySelector('#chat-' + c).innerText.includes('A: ' + name)",
                           arg=[order[0], DEFAULT_ASPECTS.chat_columns[order[0]]], timeout=30_000)  # names revealed
    for col in CHAT_COLUMNS:  # and the scores (one short line, the percentiles on hover), and each answer's point
        text = page.inner_text(f"#chat-{col}")
        assert "reward" in text and "cost" in text, col
        assert "pct of the reference" in page.get_attribute(f"#chat-{col} .peo-score", "title"), col
    assert "at c = (1.5, 0)" in page.inner_text("#chat-peo")
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


def test_a_share_link_sets_the_boxes_too_and_survives_a_pick(page, served):
    """?lambda_help=1&phi_help=0.5&phi_harm=0.5 (a grid point: the sliders step by the grid's step, so an off-grid
    value shows exactly in the boxes and at the nearest step on the slider): sliders, number boxes, summary and URL
    agree on the link's point, and "Pick this point" keeps it (the boxes used to stay at the start point, and a
    Pick jumped back there)."""
    from app.screenshots import wait_for_plot

    link = {"lambda_help": "1", "phi_help": "0.5", "phi_harm": "0.5"}
    query = "&".join(f"{k}={v}" for k, v in link.items())
    page.goto(served[0] + "?" + query)
    wait_for_plot(page)
    page.wait_for_function("() => document.querySelector('#lambda-input input').value === '1'", timeout=30_000)

    def agree() -> None:
        for key, axis in (("lambda", "lambda_help"), ("phi-help", "phi_help"), ("phi-harm", "phi_harm")):
            assert float(page.input_value(f"#{key}-input input")) == float(link[axis]), key
            assert float(page.input_value(f"#{key}-slider input[type=range]")) == float(link[axis]), key
        summary = page.inner_text("#pick-summary")
        assert "λ = 1, ϕ_help = 0.5, ϕ_harm = 0.5" in summary, summary
        assert query in page.url

    agree()
    page.click("#pick-button")
    page.wait_for_timeout(1_500)  # a pick that moved anything would have redrawn by now
    agree()
    assert page.inner_text("#pick-status").strip() == ""
