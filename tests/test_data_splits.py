"""Splits: determinism, prompt-disjointness, fraction checks, caps and the token-length filter."""

from __future__ import annotations

import pytest

from peo.data.records import Message, PreferencePair, prompt_id_of
from peo.data.splits import assign_split, cap, check_fractions, filter_by_length, split_pairs


def pair(q: str, c: str = "yes", r: str = "no") -> PreferencePair:
    prompt = (Message("user", q),)
    return PreferencePair(prompt, c, r, "help", "test", prompt_id_of(prompt))


def many(n_prompts: int = 200, per_prompt: int = 3) -> list[PreferencePair]:
    return [pair(f"question {i}", f"good {j}", f"bad {j}") for i in range(n_prompts) for j in range(per_prompt)]


FR = {"train": 0.8, "dev": 0.1, "test": 0.1}


def test_assign_split_deterministic_and_seeded():
    ids = [prompt_id_of((Message("user", str(i)),)) for i in range(500)]
    a = [assign_split(i, 0, FR) for i in ids]
    assert a == [assign_split(i, 0, FR) for i in ids]
    assert a != [assign_split(i, 1, FR) for i in ids]
    share = a.count("train") / len(a)
    assert 0.72 < share < 0.88 and set(a) == set(FR)
    assert {assign_split(i, 0, {"all": 1.0}) for i in ids} == {"all"}
    assert {assign_split(i, 0, {"none": 0.0, "all": 1.0}) for i in ids} == {"all"}


@pytest.mark.parametrize("fractions", [{"train": 0.8, "dev": 0.1}, {"train": 0.9, "dev": 0.2}, {},
                                       {"train": 1.5, "dev": -0.5}, {"train": float("nan")}])
def test_fractions_must_sum_to_one(fractions):
    with pytest.raises(ValueError) as e:
        assign_split("abc", 0, fractions)
    if fractions:
        assert "train" in str(e.value)


def test_fractions_tolerance():
    check_fractions({"a": 0.1, "b": 0.2, "c": 0.7})  # float sum 1.0000000000000002 is fine
    with pytest.raises(ValueError, match="sum to 1"):
        check_fractions({"a": 0.5, "b": 0.5 + 1e-6})


def test_split_pairs_prompt_disjoint_and_order_independent():
    pairs = many()
    splits = split_pairs(pairs, FR, seed=7)
    assert list(splits) == list(FR)
    assert sum(len(v) for v in splits.values()) == len(pairs)
    ids = {name: {p.prompt_id for p in v} for name, v in splits.items()}
    assert not (ids["train"] & ids["dev"]) and not (ids["train"] & ids["test"]) and not (ids["dev"] & ids["test"])
    for name, v in splits.items():
        assert all(assign_split(p.prompt_id, 7, FR) == name for p in v)
    assert split_pairs(list(reversed(pairs)), FR, seed=7) == splits
    assert split_pairs(pairs, FR, seed=8) != splits
    # the order is hash-based: not simply the input order
    assert [p for p in pairs if p in set(splits["train"])] != splits["train"]


def test_cap_and_per_prompt_max():
    pairs = many(10, 5)
    assert cap(pairs, 7) == pairs[:7]
    assert cap(pairs, None) == pairs
    capped = cap(pairs, 12, per_prompt_max=2)
    assert len(capped) == 12
    counts: dict[str, int] = {}
    for p in capped:
        counts[p.prompt_id] = counts.get(p.prompt_id, 0) + 1
    assert max(counts.values()) == 2 and len(counts) == 6
    assert len(cap(pairs, None, per_prompt_max=1)) == 10
    assert cap(pairs, 0) == []
    with pytest.raises(ValueError, match="per_prompt_max"):
        cap(pairs, 3, per_prompt_max=-1)


def test_filter_by_length_with_counter():
    pairs = [pair("short", "a b", "c"), pair("a much longer prompt here", "x", "y"), pair("q", "w " * 10, "z")]

    def count(p: PreferencePair) -> tuple[int, int, int]:
        return len(p.prompt[0].content.split()), len(p.chosen.split()), len(p.rejected.split())

    kept, dropped = filter_by_length(pairs, count, max_prompt_tokens=3, max_response_tokens=5)
    assert kept == [pairs[0]] and dropped == 2
    assert filter_by_length(pairs, count, None, None) == (pairs, 0)


class WordTokenizer:
    """A stand-in Hugging Face tokenizer: one token per whitespace-separated word."""

    def __init__(self, chat_template: str | None) -> None:
        self.chat_template = chat_template
        self.rendered: list[str] = []

    def encode(self, text, add_special_tokens=True):
        return list(range(len(text.split())))

    def __call__(self, text, add_special_tokens=True):
        return {"input_ids": self.encode(text)}

    def apply_chat_template(self, messages, tokenize=True, add_generation_prompt=False):
        assert tokenize is False and add_generation_prompt is True
        text = " ".join(f"<{m['role']}> {m['content']}" for m in messages) + " <assistant>"
        self.rendered.append(text)
        return text


def test_filter_by_length_with_tokenizer_uses_chat_template():
    pairs = [pair("one two", "a b c", "d"), pair("one two three four", "a", "b")]
    tok = WordTokenizer(chat_template="x")
    # with template: "<user> one two <assistant>" = 4 tokens; the second prompt 6
    kept, dropped = filter_by_length(pairs, tok, max_prompt_tokens=4, max_response_tokens=3)
    assert kept == [pairs[0]] and dropped == 1 and tok.rendered
    kept, dropped = filter_by_length(pairs, tok, max_prompt_tokens=10, max_response_tokens=2)
    assert kept == [pairs[1]] and dropped == 1
    plain = WordTokenizer(chat_template=None)
    # without template: "user: one two" = 3 tokens
    kept, _ = filter_by_length(pairs, plain, max_prompt_tokens=3, max_response_tokens=None)
    assert kept == [pairs[0]] and not plain.rendered


def test_filter_by_length_with_real_tiny_tokenizer(tiny_base):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_base)
    pairs = [pair("Hi", "Hello", "Go away"), pair("word " * 300, "ok", "no")]
    kept, dropped = filter_by_length(pairs, tok, max_prompt_tokens=64, max_response_tokens=64)
    assert kept == [pairs[0]] and dropped == 1
