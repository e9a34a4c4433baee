"""`peo serve`: the whole PEO family behind one OpenAI-compatible endpoint (FastAPI + uvicorn, both from gradio).

Routes: `GET /v1/models` (the named models and the point syntax with the assets' range), `GET /v1/models/{name}`,
`POST /v1/chat/completions` (streamed as server-sent events with `stream: true`, else one JSON answer), and
`GET /health` (counters: rows, the most rows decoding at once, rows cancelled by a gone client). The `model`
field names a point or a baseline (peo/model_names.py); a name that does not parse or lies outside the assets'
range is a 400.

Why not `transformers serve`: its model field is a hub id (`model@revision`, loaded with `from_pretrained`), one
model per name, and its generate and continuous-batching paths take one generation config for the batch; nothing
in transformers 5.23's `transformers/cli/serve.py` or `cli/serving/` mentions adapters, LoRA, peft or a scale. So
it cannot serve "this base with help × 1.25 and harm × 0.75" per request, let alone mix points in one batch.

Batching: every request is a row of one shared running batch (peo.decode_loop, as the app's chat turns): it
joins at the next step boundary, decodes with its own adapter scales and settings, and leaves at its EOS, its
`max_tokens`, one of its `stop` strings, or when its client goes away; up to `max_batch` rows decode at once.
A row's answer does not depend on its batch-mates (its repetition penalty sees its own tokens, a sampled row
draws from its own generator), so every answer equals the same request made alone, and greedy answers equal the
app's (/chat).

Limits are the app's (peo/chat_limits.py: message size, max_tokens, temperature, top_p, seed, repetition penalty;
defaults are the sweep's decoding from meta.json, greedy); a prompt longer than the context is refused, not
trimmed. The server is in the library layer and imports nothing from app/. `PEO_API_KEY`, when set, must come as
`Authorization: Bearer <key>` (else 401).
"""

from __future__ import annotations

import asyncio
import copy
import hmac
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

from peo.chat_limits import MAX_MESSAGE_TOKENS, ChatInputError, check_message, check_settings, sweep_defaults
from peo.chat_template import encode_chat
from peo.decode_loop import AnyEvent, DecodeLoop, DecodeRequest
from peo.errors import PeoError
from peo.generation import GenerationSettings, Row, decode_rows
from peo.model_names import FamilyRange, ModelNameError, ModelPoint, catalog, parse_model
from peo.records import RunMeta
from peo.running_batch import LENGTH, STOPPED

log = logging.getLogger("peo.serve")

API_KEY_ENV = "PEO_API_KEY"
DEFAULT_MAX_BATCH = 64
MAX_STOP_STRINGS = 8
MAX_STOP_CHARS = 64
ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
KEEPALIVE_SECONDS = 2.0  # a queued stream sends an SSE comment this often: a gone client is noticed while it waits


# ---------------------------------------------------------------- request bodies (what parses; ranges are 400s)

class TextPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[TextPart] | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class ChatRequest(BaseModel):
    """OpenAI's chat completion body; unknown fields are ignored (as OpenAI-compatible servers do)."""

    model_config = ConfigDict(extra="allow")
    model: str
    messages: list[Message]
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    repetition_penalty: float | None = None  # not OpenAI's; as vLLM's extra parameter (default: the sweep's)
    n: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    logprobs: bool | None = None
    tools: list[Any] | None = None


class RequestError(PeoError, ValueError):
    """A request the server refuses (HTTP 400): the message says why, `param` names the field."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.param, self.code = param, code


def error_body(message: str, kind: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


# ---------------------------------------------------------------- one request's row

@dataclass
class Job:
    """One chat completion: its prompt, model, decoding and where its text goes."""

    point: ModelPoint
    messages: list[dict]
    settings: GenerationSettings  # max_new_tokens is this request's max_tokens
    stops: tuple[str, ...]
    prompt_ids: list[int]
    emit: Callable[[tuple], None]  # from the worker thread: ("delta", text), ("done", answer, finish_reason,
    # completion tokens, what of the answer was not yet sent as a delta) or ("error", message)
    cancel: threading.Event = field(default_factory=threading.Event)

    @property
    def prompt_tokens(self) -> int:
        return len(self.prompt_ids)


def visible_text(raw: str, stops: tuple[str, ...], final: bool) -> tuple[str, bool]:
    """(the answer as it may be shown now, whether a stop string ended it).

    The final answer is the app's: the decoded text cut before the first stop string, stripped. Before the end,
    what could still change is held back: leading and trailing whitespace, a tail that may begin a stop string,
    and a trailing partial character (U+FFFD) of a multi-byte token; so what is shown only ever grows and the
    streamed pieces add up to the final answer.
    """
    cut = min((i for i in (raw.find(s) for s in stops) if i >= 0), default=-1)
    if cut >= 0:
        return raw[:cut].strip(), True
    if final:
        return raw.strip(), False
    hold = max((k for s in stops for k in range(1, len(s)) if raw.endswith(s[:k])), default=0)
    text = raw[:len(raw) - hold].rstrip("\ufffd")
    return text.strip(), False


# ---------------------------------------------------------------- the worker: batches of waiting requests

@dataclass
class ServedModel:
    """The policy served: the reference with each aspect's adapter and the joint one side by side (AdapterMix),
    each request's point a set of per-row adapter scales (peo/adapter_mix.py), and its tokenizer. The aspects and
    the range of the family are the assets' (meta.json, `run_meta`)."""

    mix: Any
    tokenizer: Any
    run_meta: RunMeta
    max_context_tokens: int = 1024
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def load(cls, assets, device: str | None = None, max_context_tokens: int = 1024) -> "ServedModel":
        from peo.assets import load_policy_mix

        mix, tokenizer = load_policy_mix(assets, device)
        return cls(mix, tokenizer, assets.run_meta, max_context_tokens)

    @property
    def context_limit(self) -> int:
        """Prompt + answer tokens at most: the app's budget (--max-context-tokens), within the model's positions."""
        n_pos = getattr(self.mix.model.config, "max_position_embeddings", None)
        return min(self.max_context_tokens, int(n_pos)) if n_pos else self.max_context_tokens


class BatchWorker:
    """Puts each request's row into the shared decode loop (peo.decode_loop) and turns its tokens into events."""

    def __init__(self, model: ServedModel, max_batch: int = DEFAULT_MAX_BATCH):
        self.model = model
        self.loop = DecodeLoop(model.mix, model.tokenizer, lock=model.lock, max_rows=max_batch)
        self.stats = {"rows": 0, "max_rows_in_batch": 0, "rows_cancelled": 0, "rows_skipped": 0}

    def close(self) -> None:
        self.loop.close()

    def submit(self, job: Job) -> None:
        if job.cancel.is_set():  # its client left before it was queued
            self.stats["rows_skipped"] += 1
            return
        tokenizer = self.model.tokenizer
        stop_string = threading.Event()  # one of the request's stop strings appeared: the row leaves
        row = decode_rows(tokenizer, [Row(job.messages, job.point.scales)], job.settings)[0]
        row.prompt_ids = job.prompt_ids
        row.stop = AnyEvent(job.cancel, stop_string)
        sent = [""]

        def on_token(_: int) -> None:
            self.stats["max_rows_in_batch"] = max(self.stats["max_rows_in_batch"], len(self.loop.batch))
            text, stopped = visible_text(tokenizer.decode(row.tokens, skip_special_tokens=True), job.stops, False)
            if stopped:
                stop_string.set()
            elif len(text) > len(sent[0]) and text.startswith(sent[0]):
                job.emit(("delta", text[len(sent[0]):]))
                sent[0] = text

        def on_done(request: DecodeRequest) -> None:
            if request.error is not None:
                log.error("generation failed: %s", request.error)
                job.emit(("error", f"generation failed: {request.error}"))
                return
            if row.end == STOPPED and not stop_string.is_set():  # its client went away
                self.stats["rows_cancelled"] += 1
                return
            text, stopped = visible_text(tokenizer.decode(row.tokens, skip_special_tokens=True), job.stops, True)
            rest = text[len(sent[0]):] if text.startswith(sent[0]) else ""
            reason = "length" if row.end == LENGTH and not stopped else "stop"
            job.emit(("done", text, reason, len(row.tokens), rest))

        row.on_token = on_token
        self.stats["rows"] += 1
        self.loop.submit(DecodeRequest([row], on_done=on_done))


# ---------------------------------------------------------------- the app

def _content(message: Message, i: int) -> str:
    if isinstance(message.content, list):
        parts = []
        for part in message.content:
            if part.type != "text" or part.text is None:
                raise RequestError(f"messages[{i}]: only text content parts are supported, got {part.type!r}",
                                   f"messages[{i}].content")
            parts.append(part.text)
        return "\n".join(parts)
    return message.content or ""


def create_app(model: ServedModel, *, max_batch: int = DEFAULT_MAX_BATCH, api_key: str | None = None) -> FastAPI:
    """The FastAPI app over a loaded model; its worker thread starts here."""
    family = FamilyRange.from_run_meta(model.run_meta)
    defaults = sweep_defaults(model.run_meta)
    worker = BatchWorker(model, max_batch)
    created = int(time.time())
    # the worker's tokenizer changes its padding state while it encodes: requests are checked with a copy
    counter = copy.deepcopy(model.tokenizer)
    counter_lock = threading.Lock()

    def count_tokens(fn: Callable[[Any], int]) -> int:
        with counter_lock:
            return fn(counter)

    api = FastAPI(title="peo serve", description="The PEO model family, OpenAI-compatible", version="1")
    api.state.worker, api.state.model, api.state.family = worker, model, family

    @api.exception_handler(RequestError)
    async def _bad_request(request: Request, err: RequestError):
        return JSONResponse(error_body(str(err), param=err.param, code=err.code), status_code=400)

    @api.exception_handler(RequestValidationError)
    async def _unparsable(request: Request, err: RequestValidationError):
        parts = []
        for e in err.errors()[:5]:
            where = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "body"
            parts.append(f"{where}: {e.get('msg')}")
        return JSONResponse(error_body("the request body does not parse: " + "; ".join(parts)), status_code=422)

    @api.exception_handler(StarletteHTTPException)
    async def _http(request: Request, err: StarletteHTTPException):
        kind = "invalid_request_error" if err.status_code < 500 else "server_error"
        return JSONResponse(error_body(str(err.detail), kind, code=getattr(err, "code", None)),
                            status_code=err.status_code, headers=getattr(err, "headers", None))

    @api.exception_handler(Exception)
    async def _bug(request: Request, err: Exception):
        log.exception("%s %s failed", request.method, request.url.path, exc_info=err)
        return JSONResponse(error_body(f"internal error: {type(err).__name__}", "server_error"), status_code=500)

    async def authorized(request: Request) -> None:
        if not api_key:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), api_key.encode()):
            err = StarletteHTTPException(401, "missing or incorrect API key: send Authorization: Bearer <key> "
                                              f"(the key the server was started with in ${API_KEY_ENV})",
                                         headers={"WWW-Authenticate": "Bearer"})
            err.code = "invalid_api_key"
            raise err

    def model_card(point: ModelPoint) -> dict:
        coefficients = point.coefficients or (None,) * len(family.aspects)
        return {"id": point.name, "object": "model", "created": created, "owned_by": "peo",
                "peo": {"method": point.method, "scales": point.scales, "model_id": point.model_id,
                        **dict(zip(family.aspects.coefficient_columns, coefficients))}}

    @api.get("/health")
    async def health() -> dict:
        return {"ready": True, **worker.stats}  # served only once the model is loaded

    @api.get("/v1/models", dependencies=[Depends(authorized)])
    async def models() -> dict:
        return {"object": "list", "data": [model_card(p) for p in catalog(family)],
                "peo": {"syntax": list(family.syntax), "range": family.describe(),
                        "note": "any point in range may be named, not only the listed ones"}}

    @api.get("/v1/models/{name:path}", dependencies=[Depends(authorized)])
    async def model_info(name: str) -> dict:
        try:
            return model_card(parse_model(name, family))
        except ModelNameError as err:
            raise RequestError(str(err), "model", "model_not_found") from None

    def check(body: ChatRequest) -> Job:
        try:
            point = parse_model(body.model, family)
        except ModelNameError as err:
            raise RequestError(str(err), "model", "model_not_found") from None
        for name, value, ok in (("n", body.n, (None, 1)), ("logprobs", body.logprobs, (None, False)),
                                ("frequency_penalty", body.frequency_penalty, (None, 0)),
                                ("presence_penalty", body.presence_penalty, (None, 0))):
            if value not in ok:
                hint = "; for a penalty on repeats send repetition_penalty (CTRL's rule)" if "penalty" in name else ""
                raise RequestError(f"{name}={value!r} is not supported (only {ok[-1]!r}){hint}", name)
        if body.tools:
            raise RequestError("tools are not supported", "tools")
        if not body.messages:
            raise RequestError("messages must hold at least one message", "messages")
        messages = []
        for i, m in enumerate(body.messages):
            if m.role not in ROLES:
                raise RequestError(f"messages[{i}].role {m.role!r} is not supported; use one of {', '.join(ROLES)}",
                                   f"messages[{i}].role")
            try:
                text = check_message(_content(m, i))
            except ChatInputError as err:
                raise RequestError(f"messages[{i}]: {err}", f"messages[{i}].content") from None
            messages.append({"role": ROLES[m.role], "content": text})
        if body.max_tokens is not None and body.max_completion_tokens is not None \
                and body.max_tokens != body.max_completion_tokens:
            raise RequestError("max_tokens and max_completion_tokens differ; give one", "max_tokens")
        max_tokens = body.max_completion_tokens if body.max_completion_tokens is not None else body.max_tokens
        try:
            settings = check_settings(max_tokens, body.temperature, body.top_p, body.seed, body.repetition_penalty,
                                      defaults=defaults)
        except ChatInputError as err:
            text = str(err).replace("max_new_tokens", "max_tokens")
            param = next((p for p in ("max_tokens", "temperature", "top_p", "seed", "repetition_penalty")
                          if text.startswith(p)), None)
            raise RequestError(text, param) from None
        stops = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
        if len(stops) > MAX_STOP_STRINGS or any(not s or len(s) > MAX_STOP_CHARS for s in stops):
            raise RequestError(f"stop takes at most {MAX_STOP_STRINGS} non-empty strings of at most "
                               f"{MAX_STOP_CHARS} characters", "stop")
        for i, m in enumerate(messages):
            n = count_tokens(lambda tok: len(tok(m["content"], add_special_tokens=False)["input_ids"]))
            if n > MAX_MESSAGE_TOKENS:
                raise RequestError(f"messages[{i}] is {n} tokens long; the limit is {MAX_MESSAGE_TOKENS}",
                                   f"messages[{i}].content")
        prompt_ids = count_tokens(lambda tok: encode_chat(tok, messages))
        budget = model.context_limit
        if len(prompt_ids) + settings.max_new_tokens > budget:
            raise RequestError(f"the prompt is {len(prompt_ids)} tokens with the chat template; with max_tokens="
                               f"{settings.max_new_tokens} that passes the context limit of {budget} tokens",
                               "messages", "context_length_exceeded")
        return Job(point, messages, settings, tuple(stops), prompt_ids, emit=lambda event: None)

    @api.post("/v1/chat/completions", dependencies=[Depends(authorized)])
    async def chat_completions(body: ChatRequest, request: Request):
        job = await asyncio.get_running_loop().run_in_executor(None, check, body)
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()
        job.emit = lambda event: loop.call_soon_threadsafe(events.put_nowait, event)
        ident = f"chatcmpl-{uuid.uuid4().hex}"
        head = {"id": ident, "created": int(time.time()), "model": body.model, "system_fingerprint": job.point.model_id}

        def usage(completion_tokens: int) -> dict:
            return {"prompt_tokens": job.prompt_tokens, "completion_tokens": completion_tokens,
                    "total_tokens": job.prompt_tokens + completion_tokens}

        if not body.stream:
            worker.submit(job)
            try:
                while True:
                    try:
                        event = await asyncio.wait_for(events.get(), timeout=0.5)
                    except asyncio.TimeoutError:
                        if await request.is_disconnected():
                            job.cancel.set()
                            return JSONResponse(error_body("client disconnected"), status_code=499)
                        continue
                    if event[0] == "done":
                        break
                    if event[0] == "error":
                        return JSONResponse(error_body(event[1], "server_error"), status_code=500)
            except asyncio.CancelledError:
                job.cancel.set()
                raise
            _, text, reason, n, _ = event
            return {**head, "object": "chat.completion",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": None},
                                 "logprobs": None, "finish_reason": reason}],
                    "usage": usage(n)}

        def chunk(delta: dict, reason: str | None = None) -> str:
            body_ = {**head, "object": "chat.completion.chunk",
                     "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}]}
            return f"data: {json.dumps(body_)}\n\n"

        async def sse():
            worker.submit(job)  # here, not before: a client gone before the stream starts costs no generation
            try:
                yield chunk({"role": "assistant", "content": ""})
                while True:
                    try:
                        event = await asyncio.wait_for(events.get(), timeout=KEEPALIVE_SECONDS)
                    except asyncio.TimeoutError:
                        yield ": waiting\n\n"  # fails once the client is gone: then the row is cancelled
                        continue
                    if event[0] == "delta":
                        yield chunk({"content": event[1]})
                    elif event[0] == "error":
                        yield f"data: {json.dumps(error_body(event[1], 'server_error'))}\n\n"
                        break
                    else:
                        _, text, reason, n, rest = event
                        if rest:
                            yield chunk({"content": rest})
                        yield chunk({}, reason)
                        if body.stream_options and body.stream_options.include_usage:
                            yield f"data: {json.dumps({**head, 'object': 'chat.completion.chunk', 'choices': [], 'usage': usage(n)})}\n\n"  # noqa: E501
                        break
                yield "data: [DONE]\n\n"
            finally:  # a normal end, or the client went away (the send failed, or the task was cancelled)
                job.cancel.set()

        return StreamingResponse(sse(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return api


def serve(assets_dir=None, host: str = "127.0.0.1", port: int = 8000, device: str | None = None,
          max_batch: int = DEFAULT_MAX_BATCH, max_context_tokens: int = 1024) -> int:
    """Load the models, then serve until interrupted (Ctrl-C, SIGTERM)."""
    import uvicorn

    from peo.assets import load_assets

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    assets = load_assets(assets_dir)
    start = time.perf_counter()
    model = ServedModel.load(assets, device, max_context_tokens)
    api = create_app(model, max_batch=max_batch, api_key=os.environ.get(API_KEY_ENV) or None)
    log.info("models loaded in %.1f s on %s; serving %s on http://%s:%d/v1 (API key %s)",
             time.perf_counter() - start, model.mix.device, assets.root, host, port,
             "required" if os.environ.get(API_KEY_ENV) else "off")
    try:
        uvicorn.run(api, host=host, port=port, log_level="info", timeout_graceful_shutdown=5)
    finally:
        api.state.worker.close()
    return 0
