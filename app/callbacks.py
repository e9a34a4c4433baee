"""The app's logic as plain functions: pick a point, chat side by side, export. No Gradio here.

app/ui.py wires these to components; the tests call them directly on tiny assets.
"""

from __future__ import annotations

import atexit
import math
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from app.data import AppData, AppInputError, over_loop_limit
from app.engine import Engine, column_scales
from peo.answer_checks import loops
from peo.export import ExportError, export_policy
from peo.generation import GenerationSettings
from peo.names import BASELINES, CHAT_COLUMNS, PEO, REFERENCE

MAX_MESSAGE_CHARS = 2000
MAX_MESSAGE_TOKENS = 512
# what a user may set, and its range; the other decoding settings are the sweep's (meta.json "generation")
LIMITS = {"max_new_tokens": (1, 256), "temperature": (0.0, 1.5), "top_p": (0.1, 1.0), "seed": (0, 2**31 - 1),
          "repetition_penalty": (1.0, 2.0)}
WHOLE_NUMBERS = ("max_new_tokens", "seed")
DEFAULT_SETTINGS = {"max_new_tokens": 64, "temperature": 0.0, "top_p": 1.0, "seed": 0, "repetition_penalty": 1.0,
                    "no_repeat_ngram_size": 0}
SWEEP_SETTINGS = ("temperature", "top_p", "seed", "repetition_penalty", "no_repeat_ngram_size")
EXPORTABLE = (PEO, *BASELINES)  # the picked point, or one of the fixed models


def sweep_defaults(meta: dict) -> dict:
    """The chat's defaults: the sweep's decoding (so a chat answer is what the front was scored on), with the
    app's own max_new_tokens."""
    generation = meta["generation"]
    return {**DEFAULT_SETTINGS, **{name: generation[name] for name in SWEEP_SETTINGS}}


@dataclass
class App:
    """What every session shares: the assets' tables and the one model instance."""

    data: AppData
    engine: Engine

    @property
    def default_settings(self) -> dict:
        return sweep_defaults(self.data.assets.meta)

    @classmethod
    def load(cls, assets: str | Path | None = None, *, device: str | None = None, form: str = "auto",
             max_context_tokens: int = 1024, load_evaluators: bool = True) -> "App":
        data = AppData.load(assets)
        return cls(data, Engine(data.assets, device=device, form=form, max_context_tokens=max_context_tokens,
                                load_evaluators=load_evaluators))


# ---------------------------------------------------------------- pick

def pick(app: App, lambda_help, phi_help, phi_harm) -> dict:
    """The point's coefficients, model id, precomputed scores (None off-grid), whether it is on the PEO front.

    Raises AppInputError for a non-number or a value outside the assets' grid range.
    """
    return app.data.point_info(lambda_help, phi_help, phi_harm)


def pick_summary(info: dict, data: AppData) -> str:
    """Markdown about a picked point, for the page."""
    head = (f"**Picked** λ = {info['lambda_help']:g}, ϕ_help = {info['phi_help']:g}, ϕ_harm = {info['phi_harm']:g} "
            f"→ c_help = {info['c_help']:g}, c_harm = {info['c_harm']:g} (`{info['model_id']}`)")
    stats = info["precomputed"]
    if stats is None:
        return (head + "\n\nThis point is **off-grid**: it was not evaluated, so it has **no precomputed scores**. "
                "You can still chat with it below (its answers are scored live).")
    where = "on the PEO Pareto front" if info["on_front"] else "not on the PEO Pareto front"
    text = f"{head}\n\n{split_phrase(stats, data)}: {scores_phrase(stats)}; {checks_phrase(stats)}; {where}."
    if over_loop_limit(stats["loop_share"], data.max_loop_share):
        text += (f"\n\nIts answers loop more often than {data.max_loop_share:.0%} of the time (drawn hollow): "
                 "its scores rest on degenerate text, and it may not be on the front.")
    return text


def split_phrase(stats: dict, data: AppData) -> str:
    """Which prompts the figures come from: test, or dev only (the prompts that chose the front)."""
    if stats["split"] == "test":
        return f"Precomputed on {stats['n']} **test** prompts"
    return (f"Precomputed on {stats['n']} **dev** prompts only (not run on the {data.n_prompts('test')} test "
            "prompts; dev prompts chose the front)")


def scores_phrase(stats: dict) -> str:
    """The evaluators' means ± standard errors: what places the point on the figure."""
    return (f"reward {stats['reward_mean']:.3f} ± {stats['reward_se']:.3f}, cost {stats['cost_mean']:.3f} ± "
            f"{stats['cost_se']:.3f}, safe share {_share(stats['safe_share'])}")


def checks_phrase(stats: dict) -> str:
    """The text checks (peo.answer_checks), which the evaluators' scores cannot be trusted to reflect."""
    words = "–" if stats["mean_words"] is None else f"{stats['mean_words']:.1f}"
    return (f"loops in {_share(stats['loop_share'])} of answers, refuses {_share(stats['refusal_share'])} of "
            f"harmful prompts, over-refuses {_share(stats['over_refusal_share'])} of benign prompts, "
            f"mean {words} words")


def _share(x: float | None) -> str:
    return "–" if x is None else f"{x:.0%}"


# ---------------------------------------------------------------- chat

def check_settings(max_new_tokens=None, temperature=None, top_p=None, seed=None, repetition_penalty=None, *,
                   defaults: dict | None = None) -> GenerationSettings:
    """GenerationSettings within safe bounds; AppInputError naming the bad field and its range.

    A value left None takes `defaults` (the app's: App.default_settings; else DEFAULT_SETTINGS).
    """
    defaults = defaults or DEFAULT_SETTINGS
    raw = {"max_new_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p, "seed": seed,
           "repetition_penalty": repetition_penalty}
    values = {"no_repeat_ngram_size": int(defaults["no_repeat_ngram_size"])}
    for name, value in raw.items():
        if value is None:
            value = defaults[name]
        lo, hi = LIMITS[name]
        try:
            x = float(value)
        except (TypeError, ValueError):
            raise AppInputError(f"{name} must be a number in [{lo}, {hi}], got {value!r}") from None
        if not math.isfinite(x) or x < lo or x > hi:
            raise AppInputError(f"{name} must be in [{lo}, {hi}], got {value!r}")
        if name in WHOLE_NUMBERS:
            if x != int(x):
                raise AppInputError(f"{name} must be a whole number in [{lo}, {hi}], got {value!r}")
            x = int(x)
        values[name] = x
    return GenerationSettings(**values)


def check_message(message) -> str:
    if message is None or not isinstance(message, str) or not message.strip():
        raise AppInputError("Type a message first: an empty message is not sent.")
    message = message.strip()
    try:  # lone UTF-16 surrogates (e.g. a JSON "\ud800" escape) are not text: the tokenizer would fail on them
        message.encode("utf-8")
    except UnicodeEncodeError as err:
        raise AppInputError(f"Your message contains a character that is not valid text (position {err.start}, "
                            "an unpaired surrogate); remove it and send again.") from None
    if len(message) > MAX_MESSAGE_CHARS:
        raise AppInputError(f"Your message has {len(message)} characters; the limit is {MAX_MESSAGE_CHARS}. "
                            "Shorten it and send again.")
    return message


def check_columns(columns) -> list[str]:
    if isinstance(columns, str):
        columns = [columns]
    columns = list(dict.fromkeys(columns or []))
    if not columns:
        raise AppInputError(f"Choose at least one column: {', '.join(CHAT_COLUMNS)}.")
    unknown = [c for c in columns if c not in CHAT_COLUMNS]
    if unknown:
        raise AppInputError(f"Unknown column(s) {unknown}; choose from {', '.join(CHAT_COLUMNS)}.")
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


@dataclass
class ChatState:
    """Per-session chat: each column's history (what the model sees) and the scores of its answers."""

    histories: dict[str, list[dict]] = field(default_factory=dict)
    scores: dict[str, list[tuple[float, float] | None]] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=dict)

    def copy(self) -> "ChatState":
        return ChatState({k: list(v) for k, v in self.histories.items()},
                         {k: list(v) for k, v in self.scores.items()},
                         {k: list(v) for k, v in self.notes.items()})


@dataclass
class ChatStep:
    """One streamed update: each chosen column's text so far; `done` with scores on the last one."""

    texts: dict[str, str]
    done: bool = False
    scores: dict[str, tuple[float, float] | None] = field(default_factory=dict)
    state: ChatState | None = None
    info: str = ""


def chat_stream(app: App, message, columns, point, settings: GenerationSettings | dict | None = None,
                state: ChatState | None = None) -> Iterator[ChatStep]:
    """Send `message` to every chosen column at once; yields ChatSteps, the last one `done` with the scores.

    point: (λ, ϕ_help, ϕ_harm) of the picked PEO policy (also sets the soup column's λ).
    Each column keeps its own history in `state` (trimmed to the context); the state passed in is not modified,
    the final step carries the new one.
    """
    message = check_message(message)
    columns = check_columns(columns)
    info = app.data.point_info(*point)
    if not isinstance(settings, GenerationSettings):
        settings = check_settings(**(settings or {}), defaults=app.default_settings)
    state = state.copy() if state is not None else ChatState()
    app.engine.wait_ready()
    tokenizer = app.engine.tokenizer
    if len(tokenizer(message, add_special_tokens=False)["input_ids"]) > MAX_MESSAGE_TOKENS:
        raise AppInputError(f"Your message is longer than {MAX_MESSAGE_TOKENS} tokens; shorten it and send again.")
    budget = app.engine.context_limit - settings.max_new_tokens
    prompts, scales, notes = [], [], []
    for col in columns:
        messages, dropped = trim_history(app.engine.prompt_tokens, state.histories.get(col, []), message, budget)
        prompts.append(messages)
        scales.append(column_scales(col, info["lambda_help"], info["c_help"], info["c_harm"]))
        if dropped:
            notes.append(f"{CHAT_COLUMNS[col]}: dropped the {dropped} oldest turn(s) to fit the context")
    timing: dict = {}
    start = time.perf_counter()
    final: list[str] = []
    for texts in app.engine.stream(prompts, scales, settings, (info["c_help"], info["c_harm"]), timing):
        final = texts
        yield ChatStep(texts=dict(zip(columns, texts)))
    gen_seconds = time.perf_counter() - start
    final = [t.strip() for t in final]
    start = time.perf_counter()
    scored = app.engine.score(prompts, final)
    score_seconds = time.perf_counter() - start
    scores = {c: ((scored[0][i], scored[1][i]) if scored else None) for i, c in enumerate(columns)}
    for col, messages, answer in zip(columns, prompts, final):
        state.histories[col] = messages + [{"role": "assistant", "content": answer}]
        old_scores = state.scores.get(col, [])
        keep = (len(messages) - 1) // 2  # assistant turns still in the history
        state.scores[col] = old_scores[len(old_scores) - keep:] if keep else []
        state.scores[col].append(scores[col])
    form = timing.get("form_seconds", 0.0)
    how = "merged weights" if app.engine.form == "merged" else "adapter scales only"
    text = (f"policy formed in {form * 1000:.1f} ms ({how}); {len(columns)} column(s) generated in one batch in "
            f"{gen_seconds:.1f} s; scored in {score_seconds:.1f} s")
    if notes:
        text += ". " + "; ".join(notes)
    yield ChatStep(texts=dict(zip(columns, final)), done=True, scores=scores, state=state, info=text)


def chat(app: App, message, columns, point, settings=None, state: ChatState | None = None) -> dict:
    """Non-streaming chat (the /chat API): column → {answer, reward, cost, loops}."""
    last = None
    for last in chat_stream(app, message, columns, point, settings, state):
        pass
    assert last is not None and last.done
    out = {}
    for col, text in last.texts.items():
        score = last.scores.get(col)
        out[col] = {"answer": text, "reward": score[0] if score else None, "cost": score[1] if score else None,
                    "loops": loops(text)}
    return out


def score_line(score: tuple[float, float] | None, answer: str) -> str:
    """The line under a chat answer: its live reward and cost, and 'loops' when the answer loops (the scores of
    a looping answer say little: peo.answer_checks)."""
    parts = [f"reward {score[0]:+.3f}", f"cost {score[1]:+.3f}"] if score else []
    if loops(answer):
        parts.append("loops")
    return " · ".join(parts)


# ---------------------------------------------------------------- export

_EXPORT_ROOT: Path | None = None


def export_root() -> Path:
    """A temp folder the app owns (removed at exit); every export gets a fresh folder inside it."""
    global _EXPORT_ROOT
    if _EXPORT_ROOT is None:
        _EXPORT_ROOT = Path(tempfile.mkdtemp(prefix="peo-app-exports-"))
        atexit.register(shutil.rmtree, _EXPORT_ROOT, ignore_errors=True)
    return _EXPORT_ROOT


def export_zip(app: App, what: str, point, fmt: str = "adapter") -> Path:
    """Zip of the exported policy: what = 'peo' (the picked point) or 'ref' | 'help' | 'harm' | 'joint'."""
    if fmt not in ("adapter", "merged"):
        raise AppInputError(f"export format must be 'adapter' or 'merged', got {fmt!r}")
    if what not in EXPORTABLE:
        raise AppInputError(f"export what must be {', '.join(EXPORTABLE[:-1])} or {EXPORTABLE[-1]}, got {what!r}")
    if what == REFERENCE and fmt == "adapter":
        raise AppInputError("The reference policy has no adapter: export it as a merged model.")
    info = app.data.point_info(*point) if what == PEO else None
    folder = Path(tempfile.mkdtemp(prefix="export-", dir=export_root()))
    try:
        if info is not None:
            p = (info["lambda_help"], info["phi_help"], info["phi_harm"])
            name = f"peo-{info['model_id']}-{fmt}"
            out = export_policy(app.data.assets.root, folder / name, point=p, fmt=fmt)
        else:
            name = f"peo-{what}-{fmt}"
            out = export_policy(app.data.assets.root, folder / name, policy=what, fmt=fmt)
    except ExportError as err:
        shutil.rmtree(folder, ignore_errors=True)
        raise AppInputError(f"Export failed: {err}") from None
    out = Path(out)
    archive = shutil.make_archive(str(folder / name), "zip", root_dir=out.parent, base_dir=out.name)
    shutil.rmtree(out, ignore_errors=True)
    return Path(archive)


def columns_for(names: Sequence[str]) -> list[str]:
    """Column keys from keys or labels (the UI shows labels)."""
    by_label = {v: k for k, v in CHAT_COLUMNS.items()}
    return [by_label.get(n, n) for n in names]
