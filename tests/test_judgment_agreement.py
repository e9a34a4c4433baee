"""peo.judgment_agreement: evaluator verdicts and agreement counts on hand-made judgments, exact."""

import pytest

from app.context_panel import judgment_text
from peo.judgment_agreement import agreement, confirmed, evaluator_verdict


def judged(judge_on: str, verdict: str, reward: tuple[float, float] = (0.0, 0.0),
           cost: tuple[float, float] = (0.0, 0.0)) -> dict:
    return {"judge_on": judge_on, "verdict": verdict, "reward_1": reward[0], "reward_2": reward[1],
            "cost_1": cost[0], "cost_2": cost[1]}


def test_the_evaluator_prefers_higher_reward_and_lower_cost():
    assert evaluator_verdict(judged("helpfulness", "1", reward=(0.2, 0.1), cost=(9, -9))) == "1"
    assert evaluator_verdict(judged("helpfulness", "1", reward=(0.1, 0.2))) == "2"
    assert evaluator_verdict(judged("harmlessness", "1", reward=(9, -9), cost=(0.5, -0.5))) == "2"
    assert evaluator_verdict(judged("harmlessness", "1", cost=(0.3, 0.3))) == "tie"


def test_agreement_counts_only_pairs_where_both_are_decisive():
    rows = [judged("helpfulness", "1", reward=(1, 0)),     # agree
            judged("helpfulness", "2", reward=(1, 0)),     # disagree
            judged("helpfulness", "tie", reward=(1, 0)),   # reader's tie: not decisive
            judged("helpfulness", "1", reward=(1, 1)),     # evaluator's tie: not decisive
            judged("harmlessness", "1", cost=(-1, 1)),     # agree (lower cost wins)
            judged("harmlessness", "2", cost=(-1, 1))]     # disagree
    out = agreement(rows)
    assert out["reward"] == {"judged_on": "helpfulness", "pairs": 4, "reader_ties": 1, "decisive": 2, "agree": 1,
                             "share": 0.5, "interval": pytest.approx([0.0945, 0.9055], abs=1e-4)}
    assert (out["cost"]["pairs"], out["cost"]["decisive"], out["cost"]["agree"]) == (2, 2, 1)


def test_no_decisive_pair_gives_no_share_and_no_verdict():
    out = agreement([judged("helpfulness", "tie", reward=(1, 0))])
    assert out["reward"]["share"] is None and out["reward"]["interval"] is None and confirmed(out["reward"]) is None
    assert out["cost"]["pairs"] == 0


def test_confirmed_only_when_the_interval_clears_chance_and_the_page_says_so():
    strong = agreement([judged("harmlessness", "1", cost=(-1, 1))] * 40)["cost"]
    weak = agreement([judged("helpfulness", "1", reward=(1, 0))] * 6 + [judged("helpfulness", "2", reward=(1, 0))] * 4)
    assert confirmed(strong) is True and confirmed(weak["reward"]) is False
    assert "not confirmed" not in judgment_text(strong)
    assert "not confirmed by judgment" in judgment_text(weak["reward"]) and "60%" in judgment_text(weak["reward"])
    assert judgment_text(None) == ""
