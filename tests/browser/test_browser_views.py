"""The research views in a real headless Chromium on the tiny assets: answers side by side, a pick from the
coefficient-space figure, an off-grid point scored on demand. Skipped when playwright or Chromium is missing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.screenshots import CHROMIUM

pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
if not Path(CHROMIUM).is_file():
    pytest.skip(f"no Chromium at {CHROMIUM}", allow_module_level=True)

WIDTH = 1400


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
        page = browser.new_page(viewport={"width": WIDTH, "height": 1000})
        page.goto(url)
        yield page
        browser.close()


def open_accordion(page, elem_id: str) -> None:
    page.locator(f"#{elem_id} > button").first.click()


def pick_typed(page, lambda_help: float) -> None:
    """Type λ into the picker's box (the ϕ as they are: the point stays off the grid) and pick."""
    page.fill("#lambda-input input", str(lambda_help))
    page.click("#pick-button")


def test_compare_view_shows_answers_side_by_side(page):
    from app.screenshots import wait_for_plot

    wait_for_plot(page)
    open_accordion(page, "compare-panel")
    first = page.locator("#compare-view .peo-prompt").first
    first.wait_for(state="visible", timeout=30_000)
    answers = first.locator(".peo-answer")
    assert answers.count() >= 3
    boxes = [answers.nth(i).bounding_box() for i in range(answers.count())]
    assert len({round(b["y"]) for b in boxes[:3]}) == 1  # the first three on one line: side by side
    assert all(b["x"] + b["width"] <= WIDTH for b in boxes)
    assert page.evaluate("() => document.documentElement.scrollWidth") <= WIDTH  # no horizontal scrolling
    page.locator("#compare-aspect label", has_text="harm prompts").click()
    page.wait_for_function("() => [...document.querySelectorAll('#compare-view .peo-prompt-head')]"
                           ".every(h => h.innerText.startsWith('harm'))")


def test_compare_rows_download_as_csv(page):
    from app.compare_view import COMPARE_CSV_COLUMNS
    from app.screenshots import wait_for_plot

    wait_for_plot(page)
    if not page.locator("#compare-view").is_visible():
        open_accordion(page, "compare-panel")
    with page.expect_download(timeout=30_000) as download:
        page.click("#compare-download")
        page.locator("#compare-file a").first.click(timeout=30_000)
    header = Path(download.value.path()).read_text().splitlines()[0]
    assert header == ",".join(COMPARE_CSV_COLUMNS)


def test_coefficient_view_click_picks_a_point(page):
    from app.screenshots import picked_model, wait_for_pick, wait_for_plot

    wait_for_plot(page)
    open_accordion(page, "coefficient-panel")
    page.wait_for_selector("#coefficient-plot .peo-front-plot .main-svg", timeout=30_000)
    start = picked_model(page)
    target = "c+1.500_+0.000"  # λ = 1, ϕ_help = 0.5, ϕ_harm = 0 on the tiny grid
    assert target != start
    custom = page.evaluate(
        "m => document.querySelector('#coefficient-plot .peo-front-plot').data[0].customdata.find(c => c[3] === m)",
        target)
    assert custom is not None
    page.eval_on_selector("#coefficient-plot .peo-front-plot",
                          "(d, c) => d.emit('plotly_click', {points: [{customdata: c}]})", custom)
    wait_for_pick(page, target)
    page.wait_for_function(
        "m => document.querySelector('#coefficient-plot .peo-front-plot').dataset.picked === m", arg=target)


def test_offgrid_point_is_scored_on_demand(page):
    """Once scored, the point is shown as scored everywhere: summary, star (under its diamond), compare view."""
    from app.figure import PICKED_NAME, SCORED_NAME
    from app.screenshots import wait_for_pick, wait_for_plot

    wait_for_plot(page)
    pick_typed(page, 0.37)
    wait_for_pick(page, "")  # off-grid: no star
    page.wait_for_function("() => /off[- ](the )?grid/.test(document.querySelector('#pick-summary').innerText)")
    page.click("#score-offgrid")
    page.wait_for_function("() => document.querySelector('#score-status').innerText.startsWith('Scored c+')",
                           timeout=120_000)
    page.wait_for_function(
        "n => [...document.querySelector('#front-plot .peo-front-plot').data].some(t => t.name === n)",
        arg=SCORED_NAME, timeout=30_000)
    page.wait_for_function("() => document.querySelector('#pick-summary').innerText.includes('Scored on demand')",
                           timeout=30_000)
    assert "no precomputed scores" not in page.inner_text("#pick-summary")
    names = page.evaluate("() => [...document.querySelector('#front-plot .peo-front-plot').data].map(t => t.name)")
    assert names.index(PICKED_NAME) < names.index(SCORED_NAME)  # the diamond drawn over the star
    if not page.locator("#compare-view").is_visible():  # opened by an earlier test of this page, or not
        open_accordion(page, "compare-panel")
    page.wait_for_function("() => (document.querySelector('#compare-view')?.innerText || '')"
                           ".includes('scored on demand')", timeout=30_000)
    first = page.locator("#compare-view .peo-prompt").first.locator(".peo-answer").first
    assert "not run on this prompt" not in first.inner_text()  # the picked column: its scored answer
