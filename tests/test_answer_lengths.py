"""experiments/answer_lengths.py: the cut share a larger token limit would leave, from answers made again."""

from __future__ import annotations

import json

import pandas as pd

from experiments.answer_lengths import cut_shares, main


def test_cut_shares_count_the_answers_that_reach_each_limit():
    lengths = pd.Series([10, 20, 30, 40])  # the last one reached the study's own limit, 40
    assert cut_shares(lengths, [10, 25, 40]) == {10: 1.0, 25: 0.5, 40: 0.25}


def test_answers_made_again_at_a_larger_limit_extend_the_shipped_ones(tiny_assets, tmp_path):
    out = tmp_path / "lengths.json"
    assert main(["--assets", str(tiny_assets), "--config", "precompute/configs/tiny.yaml", "--split", "dev",
                 "--max-new-tokens", "12", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    answers = pd.read_parquet(tiny_assets / "answers.parquet")
    dev = answers[answers["split"] == "dev"].drop_duplicates(["model_id", "prompt_id"])
    assert result["rows"] == len(dev)
    assert result["generated_again"] == int(dev["cut"].sum()) > 0
    assert result["shipped_text_is_prefix_share"] == 1.0  # greedy: the same opening, then more
    shares = result["cut_share_by_limit"]
    assert shares[str(result["shipped_limit"])] == float(dev["cut"].mean())
    assert list(shares.values()) == sorted(shares.values(), reverse=True)
    lengths = {(r["model_id"], r["prompt_id"]): r["new_tokens"] for r in result["rows_detail"]}
    for _, row in dev[~dev["cut"]].iterrows():  # ended answers keep their length
        assert lengths[(row["model_id"], str(row["prompt_id"]))] == row["new_tokens"]
