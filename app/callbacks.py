"""The app's logic as plain functions: pick a point, chat side by side, export. No Gradio here.

app/ui.py wires these to components; the tests call them directly on tiny assets.
"""

from __future__ import annotations

import functools
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from app import exports as export_store
from app.aspect_text import point_text, prompts_of
from app.data import AppData, AppInputError, over_loop_limit
from app.engine import FOLLOWS_POINT, Engine, column_scales, same_model_columns
from peo.answer_checks import loops
from peo.aspects import DEFAULT_ASPECTS, Aspects
from peo.chat_limits import (  # noqa: F401  (the limits live in the library: peo serve checks the same ones)
    DEFAULT_SETTINGS,
    LIMITS,
    MAX_MESSAGE_CHARS,
    MAX_MESSAGE_TOKENS,
    SWEEP_SETTINGS,
    WHOLE_NUMBERS,
    check_message,
    check_settings,
    sweep_defaults,
)
from peo.decode_loop import StreamResult
from peo.export import ExportError, export_policy
from peo.generation import GenerationSettings, StopSignal
from peo.names import PEO, REFERENCE
from peo.records import Pick

SCORE_BUTTON = "Score this point"  # the on-demand scoring of an off-grid point, named where the page points to it


@dataclass
class App:
    """What every session shares: the assets' tables and the one model instance."""

    data: AppData
    engine: Engine

    @property
    def aspects(self) -> Aspects:
        return self.data.aspects

    @property
    def default_settings(self) -> dict:
        return sweep_defaults(self.data.assets.run_meta)

    @functools.cached_property
    def reference_scores(self):
        """The reference's test scores, split-aware (rewards on benign prompts, costs on harmful ones, as every
        other figure): what each live score is placed against (read once)."""
        return self.data.reference_scores()

    @classmethod
    def load(cls, assets: str | Path | None = None, *, device: str | None = None, form: str = "auto",
             max_context_tokens: int = 1024, load_evaluators: bool = True) -> "App":
        data = AppData.load(assets)
        return cls(data, Engine(data.assets, device=device, form=form, max_context_tokens=max_context_tokens,
                                load_evaluators=load_evaluators))


# ---------------------------------------------------------------- pick

def pick(app: App, *point) -> Pick:
    """The point's coefficients, model id, precomputed scores (None off-grid), whether it is on the PEO front.
    `point`: the free λs, then ϕ per aspect (two aspects: λ_help, ϕ_help, ϕ_harm). `.to_json()` is the dict the
    /pick endpoint returns.

    Raises AppInputError for a non-number or a value outside the assets' grid range.
    """
    return app.data.point_info(*point)


def pick_summary(info: Pick, data: AppData, scored: Sequence[dict] = ()) -> str:
    """Markdown about a picked point, for the page. `scored`: the session's points scored on demand
    (app/offgrid_scoring.summarize), whose test figures a point without them shows once scored."""
    # the model id on a line of its own: inline after the coefficients, a wrapped line left a lone ")" under it
    aspects = data.aspects
    head = f"**Picked** {point_text(info, aspects)}  \nmodel `{info.model_id}`"
    same = same_model_phrase(info, aspects=aspects)
    if same:
        head += f"  \n{same}"
    stats = info.precomputed
    on_demand = next((p for p in scored if p["model_id"] == info.model_id), None)
    if on_demand is not None and (stats is None or stats["split"] != "test"):
        return (f"{head}\n\n{on_demand_phrase(on_demand)}: {scores_phrase(on_demand, aspects)}; "
                f"{checks_phrase(on_demand)}.")
    if stats is None:
        return (head + "\n\nThis point is **off the grid**: it was not evaluated, so it has **no precomputed "
                f"scores or answers** (the answers table stays empty). Use **{SCORE_BUTTON}** to generate and score "
                "its test answers, or chat with it (its answers are scored live).")
    where = "on the PEO Pareto front" if info.on_front else "not on the PEO Pareto front"
    text = f"{head}\n\n{split_phrase(stats, data)}: {scores_phrase(stats, aspects)}; {checks_phrase(stats)}; {where}."
    if over_loop_limit(stats["loop_share"], data.max_loop_share):
        text += (f"\n\nIts answers loop more often than {data.max_loop_share:.0%} of the time (drawn hollow): "
                 "its scores rest on degenerate text, and it may not be on the front.")
    return text


def on_demand_phrase(point: dict) -> str:
    """Where a point scored on demand got its figures: this session's run, whole or stopped part-way."""
    done = "" if point["complete"] else " (stopped part-way: the prompts finished before the Stop)"
    return f"**Scored on demand** in this session on {point['n']} **test** prompts{done}"


def same_model_label(col: str, other: str, aspects: Aspects = DEFAULT_ASPECTS) -> str:
    """'Soup (same λ) = PEO (picked point) at this point': `col` is the same model as `other` at the pick."""
    labels = aspects.chat_columns
    return f"{labels[col]} = {labels[other]} at this point"


def same_model_phrase(info: Pick, columns: Sequence[str] | None = None, aspects: Aspects = DEFAULT_ASPECTS) -> str:
    """Which chat columns (default: all) are the same model at this point (e.g. the soup is PEO when ϕ = 0);
    '' when none."""
    columns = tuple(aspects.chat_columns) if columns is None else columns
    same = same_model_columns(columns, *info.model_key, aspects=aspects)
    return "; ".join(same_model_label(col, other, aspects) for col, other in same.items())


def split_phrase(stats: dict, data: AppData) -> str:
    """Which prompts the figures come from: test, or dev only (the prompts that chose the front)."""
    if stats["split"] == "test":
        return f"Precomputed on {stats['n']} **test** prompts"
    return (f"Precomputed on {stats['n']} **dev** prompts only (not run on the {data.n_prompts('test')} test "
            "prompts; dev prompts chose the front)")


def scores_phrase(stats: dict, aspects: Aspects = DEFAULT_ASPECTS) -> str:
    """Every evaluator's mean ± standard error, each on the prompts it judges (peo.grid_table.split_stats): what
    places the point on the figure; then the safe share, in a run with harmful prompts."""
    means = ", ".join(f"{a.evaluator} {_mean_se(stats.get(f'{a.evaluator}_mean'), stats.get(f'{a.evaluator}_se'))} "
                      f"on {prompts_of(a)}" for a in aspects)
    if "harm" not in aspects.names:
        return means
    return f"{means}, safe share {_share(stats['safe_share'])} (harmful prompts answered at cost ≤ 0)"


def _mean_se(mean: float | None, se: float | None) -> str:
    """'0.123 ± 0.045'; '–' for a mean over no prompt (a scoring stopped before any prompt of that kind)."""
    return "–" if mean is None else f"{mean:.3f} ± " + ("–" if se is None else f"{se:.3f}")


def checks_phrase(stats: dict) -> str:
    """The text checks (peo.answer_checks), which the evaluators' scores cannot be trusted to reflect: a low cost
    may come from a refusal, or from an answer that evades the question."""
    words = "–" if stats["mean_words"] is None else f"{stats['mean_words']:.1f}"
    return (f"loops in {_share(stats['loop_share'])} of answers, refuses {_share(stats['refusal_share'])} of "
            f"harmful prompts, over-refuses {_share(stats['over_refusal_share'])} of benign prompts, evades "
            f"{_share(stats['evasion_share_benign'])} of benign and {_share(stats['evasion_share_harmful'])} of "
            f"harmful prompts, complies with {_share(stats['complied_share'])} of harmful prompts (neither refuses "
            f"nor evades), mean {words} words, {_share(stats['cut_share'])} cut at the token limit")


def _share(x: float | None) -> str:
    return "–" if x is None else f"{x:.0%}"


# ---------------------------------------------------------------- chat

def check_columns(columns, aspects: Aspects = DEFAULT_ASPECTS) -> list[str]:
    """The chosen chat columns (keys of the aspects' chat_columns), once each; AppInputError naming a bad one."""
    known = aspects.chat_columns
    if isinstance(columns, str):
        columns = [columns]
    columns = list(dict.fromkeys(columns or []))
    if not columns:
        raise AppInputError(f"Choose at least one column: {', '.join(known)}.")
    unknown = [c for c in columns if c not in known]
    if unknown:
        raise AppInputError(f"Unknown column(s) {unknown}; choose from {', '.join(known)}.")
    return columns


def trim_history(count_tokens, history: list[dict], message: str, budget: int) -> tuple[list[dict], int]:
    """(messages to send, turns dropped): history + the new user message, oldest turns dropped to fit `budget`.

    A turn is a user message and the assistant answer after it. AppInputError when the message alone is too long.
    """
    history = list(history)
    dropped = 0
    while True:
        messages = history + [{"role": "user", "content": message}]
        if count_tokens(messages) <= budget:
            return messages, dropped
        if not history:
            raise AppInputError(f"Your message is too long for the model's context ({count_tokens(messages)} tokens "
                                f"with the chat template; at most {budget} with these settings). Shorten it.")
        cut = 2 if len(history) >= 2 and history[1].get("role") == "assistant" else 1
        history = history[cut:]
        dropped += 1


@dataclass(frozen=True)
class AnswerTag:
    """What produced an answer, shown with it on the page and never fed back to the model."""

    coefficients: tuple[float, ...] | None  # (c_help, c_harm, …) of a column that follows the pick; None: fixed model
    cut_at: int | None = None  # max_new_tokens, when the answer stopped there without EOS


@dataclass
class ChatState:
    """Per-session chat: each column's history (what the model sees), the scores and tags of its answers, and
    the point of the last turn (to start fresh when it changes)."""

    histories: dict[str, list[dict]] = field(default_factory=dict)
    scores: dict[str, list[tuple[float, ...] | None]] = field(default_factory=dict)  # a score per evaluator
    tags: dict[str, list[AnswerTag | None]] = field(default_factory=dict)
    point: tuple[float, ...] | None = None  # the last turn's point_key (λ, c_help, c_harm): what PEO and soup were

    def copy(self) -> "ChatState":
        return ChatState({k: list(v) for k, v in self.histories.items()},
                         {k: list(v) for k, v in self.scores.items()},
                         {k: list(v) for k, v in self.tags.items()}, self.point)

    @property
    def empty(self) -> bool:
        return not any(self.histories.values())

    def cleared(self, col: str) -> "ChatState":
        """A copy without `col`'s history, scores and tags (its trash icon): its next turn starts from nothing."""
        state = self.copy()
        for per_column in (state.histories, state.scores, state.tags):
            per_column.pop(col, None)
        return state


@dataclass
class ChatStep:
    """One streamed update: each chosen column's text so far; `done` with scores on the last one."""

    texts: dict[str, str]
    done: bool = False
    scores: dict[str, tuple[float, ...] | None] = field(default_factory=dict)  # a score per evaluator
    state: ChatState | None = None
    info: str = ""  # on the last step: timings and notes, naming the columns they concern
    blind_info: str = ""  # the same naming no column: what blind mode shows before the vote
    cut: dict[str, bool] = field(default_factory=dict)  # on the last step: answers cut at max_new_tokens


def point_key(info: Pick) -> tuple[float, ...]:
    """The pick's model key (free λs, coefficients; two aspects: λ, c_help, c_harm) rounded: two picks with the same
    key give the PEO and soup columns the same models."""
    return tuple(round(x, 6) for x in info.model_key)


def starts_fresh(state: ChatState | None, info: Pick, fresh_on_new_point: bool) -> bool:
    """Whether a turn at the point `info` starts from an empty chat: asked for, and the chat so far was at
    another point."""
    return (fresh_on_new_point and state is not None and not state.empty and state.point is not None
            and state.point != point_key(info))


def answer_tag(col: str, info: Pick, cut_at: int | None, aspects: Aspects = DEFAULT_ASPECTS) -> AnswerTag:
    """The tag of `col`'s answer at the picked point: its coefficients when the column follows the pick."""
    coefficients = None
    if col in FOLLOWS_POINT:
        scales = column_scales(col, *info.model_key, aspects=aspects)
        coefficients = tuple(scales.get(a, 0.0) for a in aspects.names)
    return AnswerTag(coefficients, cut_at)


def _kept(old: list, n_kept: int) -> list:
    """The last `n_kept` items of a column's per-answer list (its oldest answers were trimmed from the history)."""
    return old[len(old) - n_kept:] if n_kept else []


def chat_stream(app: App, message, columns, point, settings: GenerationSettings | dict | None = None,
                state: ChatState | None = None, *, fresh_on_new_point: bool = False,
                stop: StopSignal | None = None) -> Iterator[ChatStep]:
    """Send `message` to every chosen column at once; yields ChatSteps, the last one `done` with the scores.

    point: (free λs…, ϕs…; two aspects: λ, ϕ_help, ϕ_harm) of the picked PEO policy (also sets the soup column's λ).
    Each column keeps its own history in `state` (trimmed to the context); the state passed in is not modified,
    the final step carries the new one. With `fresh_on_new_point`, a turn at another point than the last one
    starts from an empty chat (else the new policy continues the old one's conversation; its answers stay tagged
    with their point). Setting `stop` or closing this iterator ends generation within a step and frees the model
    (peo.generation.stream_batch); a stopped turn leaves no trace in the state.
    """
    aspects = app.aspects
    message = check_message(message)
    columns = check_columns(columns, aspects)
    info = app.data.point_info(*point)
    if not isinstance(settings, GenerationSettings):
        settings = check_settings(**(settings or {}), defaults=app.default_settings)
    state = state.copy() if state is not None else ChatState()
    notes, dropped = [], {}
    if starts_fresh(state, info, fresh_on_new_point):
        state = ChatState()
        notes.append("the point changed: started a fresh chat")
    app.engine.wait_ready()
    tokenizer = app.engine.tokenizer
    if len(tokenizer(message, add_special_tokens=False)["input_ids"]) > MAX_MESSAGE_TOKENS:
        raise AppInputError(f"Your message is longer than {MAX_MESSAGE_TOKENS} tokens; shorten it and send again.")
    budget = app.engine.context_limit - settings.max_new_tokens
    prompts, scales = [], []
    for col in columns:
        messages, n_dropped = trim_history(app.engine.prompt_tokens, state.histories.get(col, []), message, budget)
        prompts.append(messages)
        scales.append(column_scales(col, *info.model_key, aspects=aspects))
        if n_dropped:
            dropped[col] = n_dropped
    start = time.perf_counter()
    result: StreamResult | None = None
    stream = app.engine.stream(prompts, scales, settings, tuple(info.coefficients.values()), stop=stop)
    try:
        for item in stream:
            result = item if isinstance(item, StreamResult) else None
            yield ChatStep(texts=dict(zip(columns, result.answers if result else item)))
    finally:  # closed early (a cancelled turn): close the generation now, not whenever it is collected
        stream.close()
    assert result is not None
    gen_seconds = time.perf_counter() - start
    final = [t.strip() for t in result.answers]
    cut = dict(zip(columns, result.cut))
    start = time.perf_counter()
    scored = app.engine.score(prompts, final)
    score_seconds = time.perf_counter() - start
    scores = {c: (tuple(values[i] for values in scored) if scored else None) for i, c in enumerate(columns)}
    for col, messages, answer in zip(columns, prompts, final):
        state.histories[col] = messages + [{"role": "assistant", "content": answer}]
        keep = (len(messages) - 1) // 2  # assistant turns still in the history
        state.scores[col] = _kept(state.scores.get(col, []), keep) + [scores[col]]
        tags = _kept(state.tags.get(col, []), keep)
        state.tags[col] = [None] * (keep - len(tags)) + tags + [
            answer_tag(col, info, settings.max_new_tokens if cut[col] else None, aspects)]
    state.point = point_key(info)
    form = result.form_seconds
    how = "merged weights" if app.engine.form == "merged" else "adapter scales only"
    text = (f"policy formed in {form * 1000:.1f} ms ({how}); {len(columns)} column(s) generated in one batch in "
            f"{gen_seconds:.1f} s; scored in {score_seconds:.1f} s")
    named = [f"{aspects.chat_columns[col]}: dropped the {n} oldest turn(s) to fit the context"
             for col, n in dropped.items()]
    unnamed = [f"{len(dropped)} column(s) dropped their oldest turns to fit the context"] if dropped else []
    yield ChatStep(texts=dict(zip(columns, final)), done=True, scores=scores, state=state,
                   info=_with_notes(text, notes + named), blind_info=_with_notes(text, notes + unnamed), cut=cut)


def _with_notes(text: str, notes: list[str]) -> str:
    return text + ". " + "; ".join(notes) if notes else text


def chat(app: App, message, columns, point, settings=None, state: ChatState | None = None) -> dict:
    """Non-streaming chat (the /chat API): column → {answer, a score per evaluator (reward, cost …), loops, cut}
    (cut: the answer stopped at max_new_tokens without ending)."""
    last = None
    for last in chat_stream(app, message, columns, point, settings, state):
        pass
    assert last is not None and last.done
    out = {}
    for col, text in last.texts.items():
        score = last.scores.get(col)
        out[col] = {"answer": text, **{ev: score[i] if score else None for i, ev in enumerate(app.aspects.evaluators)},
                    "loops": loops(text), "cut": last.cut.get(col, False)}
    return out


# ---------------------------------------------------------------- export

def export_root() -> Path:
    """The app's own temp folder (app/exports.py): exports and Gradio's copies of them, removed at exit."""
    return export_store.root()


def exportable(aspects: Aspects) -> tuple[str, ...]:
    """What can be exported: the picked point, or one of the fixed models (reference, a DPO policy per aspect,
    joint DPO)."""
    return (PEO, *aspects.baselines)


def export_zip(app: App, what: str, point, fmt: str = "adapter") -> Path:
    """Zip of the exported policy: what = 'peo' (the picked point) or a fixed model ('ref' | 'help' | 'harm' |
    'joint' with two aspects)."""
    exportables = exportable(app.aspects)
    if fmt not in ("adapter", "merged"):
        raise AppInputError(f"export format must be 'adapter' or 'merged', got {fmt!r}")
    if what not in exportables:
        raise AppInputError(f"export what must be {', '.join(exportables[:-1])} or {exportables[-1]}, got {what!r}")
    if what == REFERENCE and fmt == "adapter":
        raise AppInputError("The reference policy has no adapter: export it as a merged model.")
    info = app.data.point_info(*point) if what == PEO else None
    folder = export_store.new_folder()  # expired exports are removed first
    try:
        if info is not None:
            p = info.point
            name = f"peo-{info.model_id}-{fmt}"
            out = export_policy(app.data.assets.root, folder / name, point=p, fmt=fmt)
        else:
            name = f"peo-{what}-{fmt}"
            out = export_policy(app.data.assets.root, folder / name, policy=what, fmt=fmt)
    except ExportError as err:
        shutil.rmtree(folder, ignore_errors=True)
        raise AppInputError(f"Export failed: {err}") from None
    out = Path(out)
    try:
        archive = shutil.make_archive(str(folder / name), "zip", root_dir=out.parent, base_dir=out.name)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    export_store.admit(folder)  # under the size cap: older exports go first; one too large alone is refused
    return Path(archive)


def columns_for(names: Sequence[str], aspects: Aspects = DEFAULT_ASPECTS) -> list[str]:
    """Column keys from keys or labels (the UI shows labels)."""
    by_label = {v: k for k, v in aspects.chat_columns.items()}
    return [by_label.get(n, n) for n in names]
