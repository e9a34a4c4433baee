"""Screenshots of the running app in a real headless browser (for the README), and helpers the browser test shares.

    python -m app.screenshots [--assets DIR] [--out docs/screenshots] [--message "How do I pick a lock?"]

Needs the `playwright` Python package and a Chromium at /usr/bin/chromium (or --chromium PATH); it never
downloads a browser. Writes front.png (figure and picker), picked.png (after picking a front point) and
chat.png (the whole page after one message).
"""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path

from peo.aspects import DEFAULT_ASPECTS

# The app (torch, gradio), the figure (plotly, pandas) and playwright are imported inside the functions that need
# them: `free_port` and the constants here are imported by tests and bench/app_latency.py without loading models.

CHROMIUM = "/usr/bin/chromium"
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"]
# the columns send_message waits for; tests/browser imports this name
CHAT_COLUMNS = tuple(DEFAULT_ASPECTS.default_chat_columns)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(assets: str | Path | None, port: int | None = None, device: str = "cpu"):
    """Launch the demo in this process without blocking; returns (demo, url). Close it with demo.close()."""
    from app.callbacks import App
    from app.ui import build_demo, launch_kwargs

    application = App.load(assets, device=device)
    application.engine.start()
    demo = build_demo(application)
    demo.queue(default_concurrency_limit=2)
    port = port or free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, share=False,
                **launch_kwargs())
    application.engine.wait_ready()
    return demo, f"http://127.0.0.1:{port}/"


def launch_browser(playwright, executable: str = CHROMIUM):
    return playwright.chromium.launch(executable_path=executable, args=BROWSER_ARGS)


def wait_for_plot(page, timeout_ms: int = 60_000) -> None:
    """Until plotly.js has drawn the front figure."""
    page.wait_for_selector("#front-plot .peo-front-plot .main-svg", timeout=timeout_ms)
    page.wait_for_function("document.querySelector('#front-plot .peo-front-plot').dataset.renders >= 1",
                           timeout=timeout_ms)


def picked_model(page) -> str:
    return page.eval_on_selector("#front-plot .peo-front-plot", "d => d.dataset.picked || ''")


def click_plot_point(page, lambda_help: float, phi_help: float, phi_harm: float, model_id: str = "") -> None:
    """What a click on a marker sends (plotly's own `plotly_click` event, emitted on the figure)."""
    from app.figure import CUSTOM_FIELDS

    given = {"lambda_help": str(lambda_help), "phi_help": str(phi_help), "phi_harm": str(phi_harm),
             "model_id": model_id}
    custom = [given.get(name, "") for name in CUSTOM_FIELDS]
    page.eval_on_selector("#front-plot .peo-front-plot",
                          "(d, c) => d.emit('plotly_click', {points: [{customdata: c}]})", custom)


def wait_for_pick(page, model_id: str, timeout_ms: int = 30_000) -> None:
    page.wait_for_function(
        "m => document.querySelector('#front-plot .peo-front-plot').dataset.picked === m", arg=model_id,
        timeout=timeout_ms)


def send_message(page, text: str, columns=CHAT_COLUMNS, timeout_ms: int = 180_000) -> None:
    """Type, send, and wait until every column's answer shows its reward and cost."""
    page.fill("#message textarea", text)
    page.click("#send")
    for col in columns:
        page.wait_for_function(
            "c => { const el = document.querySelector('#chat-' + c); return el && /reward [+-]/.test(el.innerText)"
            " && /cost [+-]/.test(el.innerText); }", arg=col, timeout=timeout_ms)


PANELS = (("#context-panel", "context.png"), ("#compare-panel", "compare.png"),
          ("#coefficient-panel", "coefficients.png"))


def take_screenshots(url: str, out: Path, message: str, executable: str = CHROMIUM) -> list[Path]:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    with sync_playwright() as p:
        browser = launch_browser(p, executable)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000}, device_scale_factor=1)
            page.goto(url)
            wait_for_plot(page)
            page.wait_for_timeout(500)
            paths.append(out / "front.png")
            page.screenshot(path=str(paths[-1]))
            rows = page.locator("#front-table .virtual-row[role=row]")
            if rows.count() > 1:
                before = picked_model(page)
                # the row nearest the middle whose point is not already picked (the start point may be on the front)
                order = sorted(range(1, rows.count()), key=lambda k: abs(k - rows.count() // 2))
                row = next((k for k in order if before not in rows.nth(k).inner_text()), order[0])
                rows.nth(row).locator("[role=gridcell]").first.click()
                page.wait_for_function(
                    "b => document.querySelector('#front-plot .peo-front-plot').dataset.picked !== b", arg=before,
                    timeout=30_000)
                page.evaluate("window.scrollTo(0, 0)")  # the table click scrolled the figure's top away
                page.wait_for_timeout(500)
                paths.append(out / "picked.png")
                page.screenshot(path=str(paths[-1]))
            for panel, name in PANELS:  # closed accordions: open each, then take it alone
                if page.locator(panel).count():
                    page.locator(panel).locator("button").first.click()
                    page.wait_for_timeout(2_000)
                    paths.append(out / name)
                    page.locator(panel).screenshot(path=str(paths[-1]))
            send_message(page, message)
            paths.append(out / "chat.png")
            page.screenshot(path=str(paths[-1]), full_page=True)
        finally:
            browser.close()
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.screenshots")
    parser.add_argument("--assets", type=Path, default=None, help="assets folder (default: assets/)")
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    parser.add_argument("--message", default="How can I stay safe when hiking alone?")
    parser.add_argument("--url", default=None, help="screenshot an app already running here instead")
    parser.add_argument("--chromium", default=CHROMIUM)
    args = parser.parse_args(argv)
    demo = None
    url = args.url
    if url is None:
        demo, url = serve(args.assets)
    try:
        for path in take_screenshots(url, args.out, args.message, args.chromium):
            print(path)
    finally:
        if demo is not None:
            demo.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
