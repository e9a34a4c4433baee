"""Fuzzing the loaders: whatever a file holds, the only exception is DataError.

With skip_bad=True, row-level problems are counted instead (rows == kept + dropped), and only
file-level problems (gzip cut short, undecodable header) may still raise.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from peo.data.alpaca_eval import load_alpaca_eval
from peo.data.errors import DataError
from peo.data.hh_rlhf import load_hh_rlhf
from peo.data.pairs_jsonl import load_pairs_jsonl
from peo.data.pku_saferlhf import load_pku_saferlhf
from peo.data.sources import detect_format
from peo.data.validate import validate_file

FUZZ = settings(max_examples=50, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

KEYS = ["chosen", "rejected", "prompt", "instruction", "output_1", "output_2", "generator_2", "preference",
        "response_0", "response_1", "better_response_id", "safer_response_id", "role", "content", "extra"]

transcript = st.lists(st.tuples(st.sampled_from(["Human", "Assistant", "Robot"]), st.text(max_size=30)),
                      max_size=5).map(lambda turns: "".join(f"\n\n{s}: {t}" for s, t in turns))
message = st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system", "x"]),
                                 "content": st.one_of(st.text(max_size=20), st.integers(), st.none())})
scalar = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.integers(), st.floats(allow_nan=True),
                   st.sampled_from([0, 1, 2, 1.0, 2.0, 0.0, 1.5, "1", "", "  "]), st.text(max_size=40), transcript)
value = st.recursive(scalar, lambda inner: st.one_of(st.lists(inner, max_size=3), st.lists(message, max_size=3),
                                                     st.dictionaries(st.sampled_from(KEYS), inner, max_size=3)),
                     max_leaves=8)
random_row = st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), value, max_size=9)

valid_rows = st.sampled_from([
    {"chosen": "\n\nHuman: Hi\n\nAssistant: A", "rejected": "\n\nHuman: Hi\n\nAssistant: B"},
    {"instruction": "Q", "output_1": "a", "output_2": "b", "generator_2": "m", "preference": 2},
    {"instruction": "Q", "output_1": "a", "output_2": "b", "preference": None},
    {"prompt": "Q", "response_0": "a", "response_1": "b", "better_response_id": 0, "safer_response_id": 1},
    {"prompt": "Q", "chosen": "a", "rejected": "b"},
    {"prompt": [{"role": "user", "content": "Q"}], "chosen": [{"role": "assistant", "content": "a"}], "rejected": "b"},
])


def drop_key(row: dict, k: int) -> dict:
    row = dict(row)
    if row:
        row.pop(sorted(row)[k % len(row)])
    return row


json_line = st.one_of(
    random_row, valid_rows, st.tuples(valid_rows, st.integers(0, 9)).map(lambda t: drop_key(*t)),
    st.tuples(valid_rows, st.sampled_from(KEYS), value).map(lambda t: {**t[0], t[1]: t[2]}),
).map(lambda obj: json.dumps(obj).encode())

raw_line = st.one_of(
    json_line,
    st.binary(max_size=60),  # garbage, often not UTF-8
    st.text(max_size=60).map(str.encode),
    st.sampled_from([b"[1, 2]", b"null", b"42", b'"str"', b"{", b'{"chosen": }', b"   ", b"",
                     b'{"chosen": "\\ud800", "rejected": "x", "prompt": "\\udfff"}',
                     b'{"instruction": "Q", "output_1": "a", "output_2": "b", "preference": NaN}',
                     b'{"a": ' + b"1" * 5000 + b"}", b"[" * 5000, b"\xef\xbb\xbf{}", b"\x00\x01",
                     b'{"prompt": "Q", "chosen": "a", "rejected": "b"}\r']),
    st.integers(10_000, 300_000).map(
        lambda n: json.dumps({"prompt": "Q" * n, "chosen": "a", "rejected": "b" * n}).encode()),
)
file_bytes = st.lists(raw_line, max_size=12).map(lambda lines: b"\n".join(lines))

LOADERS = {
    "hh": lambda p, skip: load_hh_rlhf(p, skip_bad=skip),
    "alpaca_eval": lambda p, skip: load_alpaca_eval(p, skip_bad=skip, derive_cross_model_pairs=True),
    "pku_help": lambda p, skip: load_pku_saferlhf(p, aspect="help", skip_bad=skip),
    "pku_harm": lambda p, skip: load_pku_saferlhf(p, aspect="harm", skip_bad=skip),
    "pairs": lambda p, skip: load_pairs_jsonl(p, aspect="help", skip_bad=skip),
}


def check_all_loaders(path: Path, row_errors_skippable: bool) -> None:
    for name, load in LOADERS.items():
        try:
            load(path, False)
        except DataError as err:
            assert str(err).startswith(str(path)), (name, str(err))
        try:
            res = load(path, True)
        except DataError as err:
            # with skip_bad only file-level problems may raise
            assert not row_errors_skippable or err.line is None, (name, str(err))
        else:
            s = res.summary
            assert s.rows == s.kept - s.derived + s.dropped_total, (name, s)
            assert len(res.pairs) == s.kept
            assert all(p.chosen and p.rejected and p.chosen != p.rejected for p in res.pairs)
    for call in (lambda: detect_format(path), lambda: validate_file(path)):
        try:
            call()
        except DataError:
            pass


@FUZZ
@given(data=file_bytes, gz=st.booleans())
def test_fuzz_any_content_only_raises_data_error(tmp_path_factory, data, gz):
    folder = tmp_path_factory.mktemp("fuzz")
    path = folder / ("f.jsonl.gz" if gz else "f.jsonl")
    path.write_bytes(gzip.compress(data) if gz else data)
    check_all_loaders(path, row_errors_skippable=True)


@FUZZ
@given(lines=st.lists(st.one_of(valid_rows.map(lambda r: json.dumps(r).encode()), raw_line), min_size=1, max_size=30),
       cut=st.floats(0, 1, exclude_max=True))
def test_fuzz_gzip_cut_short(tmp_path_factory, lines, cut):
    folder = tmp_path_factory.mktemp("cut")
    full = gzip.compress(b"\n".join(lines))
    path = folder / "f.jsonl.gz"
    path.write_bytes(full[: int(len(full) * cut)])
    check_all_loaders(path, row_errors_skippable=True)
    for name, load in LOADERS.items():
        try:
            load(path, True)
        except DataError as err:
            assert err.line is None and str(path) in str(err)
        else:
            raise AssertionError(f"{name}: a gzip file cut to {int(len(full) * cut)} of {len(full)} bytes loaded")


@FUZZ
@given(rows=st.lists(valid_rows, min_size=1, max_size=20))
def test_fuzz_mixed_formats_in_one_file(tmp_path_factory, rows):
    path = tmp_path_factory.mktemp("mixed") / "m.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    check_all_loaders(path, row_errors_skippable=True)
