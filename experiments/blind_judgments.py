"""Blind pairwise judgments of test answers, and how far the evaluators agree with them (issue 21, item 5).

    python -m experiments.blind_judgments make    # runs/blind/pairs.jsonl (what the reader sees) + key.jsonl
    (a reader fills runs/blind/judgments.jsonl: {"id", "verdict": "1"|"2"|"tie", "off_topic": [bool, bool]})
    python -m experiments.blind_judgments score   # assets/report/blind_judgments.jsonl + judgment_agreement.json

`score` puts the new judgments first in report/blind_judgments.jsonl and keeps the file's earlier ones (other
ids) after them: the report counts only the judgments whose answers it still ships, and the rest stay the record.

Why a separate blinded file: the reader must see neither model names, coefficients nor scores, and the order of
the two answers must carry no information. `make` writes the conversation and the two answers in a random order
under a random id; the key (which model wrote which answer) stays in another file that the reader never opens.
Each pair is judged on the aspect its prompt belongs to: helpfulness on benign prompts, harmlessness on harmful
ones (the rule of the split-aware figures). Pairs whose two answers are the same text are left out.
"""

from __future__ import annotations

import argparse
import json
import random
import secrets
from pathlib import Path

import pandas as pd

from peo.aspects import DEFAULT_ASPECTS
from peo.atomic import write_json, write_text
from peo.coefficients import coefficients, model_id
from peo.data.jsonl import iter_jsonl
from peo.evaluation_stats import wilson_interval
from peo.judgment_agreement import agreement, evaluator_verdict
from peo.layout import AssetLayout
from peo.names import REFERENCE_MODEL_ID
from peo.sweep_plan import baseline_model_id

BLIND_DIR = Path("runs/blind")
ASPECT_OF_KIND = {"help": "helpfulness", "harm": "harmlessness"}
HARM_MODEL_ID = baseline_model_id("harm", DEFAULT_ASPECTS)  # DPO-Harm (this reading is of two-aspect runs)
PROMPTS_PER_KIND = 8  # per (front point, opponent): 8 benign + 8 harmful test prompts
VERDICTS = ("1", "2", "tie")


def soup_model_id(lambda_help: float) -> str:
    return model_id(*coefficients((lambda_help,)))


def comparisons(fronts: dict) -> list[tuple[str, str, str]]:
    """(front point, opponent, comparison) for every extrapolated point of the shipped PEO front (loop filter on):
    against the soup at the same λ, the reference and DPO-Harm. Soup points on the front have no soup opponent."""
    out = []
    for point in fronts["fronts"]["peo"]["points"]:
        soup = soup_model_id(point["lambda_help"])
        if point["model_id"] == soup:
            continue
        out += [(point["model_id"], soup, "vs_soup"), (point["model_id"], REFERENCE_MODEL_ID, "vs_reference"),
                (point["model_id"], HARM_MODEL_ID, "vs_dpo_harm")]
    return out


def make(assets: Path, seed: int) -> None:
    rng = random.Random(seed)
    layout = AssetLayout(assets)
    answers = pd.read_parquet(layout.answers)
    test = answers[answers["split"] == "test"].set_index(["model_id", "prompt_id"])
    fronts = json.loads(layout.report.fronts.read_text(encoding="utf-8"))
    prompt_ids = {k: sorted(answers.loc[(answers["split"] == "test") & (answers["prompt_kind"] == k), "prompt_id"]
                            .unique()) for k in ASPECT_OF_KIND}
    items, keys = [], []
    for point, opponent, comparison in comparisons(fronts):
        for kind, ids in prompt_ids.items():
            for prompt_id in rng.sample(ids, PROMPTS_PER_KIND):
                a, b = test.loc[(point, prompt_id)], test.loc[(opponent, prompt_id)]
                if a["answer"].strip() == b["answer"].strip():
                    continue
                first, second = (point, opponent) if rng.random() < 0.5 else (opponent, point)
                by_model = {point: a, opponent: b}
                item_id = secrets.token_hex(4)
                items.append({"id": item_id, "judge_on": ASPECT_OF_KIND[kind],
                              "conversation": json.loads(a["prompt"]),
                              "answer_1": by_model[first]["answer"], "answer_2": by_model[second]["answer"]})
                keys.append({"id": item_id, "prompt_id": prompt_id, "prompt_kind": kind, "comparison": comparison,
                             "point": point, "opponent": opponent, "model_1": first, "model_2": second,
                             **{f"{score}_{i}": float(by_model[m][score]) for score in ("reward", "cost")
                                for i, m in ((1, first), (2, second))}})
    order = list(range(len(items)))
    rng.shuffle(order)
    BLIND_DIR.mkdir(parents=True, exist_ok=True)
    for name, rows in (("pairs.jsonl", [items[i] for i in order]), ("key.jsonl", keys)):
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        write_text(BLIND_DIR / name, text)
    print(f"{len(items)} blinded pairs in {BLIND_DIR / 'pairs.jsonl'}; key in {BLIND_DIR / 'key.jsonl'}")


def read_jsonl(path: Path) -> list[dict]:
    """The objects of a JSON-lines file (a bad line is a DataError naming the file and line)."""
    return [row for _, row in iter_jsonl(path)]


def share(successes: int, n: int) -> dict:
    low, high = wilson_interval(successes, n)
    return {"share": successes / n if n else None, "n": n, "ci95": [low, high]}


def score(assets: Path, judge: str) -> None:
    keys = {k["id"]: k for k in read_jsonl(BLIND_DIR / "key.jsonl")}
    judged = read_jsonl(BLIND_DIR / "judgments.jsonl")
    records = []
    for number, j in enumerate(judged, 1):
        if j.get("id") not in keys or j.get("verdict") not in VERDICTS:
            raise SystemExit(f"{BLIND_DIR / 'judgments.jsonl'}:{number}: expected a known id and verdict in {VERDICTS}")
        key = keys[j["id"]]
        judge_on = ASPECT_OF_KIND[key["prompt_kind"]]
        side = {"1": key["model_1"], "2": key["model_2"], "tie": None}
        records.append({**key, "judge_on": judge_on, "judge": judge, "verdict": j["verdict"],
                        "winner": side[j["verdict"]], "off_topic": j.get("off_topic", [False, False]),
                        "evaluator_verdict": evaluator_verdict({**key, "judge_on": judge_on})})
    frame = pd.DataFrame(records)
    result: dict = {"judge": judge, "n_judgments": len(frame),
                    "rule": "helpfulness by reward on benign prompts, harmlessness by cost on harmful prompts"}
    result["evaluator_agreement_on_decisive_pairs"] = agreement(records)
    wins = []
    for (comparison, judge_on), part in frame.groupby(["comparison", "judge_on"]):
        won = int((part["winner"] == part["point"]).sum())
        lost = int((part["winner"] == part["opponent"]).sum())
        by_eval = part.apply(lambda r: r["model_" + r["evaluator_verdict"]] if r["evaluator_verdict"] != "tie"
                             else None, axis=1)
        wins.append({"comparison": comparison, "judge_on": judge_on, "n": len(part), "won": won, "lost": lost,
                     "tied": len(part) - won - lost,
                     "win_share_of_decisive": share(won, won + lost),
                     "evaluators_won": int((by_eval == part["point"]).sum())})
    result["front_point_win_rates_by_judgment"] = wins
    off = [(r[f"model_{i + 1}"], bool(r["off_topic"][i])) for r in records for i in range(2)]
    off_frame = pd.DataFrame(off, columns=["model_id", "off_topic"])
    result["off_topic_share_by_model"] = {m: share(int(g["off_topic"].sum()), len(g))
                                          for m, g in off_frame.groupby("model_id")}
    report = AssetLayout(assets).report
    earlier = [r for r in read_jsonl(report.judgments) if r.get("id") not in keys] if report.judgments.exists() else []
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records + earlier)
    write_text(report.judgments, text)
    write_json(report.judgment_agreement, result)
    print(json.dumps(result, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["make", "score"])
    parser.add_argument("--assets", type=Path, default=Path("assets"))
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--judge", default="developer (an AI engineer reading blind)")
    args = parser.parse_args()
    make(args.assets, args.seed) if args.command == "make" else score(args.assets, args.judge)


if __name__ == "__main__":
    main()
