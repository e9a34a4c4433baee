"""peo.digest: the one JSON fingerprint gives the same bytes as the one-liners it replaced, so no key changes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd

from peo.data.records import Message, prompt_id_of
from peo.digest import digest

REPO = Path(__file__).resolve().parents[1]


def test_digest_is_the_sha256_of_sorted_json_with_str_for_the_rest():
    obj = {"b": [1, 2.5, "é"], "a": {"z": None, "y": True}, "p": Path("x/y")}
    by_hand = hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode("utf-8")).hexdigest()
    assert digest(obj) == by_hand == "80b6121bf008c20432cd066571316d054db10f88994607c5d0e51fa9b9b2dee7"
    assert digest({"a": 1, "b": 2}) == digest({"b": 2, "a": 1})


def test_prompt_ids_keep_non_ascii_text_as_is():
    prompt = [["user", "héllo ✓"]]
    by_hand = hashlib.sha256(json.dumps(prompt, ensure_ascii=False).encode("utf-8")).hexdigest()
    assert digest(prompt, ensure_ascii=False) == by_hand
    assert by_hand == "f0b481cb8477cef4764e3393f75fd93c8ef26973eb1ebef5e74e8acf9540c782"
    assert digest(prompt) != by_hand  # escaped non-ASCII is other bytes


def test_shipped_prompt_ids_are_unchanged():
    """Every prompt of the shipped answers (some not ASCII) still hashes to its recorded prompt_id."""
    answers = pd.read_parquet(REPO / "assets" / "answers.parquet", columns=["prompt", "prompt_id"])
    for prompt, recorded in answers.drop_duplicates("prompt_id").itertuples(index=False):
        messages = tuple(Message(m["role"], m["content"]) for m in json.loads(prompt))
        assert prompt_id_of(messages) == recorded
