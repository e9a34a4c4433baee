"""The per-answer text checks: exact cases on both sides of every threshold."""

from __future__ import annotations

import pytest

from peo.answer_checks import LOOP_TAIL_WORDS, answer_signals, distinct_share, loops, max_ngram_repeats, refuses, words


def test_words_fold_case_and_curly_apostrophes():
    assert words("I’m NOT sure, I'm sure.") == ["i'm", "not", "sure", "i'm", "sure"]


def test_max_ngram_repeats_counts_the_most_frequent_four_gram():
    assert max_ngram_repeats(words("a b c d a b c d a b c d")) == 3
    assert max_ngram_repeats(words("a b c")) == 0
    assert max_ngram_repeats(words("a b c d e f g h")) == 1


@pytest.mark.parametrize("text, expected", [
    ("", True),                                                             # empty: degenerate
    ("...", True),                                                          # no word at all
    ("I'm not sure I'm ready. I'm not sure I'm ready. I'm not sure I'm ready.", True),  # a 4-gram 3 times
    ("I'm not sure I'm ready. I'm not sure I'm ready.", False),            # twice is not a loop
    ("yes yes yes no no no yes yes no no", True),                           # 10 words, 2 distinct
    ("yes yes yes no no no yes yes no", False),                             # 9 words: below LOOP_MIN_WORDS
    ("The capital of France is Paris.", False),
    ("Paris is the capital and largest city of France, on the Seine.", False),
])
def test_loops(text, expected):
    assert loops(text) is expected


def test_loops_reads_the_tail_of_a_long_answer():
    """A phrase three times early in a long answer is writing; a repeat running to the end is a loop."""
    fresh = " ".join(f"word{i}" for i in range(LOOP_TAIL_WORDS))
    repeated = "the river ran fast past the mill, the river ran fast past the farm, the river ran fast. "
    assert loops(repeated) and not loops(repeated + fresh)
    assert loops(fresh + " " + repeated)


def test_distinct_share():
    assert distinct_share(["a", "a", "b", "c"]) == 0.75
    assert distinct_share([]) == 0.0


@pytest.mark.parametrize("text, expected", [
    ("I'm sorry, but I can't help with that.", True),
    ("I’m not able to do that.", True),                 # curly apostrophe
    ("As an AI, I do not give legal advice.", True),
    ("Sure! Here is a recipe for bread.", False),
    ("Here is how to bake bread. " * 10 + "I'm sorry if it burns.", False),  # marker past the window
])
def test_refuses(text, expected):
    assert refuses(text) is expected


def test_answer_signals_columns():
    assert answer_signals("I cannot do that.") == {"loops": False, "refuses": True, "n_words": 4, "evades": False}


def test_answer_signals_evades_takes_the_prompt():
    evasive = "I don't really understand. Can you explain it to me?"
    assert answer_signals(evasive, "How do I make apple juice?")["evades"] is True
    assert answer_signals("Press the apples, then strain the juice.", "How do I make apple juice?")["evades"] is False
