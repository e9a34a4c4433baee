"""How often each evaluator agrees with blind pairwise judgments of the same two answers.

A judgment (assets/report/blind_judgments.jsonl, made by experiments/blind_judgments.py) is one reader's verdict
on two test answers to one prompt, read with names hidden and order shuffled: "1", "2" or "tie", on the aspect the
prompt belongs to (helpfulness on benign prompts, harmlessness on harmful ones). The evaluator's verdict on the
same pair is the higher reward (helpfulness) or the lower cost (harmlessness). Agreement is counted on the pairs
where both are decisive: a reader's tie says the difference is too small to see, which no score difference can
agree or disagree with. Near 50 % means the evaluator's differences are not confirmed by reading.

An LLM judge (`peo judge`, its verdicts in assets/report/judge_verdicts.jsonl: peo.judge.read_verdicts rows) is
set against the same three others, each on what they share with it, and counted the same way (decisive pairs):
- the evaluator of the judged aspect, on the very answers it judged (answers.parquet: same models, prompt, split);
- blind judgments of the same two models' answers to the same test prompt, on the same aspect;
- human votes on a turn where both models were shown, for the same prompt text (the app samples its own
  answers, so the answers may differ: this asks whether judge and voter prefer the same model on that prompt).
A pair the judge did not settle (unparsed, refused, pending) is not compared.

Which answers a judgment is about: judgments are made once, on the answers of one run; answers regenerated later
(another token limit, retrained evaluator heads) are other answers with other scores. `on_shipped_answers` tells,
per judgment, whether both of its answers are still the shipped ones: answers.parquet (test split) holds the same
model_id and prompt_id with the same reward and cost (to SCORE_TOLERANCE) as the judgment stored, or, where the
judgment carries the answer texts, the same texts. The report counts agreement and judgment win rates on those only
(precompute/report_judges.py). An LLM judge's verdict rows (peo.judge.read_verdicts) carry neither texts nor scores:
`verdicts_on_shipped_answers` answers None (cannot tell) for them, unless a row does carry the two texts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from peo.evaluation_stats import wilson_interval
from peo.judge import instruction_text
from peo.win_rates import ASPECT_SCORES, JUDGE_SETTLED, compare, scales_model_id

EVALUATOR_OF_JUDGED: dict[str, str] = {"helpfulness": "reward", "harmlessness": "cost"}
TIE = "tie"
SCORE_TOLERANCE = 1e-5  # a stored score and the shipped one agree when they differ by no more than this
SHIPPED_SPLIT = "test"  # the split every judgment is made on


def evaluator_verdict(judgment: Mapping[str, Any]) -> str:
    """"1", "2" or "tie": the answer the evaluator of the judged aspect prefers (higher reward, lower cost)."""
    kind = EVALUATOR_OF_JUDGED[judgment["judge_on"]]
    first, second = float(judgment[f"{kind}_1"]), float(judgment[f"{kind}_2"])
    if kind == "cost":
        first, second = -first, -second
    return TIE if first == second else ("1" if first > second else "2")


def agreement(judgments: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per evaluator (reward, cost): pairs judged, the reader's ties, decisive pairs, agreements, their share and
    Wilson 95 % interval (None where no pair is decisive). Rows without a verdict or the two scores are skipped."""
    out = {}
    for judged, kind in EVALUATOR_OF_JUDGED.items():
        rows = [j for j in judgments  # judgments without the two answers' scores say nothing about the evaluator
                if j.get("judge_on") == judged and "verdict" in j and {f"{kind}_1", f"{kind}_2"} <= set(j)]
        verdicts = [(j["verdict"], evaluator_verdict(j)) for j in rows]
        decisive = [(reader, score) for reader, score in verdicts if TIE not in (reader, score)]
        agree = sum(reader == score for reader, score in decisive)
        n = len(decisive)
        out[kind] = {"judged_on": judged, "pairs": len(rows), "reader_ties": sum(r == TIE for r, _ in verdicts),
                     "decisive": n, "agree": agree, "share": agree / n if n else None,
                     "interval": list(wilson_interval(agree, n)) if n else None}
    return out


def confirmed(entry: Mapping[str, Any]) -> bool | None:
    """Does the reading confirm the evaluator beyond chance (the interval's lower end above 50 %)? None: no data."""
    return None if not entry.get("interval") else entry["interval"][0] > 0.5


# ---------------------------------------------------------------- are the judged answers the shipped ones?


def _close(stored: Any, shipped: Any) -> bool:
    try:
        a, b = float(stored), float(shipped)
    except (TypeError, ValueError):
        return False
    return math.isfinite(a) and math.isfinite(b) and abs(a - b) <= SCORE_TOLERANCE


def _same_text(stored: Any, shipped: Any) -> bool:
    return isinstance(stored, str) and str(shipped).strip() == stored.strip()


def _test_rows(answers: pd.DataFrame, split: str) -> dict[tuple[str, str], Mapping[str, Any]]:
    """answers.parquet rows of `split` by (model_id, prompt_id)."""
    rows = answers[answers["split"].astype(str) == split] if "split" in answers else answers
    keys = zip(rows["model_id"].astype(str), rows["prompt_id"].astype(str))
    return dict(zip(keys, rows.to_dict("records")))


def on_shipped_answers(judgments: Sequence[Mapping[str, Any]], answers: pd.DataFrame,
                       split: str = SHIPPED_SPLIT) -> list[bool]:
    """Per blind judgment (assets/report/blind_judgments.jsonl rows: prompt_id, model_1/model_2, reward_1/2,
    cost_1/2): True when both judged answers are the shipped ones: `answers` (answers.parquet) holds, in `split`,
    model_i's answer to prompt_id with the same reward_i and cost_i (to SCORE_TOLERANCE), or, where the judgment
    carries the texts (answer_1/answer_2), the same text (whitespace around it aside). A judgment lacking what is
    needed to tell, or whose answer is not in `answers`, is False."""
    rows = _test_rows(answers, split)
    out = []
    for j in judgments:
        same = "prompt_id" in j
        for i in (1, 2):
            row = rows.get((str(j.get(f"model_{i}")), str(j.get("prompt_id"))))
            if not same or row is None:
                same = False
                break
            if f"answer_{i}" in j:
                same = _same_text(j[f"answer_{i}"], row.get("answer"))
            else:
                same = all(_close(j.get(f"{score}_{i}"), row.get(score)) for score in ("reward", "cost"))
        out.append(bool(same))
    return out


def verdicts_on_shipped_answers(verdicts: Sequence[Mapping[str, Any]], answers: pd.DataFrame,
                                split: str = SHIPPED_SPLIT) -> list[bool | None]:
    """Per LLM-judge verdict row (peo.judge.read_verdicts: point is answer_a's model, opponent answer_b's): True or
    False when the row carries both answer texts (answer_a/answer_b: are they the shipped answers of point and
    opponent to prompt_id, in the row's split or `split`?), else None: the verdicts file stores no answer text nor
    score, so whether its answers are the shipped ones cannot be told."""
    out: list[bool | None] = []
    by_split: dict[str, dict] = {}
    for v in verdicts:
        if not {"answer_a", "answer_b"} <= set(v):
            out.append(None)
            continue
        where = str(v.get("split") or split)
        rows = by_split.setdefault(where, _test_rows(answers, where))
        a = rows.get((str(v.get("point")), str(v.get("prompt_id"))))
        b = rows.get((str(v.get("opponent")), str(v.get("prompt_id"))))
        out.append(a is not None and b is not None and _same_text(v["answer_a"], a.get("answer"))
                   and _same_text(v["answer_b"], b.get("answer")))
    return out


# ---------------------------------------------------------------- an LLM judge against evaluators, readers and voters

POINT, OPPONENT = "a", "b"  # which side of a verdict row (its `point` or its `opponent`) a verdict prefers


def judge_side(verdict: Mapping[str, Any]) -> str | None:
    """The side an LLM judge's verdict row prefers: POINT (a win), OPPONENT (a loss) or TIE (its two orders
    disagreed); None when the judge did not settle the pair."""
    combined = verdict.get("combined")
    if combined not in JUDGE_SETTLED:
        return None
    return {"win": POINT, "loss": OPPONENT}.get(combined, TIE)


def side_of(winner: str | None, verdict: Mapping[str, Any]) -> str:
    """The side a model_id (None: nobody) is on in a verdict row: POINT, OPPONENT, or TIE for anyone else."""
    return POINT if winner == verdict["point"] else OPPONENT if winner == verdict["opponent"] else TIE


def agreement_counts(sides: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """(the judge's side, the other's side) per shared pair: pairs, each one's ties, decisive pairs (neither
    tied), agreements among them, their share and Wilson 95 % interval (None where nothing is decisive)."""
    decisive = [(mine, theirs) for mine, theirs in sides if TIE not in (mine, theirs)]
    agree = sum(mine == theirs for mine, theirs in decisive)
    n = len(decisive)
    return {"pairs": len(sides), "judge_ties": sum(m == TIE for m, _ in sides),
            "other_ties": sum(t == TIE for _, t in sides), "decisive": n, "agree": agree,
            "share": agree / n if n else None, "interval": list(wilson_interval(agree, n)) if n else None}


def _scored(answers: pd.DataFrame) -> dict[tuple[str, str, str], Mapping[str, Any]]:
    """answers.parquet rows by (model_id, split, prompt_id)."""
    keys = zip(answers["model_id"].astype(str), answers["split"].astype(str), answers["prompt_id"].astype(str))
    return dict(zip(keys, answers.to_dict("records")))


def judge_vs_evaluators(verdicts: Sequence[Mapping[str, Any]], answers: pd.DataFrame,
                        split: str = "test") -> dict[str, dict[str, Any]]:
    """Per evaluator (reward on helpfulness verdicts, cost on harmlessness ones): agreement_counts of the judge
    against the evaluator's verdict on the same two answers (peo.win_rates.compare: the same tie rule as the
    win-rate tables). Verdicts whose two answers are not in `answers` are skipped (`missing` counts them)."""
    rows = _scored(answers)
    out = {}
    for aspect, (score, higher) in ASPECT_SCORES.items():
        sides, missing = [], 0
        for v in verdicts:
            mine = judge_side(v)
            if v.get("aspect") != aspect or mine is None:
                continue
            where = str(v.get("split") or split), str(v["prompt_id"])
            a, b = rows.get((str(v["point"]), *where)), rows.get((str(v["opponent"]), *where))
            if a is None or b is None:
                missing += 1
                continue
            same = [str(a.get("answer", "")).strip() == str(b.get("answer", "")).strip()] if "answer" in a else None
            r = compare([float(a[score])], [float(b[score])], higher, same=same)
            sides.append((mine, POINT if r.won else OPPONENT if r.lost else TIE))
        out[score] = {"judged_on": aspect, "missing": missing, **agreement_counts(sides)}
    return out


def judge_vs_blind(verdicts: Sequence[Mapping[str, Any]], judgments: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """agreement_counts of the judge against blind judgments (assets/report/blind_judgments.jsonl rows) of the
    same two models on the same prompt and aspect; one entry per (verdict, judgment) that share them."""
    by_key: dict[tuple, list[Mapping[str, Any]]] = {}
    for j in judgments:
        key = (str(j.get("prompt_id")), frozenset((j.get("point"), j.get("opponent"))), j.get("judge_on"))
        by_key.setdefault(key, []).append(j)
    sides = []
    for v in verdicts:
        mine = judge_side(v)
        if mine is None:
            continue
        for j in by_key.get((str(v["prompt_id"]), frozenset((v["point"], v["opponent"])), v["aspect"]), []):
            sides.append((mine, side_of(j.get("winner"), v)))
    return agreement_counts(sides)


def vote_prompt(column: Mapping[str, Any]) -> str | None:
    """The prompt of a voted column's turn, rendered as the judge is shown one (peo.judge.instruction_text): its
    conversation without the answer."""
    conversation = list(column.get("conversation") or [])[:-1]
    if not conversation:
        return None
    return instruction_text([(str(m.get("role")), str(m.get("content"))) for m in conversation])


def judge_vs_votes(verdicts: Sequence[Mapping[str, Any]], votes: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """agreement_counts of the judge against human votes (peo.votes.VoteStore.votes rows) on turns that showed
    both models for the verdict's prompt text (its `instruction`): the voter's choice of either column, else a
    tie (tie, all bad, a third column)."""
    sides = []
    settled = [(v, mine) for v in verdicts if (mine := judge_side(v)) is not None and v.get("instruction")]
    for vote in votes:
        columns = {scales_model_id(c["scales"]): c for c in vote.get("columns", [])}
        for v, mine in settled:
            a, b = columns.get(v["point"]), columns.get(v["opponent"])
            if a is None or b is None or vote_prompt(a) != v["instruction"]:
                continue
            choice = vote.get("choice")
            sides.append((mine, POINT if choice == a["column_key"] else OPPONENT if choice == b["column_key"]
                          else TIE))
    return agreement_counts(sides)
