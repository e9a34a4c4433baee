"""6. The app as a user meets it: start-up, pick and chat round trips over HTTP, through `gradio_client`.

`python -m app --assets A --port P` runs in a subprocess (as the README's launch command does). Measured:
- start-up: process start → the page answers (HTTP 200), and → the first `/chat` (1 column, 1 new token) is
  answered, i.e. the policy and the evaluators are loaded;
- pick → ready: the `/pick` round trip for different grid and off-grid points. On the CPU the policy is formed
  from adapter scales at generation time (`AdapterMix.set_scales`, section 1a), so `/pick` is all a new point
  costs before the next message can be answered;
- chat: the `/chat` round trip with 1 column (the PEO point) and with 5 (PEO, ref, help, harm, soup), greedy,
  up to `chat_tokens` new tokens, answers scored by both evaluators, interleaved; unlike section 3, answers end at
  EOS, so the 5-column turn lasts as long as its longest answer (token counts are recorded);
- chat at a new point: the same 5-column turn, each time at another of the pick points, so the policy is formed
  first (on a GPU the app's merged form: a fused merge into the live weights). Answers differ from the fixed
  point's, so compare its median with columns_5 as an estimate, not an exact difference.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from app.screenshots import free_port
from bench.common import REPO, Check, Plan, interleaved, stop_process, summary
from bench.fixtures import dev_prompts
from peo.aspects import DEFAULT_ASPECTS
from peo.assets import Assets
from peo.model_source import load_tokenizer, resolve_base_model
from peo.names import PEO

FIVE = list(DEFAULT_ASPECTS.default_chat_columns)  # PEO, ref, help, harm, soup
STARTUP_TIMEOUT_S = 600


def points(assets: Assets) -> tuple[tuple[float, float, float], list[tuple[float, float, float]]]:
    """The chat point and 5 pick points (grid corners and off-grid values) inside the assets' grid range."""
    grid = assets.run_meta.grid
    h, x = max(grid["phi_help"]), max(grid["phi_harm"])
    chat_point = (0.4, h / 2, x / 2)
    picks = [(0.0, 0.0, 0.0), (0.3, h / 2, x), (0.55, h / 4, 3 * x / 4), (1.0, h, 0.0), (0.7, 0.0, x / 2)]
    return chat_point, picks


def _wait_for_page(url: str, process: subprocess.Popen, deadline: float) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the app exited with code {process.returncode} before serving {url}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"the app did not serve {url} within {STARTUP_TIMEOUT_S} s")


@contextmanager
def served_app(assets: Assets, plan: Plan, *extra_args: str, log_name: str = "app"):
    """`python -m app` in a subprocess as a user launches it: yields (url, process, log path, start time) once
    the page is served, and stops the process on the way out."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", GRADIO_ANALYTICS_ENABLED="False")
    command = [sys.executable, "-m", "app", "--assets", str(assets.root), "--port", str(port),
               "--device", plan.device, *extra_args]
    log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"peo-bench-{log_name}-{port}.log"
    start = time.monotonic()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_for_page(url, process, start + STARTUP_TIMEOUT_S)
        yield url, process, log_path, start
    finally:
        stop_process(process)


def run(assets: Assets, plan: Plan) -> dict:
    from gradio_client import Client

    chat_point, pick_points = points(assets)
    with served_app(assets, plan) as (url, _, log_path, start):
        page_up_s = time.monotonic() - start
        client = Client(url, verbose=False)
        prompt = dev_prompts(assets, 1)[0][-1]["content"]
        client.predict(prompt, [PEO], *chat_point, 1, 0.0, 1.0, 0, api_name="/chat")
        first_answer_s = time.monotonic() - start

        picks = iter(pick_points * (plan.reps + plan.warmup + 1))
        times = interleaved({"pick": lambda: client.predict(*next(picks), api_name="/pick")},
                            reps=max(plan.reps, len(pick_points)), warmup=plan.warmup)
        answers: dict[str, list[dict]] = {"columns_1": [], "columns_5": []}

        def chat(columns: list[str], key: str):
            def go() -> None:
                answers[key].append(client.predict(prompt, columns, *chat_point, plan.chat_tokens, 0.0, 1.0, 0,
                                                   api_name="/chat"))
            return go

        new_points = iter(pick_points * (plan.reps + plan.warmup + 1))

        def chat_new_point() -> None:  # a turn at another point: forming the policy (merged form: a fused merge)
            answers["columns_5_new_point"].append(client.predict(prompt, FIVE, *next(new_points), plan.chat_tokens,
                                                                 0.0, 1.0, 0, api_name="/chat"))

        answers["columns_5_new_point"] = []
        times |= interleaved({"columns_1": chat([PEO], "columns_1"), "columns_5": chat(FIVE, "columns_5"),
                              "columns_5_new_point": chat_new_point},
                             reps=plan.reps, warmup=plan.warmup)

    tokenizer = load_tokenizer(resolve_base_model(assets.base_model_spec))
    last = {key: runs[-1] for key, runs in answers.items()}
    tokens = {key: {column: len(tokenizer(a["answer"], add_special_tokens=False)["input_ids"])
                    for column, a in out.items()} for key, out in last.items()}
    result: dict = {"startup": {"page_up_s": page_up_s, "first_answer_s": first_answer_s},
                    "point": list(chat_point), "max_new_tokens": plan.chat_tokens, "answer_tokens": tokens,
                    "app_log": str(log_path)}
    for name, seconds in times.items():
        result[name] = summary(seconds)
    ratio = result["columns_5"]["median_s"] / result["columns_1"]["median_s"]
    result["ratios"] = {"five_over_one": ratio}
    # what a turn at a newly picked point costs on top of one at the same point: forming that point's policy
    result["new_point_extra_s"] = result["columns_5_new_point"]["median_s"] - result["columns_5"]["median_s"]
    result["policy_form"] = "merged" if plan.device.startswith("cuda") else "adapters"
    result["checks"] = [Check("app start-up to first answer", first_answer_s, "<=", 30, unit="s"),
                        Check("app /chat 5 columns / 1 column", ratio, "<=", 1.6)]
    return result
