"""One generation loop for every user: chat turns and served requests join the same running batch.

A worker thread owns a `RunningBatch`. Requests (a set of rows: a chat turn's columns, a served completion)
are queued from any thread; at each step boundary the waiting rows join (up to `max_rows`), one step decodes a
token for every live row, and the rows that ended leave. So 8 sessions' turns run as one batch of their rows,
not one after another behind a lock, and each row's answer is the one it would get alone
(peo.running_batch). The model lock is taken per step (other model work, e.g. scoring, runs between steps),
and `on_idle` runs under it whenever the batch empties (the app returns freed memory to the OS there).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field

from peo.running_batch import EOS, LENGTH, STOPPED, DecodeRow, RunningBatch, StopSignal

_TICK = object()  # "your rows moved one step": the consumer re-reads its rows' tokens


@dataclass
class StreamResult:
    """What a finished request returns: per row its answer, tokens generated and whether it was cut at
    the token limit; the steps its longest row took; the seconds spent forming its point (merged form)."""

    answers: list[str]
    new_tokens: list[int]
    cut: list[bool]
    ends: list[str]
    steps: int
    form_seconds: float = 0.0

    @property
    def stopped(self) -> bool:
        return STOPPED in self.ends


@dataclass(eq=False)
class DecodeRequest:
    rows: list[DecodeRow]
    point: Mapping[str, float] | None = None  # what `prepare` may merge into the weights before it joins
    form_seconds: float = 0.0
    events: queue.Queue = field(default_factory=queue.Queue)
    error: BaseException | None = None
    on_done: Callable[[DecodeRequest], None] | None = None  # called from the loop's thread when it ends or fails

    @property
    def done(self) -> bool:
        return all(r.end is not None for r in self.rows)


class AnyEvent:
    """Set when any of its events is (None entries ignored)."""

    def __init__(self, *events: StopSignal | None):
        self.events = [e for e in events if e is not None]

    def is_set(self) -> bool:
        return any(e.is_set() for e in self.events)


class DecodeLoop:
    """The shared loop. `prepare(request)` (optional) runs under the lock before a request joins an EMPTY batch
    and returns the adapter scales already merged into the weights (subtracted from every row's scales)."""

    def __init__(self, mix, tokenizer, lock: AbstractContextManager | None = None, max_rows: int = 64,
                 on_idle: Callable[[], None] | None = None,
                 prepare: Callable[[DecodeRequest], Mapping[str, float]] | None = None):
        self.tokenizer = tokenizer
        self.batch = RunningBatch(mix, {tokenizer.eos_token_id}, tokenizer.pad_token_id)
        self.lock = lock if lock is not None else nullcontext()
        self.max_rows = max_rows
        self.on_idle = on_idle
        self.prepare = prepare
        self._waiting: list[DecodeRequest] = []
        self._live: list[DecodeRequest] = []
        self._wake = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="peo-decode-loop", daemon=True)
        self._thread.start()

    # ---------------------------------------------------------------- the caller's side

    def submit(self, request: DecodeRequest) -> DecodeRequest:
        with self._wake:
            if self._closed:
                raise RuntimeError("the decode loop is closed")
            self._waiting.append(request)
            self._wake.notify()
        return request

    def stream(self, rows: Sequence[DecodeRow], stop: StopSignal | None = None,
               point: Mapping[str, float] | None = None) -> Iterator[list[str] | StreamResult]:
        """Every row's text after each step its rows take; the last item is the StreamResult.

        Setting `stop` or closing this iterator makes the rows leave at the next step boundary (a request still
        waiting never joins); closing does not wait for that (it may run on a server's event loop).
        """
        cancel = threading.Event()
        for r in rows:
            r.stop = AnyEvent(cancel, stop, r.stop)
        request = self.submit(DecodeRequest(list(rows), point))
        try:
            while True:
                item = request.events.get()
                if item is None:
                    break
                yield self._texts(request.rows)
        finally:
            cancel.set()
        if request.error is not None:
            raise request.error
        yield self._result(request)

    def run(self, rows: Sequence[DecodeRow], stop: StopSignal | None = None,
            point: Mapping[str, float] | None = None) -> StreamResult:
        """`stream` to its end: the result alone."""
        result = None
        for result in self.stream(rows, stop, point):
            pass
        return result  # type: ignore[return-value]

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join(timeout=5)

    def _texts(self, rows: Sequence[DecodeRow]) -> list[str]:
        return [self.tokenizer.decode(r.tokens, skip_special_tokens=True) for r in rows]

    def _result(self, request: DecodeRequest) -> StreamResult:
        rows = request.rows
        return StreamResult(answers=[t.strip() for t in self._texts(rows)], new_tokens=[len(r.tokens) for r in rows],
                            cut=[r.end == LENGTH for r in rows], ends=[r.end or STOPPED for r in rows],
                            steps=max((len(r.tokens) + (r.end == EOS) for r in rows), default=0),
                            form_seconds=request.form_seconds)

    # ---------------------------------------------------------------- the worker

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._closed and not self._waiting and not self._live:
                    self._wake.wait()
                if self._closed:
                    self._fail_all(RuntimeError("the decode loop was closed"))
                    return
            try:
                with self.lock:
                    if not self._join_waiting() and len(self.batch):  # a join's prefill gives a token: a step
                        self.batch.step()
                    self._publish()
                    if not self._live and self.on_idle is not None:
                        self.on_idle()
            except BaseException as err:  # every request in flight gets the error; the loop goes on
                self._fail_all(err)
                self.batch = RunningBatch(self.batch.mix, self.batch.eos_ids, self.batch.pad_id)

    def _join_waiting(self) -> bool:
        """Prefill the waiting requests that fit; whether any joined."""
        with self._wake:
            room = self.max_rows - len(self.batch)
            taking = []
            while self._waiting:
                if len(self._waiting[0].rows) > room and (taking or len(self.batch)):
                    break  # it waits for room (a request larger than max_rows runs when the batch is empty)
                request = self._waiting.pop(0)
                taking.append(request)
                room -= len(request.rows)
        if not taking:
            return False
        if not len(self.batch) and self.prepare is not None:  # the first may form its point; the rest ride on it
            start = time.perf_counter()
            self.batch.offsets = dict(self.prepare(taking[0]))
            taking[0].form_seconds = time.perf_counter() - start
        self._live += taking
        self.batch.join([row for request in taking for row in request.rows])  # one prefill for all of them
        return True

    def _publish(self) -> None:
        still = []
        for request in self._live:
            request.events.put(_TICK)
            if request.done:
                request.events.put(None)
                if request.on_done is not None:
                    request.on_done(request)
            else:
                still.append(request)
        self._live = still

    def _fail_all(self, err: BaseException) -> None:
        with self._wake:
            requests, self._waiting = self._live + self._waiting, []
        self._live = []
        for request in requests:
            request.error = err
            request.events.put(None)
            if request.on_done is not None:
                request.on_done(request)
