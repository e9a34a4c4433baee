"""experiments/loop_check.py: the loop rule on the whole answer or on its tail, scored against hand labels."""

from __future__ import annotations

import json

import pytest

from experiments.loop_check import agreement, main, tail_loops

STORY = ("The river ran fast past the mill, the river ran fast past the farm, the river ran fast to the sea. "
         + " ".join(f"word{i}" for i in range(80)))
STUCK = "Here is my answer. " + " ".join(["I don't really care."] * 12)


def test_a_phrase_repeated_early_is_a_loop_only_for_the_whole_answer_rule():
    assert tail_loops(STORY, None)  # "the river ran ..." three times
    assert not tail_loops(STORY, 60)  # its last 60 words are all different
    assert tail_loops(STUCK, None) and tail_loops(STUCK, 60)


def test_agreement_counts_against_the_labels():
    labels = [{"answer": STORY, "loops": False}, {"answer": STUCK, "loops": True}]
    whole, tail = agreement(labels, None), agreement(labels, 60)
    assert (whole["true_positives"], whole["false_positives"], whole["false_negatives"]) == (1, 1, 0)
    assert (tail["true_positives"], tail["false_positives"], tail["false_negatives"]) == (1, 0, 0)
    assert whole["precision"] == 0.5 and tail["precision"] == 1.0 and tail["recall"] == 1.0


def test_a_bad_label_line_is_named(tmp_path):
    path = tmp_path / "labels.jsonl"
    path.write_text(json.dumps({"answer": "fine", "loops": True}) + "\n" + json.dumps({"answer": "x", "loops": "yes"}))
    with pytest.raises(SystemExit, match=r"labels.jsonl:2: expected"):
        main(["--labels", str(path)])
