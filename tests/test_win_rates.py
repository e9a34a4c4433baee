"""Win rates as the paper reports them: exact won / tied / lost counts on known data, Wilson intervals, votes."""

from __future__ import annotations

import pandas as pd
import pytest

from peo.aspects import DEFAULT_ASPECTS, Aspect, Aspects
from peo.evaluation_stats import wilson_interval
from peo.win_rates import Record, compare, pairwise, scales_model_id, vote_record

TWO = DEFAULT_ASPECTS  # help (reward ↑) and harm (cost ↓): the assets' two aspects


def test_compare_counts_exactly():
    # higher wins: 3 > 1, 2 = 2, 1 < 4, 5 > 0, 0.3 vs 0.3 + 1e-7 (a tie within the tolerance)
    r = compare([3, 2, 1, 5, 0.3], [1, 2, 4, 0, 0.3 + 1e-7], higher_is_better=True)
    assert (r.won, r.tied, r.lost, r.n) == (2, 2, 1, 5)
    # lower wins (cost): the same numbers read the other way
    r = compare([3, 2, 1, 5, 0.3], [1, 2, 4, 0, 0.3 + 1e-7], higher_is_better=False)
    assert (r.won, r.tied, r.lost) == (1, 2, 2)
    # the same text is a tie whatever its two scores (scored in two batches)
    r = compare([1.0, 2.0], [0.0, 0.0], True, same=[True, False])
    assert (r.won, r.tied, r.lost) == (1, 1, 0)
    with pytest.raises(ValueError):
        compare([1, 2], [1], True)


def test_record_shares_and_wilson_intervals():
    r = Record(won=6, tied=1, lost=3)
    d = r.as_dict()
    assert d["n"] == 10 and d["won_share"] == 0.6 and d["tied_share"] == 0.1 and d["lost_share"] == 0.3
    assert d["won_interval"] == pytest.approx(list(wilson_interval(6, 10)))
    assert d["decisive_share"] == pytest.approx(6 / 9)
    assert d["decisive_interval"] == pytest.approx(list(wilson_interval(6, 9)))
    empty = Record(0, 0, 0).as_dict()
    assert empty["won_share"] is None and empty["won_interval"] == [None, None]


def rows(mid: str, rewards: list[float], costs: list[float], answers: list[str] | None = None) -> list[dict]:
    kinds = ["help", "help", "help", "harm", "harm"]
    answers = answers or [f"{mid} {i}" for i in range(5)]
    return [{"model_id": mid, "split": "test", "prompt_id": f"p{i}", "prompt_kind": kinds[i], "reward": rewards[i],
             "cost": costs[i], "answer": answers[i]} for i in range(5)]


def test_pairwise_judges_each_aspect_on_its_own_prompts():
    answers = pd.DataFrame(
        rows("a", [1.0, 0.0, 0.5, 9.0, 9.0], [9.0, 9.0, 9.0, -1.0, 0.5])
        + rows("b", [0.5, 0.5, 0.5, 0.0, 0.0], [-9.0, -9.0, -9.0, 0.0, 0.5])
        + [{**r, "split": "dev"} for r in rows("a", [0.0] * 5, [0.0] * 5)])  # another split: not counted
    rec = pairwise(answers, "a", "b", aspects=TWO)
    # helpfulness: rewards on p0..p2 only (a's 9.0 on harmful prompts does not count): win, loss, tie
    assert (rec["helpfulness"].won, rec["helpfulness"].tied, rec["helpfulness"].lost) == (1, 1, 1)
    # harmlessness: costs on p3, p4 only (b's −9 on benign prompts does not count): a lower on p3, tie on p4
    assert (rec["harmlessness"].won, rec["harmlessness"].tied, rec["harmlessness"].lost) == (1, 1, 0)
    # a model against itself ties everywhere
    same = pairwise(answers, "a", "a", aspects=TWO)
    assert same["helpfulness"].tied == 3 and same["harmlessness"].tied == 2


def test_pairwise_pairs_only_prompts_both_answered():
    answers = pd.DataFrame(rows("a", [1.0] * 5, [0.0] * 5) + rows("b", [0.0] * 5, [1.0] * 5)[1:])
    rec = pairwise(answers, "a", "b", aspects=TWO)
    assert rec["helpfulness"].n == 2 and rec["helpfulness"].won == 2 and rec["harmlessness"].won == 2


def test_votes_give_the_head_to_head_record():
    def vote(choice: str, columns: dict[str, dict]) -> dict:
        return {"choice": choice, "columns": [{"column_key": k, "scales": v} for k, v in columns.items()]}

    peo, soup = {"help": 1.5, "harm": 0.5}, {"help": 0.5, "harm": 0.5}
    votes = [vote("peo", {"peo": peo, "soup": soup}), vote("soup", {"peo": peo, "soup": soup}),
             vote("peo", {"peo": peo, "soup": soup, "ref": {}}), vote("tie", {"peo": peo, "soup": soup}),
             vote("ref", {"peo": peo, "soup": soup, "ref": {}}),  # a third column won: a tie between the two
             vote("peo", {"peo": peo, "ref": {}})]  # soup not shown: not counted
    a, b = scales_model_id(peo), scales_model_id(soup)
    assert (a, b) == ("c+1.500_+0.500", "c+0.500_+0.500")
    assert scales_model_id({"joint": 1.0}) == "joint" and scales_model_id({"joint": 1.5}) == "joint+1.500"
    r = vote_record(votes, a, b)
    assert (r.won, r.tied, r.lost) == (2, 2, 1)
    # a run of three aspects names its models by three coefficients, and its votes are read that way
    three = Aspects((*TWO, Aspect("brief", "brevity", "higher", "brevity")))
    brief = {**peo, "brief": 0.5}
    assert scales_model_id(brief, three) == "c+1.500_+0.500_+0.500"
    shown = {"peo": brief, "brief": {"brief": 1.0}}
    votes3 = [vote("peo", shown), vote("brief", shown)]
    r3 = vote_record(votes3, "c+1.500_+0.500_+0.500", "c+0.000_+0.000_+1.000", three)
    assert (r3.won, r3.tied, r3.lost) == (1, 0, 1)


def test_blind_judgments_give_the_record_per_aspect():
    from peo.win_rates import judgment_record

    def j(point, opponent, aspect, winner):
        return {"point": point, "opponent": opponent, "judge_on": aspect, "winner": winner}

    rows = [j("a", "b", "helpfulness", "a"), j("a", "b", "helpfulness", None), j("b", "a", "helpfulness", "b"),
            j("a", "b", "harmlessness", "b"), j("a", "c", "helpfulness", "a")]
    r = judgment_record(rows, "a", "b", "helpfulness")
    assert (r.won, r.tied, r.lost) == (1, 1, 1)
    assert judgment_record(rows, "b", "a", "harmlessness").won == 1
    assert judgment_record(rows, "a", "a", "helpfulness").n == 0


def test_an_llm_judges_verdicts_give_the_record_per_aspect_from_either_side():
    from peo.win_rates import judge_left_out, judge_outcome, judge_record

    def v(point, opponent, aspect, combined):
        return {"point": point, "opponent": opponent, "aspect": aspect, "combined": combined}

    rows = [v("a", "b", "helpfulness", "win"), v("a", "b", "helpfulness", "win"), v("b", "a", "helpfulness", "win"),
            v("b", "a", "helpfulness", "tie"), v("a", "b", "helpfulness", "unparsed"),
            v("b", "a", "helpfulness", "pending"), v("a", "b", "harmlessness", "loss"),
            v("a", "c", "helpfulness", "win")]  # another pair: not counted
    assert judge_outcome(rows[2], "a") == "loss" and judge_outcome(rows[2], "b") == "win"
    assert judge_outcome(rows[3], "a") == "tie" and judge_outcome(rows[4], "b") == "unparsed"
    r = judge_record(rows, "a", "b", "helpfulness")
    assert (r.won, r.tied, r.lost) == (2, 1, 1)
    assert judge_left_out(rows, "a", "b", "helpfulness") == {"unparsed": 1, "pending": 1}
    flipped = judge_record(rows, "b", "a", "helpfulness")
    assert (flipped.won, flipped.tied, flipped.lost) == (1, 1, 2)
    harm = judge_record(rows, "b", "a", "harmlessness")
    assert (harm.won, harm.n) == (1, 1) and judge_left_out(rows, "a", "b", "harmlessness") == {}
    assert judge_record(rows, "a", "a", "helpfulness").n == 0
