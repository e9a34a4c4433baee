"""The judges beside the evaluators: blind pairwise judgments, an LLM judge's verdicts, and how they agree.

A judgment counts only where it is about the shipped answers (peo.judgment_agreement.on_shipped_answers); an LLM
judge's verdict rows that carry no answer text cannot be told, and stay. Per judge model: its outcomes, its record
of every pair it judged, and its agreement with the evaluators, the blind judgments and the human votes.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from peo.judge import OUTCOMES
from peo.judgment_agreement import (
    agreement,
    judge_vs_blind,
    judge_vs_evaluators,
    judge_vs_votes,
    on_shipped_answers,
    verdicts_on_shipped_answers,
)
from peo.names import JUDGE_VERDICTS_FILE, REPORT_DIR
from peo.win_rates import judge_left_out, judge_record


def by_judge(verdicts: list[dict] | None) -> dict[str, list[dict]]:
    """An LLM judge's verdict rows (peo.judge.read_verdicts) per judge model, in the file's order."""
    out: dict[str, list[dict]] = {}
    for v in verdicts or []:
        out.setdefault(str(v["judge_model"]), []).append(v)
    return out


def shipped_judgments(judgments: list[dict] | None, answers: pd.DataFrame) -> list[dict]:
    """The blind judgments whose two answers are the shipped ones (peo.judgment_agreement.on_shipped_answers)."""
    judgments = judgments or []
    return [j for j, ok in zip(judgments, on_shipped_answers(judgments, answers)) if ok]


def shipped_verdicts(verdicts: list[dict] | None, answers: pd.DataFrame) -> list[dict]:
    """An LLM judge's verdict rows less those known to be about other answers than the shipped ones
    (peo.judgment_agreement.verdicts_on_shipped_answers: rows that carry no answer text cannot be told, and stay)."""
    verdicts = verdicts or []
    return [v for v, ok in zip(verdicts, verdicts_on_shipped_answers(verdicts, answers)) if ok is not False]


def judgment_agreement_summary(judgments: list[dict] | None, answers: pd.DataFrame) -> dict[str, Any] | None:
    """Each evaluator's agreement with the blind judgments (peo.judgment_agreement), with who judged, and which
    answers it is about: `judgments` (n, in the file) and `judgments_on_shipped_answers` (k, both answers still in
    answers.parquet with the stored scores). 0 < k: counted on those k only (`about` "shipped_answers"). k == 0:
    every judgment is about an earlier run's answers and evaluator heads, so the agreement is counted on all n from
    the scores they stored, and is about those heads (`about` "earlier_answers"), not the shipped ones."""
    if not judgments:
        return None
    shipped = shipped_judgments(judgments, answers)
    counted = shipped or judgments
    by_evaluator = agreement(counted)
    if not any(a["pairs"] for a in by_evaluator.values()):
        return None
    return {"judges": sorted({j.get("judge", "") for j in counted}), "pairs": len(counted),
            "judgments": len(judgments), "judgments_on_shipped_answers": len(shipped),
            "about": "shipped_answers" if shipped else "earlier_answers", "by_evaluator": by_evaluator}


def _judged_pairs(rows: list[dict]) -> list[tuple[str, str, str]]:
    """(point, opponent, aspect) of each model pair a judge judged, in the file's order, each pair once whichever
    way round its rows name the two models."""
    seen: dict[tuple, tuple[str, str, str]] = {}
    for v in rows:
        seen.setdefault((frozenset((v["point"], v["opponent"])), v["aspect"]), (v["point"], v["opponent"], v["aspect"]))
    return list(seen.values())


def llm_judge_summary(verdicts: list[dict] | None, answers: pd.DataFrame, judgments: list[dict] | None,
                      votes: list[dict] | None) -> dict[str, Any] | None:
    """Per judge model of the verdicts file: its outcomes, its record of every model pair it judged, and its
    agreement (peo.judgment_agreement) with the evaluators on the same answers, with the blind judgments and with
    the human votes where they share pairs. None without verdicts."""
    judges = by_judge(verdicts)
    if not judges:
        return None
    out: dict[str, Any] = {"file": f"{REPORT_DIR}/{JUDGE_VERDICTS_FILE}", "judges": {}}
    blind = shipped_judgments(judgments, answers)  # only blind judgments of the shipped answers are "same answers"
    for name, every in judges.items():
        on_shipped = verdicts_on_shipped_answers(every, answers)
        # rows that carry their answer texts count only on the shipped answers; the others cannot be told (None)
        rows = [v for v, ok in zip(every, on_shipped) if ok is not False]
        checked = [ok for ok in on_shipped if ok is not None]
        outcomes = [str(v["combined"]) for v in rows]
        records = [{"point": a, "opponent": b, "aspect": aspect, **judge_record(rows, a, b, aspect).as_dict(),
                    "left_out": judge_left_out(rows, a, b, aspect)} for a, b, aspect in _judged_pairs(rows)]
        agree: dict[str, Any] = dict(judge_vs_evaluators(rows, answers))
        agree["blind"] = judge_vs_blind(rows, blind) if blind else None
        agree["votes"] = judge_vs_votes(rows, votes) if votes else None
        out["judges"][name] = {"templates": sorted({str(v["template"]) for v in every}), "verdicts": len(every),
                               # None: the rows carry no answer text, so which answers they judged cannot be told
                               "verdicts_on_shipped_answers": sum(checked) if len(checked) == len(every) else None,
                               "verdicts_checked": len(checked), "verdicts_counted": len(rows),
                               "outcomes": {k: outcomes.count(k) for k in OUTCOMES}, "records": records,
                               "agreement": agree}
    return out
