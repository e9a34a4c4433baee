"""Win rates: each point of the PEO front against the soup at its λ, the DPO baselines and ExPO, on test prompts.

Each aspect is judged by its own evaluator on its own prompts, in its direction (peo.win_rates.compare; with the two
shipped aspects: helpfulness by reward on benign prompts, harmlessness by cost on harmful ones); beside each record,
where they exist, the human votes', the blind judgments' and each LLM judge's record of the same pair.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from peo.coefficients import expo_model_id
from peo.names import EXPO, EXPO_CHAT_ALPHA, JOINT, SOUP
from peo.win_rates import Record, judge_left_out, judge_record, judgment_record, pairwise, vote_record
from precompute.report_baselines import soup_at
from precompute.report_inputs import distinct_models
from precompute.report_judges import by_judge, shipped_judgments, shipped_verdicts
from precompute.report_scores import SplitScores
from precompute.report_words import coordinates_text, win_opponents


def _opponents(grid: pd.DataFrame, test: SplitScores) -> dict[str, tuple[str, str]]:
    """The fixed models a front point is compared with: key → (label, model_id), those with test scores."""
    out = {}
    for method in (*test.aspects.names, JOINT):
        rows = distinct_models(grid, method)
        if not rows.empty and test.has(str(rows["model_id"].iloc[0])):
            out[method] = (test.aspects.baseline_labels[method], str(rows["model_id"].iloc[0]))
    expo = expo_model_id(EXPO_CHAT_ALPHA)
    if test.has(expo) and (grid["model_id"] == expo).any():
        out[EXPO] = (f"ExPO α={EXPO_CHAT_ALPHA:g}", expo)
    return out


def _judge_entry(rows: list[dict], a: str, b: str, aspects) -> dict[str, Any] | None:
    """One judge's record of a against b per aspect it judged them on, with the pairs it left unsettled."""
    out = {}
    for aspect in aspects:
        record, left = judge_record(rows, a, b, aspect), judge_left_out(rows, a, b, aspect)
        if record.n or left:
            out[aspect] = {**record.as_dict(), "left_out": left}
    return out or None


def win_rates(grid: pd.DataFrame, answers: pd.DataFrame, test: SplitScores, front: dict[str, Any],
              votes: list[dict] | None, judgments: list[dict] | None = None,
              verdicts: list[dict] | None = None) -> dict[str, Any]:
    """Each point of `front` against the soup at its λ, each aspect's DPO policy, joint DPO and ExPO α = 1.5 on the
    test prompts (peo.win_rates.pairwise: each aspect by its evaluator on its own prompts; helpfulness by reward on
    benign prompts, harmlessness by cost on harmful ones),
    and per opponent the records pooled over the front points that are another model. With `votes`
    (peo.votes.VoteStore.votes rows), the human votes' record of each pair beside it; with `judgments` (blind
    pairwise judgments per aspect, assets/report/blind_judgments.jsonl), their record per aspect beside it; with
    `verdicts` (an LLM judge's, peo.judge.read_verdicts), each judge model's record per aspect beside it."""
    judges = by_judge(shipped_verdicts(verdicts, answers))
    shipped = shipped_judgments(judgments, answers)  # a judgment counts only where it is about the shipped answers
    sub = answers[(answers["split"].astype(str) == "test") & answers["prompt_id"].isin(test.prompts)].copy()
    sub["model_id"] = sub["model_id"].astype(str)
    fixed = _opponents(grid, test)
    points, pooled = [], {}
    for p in front["points"]:
        against = {}
        soup = soup_at(grid, test, p)
        opponents = {SOUP: (f"soup {soup[0]}", soup[1])} if soup else {}
        opponents.update(fixed)
        for key in win_opponents(test.aspects):
            if key not in opponents:
                continue
            label, mid = opponents[key]
            records = pairwise(sub, p["model_id"], mid, "test", aspects=test.aspects)
            entry = {"label": label, "model_id": mid, "same_model": mid == p["model_id"],
                     **{aspect: r.as_dict() for aspect, r in records.items()}}
            if votes:
                human = vote_record(votes, p["model_id"], mid, test.aspects)
                entry["votes"] = human.as_dict() if human.n else None
            if shipped:
                judged = {aspect: judgment_record(shipped, p["model_id"], mid, aspect) for aspect in records}
                entry["judged"] = {aspect: r.as_dict() for aspect, r in judged.items() if r.n} or None
            if judges:
                per_judge = {name: _judge_entry(rows, p["model_id"], mid, records) for name, rows in judges.items()}
                entry["llm_judge"] = {name: e for name, e in per_judge.items() if e} or None
            against[key] = entry
            if mid != p["model_id"]:
                total = pooled.setdefault(key, {aspect: [0, 0, 0] for aspect in records})
                for aspect, r in records.items():
                    total[aspect] = [total[aspect][0] + r.won, total[aspect][1] + r.tied, total[aspect][2] + r.lost]
        points.append({"model_id": p["model_id"], "coordinates": coordinates_text(p, test.aspects),
                       "against": against})
    pooled_out = {key: {"label": "soup (same λ)" if key == SOUP else fixed[key][0],
                        **{aspect: Record(*counts).as_dict() for aspect, counts in total.items()}}
                  for key, total in pooled.items()}
    out = {"front": "peo", "split": "test", "points": points, "pooled": pooled_out}
    if judgments:  # the "judged" records count only these: none when no judgment is about the shipped answers
        out.update(judgments=len(judgments), judgments_on_shipped_answers=len(shipped))
    return out
