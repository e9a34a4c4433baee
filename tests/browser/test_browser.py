"""The app in a real headless Chromium on the tiny assets: the figure renders, picking moves the highlight,
one message gets a scored answer in every column. Skipped when playwright or /usr/bin/chromium is missing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.screenshots import CHAT_COLUMNS, CHROMIUM

pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
if not Path(CHROMIUM).is_file():
    pytest.skip(f"no Chromium at {CHROMIUM}", allow_module_level=True)


@pytest.fixture(scope="module")
def url(request):
    from app.screenshots import serve

    prebuilt = os.environ.get("PEO_APP_TEST_ASSETS")
    assets = Path(prebuilt) if prebuilt else request.getfixturevalue("tiny_assets")
    demo, address = serve(assets)
    yield address
    demo.close()


@pytest.fixture(scope="module")
def page(url):
    from playwright.sync_api import sync_playwright

    from app.screenshots import launch_browser

    with sync_playwright() as p:
        browser = launch_browser(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        yield page
        browser.close()


def test_figure_renders(page):
    from app.screenshots import picked_model, wait_for_plot

    wait_for_plot(page)
    assert page.locator("#front-plot .scatterlayer .trace").count() >= 5
    assert picked_model(page).startswith("c")  # the start point is a grid point, highlighted
    assert "hypervolume" in page.inner_text("#hypervolumes")


def test_click_and_table_pick_move_the_highlight(page, tmp_path):
    from app.screenshots import click_plot_point, picked_model, wait_for_pick, wait_for_plot

    wait_for_plot(page)
    start = picked_model(page)
    # a plotly click on a grid marker (λ=1, ϕ=0.5, 0) → picks it: sliders, summary and star follow
    click_plot_point(page, 1.0, 0.5, 0.0, "c+1.500_+0.000")
    wait_for_pick(page, "c+1.500_+0.000")
    assert picked_model(page) != start
    page.wait_for_function("() => document.querySelector('#pick-summary').innerText.includes('c+1.500_+0.000')")
    assert page.input_value("#lambda-slider input[type=number]") in ("1", "1.0")
    star = page.evaluate("() => document.querySelector('#front-plot .peo-front-plot').data.at(-1).name")
    assert star == "picked point"
    # a row of the front table
    row = page.locator("#front-table .virtual-row[role=row]").first
    target = row.locator("[role=gridcell]").last.inner_text().strip()
    row.locator("[role=gridcell]").first.click()
    wait_for_pick(page, target)
    # an off-grid point from the sliders: no star, the summary says so
    page.fill("#lambda-slider input[type=number]", "0.37")
    page.press("#lambda-slider input[type=number]", "Enter")
    page.click("#pick-button")
    wait_for_pick(page, "")
    page.wait_for_function("() => document.querySelector('#pick-summary').innerText.includes('off-grid')")
    page.screenshot(path=str(tmp_path / "picked.png"))


def test_message_gets_an_answer_in_every_column(page):
    from app.screenshots import send_message, wait_for_plot

    wait_for_plot(page)
    page.fill("#message textarea", "")
    page.click("#send")
    page.wait_for_selector("text=empty message", timeout=30_000)
    send_message(page, "Hello there, who are you?")
    for col in CHAT_COLUMNS:
        text = page.inner_text(f"#chat-{col}")
        assert "Hello there, who are you?" in text and "reward" in text and "cost" in text
    assert "one batch" in page.inner_text("#chat-status")
