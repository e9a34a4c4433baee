"""How well the loop rule (peo/answer_checks.py) tells degenerate repetition from long answers, on hand labels.

The rule (a 4-gram three times, or few distinct words) was set on 48-token answers and read the whole answer. At
448 tokens a natural answer repeats a phrase three times often enough, so it was scored on the answer's last `W`
words too: a loop runs to the end of an answer, a repeated phrase in ordinary writing does not. The rule now reads
the last 60 words (peo/answer_checks.py); "whole answer" here is the rule as it was.

    python -m experiments.loop_check --labels experiments/labels/loops-run8-dev.jsonl --tails 40 60 80 120
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from peo.answer_checks import loops_in, words
from peo.data.jsonl import iter_jsonl
from peo.evaluation_stats import wilson_interval


def tail_loops(text: str, tail_words: int | None) -> bool:
    """The loop rule on the whole answer (None: the rule before it read the tail) or on its last `tail_words` words."""
    tokens = words(text)
    return loops_in(tokens if tail_words is None else tokens[-tail_words:])


def agreement(labels: list[dict], tail_words: int | None) -> dict:
    """Precision and recall of the rule against the labels' `loops`, with Wilson 95 % intervals."""
    flagged = [tail_loops(x["answer"], tail_words) for x in labels]
    truth = [bool(x["loops"]) for x in labels]
    tp = sum(f and t for f, t in zip(flagged, truth))
    fp = sum(f and not t for f, t in zip(flagged, truth))
    fn = sum(t and not f for f, t in zip(flagged, truth))
    return {"rule": "whole answer" if tail_words is None else f"last {tail_words} words",
            "flagged": tp + fp, "true_positives": tp, "false_positives": fp, "false_negatives": fn,
            "precision": tp / (tp + fp) if tp + fp else None, "precision_interval": wilson_interval(tp, tp + fp),
            "recall": tp / (tp + fn) if tp + fn else None, "recall_interval": wilson_interval(tp, tp + fn)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.loop_check", description=__doc__.split("\n")[0])
    parser.add_argument("--labels", type=Path, required=True, help="JSONL: answer, loops (the hand label)")
    parser.add_argument("--tails", type=int, nargs="*", default=[60], help="W values to score besides the whole answer")
    args = parser.parse_args(argv)
    labels = []
    for n, row in iter_jsonl(args.labels):  # a line that is not a JSON object is a DataError naming it
        if not isinstance(row.get("answer"), str) or not isinstance(row.get("loops"), bool):
            raise SystemExit(f"{args.labels}:{n}: expected a string `answer` and a true/false `loops`")
        labels.append(row)
    print(json.dumps([agreement(labels, w) for w in [None, *args.tails]], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
