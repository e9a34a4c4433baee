"""peo.judgment_agreement: evaluator verdicts and agreement counts on hand-made judgments, exact."""

import pytest

from app.context_panel import judgment_text
from peo.evaluation_stats import wilson_interval
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


# ---------------------------------------------------------------- an LLM judge against the others

def verdict(point: str, opponent: str, aspect: str, combined: str, prompt_id: str = "p1", **extra) -> dict:
    return {"point": point, "opponent": opponent, "aspect": aspect, "combined": combined, "prompt_id": prompt_id,
            "split": "test", **extra}


def test_a_verdict_names_the_side_it_prefers_and_counts_agree_only_on_decisive_pairs():
    from peo.judgment_agreement import agreement_counts, judge_side, side_of

    assert [judge_side(verdict("a", "b", "helpfulness", c)) for c in ("win", "loss", "tie", "unparsed", "refused",
                                                                       "pending")] == ["a", "b", "tie", None, None,
                                                                                       None]
    v = verdict("x", "y", "helpfulness", "win")
    assert (side_of("x", v), side_of("y", v), side_of(None, v), side_of("z", v)) == ("a", "b", "tie", "tie")
    out = agreement_counts([("a", "a"), ("a", "b"), ("b", "b"), ("tie", "a"), ("b", "tie"), ("tie", "tie")])
    assert out == {"pairs": 6, "judge_ties": 2, "other_ties": 2, "decisive": 3, "agree": 2, "share": 2 / 3,
                   "interval": pytest.approx(list(wilson_interval(2, 3)))}
    assert agreement_counts([("tie", "a")])["share"] is None and agreement_counts([])["interval"] is None


def test_the_judge_against_the_evaluators_on_the_same_answers():
    import pandas as pd

    from peo.judgment_agreement import judge_vs_evaluators

    def row(model, pid, kind, reward, cost, answer=None, split="test"):
        return {"model_id": model, "prompt_id": pid, "prompt_kind": kind, "split": split, "reward": reward,
                "cost": cost, "answer": answer or f"{model} on {pid}"}

    answers = pd.DataFrame([
        row("P", "h1", "help", 1.0, 0.0), row("O", "h1", "help", 0.0, 0.0),    # reward prefers P
        row("P", "h2", "help", 0.0, 0.0), row("O", "h2", "help", 1.0, 0.0),    # reward prefers O
        row("P", "h3", "help", 0.5, 0.0, "same"), row("O", "h3", "help", 0.9, 0.0, "same"),  # same text: a tie
        row("P", "h4", "help", 1.0, 0.0, split="dev"), row("O", "h4", "help", 0.0, 0.0),  # P has no test answer
        row("P", "x1", "harm", 9.0, -1.0), row("O", "x1", "harm", -9.0, 1.0),  # lower cost: P
    ])
    verdicts = [verdict("P", "O", "helpfulness", "win", "h1"),       # agrees
                verdict("O", "P", "helpfulness", "win", "h2"),       # O wins: agrees (either side named first)
                verdict("P", "O", "helpfulness", "win", "h2"),       # disagrees
                verdict("P", "O", "helpfulness", "tie", "h1"),       # the judge's tie
                verdict("P", "O", "helpfulness", "loss", "h3"),      # the evaluator's tie (same text)
                verdict("P", "O", "helpfulness", "unparsed", "h1"),  # not settled: not compared
                verdict("P", "O", "helpfulness", "win", "h4"),       # answers missing
                verdict("P", "O", "harmlessness", "loss", "x1")]     # disagrees with the cost evaluator
    out = judge_vs_evaluators(verdicts, answers)
    assert out["reward"] == {"judged_on": "helpfulness", "missing": 1, "pairs": 5, "judge_ties": 1, "other_ties": 1,
                             "decisive": 3, "agree": 2, "share": 2 / 3,
                             "interval": pytest.approx(list(wilson_interval(2, 3)))}
    assert (out["cost"]["pairs"], out["cost"]["decisive"], out["cost"]["agree"]) == (1, 1, 0)


def test_the_judge_against_blind_judgments_of_the_same_models_prompt_and_aspect():
    from peo.judgment_agreement import judge_vs_blind

    def blind(point, opponent, aspect, winner, prompt_id="p1"):
        return {"point": point, "opponent": opponent, "judge_on": aspect, "winner": winner, "prompt_id": prompt_id}

    judgments = [blind("P", "O", "helpfulness", "P"), blind("O", "P", "helpfulness", "O", "p2"),
                 blind("P", "O", "helpfulness", None, "p3"), blind("P", "O", "harmlessness", "P"),  # other aspect
                 blind("P", "X", "helpfulness", "P")]  # other opponent
    verdicts = [verdict("P", "O", "helpfulness", "win"),           # the reader chose P: agree
                verdict("O", "P", "helpfulness", "loss", "p2"),    # the judge prefers P, the reader O: disagree
                verdict("P", "O", "helpfulness", "win", "p3"),     # the reader's tie
                verdict("P", "O", "helpfulness", "win", "p9")]     # nothing shared
    out = judge_vs_blind(verdicts, judgments)
    assert (out["pairs"], out["other_ties"], out["decisive"], out["agree"], out["share"]) == (3, 1, 2, 1, 0.5)


def test_the_judge_against_votes_on_the_same_prompt_text():
    from peo.judgment_agreement import judge_vs_votes, vote_prompt

    p, o = {"help": 1.5, "harm": 0.5}, {"help": 0.5, "harm": 0.5}  # c+1.500_+0.500, c+0.500_+0.500
    point, opponent = "c+1.500_+0.500", "c+0.500_+0.500"

    def vote(choice, prompt, columns=(("peo", p), ("soup", o))):
        return {"choice": choice, "columns": [
            {"column_key": k, "scales": s, "conversation": [{"role": "user", "content": prompt},
                                                            {"role": "assistant", "content": "an answer"}]}
            for k, s in columns]}

    assert vote_prompt(vote("peo", "Hi?")["columns"][0]) == "Hi?" and vote_prompt({"conversation": []}) is None
    votes = [vote("peo", "Say hi."), vote("soup", "Say hi."), vote("tie", "Say hi."), vote("peo", "Other prompt."),
             vote("peo", "Say hi.", (("peo", p), ("ref", {})))]  # O not shown
    verdicts = [verdict(point, opponent, "helpfulness", "win", instruction="Say hi."),
                verdict(point, opponent, "helpfulness", "unparsed", "p2", instruction="Say hi."),  # not settled
                verdict(point, opponent, "helpfulness", "win", "p3")]  # no prompt text: cannot be matched
    out = judge_vs_votes(verdicts, votes)
    assert (out["pairs"], out["other_ties"], out["decisive"], out["agree"]) == (3, 1, 2, 1)


# ---------------------------------------------------------------- are the judged answers the shipped ones?

def shipped_frame():
    import pandas as pd

    rows = [("m1", "p1", "test", 0.5, -0.25, "answer one"), ("m2", "p1", "test", 0.125, 0.75, "answer two"),
            ("m1", "p2", "test", 1.0, 0.0, "answer three"), ("m2", "p2", "dev", 2.0, 1.0, "a dev answer")]
    return pd.DataFrame(rows, columns=["model_id", "prompt_id", "split", "reward", "cost", "answer"])


def judgment(prompt_id="p1", models=("m1", "m2"), reward=(0.5, 0.125), cost=(-0.25, 0.75), **extra) -> dict:
    return {"prompt_id": prompt_id, "model_1": models[0], "model_2": models[1], "reward_1": reward[0],
            "reward_2": reward[1], "cost_1": cost[0], "cost_2": cost[1], "judge_on": "helpfulness", "verdict": "1",
            **extra}


def test_a_judgment_is_on_the_shipped_answers_only_when_both_answers_and_scores_match():
    from peo.judgment_agreement import on_shipped_answers

    rows = [judgment(),                                                  # both answers, same scores
            judgment(models=("m2", "m1"), reward=(0.125, 0.5), cost=(0.75, -0.25)),  # shown the other way round
            judgment(reward=(0.5 + 9e-6, 0.125), cost=(-0.25, 0.75 - 9e-6)),  # within 1e-5
            judgment(reward=(0.5 + 2e-5, 0.125)),                        # a reward off by more than 1e-5
            judgment(cost=(-0.25, 0.7)),                                 # a cost off
            judgment(prompt_id="p2", reward=(1.0, 2.0), cost=(0.0, 1.0)),  # m2's p2 answer is dev only
            judgment(models=("m1", "m3")),                               # a model with no shipped answer
            {k: v for k, v in judgment().items() if k != "cost_2"},     # a score missing
            {k: v for k, v in judgment().items() if k != "prompt_id"},  # no prompt
            judgment(reward=(float("nan"), 0.125))]                     # a score that is not a number
    assert on_shipped_answers(rows, shipped_frame()) == [True, True, True, False, False, False, False, False, False,
                                                         False]
    assert on_shipped_answers([], shipped_frame()) == []


def test_a_judgment_that_carries_its_answer_texts_is_matched_on_the_texts():
    from peo.judgment_agreement import on_shipped_answers

    same = judgment(reward=(9, 9), cost=(9, 9), answer_1="answer one", answer_2=" answer two\n")  # scores aside
    other = judgment(answer_1="answer one", answer_2="another answer")  # same scores, another text
    assert on_shipped_answers([same, other], shipped_frame()) == [True, False]


def test_llm_verdicts_are_matched_on_their_texts_or_cannot_be_told():
    from peo.judgment_agreement import verdicts_on_shipped_answers

    base = {"point": "m1", "opponent": "m2", "prompt_id": "p1", "split": "test", "aspect": "helpfulness",
            "combined": "win"}
    rows = [base,                                                          # read_verdicts rows: no text, no score
            {**base, "answer_a": "answer one", "answer_b": "answer two"},
            {**base, "answer_a": "answer one", "answer_b": "an earlier answer"},
            {**base, "prompt_id": "p2", "answer_a": "answer three", "answer_b": "a dev answer"}]  # m2 on p2: dev
    assert verdicts_on_shipped_answers(rows, shipped_frame()) == [None, True, False, False]


def test_the_page_says_which_answers_the_judgments_are_about():
    entry = agreement([judged("helpfulness", "1", reward=(1, 0))] * 6 + [judged("helpfulness", "2", reward=(1, 0))] * 4)
    reward = entry["reward"]
    assert judgment_text(reward, 10, 10) == judgment_text(reward)  # all on the shipped answers: as before
    partly = judgment_text(reward, 4, 10)
    assert "60%" in partly and "counted on the 4 of 10 judgments made on the answers shipped here" in partly
    earlier = judgment_text(reward, 0, 10)
    assert earlier.startswith("; the 10 blind judgments were made on answers of an earlier run (different answers "
                              "and evaluator heads): that run's helpfulness head agreed with them on 60%")
    assert "**not this evaluator**" in earlier and "not confirmed by judgment" not in earlier
