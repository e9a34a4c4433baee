"""How often each evaluator agrees with blind pairwise judgments of the same two answers.

A judgment (assets/report/blind_judgments.jsonl, made by experiments/blind_judgments.py) is one reader's verdict
on two test answers to one prompt, read with names hidden and order shuffled: "1", "2" or "tie", on the aspect the
prompt belongs to (helpfulness on benign prompts, harmlessness on harmful ones). The evaluator's verdict on the
same pair is the higher reward (helpfulness) or the lower cost (harmlessness). Agreement is counted on the pairs
where both are decisive: a reader's tie says the difference is too small to see, which no score difference can
agree or disagree with. Near 50 % means the evaluator's differences are not confirmed by reading.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from peo.evaluation_stats import wilson_interval

EVALUATOR_OF_JUDGED: dict[str, str] = {"helpfulness": "reward", "harmlessness": "cost"}
TIE = "tie"


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
