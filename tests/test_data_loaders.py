"""Loaders: transcript parsing, preference mapping, drops, duplicates and error messages."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

import pytest

from peo.data.alpaca_eval import load_alpaca_eval
from peo.data.errors import DataError
from peo.data.hh_rlhf import load_hh_rlhf, parse_transcript
from peo.data.jsonl import iter_jsonl
from peo.data.pairs_jsonl import load_pairs_jsonl
from peo.data.pku_saferlhf import load_pku_saferlhf
from peo.data.records import Message, prompt_id_of
from peo.data.sources import detect_format, load_source
from peo.data.validate import format_summary, validate_file

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def write_jsonl(path: Path, rows: list, gz: bool | None = None) -> Path:
    text = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)
    if gz if gz is not None else path.name.endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def hh(*turns: str) -> str:
    return "".join(f"\n\n{'Human' if i % 2 == 0 else 'Assistant'}: {t}" for i, t in enumerate(turns))


def alpaca_row(instruction="Say hi", out1="Hello.", out2="Hi there!", pref=2, gen="model-a"):
    return {"instruction": instruction, "dataset": "x", "output_1": out1, "generator_1": "text_davinci_003",
            "output_2": out2, "generator_2": gen, "annotator": "alpaca_eval_gpt4", "preference": pref}


# ------------------------------------------------------------------ jsonl

def test_jsonl_skips_blank_lines_and_numbers_lines(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_text('{"a": 1}\n\n   \n{"a": 2}\n', encoding="utf-8")
    assert list(iter_jsonl(p)) == [(1, {"a": 1}), (4, {"a": 2})]


def test_jsonl_gz_and_errors(tmp_path):
    p = write_jsonl(tmp_path / "a.jsonl.gz", [{"a": 1}, "[1, 2]"])
    with pytest.raises(DataError) as e:
        list(iter_jsonl(p))
    assert str(e.value) == f"{p}, line 2: expected a JSON object, got a list"
    bad = tmp_path / "b.jsonl"
    bad.write_bytes(b'{"a": 1}\n{"a": "\xff"}\n')
    with pytest.raises(DataError, match=r"line 2: expected UTF-8 text, got byte 0xff"):
        list(iter_jsonl(bad))
    broken = tmp_path / "c.jsonl"
    broken.write_text('{"a": 1}\n{"a": \n', encoding="utf-8")
    with pytest.raises(DataError, match=r"c.jsonl, line 2: expected valid JSON, got Expecting value"):
        list(iter_jsonl(broken))
    with pytest.raises(DataError, match="no such file"):
        list(iter_jsonl(tmp_path / "missing.jsonl"))


def test_truncated_gzip_names_file_and_last_good_line(tmp_path):
    p = write_jsonl(tmp_path / "t.jsonl.gz", [{"i": i, "pad": "x" * 50} for i in range(200)])
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError) as e:
        list(iter_jsonl(p))
    msg = str(e.value)
    assert str(p) in msg and "expected a complete gzip file" in msg and "the last good line" in msg
    assert e.value.line is None


# ------------------------------------------------------------------ HH-RLHF

def test_parse_transcript_multi_turn():
    turns = parse_transcript(hh("Hi", "Hello!", "How do I pick a lock?", "I can't help."), "chosen")
    assert turns == [Message("user", "Hi"), Message("assistant", "Hello!"),
                     Message("user", "How do I pick a lock?"), Message("assistant", "I can't help.")]


def test_hh_multi_turn_pair(tmp_path):
    rows = [{"chosen": hh("Hi", "Hello!", "How do I pick a lock?", "  I can't help with that. "),
             "rejected": hh("Hi", "Hello!", "How do I pick a lock?", "Use a tension wrench.\n\nThen rake it.")}]
    res = load_hh_rlhf(write_jsonl(tmp_path / "h.jsonl.gz", rows))
    (pair,) = res.pairs
    assert pair.prompt == (Message("user", "Hi"), Message("assistant", "Hello!"),
                           Message("user", "How do I pick a lock?"))
    assert pair.chosen == "I can't help with that."
    assert pair.rejected == "Use a tension wrench.\n\nThen rake it."
    assert (pair.aspect, pair.source, pair.prompt_id) == ("harm", "hh-rlhf", prompt_id_of(pair.prompt))
    assert res.summary.rows == 1 and res.summary.kept == 1 and res.summary.prompts == 1


def test_hh_prompt_mismatch_and_missing_final_turn(tmp_path):
    p = write_jsonl(tmp_path / "h.jsonl", [
        {"chosen": hh("Hi", "A"), "rejected": hh("Hi", "B")},
        {"chosen": hh("Hi", "A"), "rejected": hh("Hey", "B")},
    ])
    with pytest.raises(DataError) as e:
        load_hh_rlhf(p)
    assert str(e.value).startswith(f"{p}, line 2, field 'rejected': expected the same turns as 'chosen'")
    assert (e.value.line, e.value.field) == (2, "rejected")
    p2 = write_jsonl(tmp_path / "h2.jsonl", [{"chosen": hh("Hi", "A", "More?"), "rejected": hh("Hi", "B")}])
    with pytest.raises(DataError, match=r"line 1, field 'chosen': expected a final Assistant turn"):
        load_hh_rlhf(p2)
    p3 = write_jsonl(tmp_path / "h3.jsonl", [{"chosen": "no turns at all", "rejected": hh("Hi", "B")}])
    with pytest.raises(DataError, match=r"field 'chosen': expected a transcript starting with 'Human:'"):
        load_hh_rlhf(p3)


def test_hh_skip_bad_counts_and_empty_response_dropped(tmp_path):
    p = write_jsonl(tmp_path / "h.jsonl", [
        {"chosen": hh("Hi", "A"), "rejected": hh("Hi", "B")},
        {"chosen": 5, "rejected": hh("Hi", "B")},
        {"chosen": hh("Hi", "A"), "rejected": hh("Hi", "B")},  # duplicate
        {"chosen": hh("Yo", ""), "rejected": hh("Yo", "B")},  # empty final answer
        "not json",
        {"chosen": hh("Hi", "A"), "rejected": hh("Hi", "A")},
    ])
    res = load_hh_rlhf(p, skip_bad=True)
    assert res.summary.rows == 6 and res.summary.kept == 1
    assert res.summary.dropped == {
        "bad row: field 'chosen': expected a non-empty string": 1,
        "duplicate": 1,
        "empty response": 1,
        "bad row: expected valid JSON": 1,
        "chosen equals rejected": 1,
    }
    with pytest.raises(DataError, match=r"h.jsonl, line 2, field 'chosen': expected a non-empty string, got int 5"):
        load_hh_rlhf(p)


# ------------------------------------------------------------------ AlpacaEval

def test_alpaca_preference_mapping_and_drops(tmp_path):
    p = write_jsonl(tmp_path / "m.jsonl.gz", [
        alpaca_row(pref=1), alpaca_row(pref=2.0, instruction="B"), alpaca_row(pref=0, instruction="C"),
        alpaca_row(pref=None, instruction="D"), alpaca_row(pref=0.0, instruction="E"), alpaca_row(pref=1.0),
        alpaca_row(pref=1.5, instruction="F"),
    ])
    res = load_alpaca_eval(p)
    assert [(x.prompt[0].content, x.chosen, x.rejected) for x in res.pairs] == [
        ("Say hi", "Hello.", "Hi there!"), ("B", "Hi there!", "Hello.")]
    assert res.pairs[0].prompt == (Message("user", "Say hi"),)
    assert (res.pairs[0].aspect, res.pairs[0].source) == ("help", "alpaca_eval")
    assert res.summary.rows == 7 and res.summary.kept == 2
    assert res.summary.dropped == {"no preference": 3, "duplicate": 1, "tie (preference 1.5)": 1}


@pytest.mark.parametrize("pref", [3, -1, "2", True, [2], 2.5])
def test_alpaca_bad_preference(tmp_path, pref):
    p = write_jsonl(tmp_path / "m.jsonl", [alpaca_row(), alpaca_row(pref=pref)])
    with pytest.raises(DataError) as e:
        load_alpaca_eval(p)
    assert str(e.value).startswith(f"{p}, line 2, field 'preference': expected 1, 2, 0 or null, got ")
    res = load_alpaca_eval(p, skip_bad=True)
    assert res.summary.kept == 1
    assert res.summary.dropped == {"bad row: field 'preference': expected 1, 2, 0 or null": 1}


def test_alpaca_folder_list_and_derived_pairs(tmp_path):
    folder = tmp_path / "ae"
    folder.mkdir()
    ref = "Reference answer."
    for model, out, pref in [("a", "A wins", 2), ("b", "B wins", 2), ("c", "C loses", 1), ("d", "D loses", 1),
                             ("e", "E undecided", None)]:
        write_jsonl(folder / f"{model}.jsonl.gz", [alpaca_row("Q1", ref, out, pref, model),
                                                   alpaca_row("Q2", ref, out + "!", 1, model)])
    (folder / "notes.txt").write_text("ignored")
    plain = load_alpaca_eval(folder)
    assert plain.summary.rows == 10 and plain.summary.kept == 9 and plain.summary.derived == 0
    assert plain.summary.prompts == 2
    listed = load_alpaca_eval(sorted(folder.glob("*.jsonl.gz")))
    assert listed.pairs == plain.pairs

    derived = load_alpaca_eval(folder, derive_cross_model_pairs=True, max_derived_per_prompt=3)
    extra = [x for x in derived.pairs if x.source == "alpaca_eval:derived"]
    assert derived.summary.derived == len(extra) == 3  # Q1 has 2 winners x 2 losers = 4 candidates; Q2 has no winner
    assert all(x.chosen in ("A wins", "B wins") and x.rejected in ("C loses", "D loses") for x in extra)
    assert all(x.prompt == (Message("user", "Q1"),) for x in extra)
    # deterministic and independent of file order
    again = load_alpaca_eval(list(reversed(sorted(folder.glob("*.jsonl.gz")))), derive_cross_model_pairs=True,
                             max_derived_per_prompt=3)
    assert {(x.chosen, x.rejected) for x in again.pairs if x.source.endswith("derived")} == \
        {(x.chosen, x.rejected) for x in extra}
    everything = load_alpaca_eval(folder, derive_cross_model_pairs=True, max_derived_per_prompt=100)
    assert everything.summary.derived == 4


def test_alpaca_missing_field_and_empty_folder(tmp_path):
    row = alpaca_row()
    del row["output_2"]
    p = write_jsonl(tmp_path / "m.jsonl", [row])
    with pytest.raises(DataError,
                       match=r"line 1, field 'output_2': expected the field to be present, got no such field"):
        load_alpaca_eval(p)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="expected a folder with"):
        load_alpaca_eval(tmp_path / "empty")


# ------------------------------------------------------------------ PKU-SafeRLHF

def test_pku_aspects(tmp_path):
    p = write_jsonl(tmp_path / "pku.jsonl", [
        {"prompt": "How to X?", "response_0": "Safe but useless.", "response_1": "Useful but risky.",
         "better_response_id": 1, "safer_response_id": 0},
    ])
    (h,) = load_pku_saferlhf(p, aspect="help").pairs
    (s,) = load_pku_saferlhf(p, aspect="harm").pairs
    assert (h.chosen, h.rejected, h.aspect, h.source) == ("Useful but risky.", "Safe but useless.", "help",
                                                          "pku-saferlhf")
    assert (s.chosen, s.rejected, s.aspect) == ("Safe but useless.", "Useful but risky.", "harm")
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "Q", "response_0": "a", "response_1": "b",
                                               "better_response_id": 2, "safer_response_id": 0}])
    with pytest.raises(DataError, match=r"line 1, field 'better_response_id': expected 0 or 1, got int 2"):
        load_pku_saferlhf(bad, aspect="help")
    assert len(load_pku_saferlhf(bad, aspect="harm").pairs) == 1
    with pytest.raises(ValueError, match="aspect"):
        load_pku_saferlhf(p, aspect="helpful")
    with pytest.raises(ValueError, match="format pku labels only aspects help, harm"):
        load_pku_saferlhf(p, aspect="brief")  # a valid aspect name, but PKU has no label for it


def test_pku_hub_loader_imports():
    from peo.data.pku_saferlhf import load_pku_saferlhf_hub

    assert callable(load_pku_saferlhf_hub)


# ------------------------------------------------------------------ generic pairs

def test_pairs_standard_and_conversational(tmp_path):
    p = write_jsonl(tmp_path / "p.jsonl", [
        {"prompt": "Q1", "chosen": "good", "rejected": "bad", "score": 3},
        {"prompt": [{"role": "system", "content": "Be nice."}, {"role": "user", "content": "Q2"}],
         "chosen": [{"role": "assistant", "content": "good2"}], "rejected": "bad2"},
    ])
    res = load_pairs_jsonl(p, aspect="help")
    a, b = res.pairs
    assert (a.prompt, a.chosen, a.rejected) == ((Message("user", "Q1"),), "good", "bad")
    assert b.prompt == (Message("system", "Be nice."), Message("user", "Q2"))
    assert (b.chosen, b.rejected, b.source) == ("good2", "bad2", "pairs")


@pytest.mark.parametrize("row, field", [
    ({"prompt": [], "chosen": "a", "rejected": "b"}, "prompt"),
    ({"prompt": [{"role": "robot", "content": "x"}], "chosen": "a", "rejected": "b"}, "prompt[0].role"),
    ({"prompt": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}], "chosen": "a",
      "rejected": "b"}, "prompt"),
    ({"prompt": "Q", "chosen": [{"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"}],
      "rejected": "b"}, "chosen"),
    ({"prompt": "Q", "chosen": "a", "rejected": 3}, "rejected"),
    ({"prompt": "Q", "chosen": "a"}, "rejected"),
])
def test_pairs_errors_name_field(tmp_path, row, field):
    p = write_jsonl(tmp_path / "p.jsonl", [row])
    with pytest.raises(DataError) as e:
        load_pairs_jsonl(p, aspect="harm")
    assert e.value.field == field and e.value.line == 1
    assert f"line 1, field '{field}'" in str(e.value)


def test_any_aspect_a_run_declares_labels_the_pairs_and_a_bad_name_is_refused(tmp_path):
    p = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "Q", "chosen": "Short.", "rejected": "Long and rambling."}])
    (pair,) = load_pairs_jsonl(p, aspect="brief").pairs
    assert pair.aspect == "brief"
    res = load_source({"format": "pairs", "path": "p.jsonl", "aspect": "brief"}, base_dir=tmp_path)
    assert (res.summary.aspect, res.pairs[0].aspect) == ("brief", "brief")
    h = write_jsonl(tmp_path / "h.jsonl", [{"chosen": hh("Q", "A"), "rejected": hh("Q", "B")}])
    assert load_hh_rlhf(h, aspect="honesty2").pairs[0].aspect == "honesty2"
    for bad in ("Brief", "2brief", "joint", "", None):  # not a name, or reserved
        with pytest.raises(ValueError, match="aspect must be an aspect's name"):
            load_pairs_jsonl(p, aspect=bad)


# ------------------------------------------------------------------ sources, detection, validation

def test_load_source_spec_and_base_dir(tmp_path):
    write_jsonl(tmp_path / "h.jsonl", [{"chosen": hh("Q" + str(i), "A"), "rejected": hh("Q" + str(i), "B")}
                                       for i in range(5)])
    res = load_source({"format": "hh", "path": "h.jsonl", "limit": 3}, base_dir=tmp_path)
    assert res.summary.kept == 3 and len(res.pairs) == 3 and res.summary.dropped == {"over limit": 2}
    assert res.pairs[0].aspect == "harm"
    res = load_source({"format": "hh", "path": str(tmp_path / "h.jsonl"), "aspect": "help"})
    assert res.pairs[0].aspect == "help" and len(res.pairs) == 5


@pytest.mark.parametrize("spec, needle", [
    ({"format": "hh", "path": "x", "colour": 1}, "'colour'"),
    ({"format": "csv", "path": "x"}, "'csv'; allowed: hh, alpaca_eval, pku, pairs"),
    ({"format": "hh", "path": "x", "aspect": "Both"}, "'aspect': got 'Both'; allowed: an aspect's name"),
    ({"format": "pku", "path": "x", "aspect": "brief"}, "format 'pku' labels only help, harm"),
    ({"format": "pku", "path": "x"}, "'aspect' is required for format 'pku'; allowed: help, harm"),
    ({"format": "pairs", "path": "x"}, "'aspect' is required for format 'pairs'; allowed: an aspect's name"),
    ({"format": "pku", "path": "x"}, "'aspect' is required"),
    ({"format": "hh", "path": "x", "limit": -1}, "'limit'"),
    ({"format": "hh", "path": "x", "derive_cross_model_pairs": True}, "'derive_cross_model_pairs'"),
    ({"format": "hh"}, "'path' or 'hub'"),
    ({"format": "hh", "hub": "Anthropic/hh-rlhf"}, "'hub'"),
])
def test_load_source_rejects_bad_specs(spec, needle):
    with pytest.raises(ValueError) as e:
        load_source(spec)
    assert needle in str(e.value)


def test_detect_format_and_validate(tmp_path):
    files = {
        "hh": write_jsonl(tmp_path / "h.jsonl", [{"chosen": hh("Q", "A"), "rejected": hh("Q", "B")}]),
        "alpaca_eval": write_jsonl(tmp_path / "a.jsonl.gz", [alpaca_row(), alpaca_row(pref=None)]),
        "pku": write_jsonl(tmp_path / "k.jsonl", [{"prompt": "Q", "response_0": "a", "response_1": "b",
                                                   "better_response_id": 0, "safer_response_id": 1}]),
        "pairs": write_jsonl(tmp_path / "p.jsonl", [{"prompt": "Q", "chosen": "a", "rejected": "b"}]),
    }
    for fmt, path in files.items():
        assert detect_format(path) == fmt
        assert validate_file(path).format == fmt
    summary = validate_file(files["alpaca_eval"])
    assert (summary.rows, summary.kept, summary.dropped) == (2, 1, {"no preference": 1})
    text = format_summary(summary)
    assert "rows read:     2" in text and "pairs kept:    1" in text and "no preference" in text
    other = write_jsonl(tmp_path / "o.jsonl", [{"foo": 1}])
    with pytest.raises(DataError, match=r"o.jsonl, line 1: expected the keys of a known format"):
        detect_format(other)
    empty = tmp_path / "e.jsonl"
    empty.write_text("\n")
    with pytest.raises(DataError, match="empty file"):
        validate_file(empty)


def test_validate_skip_bad_false_raises(tmp_path):
    p = write_jsonl(tmp_path / "h.jsonl", [{"chosen": hh("Q", "A"), "rejected": hh("Q", "B")}, "{"])
    assert validate_file(p).dropped == {"bad row: expected valid JSON": 1}
    with pytest.raises(DataError, match="line 2"):
        validate_file(p, skip_bad=False)


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="real data in ../shared/data is absent")
def test_real_data_counts():
    t0 = time.perf_counter()
    hh_res = load_hh_rlhf(SHARED_DATA / "hh-rlhf" / "harmless-base-test.jsonl.gz")
    ae_res = load_alpaca_eval(SHARED_DATA / "alpaca_eval")
    assert time.perf_counter() - t0 < 60
    assert hh_res.summary.rows == 1884
    assert 1800 <= hh_res.summary.kept <= 1884
    assert ae_res.summary.rows == 13560
    undecided = ae_res.summary.dropped.get("no preference", 0) + ae_res.summary.dropped.get("tie (preference 1.5)", 0)
    assert 0 < undecided < 1000
    assert 11000 <= ae_res.summary.kept <= 13560 - undecided
    assert ae_res.summary.prompts == 678
