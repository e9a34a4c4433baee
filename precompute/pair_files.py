"""The pair files prepare-data writes to the work dir (JSON lines, one PreferencePair each) and later stages read."""

from __future__ import annotations

import json
from pathlib import Path

from peo.atomic import write_with
from peo.data.records import Message, PreferencePair


def pair_to_json(pair: PreferencePair) -> dict:
    return {"prompt": pair.prompt_messages(), "chosen": pair.chosen, "rejected": pair.rejected,
            "aspect": pair.aspect, "source": pair.source, "prompt_id": pair.prompt_id}


def pair_from_json(obj: dict) -> PreferencePair:
    return PreferencePair(prompt=tuple(Message(m["role"], m["content"]) for m in obj["prompt"]),
                          chosen=obj["chosen"], rejected=obj["rejected"], aspect=obj["aspect"],
                          source=obj["source"], prompt_id=obj["prompt_id"])


def write_pairs(path: Path, pairs: list[PreferencePair]) -> None:
    text = "".join(json.dumps(pair_to_json(p), ensure_ascii=False) + "\n" for p in pairs)
    write_with(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def read_pairs(path: Path) -> list[PreferencePair]:
    with open(path, encoding="utf-8") as handle:
        return [pair_from_json(json.loads(line)) for line in handle if line.strip()]


DATA_DIR = "data"  # in the work dir: the pair files and their summary


def data_path(work: Path, aspect: str, split: str) -> Path:
    """`split`: evaluator, policy, test (held-out pairs), dev (one pair per dev prompt), test_prompts."""
    return work / DATA_DIR / f"{aspect}_{split}.jsonl"


def summary_path(work: Path) -> Path:
    """What prepare-data loaded, kept and used per aspect (meta.json's `data` is a copy)."""
    return work / DATA_DIR / "summary.json"
