"""A score is only readable against something: each live evaluator's score (reward, cost …) placed within the
reference model's scores on the test prompts, and the answer flagged when its scores say little (empty, cut at the
limit, loops).

Pure functions (percentiles, flags, the line under a chat answer: short, its details on hover) over
`ReferenceScores`, the reference's per-prompt scores, split-aware, that `app.data.AppData.reference_scores` reads
once out of answers.parquet.
"""

from __future__ import annotations

import bisect
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from peo.answer_checks import loops, words
from peo.aspects import DEFAULT_ASPECTS, Aspects

EMPTY, CUT, LOOPS = "empty", "cut at the token limit", "loops"
# (upper bound of a percentile band, symbol): a reader sees at a glance where a score falls
BANDS = ((25.0, "🟥"), (75.0, "🟨"), (100.0, "🟩"))


def percentile(value: float, reference: Sequence[float]) -> float | None:
    """Percentile rank (0–100) of `value` among `reference`: share below it, ties counted half. None if empty."""
    ordered = sorted(float(r) for r in reference)
    if not ordered:
        return None
    below = bisect.bisect_left(ordered, value)
    ties = bisect.bisect_right(ordered, value) - below
    return 100.0 * (below + 0.5 * ties) / len(ordered)


def ordinal(n: int) -> str:
    """1 → '1st', 22 → '22nd', 13 → '13th'."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def band_symbol(pct: float, higher_is_better: bool) -> str:
    """🟩 better than three quarters of the reference's answers, 🟥 worse than three quarters, 🟨 between."""
    goodness = pct if higher_is_better else 100.0 - pct
    return next(symbol for bound, symbol in BANDS if goodness <= bound)


def answer_flags(answer: str, cut: bool) -> list[str]:
    """Why an answer's scores may mislead: empty, cut at the token limit, loops (peo.answer_checks rule).

    `cut`: generation stopped at max_new_tokens, not at EOS (answers.parquet's `cut`, from the token count).
    An empty answer counts as looping under the rule; it is flagged only as empty, the plainer reason.
    """
    if not words(answer):
        return [EMPTY]
    flags = [CUT] if cut else []
    return flags + ([LOOPS] if loops(answer) else [])


@dataclass(frozen=True)
class ReferenceScores:
    """The reference model's per-prompt scores on one split, evaluator → scores on its own aspect's prompts: what
    a live score is placed against."""

    scores: Mapping[str, tuple[float, ...]]
    split: str = "test"

    def placed(self, name: str, value: float, higher_is_better: bool) -> str:
        """'🟥 reward -1.800 (23rd pct of the reference on test prompts)', or the bare score with no reference."""
        values = self.scores.get(name, ())
        pct = percentile(value, values)
        if pct is None:
            return f"{name} {value:+.3f}"
        rank = ordinal(min(100, max(0, round(pct))))
        return (f"{band_symbol(pct, higher_is_better)} {name} {value:+.3f} ({rank} pct of the reference on "
                f"{len(values)} {self.split} prompts)")


def _named(score: Sequence[float], aspects: Aspects) -> list[tuple[str, float, bool]]:
    """(evaluator, value, higher is better) of each score, in the aspects' order (the order Engine.score gives)."""
    return [(a.evaluator, float(value), a.higher_is_better) for a, value in zip(aspects, score)]


def live_score_line(score: Sequence[float] | None, answer: str, reference: ReferenceScores | None = None,
                    cut: bool = False, aspects: Aspects = DEFAULT_ASPECTS) -> str:
    """The line under a chat answer: each evaluator's score (reward ↑, cost ↓ …) placed in the reference's
    distribution, and flags. `score`: one value per aspect's evaluator, in the aspects' order.

    `cut` defaults to False: the chat marks answers cut at the limit itself, from the exact token count.
    """
    parts = []
    if score:
        if reference is None:
            parts = [f"{name} {value:+.3f}" for name, value, _ in _named(score, aspects)]
        else:
            parts = [reference.placed(name, value, higher) for name, value, higher in _named(score, aspects)]
    return " · ".join(parts + answer_flags(answer, cut))


def compact_score_line(score: Sequence[float] | None, answer: str, reference: ReferenceScores | None = None,
                       cut: bool = False, aspects: Aspects = DEFAULT_ASPECTS) -> str:
    """The one short line under a chat answer ('🟩 reward +0.27 · 🟥 cost +0.52 · loops'), the full line
    (live_score_line: percentiles, how many reference prompts) in its hover title. At five to seven columns a
    bubble is ~100-150 px wide: the full line filled ten lines there, and auto-scroll showed it instead of the
    answer."""
    full = live_score_line(score, answer, reference, cut, aspects)
    if not full:
        return ""
    parts = []
    if score:
        for name, value, higher_is_better in _named(score, aspects):
            values = () if reference is None else reference.scores.get(name, ())
            pct = percentile(value, values)
            band = "" if pct is None else f"{band_symbol(pct, higher_is_better)} "
            parts.append(f"{band}{name} {value:+.2f}")
    short = " · ".join(parts + answer_flags(answer, cut))
    return f'<span class="peo-score" title="{html.escape(full, quote=True)}">{short}</span>'
