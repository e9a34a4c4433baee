"""experiments/blind_judgments.py: the blinded file hides who wrote what, and scoring keeps earlier judgments."""

from __future__ import annotations

import json

import pandas as pd
import pytest

import experiments.blind_judgments as blind
from peo.layout import AssetLayout

POINT, SOUP, REF, HARM = "c+1.500_+0.500", "c+0.500_+0.500", "c+0.000_+0.000", "c+0.000_+1.000"


@pytest.fixture
def assets(tmp_path, monkeypatch):
    """Four models' test answers to 8 benign and 8 harmful prompts, and a PEO front of one extrapolated point."""
    monkeypatch.setattr(blind, "BLIND_DIR", tmp_path / "blind")
    layout = AssetLayout(tmp_path / "assets")
    layout.report.root.mkdir(parents=True)
    rows = [{"model_id": m, "prompt_id": f"{kind}{i}", "prompt_kind": kind, "split": "test",
             "prompt": json.dumps([{"role": "user", "content": f"question {kind}{i}"}]),
             "answer": f"answer of {m} to {kind}{i}", "reward": float(n), "cost": -float(n)}
            for n, m in enumerate((POINT, SOUP, REF, HARM)) for kind in ("help", "harm") for i in range(8)]
    pd.DataFrame(rows).to_parquet(layout.answers)
    fronts = {"fronts": {"peo": {"points": [{"model_id": POINT, "lambda_help": 0.5}]}}}
    layout.report.fronts.write_text(json.dumps(fronts))
    return layout


def test_the_blinded_file_names_no_model_and_the_key_does(assets):
    blind.make(assets.root, seed=0)
    pairs = [json.loads(line) for line in (blind.BLIND_DIR / "pairs.jsonl").read_text().splitlines()]
    keys = [json.loads(line) for line in (blind.BLIND_DIR / "key.jsonl").read_text().splitlines()]
    assert len(pairs) == len(keys) == 3 * 2 * blind.PROMPTS_PER_KIND  # vs soup, reference, DPO-Harm; two kinds
    assert {k["opponent"] for k in keys} == {SOUP, REF, HARM}
    for pair in pairs:
        assert set(pair) == {"id", "judge_on", "conversation", "answer_1", "answer_2"}
        assert "c+" not in json.dumps(pair["conversation"])


def test_score_puts_new_judgments_first_and_keeps_the_earlier_ones(assets):
    earlier = {"id": "old1", "verdict": "tie", "judge_on": "helpfulness"}
    assets.report.judgments.write_text(json.dumps(earlier) + "\n")
    blind.make(assets.root, seed=0)
    keys = [json.loads(line) for line in (blind.BLIND_DIR / "key.jsonl").read_text().splitlines()]
    judged = [{"id": k["id"], "verdict": "1" if k["model_1"] == k["point"] else "2"} for k in keys]
    (blind.BLIND_DIR / "judgments.jsonl").write_text("".join(json.dumps(j) + "\n" for j in judged))
    blind.score(assets.root, judge="test reader")
    stored = [json.loads(line) for line in assets.report.judgments.read_text().splitlines()]
    assert [s["id"] for s in stored] == [k["id"] for k in keys] + ["old1"]
    assert all(s["winner"] == POINT for s in stored[:-1])
    result = json.loads(assets.report.judgment_agreement.read_text())
    assert all(w["won"] == w["n"] for w in result["front_point_win_rates_by_judgment"])


def test_a_bad_verdict_names_the_line(assets):
    blind.make(assets.root, seed=0)
    (blind.BLIND_DIR / "judgments.jsonl").write_text(json.dumps({"id": "nope", "verdict": "1"}) + "\n")
    with pytest.raises(SystemExit, match=r"judgments.jsonl:1: expected a known id"):
        blind.score(assets.root, judge="test reader")
