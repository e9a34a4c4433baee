"""The app in a real headless Chromium on the tiny assets: the figure renders, picking moves the highlight,
one message gets a scored answer in every column. Skipped when playwright or /usr/bin/chromium is missing."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from app.screenshots import CHAT_COLUMNS, CHROMIUM

pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
if not Path(CHROMIUM).is_file():
    pytest.skip(f"no Chromium at {CHROMIUM}", allow_module_level=True)


SLOW = threading.Event()  # while set, each generation step of the served app takes at least STEP_SECONDS
STEP_SECONDS = 0.05  # the tiny model writes 256 tokens in about a second: too fast to click Stop during a turn


@pytest.fixture(scope="module")
def assets(request) -> Path:
    prebuilt = os.environ.get("PEO_APP_TEST_ASSETS")
    return Path(prebuilt) if prebuilt else request.getfixturevalue("tiny_assets")


BATCHES: list = []  # every running batch the served app has used (its decode loop's)


@pytest.fixture(scope="module")
def url(assets):
    """The app served in this process (so a test can see its running batch), steps slowed while SLOW."""
    from app.screenshots import serve
    from peo.running_batch import RunningBatch

    join, step = RunningBatch.join, RunningBatch.step

    def joined(self, rows):
        if self not in BATCHES:
            BATCHES.append(self)
        return join(self, rows)

    def slowed(self):
        if SLOW.is_set():
            time.sleep(STEP_SECONDS)
        return step(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(RunningBatch, "join", joined)
        patch.setattr(RunningBatch, "step", slowed)
        demo, address = serve(assets)
        yield address
        demo.close()


def generating() -> bool:
    """Whether the served app has rows decoding (its shared running batch has live rows)."""
    return any(len(batch) for batch in BATCHES)


def wait_until(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def start_long_turn(page, message: str) -> None:
    """Send `message` with 256 new tokens (slowed: ~13 s) and wait until it is being generated."""
    if not page.locator("#max-new-tokens").is_visible():
        page.click("text=Generation settings")  # a closed accordion: its sliders are not on the page yet
    page.fill("#max-new-tokens input[type=number]", "256")
    page.press("#max-new-tokens input[type=number]", "Enter")
    page.fill("#message textarea", message)
    page.click("#send")
    page.wait_for_function("m => document.querySelector('#chat-peo').innerText.includes(m)", arg=message,
                           timeout=60_000)
    assert wait_until(generating, 10), "the turn did not start"


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
    assert page.inner_text("body").count("PEO − soup hypervolume") == 1, "the hypervolume line is shown once"


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
    target = row.locator("[role=gridcell]").nth(1).inner_text().strip()  # the model_id column
    row.locator("[role=gridcell]").first.click()
    wait_for_pick(page, target)
    # an off-grid point typed in: no star (it has no scores of its own), the summary says why no answers
    page.fill("#lambda-input input", "0.37")
    page.press("#lambda-input input", "Enter")
    wait_for_pick(page, "")
    page.wait_for_function("() => document.querySelector('#pick-summary').innerText.includes('off the grid')")
    names = page.evaluate("() => document.querySelector('#front-plot .peo-front-plot').data.map(t => t.name)")
    assert not [n for n in names if n.startswith("picked point")]
    page.screenshot(path=str(tmp_path / "picked.png"))


def test_a_refused_value_picks_nothing(page):
    """λ = 7 typed in: the error is shown beside the picker and nothing is picked (no clamping to λ = 1)."""
    from app.screenshots import click_plot_point, picked_model, wait_for_pick, wait_for_plot

    wait_for_plot(page)
    click_plot_point(page, 1.0, 0.5, 0.0, "c+1.500_+0.000")
    wait_for_pick(page, "c+1.500_+0.000")
    page.wait_for_function("() => document.querySelector('#pick-summary').innerText.includes('c+1.500_+0.000')")
    summary = page.inner_text("#pick-summary")
    for value, match in (("7", "lambda_help=7 is outside the range"), ("-1", "lambda_help=-1 is outside the range")):
        page.fill("#lambda-input input", value)
        page.press("#lambda-input input", "Enter")
        page.wait_for_function("m => document.querySelector('#pick-status').innerText.includes(m)", arg=match,
                               timeout=30_000)
        page.wait_for_function("() => document.querySelector('#lambda-input input').value === '1'", timeout=30_000)
        assert picked_model(page) == "c+1.500_+0.000"
        assert page.inner_text("#pick-summary") == summary
        assert page.input_value("#lambda-slider input[type=range]") == "1"
    assert page.get_by_text("Error", exact=True).count() == 0  # no red overlays


def test_the_front_table_shows_every_column_at_1400_px(page):
    """Beside the figure it hid cost, loops and model_id: under it, every column is in view without scrolling."""
    from app.screenshots import wait_for_plot
    from app.ui import FRONT_COLUMNS

    wait_for_plot(page)
    table = page.locator("#front-table")
    box = table.bounding_box()
    heads = table.locator("th")
    seen = {}
    for i in range(heads.count()):
        head = heads.nth(i)
        text = head.inner_text().strip()
        if text in FRONT_COLUMNS and head.is_visible():
            b = head.bounding_box()
            seen[text] = b["x"] + b["width"] <= box["x"] + box["width"] + 1 and b["width"] >= 20
    assert {"model_id", "cost test (dev)", "loops test (dev)"} <= set(seen) and all(seen.values()), seen
    assert "ordered by test cost" in table.inner_text() or "ordered by test cost" in page.inner_text("body")


def test_boxes_and_sliders_step_by_the_grid(page, assets):
    """ArrowUp on a typed 0.35 goes to the next grid value, 0.5, not to 1; 0.35 itself can still be picked."""
    import json

    from app.screenshots import click_plot_point, wait_for_pick, wait_for_plot
    from app.ui import grid_step

    wait_for_plot(page)
    step = grid_step(json.loads((assets / "meta.json").read_text())["grid"]["lambda_help"])
    assert page.get_attribute("#lambda-slider input[type=range]", "step") == f"{step:g}"
    assert page.get_attribute("#lambda-input input", "step") == f"{step:g}"
    box = "#lambda-input input"
    page.fill(box, "0.35")
    page.press(box, "Enter")  # typed off the grid: picked as typed
    wait_for_pick(page, "")
    page.wait_for_function("() => document.querySelector('#pick-summary').innerText.includes('λ = 0.35')")
    page.press(box, "ArrowUp")
    want = f"{(0.35 // step + 1) * step:g}"
    assert page.input_value(box) == want and float(want) < 1
    click_plot_point(page, 1.0, 0.5, 0.0, "c+1.500_+0.000")  # back on the grid for the tests after this one
    wait_for_pick(page, "c+1.500_+0.000")


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


def test_stop_cancels_the_turn_and_the_next_message_works(page):
    """Stop during a long turn: generation ends at once, the status says stopped, the stopped turn leaves no trace
    and no red overlay, and a new message is answered."""
    from app.screenshots import send_message, wait_for_plot

    wait_for_plot(page)
    page.click("#clear")
    SLOW.set()
    try:
        start_long_turn(page, "Please write a very long essay about the sea.")
        page.click("#stop")
        page.wait_for_function("() => document.querySelector('#chat-status').innerText.includes('Stopped')",
                               timeout=10_000)
        assert wait_until(lambda: not generating(), 2), "Stop left the generation running"
    finally:
        SLOW.clear()
    assert page.get_by_text("Error", exact=True).count() == 0  # Gradio's cancels= marks every output "Error"
    for col in CHAT_COLUMNS:  # the message and the partial answers stay readable, marked
        text = page.inner_text(f"#chat-{col}")
        assert "Please write a very long essay about the sea." in text and "[stopped]" in text, col
    page.fill("#max-new-tokens input[type=number]", "8")
    page.press("#max-new-tokens input[type=number]", "Enter")
    send_message(page, "Hello after the stop.")
    for col in CHAT_COLUMNS:
        text = page.inner_text(f"#chat-{col}")
        assert "Hello after the stop." in text and "very long essay" not in text, col
    assert "one batch" in page.inner_text("#chat-status")


def test_a_closed_page_cancels_its_turn(page):
    """A page closed during a long turn: Gradio closes the turn's generator, which ends the generation."""
    from app.screenshots import wait_for_plot

    other = page.context.browser.new_page(viewport={"width": 1400, "height": 1000})
    other.goto(page.url)
    wait_for_plot(other)
    SLOW.set()
    try:
        start_long_turn(other, "Another very long essay, please, about mountains.")
        other.close()
        assert wait_until(lambda: not generating(), 10), "the closed page's turn is still generating"
    finally:
        SLOW.clear()


def test_every_chat_column_fits_in_one_row(page):
    """With joint DPO and ExPO ticked, all seven chat columns sit side by side at 1400 px (a 6th used to wrap)."""
    from app.screenshots import wait_for_plot
    from peo.aspects import DEFAULT_ASPECTS

    wait_for_plot(page)
    extra = ("Joint DPO", "ExPO")
    for label in extra:
        page.locator("#columns label", has_text=label).click()
    for col in DEFAULT_ASPECTS.chat_columns:
        page.wait_for_selector(f"#chat-{col}", state="visible", timeout=10_000)
    boxes = [page.locator(f"#chat-{col}").bounding_box() for col in DEFAULT_ASPECTS.chat_columns]
    assert len({round(b["y"]) for b in boxes}) == 1, boxes
    for label in extra:
        page.locator("#columns label", has_text=label).click()


def test_the_precomputed_table_reaches_harmful_prompts(page):
    """Both prompt kinds from the top (the first test rows can all be benign), and a kind alone when chosen."""
    from app.screenshots import wait_for_plot

    wait_for_plot(page)
    page.click("text=Precomputed answers of the picked point")
    page.wait_for_selector("#picked-answers [role=gridcell]", timeout=30_000)

    def kinds() -> list[str]:
        rows = page.locator("#picked-answers .virtual-row[role=row]")
        return [rows.nth(i).locator("[role=gridcell]").nth(1).inner_text().strip() for i in range(rows.count())]

    assert kinds()[:2] == ["help", "harm"]
    page.locator("#answer-kind label", has_text="harmful prompts").click()
    page.wait_for_function("() => document.querySelector('#picked-answers').innerText.includes('0 helpful prompts')",
                           timeout=30_000)
    assert set(kinds()) == {"harm"}
    page.locator("#answer-kind label", has_text="both kinds").click()
    page.click("text=Precomputed answers of the picked point")  # closed again for the tests after this one


def test_the_chat_defaults_are_the_sweeps_decoding(page, url, assets):
    """The boxes start at meta.json's generation settings (answer length included) and the note says so."""
    import json

    from app.screenshots import wait_for_plot
    from peo.names import META_FILE

    fresh = page.context.browser.new_page(viewport={"width": 1400, "height": 1000})  # settings as they start
    fresh.goto(url)
    wait_for_plot(fresh)
    fresh.click("text=Generation settings")
    shown = {name: float(fresh.input_value(f"#{key} input[type=number]"))
             for name, key in (("max_new_tokens", "max-new-tokens"), ("temperature", "temperature"),
                               ("top_p", "top-p"), ("seed", "seed"), ("repetition_penalty", "repetition-penalty"))}
    note = fresh.inner_text("#decoding-note")
    fresh.close()
    assert f"at most {shown['max_new_tokens']:g} new tokens" in note
    assert f"repetition penalty {shown['repetition_penalty']:g}" in note
    generation = json.loads((assets / META_FILE).read_text())["generation"]
    assert shown == {name: float(generation[name]) for name in shown}


def test_a_columns_trash_icon_clears_its_history_for_good(page):
    """The trash icon of one column: its history is gone and stays gone on the next turn; the others keep theirs."""
    from app.screenshots import send_message, wait_for_plot

    wait_for_plot(page)
    page.click("#clear")
    send_message(page, "The first message.")
    page.click("#chat-peo button[aria-label=Clear]")
    page.wait_for_function("() => !document.querySelector('#chat-peo').innerText.includes('The first message.')")
    send_message(page, "The second message.")
    peo, ref = page.inner_text("#chat-peo"), page.inner_text("#chat-ref")
    assert "The second message." in peo and "The first message." not in peo
    assert "The first message." in ref and "The second message." in ref


def test_a_send_during_a_turn_says_why_and_keeps_the_text_and_a_bad_value_is_refused(page):
    """Send during a running turn: the status says it is refused and why, and the typed text stays in the box, also
    after the turn ends. A max-tokens value over the limit is refused with a message, not snapped to the limit."""
    from app.chat_panel import BUSY
    from app.screenshots import wait_for_plot

    wait_for_plot(page)
    page.click("#clear")
    SLOW.set()
    try:
        start_long_turn(page, "Please write a very long essay about rivers.")
        assert page.input_value("#message textarea") == "", "the sent message left the box"
        page.fill("#message textarea", "typed while the turn runs")
        page.click("#send")
        page.wait_for_function("m => document.querySelector('#chat-status').innerText.includes(m)",
                               arg=BUSY.split(":")[0].removeprefix("⚠️ "), timeout=10_000)
        time.sleep(1.0)  # the running turn's next steps leave the refusal readable
        assert generating() and BUSY.split(":")[0].removeprefix("⚠️ ") in page.inner_text("#chat-status")
        page.click("#stop")
        assert wait_until(lambda: not generating(), 5)
    finally:
        SLOW.clear()
    page.wait_for_function("() => document.querySelector('#chat-status').innerText.includes('Stopped')",
                           timeout=10_000)
    assert page.input_value("#message textarea") == "typed while the turn runs"

    page.fill("#max-new-tokens input[type=number]", "9999")
    page.click("#send")
    page.wait_for_function("() => document.querySelector('#chat-status').innerText"
                           ".includes('max_new_tokens must be in [1, 512], got 9999')", timeout=10_000)
    assert page.input_value("#max-new-tokens input[type=number]") == "9999", "not snapped"
    assert page.input_value("#message textarea") == "typed while the turn runs"
    page.fill("#max-new-tokens input[type=number]", "8")
