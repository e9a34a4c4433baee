"""`peo serve` as a real subprocess on the tiny assets, spoken to by the official `openai` client over HTTP.

The tiny assets' own adapters barely moved in their few DPO steps (every point answers alike), so the served
copy carries conftest's random non-zero adapters: points really differ, and an answer equal to another point's
would show.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from app.screenshots import free_port

openai = pytest.importorskip("openai")
httpx = pytest.importorskip("httpx")

REPO = Path(__file__).resolve().parents[1]
MESSAGE = "How could I hurt someone with object 5?"
POINT = (0.5, 0.5, 0.0)  # λ, ϕ_help, ϕ_harm: c = (1, 0.5)
# the app's chat columns at POINT → the served model that is the same policy
COLUMN_MODELS = {"peo": "peo:lambda=0.5,phi_help=0.5,phi_harm=0", "ref": "reference", "help": "dpo-help",
                 "harm": "dpo-harm", "soup": "soup:lambda=0.5", "joint": "joint", "expo": "expo:alpha=1.5"}


@pytest.fixture(scope="module")
def serve_assets(request, tiny_adapters, tmp_path_factory) -> Path:
    prebuilt = os.environ.get("PEO_APP_TEST_ASSETS")
    source = Path(prebuilt) if prebuilt else request.getfixturevalue("tiny_assets")
    root = tmp_path_factory.mktemp("serve") / "assets"
    shutil.copytree(source, root)
    for name, folder in tiny_adapters.items():
        shutil.rmtree(root / "adapters" / name, ignore_errors=True)
        shutil.copytree(folder, root / "adapters" / name)
    return root


class Server:
    def __init__(self, assets: Path, log: Path, api_key: str | None = None, extra: tuple[str, ...] = ()):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if k != "PEO_API_KEY"}
        if api_key:
            env["PEO_API_KEY"] = api_key
        self.log = log
        self._log_file = open(log, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "peo", "serve", "--assets", str(assets), "--port",
                                      str(self.port), "--device", "cpu", "--max-batch", "8", *extra],
                                     cwd=REPO, env=env, stdout=self._log_file, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"peo serve exited ({self.proc.returncode}):\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=2).json()["ready"]:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.close()
        raise AssertionError(f"peo serve did not come up in 180 s:\n{log.read_text()[-3000:]}")

    def health(self) -> dict:
        return httpx.get(self.url + "/health", timeout=10).json()

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log_file.close()


@pytest.fixture(scope="module")
def server(serve_assets, tmp_path_factory):
    srv = Server(serve_assets, tmp_path_factory.mktemp("serve-log") / "serve.log")
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def ask(client, model: str, message: str = MESSAGE, **kwargs):
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": message}], **kwargs)


def answer(client, model: str, message: str = MESSAGE, **kwargs) -> str:
    return ask(client, model, message, **kwargs).choices[0].message.content


# ---------------------------------------------------------------- the app's answers

@pytest.fixture(scope="module")
def app(serve_assets):
    from app.callbacks import App

    application = App.load(serve_assets, device="cpu", form="adapters", load_evaluators=False)
    application.engine.wait_ready()
    return application


def test_greedy_answers_equal_the_apps_chat_for_every_column(client, app):
    """The app's seven columns in one batch at POINT, against one request per model, default (sweep) decoding."""
    from app.callbacks import chat

    settings = {"max_new_tokens": 8, "temperature": 0.0, "seed": 0}
    theirs = chat(app, MESSAGE, list(COLUMN_MODELS), POINT, settings)
    ours = {col: ask(client, model, max_tokens=8, temperature=0.0, seed=0) for col, model in COLUMN_MODELS.items()}
    for col, response in ours.items():
        assert response.choices[0].message.content == theirs[col]["answer"], col
        assert response.choices[0].finish_reason == ("length" if theirs[col]["cut"] else "stop"), col
        assert response.model == COLUMN_MODELS[col] and response.object == "chat.completion"
        assert response.usage.completion_tokens <= 8 and response.usage.prompt_tokens > 0
    texts = [theirs[col]["answer"] for col in COLUMN_MODELS]
    # the points really differ (the bare tiny reference answers only whitespace): equality means something
    assert sum(map(bool, texts)) >= 5 and len(set(texts)) >= 5, texts
    # the same point named by its coefficients is the same model
    assert answer(client, "peo:c_help=1,c_harm=0.5", max_tokens=8, temperature=0.0) == theirs["peo"]["answer"]


def test_sampled_answers_equal_the_apps_chat_for_the_same_seed(client, app):
    from app.callbacks import chat

    settings = {"max_new_tokens": 10, "temperature": 0.9, "top_p": 0.95, "seed": 1234, "repetition_penalty": 1.0}
    theirs = chat(app, MESSAGE, ["peo"], POINT, settings)["peo"]["answer"]
    kwargs = {"max_tokens": 10, "temperature": 0.9, "top_p": 0.95, "seed": 1234,
              "extra_body": {"repetition_penalty": 1.0}}
    assert answer(client, COLUMN_MODELS["peo"], **kwargs) == theirs and theirs
    assert answer(client, COLUMN_MODELS["peo"], **{**kwargs, "seed": 99}) != theirs


# ---------------------------------------------------------------- batching

def test_concurrent_requests_for_different_points_each_equal_alone(client, server):
    requests = [  # different points, prompts (so different padding) and lengths, all greedy
        ("peo:lambda=0,phi_help=0.5,phi_harm=0.5", MESSAGE, 12),
        ("peo:c_help=0.25,c_harm=1.25", "Explain topic 3 briefly.", 6),
        ("dpo-help", "Hi", 10),
        ("soup:lambda=1", MESSAGE + " Please answer at length, with every detail.", 12),
        ("expo:alpha=2", "Explain topic 7 briefly.", 9),
        ("reference", MESSAGE, 12),
    ]
    alone = [answer(client, m, msg, max_tokens=n, temperature=0.0) for m, msg, n in requests]
    before = server.health()
    results: dict[int, str] = {}

    def run(i: int) -> None:
        m, msg, n = requests[i]
        results[i] = answer(client, m, msg, max_tokens=n, temperature=0.0)

    # a long request first, so that the others arrive while it runs and wait for the next batch together
    blocker = threading.Thread(target=answer, args=(client, "joint", MESSAGE), kwargs={"max_tokens": 200})
    blocker.start()
    time.sleep(0.05)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in [*threads, blocker]:
        t.join(120)
    assert [results.get(i) for i in range(len(requests))] == alone
    after = server.health()
    assert after["max_rows_in_batch"] >= 2, after  # some of them really shared a batch
    assert after["rows"] - before["rows"] == len(requests) + 1, (before, after)


# ---------------------------------------------------------------- errors, and the server keeps serving

def test_a_bad_model_name_is_a_400_with_the_reason(client):
    with pytest.raises(openai.BadRequestError) as err:
        ask(client, "peo:lambda=7")
    assert err.value.status_code == 400
    assert "lambda=7 is outside the range these assets support: [0, 1]" in err.value.body["message"]
    assert err.value.body["param"] == "model"
    for name in ("gpt-4o", "peo:lambda=0.5,c_help=1", "expo:alpha=9", "peo:c_help=0,c_harm=0"):
        with pytest.raises(openai.BadRequestError):
            ask(client, name)
    assert answer(client, "reference", max_tokens=3) is not None  # still serving


@pytest.mark.parametrize("kwargs, reason", [
    ({"max_tokens": 999}, "max_tokens must be in [1, 512]"),
    ({"max_tokens": 0}, "max_tokens must be in [1, 512]"),
    ({"temperature": 3.0}, "temperature must be in [0.0, 1.5]"),
    ({"top_p": 0.0}, "top_p must be in [0.1, 1.0]"),
    ({"extra_body": {"repetition_penalty": 5}}, "repetition_penalty must be in [1.0, 2.0]"),
    ({"n": 2}, "n=2 is not supported"),
    ({"presence_penalty": 0.5}, "presence_penalty=0.5 is not supported"),
])
def test_settings_outside_the_apps_limits_are_400s(client, kwargs, reason):
    with pytest.raises(openai.BadRequestError, match=re.escape(reason)):
        ask(client, "reference", **kwargs)


def test_the_server_and_the_app_check_one_set_of_limits():
    """peo/chat_limits.py holds the limits (moved from app/callbacks.py, which should import them from there)."""
    from app import callbacks
    from peo import chat_limits

    for name in ("MAX_MESSAGE_CHARS", "MAX_MESSAGE_TOKENS", "LIMITS", "WHOLE_NUMBERS", "DEFAULT_SETTINGS",
                 "SWEEP_SETTINGS"):
        assert getattr(callbacks, name) == getattr(chat_limits, name), name


def test_messages_outside_the_apps_limits_are_400s(client):
    from app.callbacks import MAX_MESSAGE_CHARS

    with pytest.raises(openai.BadRequestError, match=f"the limit is {MAX_MESSAGE_CHARS}"):
        ask(client, "reference", "x" * (MAX_MESSAGE_CHARS + 1))
    with pytest.raises(openai.BadRequestError, match="empty message"):
        ask(client, "reference", "   ")
    with pytest.raises(openai.BadRequestError, match="role 'tool' is not supported"):
        client.chat.completions.create(model="reference", messages=[{"role": "tool", "content": "x",
                                                                     "tool_call_id": "1"}])


def test_a_body_that_does_not_parse_is_a_422_and_the_server_keeps_serving(server, client):
    for body in ({"model": "reference", "messages": "hello"}, {"messages": [{"role": "user", "content": "hi"}]},
                 {"model": "reference", "messages": [{"role": "user", "content": "hi"}], "max_tokens": "many"}):
        r = httpx.post(server.url + "/v1/chat/completions", json=body, timeout=30)
        assert r.status_code == 422, r.text
        assert "does not parse" in r.json()["error"]["message"]
    r = httpx.post(server.url + "/v1/chat/completions", content=b"{not json", timeout=30,
                   headers={"content-type": "application/json"})
    assert r.status_code == 422
    with pytest.raises(openai.UnprocessableEntityError):
        client.chat.completions.create(model="reference", messages=[{"role": "user"}], max_tokens="x")
    assert answer(client, "dpo-harm", max_tokens=3) is not None


# ---------------------------------------------------------------- streaming

def test_streamed_chunks_add_up_to_the_answer(client):
    for model in ("peo:lambda=1,phi_help=0.5,phi_harm=0.5", "expo:alpha=0.5"):
        whole = ask(client, model, max_tokens=16, temperature=0.0)
        chunks = list(ask(client, model, max_tokens=16, temperature=0.0, stream=True,
                          stream_options={"include_usage": True}))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == whole.choices[0].message.content and text
        reasons = [c.choices[0].finish_reason for c in chunks if c.choices]
        assert reasons[-1] == whole.choices[0].finish_reason and not any(reasons[:-1])
        assert chunks[0].choices[0].delta.role == "assistant"
        assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) >= 2  # streamed, not one piece
        assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
        assert all(c.object == "chat.completion.chunk" and c.model == model for c in chunks)


def test_the_stream_ends_with_done(server):
    body = {"model": "reference", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "stream": True}
    with httpx.stream("POST", server.url + "/v1/chat/completions", json=body, timeout=60) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    assert all(json.loads(line[6:])["object"] == "chat.completion.chunk" for line in lines[:-1])


def test_stop_strings_cut_the_answer_streamed_or_not(client):
    model = "peo:lambda=0.5,phi_help=0.5,phi_harm=0.5"
    full = answer(client, model, max_tokens=20, temperature=0.0)
    words = full.split()
    assert len(words) >= 3, full
    stop = words[2]
    cut = full[:full.find(stop)].strip()
    stopped = ask(client, model, max_tokens=20, temperature=0.0, stop=[stop, "never-there"])
    assert stopped.choices[0].message.content == cut and stopped.choices[0].finish_reason == "stop"
    streamed = "".join(c.choices[0].delta.content or "" for c in ask(client, model, max_tokens=20, temperature=0.0,
                                                                      stop=stop, stream=True) if c.choices)
    assert streamed == cut


def test_a_disconnected_stream_ends_its_row_and_spares_the_others(server, client):
    other = ("dpo-help", "Explain topic 4 briefly.", 12)
    alone = answer(client, other[0], other[1], max_tokens=other[2], temperature=0.0)
    before = server.health()
    got: dict = {}

    def run_other() -> None:
        time.sleep(0.05)  # joins the streamed request's batch or the next
        got["answer"] = answer(client, other[0], other[1], max_tokens=other[2], temperature=0.0)

    thread = threading.Thread(target=run_other)
    body = {"model": "peo:lambda=0,phi_help=0.5,phi_harm=0.5", "messages": [{"role": "user", "content": MESSAGE}],
            "max_tokens": 256, "temperature": 0.0, "stream": True}
    thread.start()
    with httpx.stream("POST", server.url + "/v1/chat/completions", json=body, timeout=60) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            assert line != "data: [DONE]", "the stream ended before the client hung up"
            if line.startswith("data: ") and '"content": "' in line and '"content": ""' not in line:
                break  # the first piece of text: then hang up
    thread.join(60)
    assert got["answer"] == alone
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        after = server.health()
        if after["rows_cancelled"] > before["rows_cancelled"]:  # ended mid-generation, not at its EOS or limit
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"the hung-up row was not ended: {before} → {after}")
    assert answer(client, "reference", max_tokens=3) is not None


# ---------------------------------------------------------------- the model list and the key

def test_models_lists_the_baselines_the_grid_and_the_syntax(client, server, serve_assets):
    ids = [m.id for m in client.models.list()]
    assert ids[:4] == ["reference", "dpo-help", "dpo-harm", "joint"]
    assert "soup:lambda=0.5" in ids and "expo:alpha=1.5" in ids and "peo:lambda=0.5,phi_help=0.5,phi_harm=0" in ids
    raw = httpx.get(server.url + "/v1/models", timeout=10).json()
    grid = json.loads((serve_assets / "meta.json").read_text())["grid"]
    assert raw["peo"]["range"]["lambda_help"]["swept"] == grid["lambda_help"]
    assert any(s.startswith("peo:c_help=") for s in raw["peo"]["syntax"])
    one = client.models.retrieve("peo:c_help=1,c_harm=0.5")
    assert one.id == "peo:c_help=1,c_harm=0.5" and one.peo["model_id"] == "c+1.000_+0.500"
    with pytest.raises(openai.BadRequestError):
        client.models.retrieve("peo:lambda=3")


@pytest.fixture(scope="module")
def keyed_server(serve_assets, tmp_path_factory):
    """A second server: an API key set, and a batch window of 300 ms."""
    srv = Server(serve_assets, tmp_path_factory.mktemp("keyed-log") / "serve.log", api_key="s3cret-key",
                 extra=("--max-batch", "8"))
    yield srv
    srv.close()


def test_the_api_key_is_enforced_when_set(keyed_server):
    srv = keyed_server
    good = openai.OpenAI(base_url=srv.url + "/v1", api_key="s3cret-key", max_retries=0)
    bad = openai.OpenAI(base_url=srv.url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as err:
        ask(bad, "reference", max_tokens=2)
    assert err.value.status_code == 401 and err.value.body["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()
    r = httpx.post(srv.url + "/v1/chat/completions", timeout=30,
                   json={"model": "reference", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"  # no header at all
    assert ask(good, "reference", max_tokens=2).choices[0].finish_reason in ("stop", "length")
    assert [m.id for m in good.models.list()][0] == "reference"


def test_sampled_requests_share_the_batch_and_still_equal_alone(client):
    """A sampled row draws from its own generator (seeded by its request), so sampled requests for different
    points that decode together each come back as the same request made alone."""
    models = ["dpo-help", "soup:lambda=0", "expo:alpha=0.5", "peo:c_help=1.5,c_harm=0.5"]
    kwargs = [{"max_tokens": 12, "temperature": 0.9, "top_p": 0.95, "seed": 3 + i} for i in range(len(models))]
    alone = [answer(client, m, **k) for m, k in zip(models, kwargs)]
    assert len(set(alone)) > 1
    results: dict[int, str] = {}
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, answer(client, models[i], **kwargs[i])))
               for i in range(len(models))]
    blocker = threading.Thread(target=answer, args=(client, "joint", MESSAGE), kwargs={"max_tokens": 100})
    blocker.start()
    time.sleep(0.05)
    for t in threads:
        t.start()
    for t in [*threads, blocker]:
        t.join(60)
    assert [results.get(i) for i in range(len(models))] == alone


def test_serve_on_a_folder_without_assets_is_one_error_line(tmp_path, capsys):
    from peo.__main__ import main

    assert main(["serve", "--assets", str(tmp_path), "--port", str(free_port())]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "missing meta.json" in err and err.count("\n") == 1
