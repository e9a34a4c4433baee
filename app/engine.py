"""The one model instance the app serves: the policy (reference + help/harm/joint LoRA adapters), the evaluators.

Every chat turn is a set of rows, one per chat column, each with its own adapter scales, and every session's
rows decode in ONE running batch (peo.decode_loop): a turn joins at the next step boundary, its rows leave at
their EOS, and no session waits for another's turn to end.

Two ways to form the picked PEO policy θ_ref + Σ c_i·Δ_i over the run's aspects (c_help·Δ_help + c_harm·Δ_harm):
- "adapters" (CPU default): nothing is formed; the picked point is just adapter scales (instant).
- "merged" (default on a GPU): the picked point's task vectors are written into the reference weights in place
  (peo.task_vector.MergedPolicy), and every column's scales become offsets from it (c_column − c_picked), so the
  picked column runs with plain merged weights and the other columns still share the same batch. The weights
  are re-formed only when the batch is empty (a turn for another point meanwhile rides on offsets from the
  merged one).
Either way the time taken to form the policy is reported.

All model work runs under one lock, taken per decoding step: the model is shared by every session. In the
adapters form the evaluators share it too (features are read with the adapters disabled, which is exactly the
reference model), and score between steps.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence

import torch

from app.memory import ModelLock, return_freed_memory
from peo.aspects import DEFAULT_ASPECTS, Aspects
from peo.assets import Assets, default_device, load_policy_mix
from peo.chat_template import encode_chat
from peo.coefficients import coefficients, scales
from peo.decode_loop import DecodeLoop, DecodeRequest, StreamResult
from peo.generation import GenerationSettings, Row, StopSignal, stream_batch
from peo.model_source import resolve_base_model
from peo.names import EXPO, EXPO_CHAT_ALPHA, JOINT, PEO, SOUP

log = logging.getLogger("app")


def column_scales(column: str, *model_key: float, aspects: Aspects = DEFAULT_ASPECTS) -> dict[str, float]:
    """Adapter scales of a chat column for the picked point, given as its model key (peo.records.Pick.model_key:
    the free λs, then the coefficients; two aspects: λ, c_help, c_harm).

    The PEO and soup columns follow the picked point; every other column is a fixed model (the aspects'
    baseline_scales, and ExPO at EXPO_CHAT_ALPHA).
    """
    n_free = len(aspects) - 1
    if len(model_key) != n_free + len(aspects):
        raise ValueError(f"a point over {len(aspects)} aspects has {n_free} free λs and {len(aspects)} coefficients, "
                         f"got {len(model_key)} values")
    if column == PEO:
        return scales(model_key[n_free:], aspects.names)
    if column == SOUP:
        return scales(coefficients(model_key[:n_free]), aspects.names)
    if column == EXPO:
        return {JOINT: EXPO_CHAT_ALPHA}
    if column in aspects.baseline_scales:
        return dict(aspects.baseline_scales[column])  # a copy: callers may change it
    raise KeyError(f"unknown column {column!r}; known: {', '.join(aspects.chat_columns)}")


FOLLOWS_POINT: tuple[str, ...] = (PEO, SOUP)  # the columns whose model changes with the pick (column_scales)
SAME_TOL = 1e-6  # scales closer than this are the same model


def _model_key(scales: Mapping[str, float]) -> tuple:
    """The model a set of adapter scales is: zero scales dropped, so {} (ref) = {"help": 0, "harm": 0}."""
    return tuple(sorted((name, round(float(x) / SAME_TOL)) for name, x in scales.items()
                        if abs(float(x)) > SAME_TOL))


def same_model_columns(columns: Sequence[str], *model_key: float, aspects: Aspects = DEFAULT_ASPECTS) -> dict[str, str]:
    """column → the earlier column (in `columns`' order) that is the same model at the point of `model_key`
    (column_scales).

    E.g. the soup at the default point (ϕ = 0) is PEO, PEO at c = (1, 0) is DPO-Help, at c = (0, 0) the reference.
    Columns that are a model of their own are left out.
    """
    first: dict[tuple, str] = {}
    same: dict[str, str] = {}
    for col in columns:
        key = _model_key(column_scales(col, *model_key, aspects=aspects))
        if key in first:
            same[col] = first[key]
        else:
            first[key] = col
    return same


class Engine:
    def __init__(self, assets: Assets, device: str | None = None, form: str = "auto",
                 max_context_tokens: int = 1024, load_evaluators: bool = True, max_batch_rows: int = 64):
        self.assets = assets
        self.aspects = assets.run_meta.aspect_set
        self.device = device or default_device()
        if form == "auto":
            form = "merged" if self.device.startswith("cuda") else "adapters"
        if form not in ("adapters", "merged"):
            raise ValueError(f"policy form must be 'adapters', 'merged' or 'auto', got {form!r}")
        self.form = form
        self.max_context_tokens = max_context_tokens
        self.want_evaluators = load_evaluators
        self.lock = ModelLock()  # returns each turn's freed memory to the OS on release
        self.mix = None
        self.loop: DecodeLoop | None = None
        self.max_batch_rows = max_batch_rows
        self.tokenizer = None
        self.evaluators = None
        self.merged = None
        self._merged_point: dict[str, float] | None = None
        self.load_seconds: float | None = None
        self.load_error: BaseException | None = None
        self._ready = threading.Event()
        self._started = False
        self._start_lock = threading.Lock()

    # ---------------------------------------------------------------- loading

    def start(self) -> None:
        """Load the models in a background thread (the page is usable before they are)."""
        with self._start_lock:
            if self._started:
                return
            self._started = True
        threading.Thread(target=self._load, name="peo-app-load", daemon=True).start()

    def _load(self) -> None:
        start = time.perf_counter()
        try:
            mix, tokenizer = load_policy_mix(self.assets, self.device)
            evaluators = None
            if self.want_evaluators:
                from peo.scoring import Evaluators

                if self.form == "adapters":  # the policy with its adapters off is the reference: share it
                    evaluators = Evaluators.on_policy(mix.model, tokenizer, self.assets.root, self.aspects)
                else:  # merged weights are not the reference: the evaluators get their own copy
                    evaluators = Evaluators.load(resolve_base_model(self.assets.base_model_spec),
                                                 self.assets.root, self.aspects, device=self.device)
            self.attach(mix, tokenizer, evaluators, self.assets.adapters())
            self.load_seconds = time.perf_counter() - start
            log.info("models loaded in %.1f s (%s, policy form: %s)", self.load_seconds, self.device, self.form)
        except BaseException as err:  # shown to the user on their first chat
            self.load_error = err
            log.exception("loading the models failed")
        finally:
            self._ready.set()

    def attach(self, mix, tokenizer, evaluators, adapters: Mapping[str, object]) -> None:
        """Serve these models (what `start` loads; tests attach their own)."""
        if self.form == "merged":
            from peo.task_vector import MergedPolicy, lora_task_vectors

            aspects = {k: v for k, v in adapters.items() if k in self.aspects.names}
            # the adapters sit on top of the base layers: merge into `...base_layer.weight`
            vectors = {aspect: {name.removesuffix(".weight") + ".base_layer.weight": d for name, d in deltas.items()}
                       for aspect, deltas in lora_task_vectors(aspects).items()}
            self.merged = MergedPolicy(mix.model.base_model.model, vectors)
            self._merged_point = scales((0.0,) * len(self.aspects), self.aspects.names)
        self.mix, self.tokenizer, self.evaluators = mix, tokenizer, evaluators
        self.loop = DecodeLoop(mix, tokenizer, lock=self.lock.without_trim(), max_rows=self.max_batch_rows,
                               on_idle=return_freed_memory, prepare=self._form if self.merged is not None else None)
        with self._start_lock:
            self._started = True
        self._ready.set()

    def wait_ready(self, timeout: float | None = 600) -> None:
        self.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("the models are still loading; try again in a moment")
        if self.load_error is not None:
            raise RuntimeError(f"the models failed to load: {self.load_error}") from self.load_error

    @property
    def ready(self) -> bool:
        return self._ready.is_set() and self.load_error is None

    @property
    def context_limit(self) -> int:
        limit = self.max_context_tokens
        if self.mix is not None:
            n_pos = getattr(self.mix.model.config, "max_position_embeddings", None)
            if n_pos:
                limit = min(limit, int(n_pos))
        return limit

    # ---------------------------------------------------------------- generation

    def _form(self, request: DecodeRequest) -> dict[str, float]:
        """The merged form, before a turn joins an empty batch: write its point into the weights (if it is not
        already there); every row's scales are then offsets from it."""
        point = dict(request.point or {})
        if self._merged_point != point:
            self.merged.set_point(point)
            self._merged_point = point
            if torch.cuda.is_available():
                torch.cuda.synchronize()
        return point

    def stream(self, prompts: Sequence[list[dict]], row_scales: Sequence[Mapping[str, float]],
               settings: GenerationSettings, point: Sequence[float],
               stop: StopSignal | None = None) -> Iterator[list[str] | StreamResult]:
        """Every row's text after each step (the rows join the shared batch); the last item is the StreamResult.

        `point` is the picked coefficients (c_help, c_harm, …): in the merged form it is written into the weights
        first when the batch is empty, and the result's `form_seconds` says how long that took (0 for the adapters
        form: scales only, and for a turn that rode on the point already merged); its `cut` says which answers were
        cut at max_new_tokens. Setting `stop`, or closing this iterator, makes its rows leave after the current step
        (peo.generation.stream_batch).
        """
        self.wait_ready()
        rows = [Row(messages=list(p), scales=dict(s)) for p, s in zip(prompts, row_scales)]
        yield from stream_batch(self.mix, self.tokenizer, rows, settings, stop=stop, loop=self.loop,
                                point=scales(point, self.aspects.names))

    def score(self, prompts: Sequence[list[dict]], answers: Sequence[str]) -> tuple[list[float], ...] | None:
        """Each evaluator's scores of the answers, in the aspects' order (two aspects: rewards, costs), or None
        when the evaluators are not loaded."""
        self.wait_ready()
        if self.evaluators is None:
            return None
        with self.lock:
            scored = self.evaluators.score(list(prompts), list(answers))
        return tuple([float(x) for x in scored[ev]] for ev in self.aspects.evaluators)

    def prompt_tokens(self, messages: list[dict]) -> int:
        return len(encode_chat(self.tokenizer, messages))
