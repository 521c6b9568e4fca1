"""Tests of StepHint source reading: real samples, broken files and field mapping."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from corpusforge.generators.base import Rejected
from corpusforge.generators.errors import ConfigError, SourceError
from corpusforge.generators.stephint.sources import (
    FORMATS,
    MAX_REJECTED_STRING_CHARS,
    PARQUET_BATCH_ROWS,
    Example,
    RawRecord,
    iter_raw_records,
    style_of,
    to_example,
)

LONGCOT_WITHOUT_END_OF_SOLUTION = {25, 35, 106, 139, 174, 215, 249, 252, 265}


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


def math_record(**overrides) -> dict:
    record = {
        "problem": "What is $1 + 1$?",
        "solution": "We add: $1 + 1 = \\boxed{2}$.",
        "answer": "2",
        "subject": "Prealgebra",
        "level": 1,
        "unique_id": "test/prealgebra/1.json",
    }
    record.update(overrides)
    return record


# Real samples


def test_gsm8k_sample_reads_all_records(reasoning_dir):
    path = str(reasoning_dir / "gsm8k_test_200.jsonl")
    records = list(iter_raw_records("gsm8k", path, {}))

    assert len(records) == 200
    assert [record.line for record in records] == list(range(1, 201))
    assert records[0].source_id == "line-1"
    assert records[-1].source_id == "line-200"

    example = to_example("gsm8k", records[0], {})
    assert isinstance(example, Example)
    assert example.problem.startswith("Janet\u2019s ducks lay 16 eggs")
    assert example.reference_answer == "18"
    assert example.source_text.endswith("#### 18")
    assert example.line == 1
    assert example.metadata == {}


def test_gsm8k_reference_drops_thousands_separator(reasoning_dir):
    path = str(reasoning_dir / "gsm8k_test_200.jsonl")
    examples = [to_example("gsm8k", raw, {}) for raw in iter_raw_records("gsm8k", path, {})]

    assert all(isinstance(example, Example) for example in examples)
    assert all("," not in example.reference_answer for example in examples)
    assert examples[2].reference_answer == "70000"


def test_math500_sample_uses_unique_id(reasoning_dir):
    path = str(reasoning_dir / "math500_200.jsonl")
    records = list(iter_raw_records("math", path, {}))

    assert len(records) == 200
    assert records[0].source_id == "test/algebra/1072.json"
    assert len({record.source_id for record in records}) == 200

    example = to_example("math", records[0], {})
    assert isinstance(example, Example)
    assert example.reference_answer == "\\frac{243}{625}"
    assert example.source_text.rstrip().endswith("$$")
    assert example.metadata == {"subject": "Algebra", "level": 4}


def test_longcot_sample_uses_idx(reasoning_dir):
    path = str(reasoning_dir / "longcot_sky_t1_120.jsonl")
    records = list(iter_raw_records("longcot", path, {}))

    assert len(records) == 120
    assert records[0].source_id == "0"
    assert len({record.source_id for record in records}) == 120

    examples = {record.source_id: to_example("longcot", record, {}) for record in records}
    assert all(isinstance(example, Example) for example in examples.values())
    first = examples["0"]
    assert first.reference_answer == "\\left( 3, \\frac{\\pi}{2} \\right)"
    assert first.source_text.startswith("<|begin_of_thought|>")
    assert "idx" not in first.metadata
    assert first.metadata["benchmark"] == "math500"
    assert "reference_solution" in first.metadata


def test_longcot_sample_quirks_are_present(reasoning_dir):
    path = str(reasoning_dir / "longcot_sky_t1_120.jsonl")
    traces = {
        int(record.source_id): record.fields["model_output"]
        for record in iter_raw_records("longcot", path, {})
    }

    without_end = {idx for idx, trace in traces.items() if "<|end_of_solution|>" not in trace}
    assert without_end == LONGCOT_WITHOUT_END_OF_SOLUTION
    without_box = {idx for idx, trace in traces.items() if "\\boxed" not in trace}
    assert without_box == {45, 139}
    box_at = traces[25].rfind("\\boxed")
    assert box_at < traces[25].find("<|end_of_thought|>")


# Structural problems


def test_missing_file_raises(tmp_path):
    path = tmp_path / "absent.jsonl"
    with pytest.raises(SourceError, match=r"absent\.jsonl: file not found"):
        list(iter_raw_records("math", str(path), {}))


def test_directory_raises(tmp_path):
    with pytest.raises(SourceError, match="is a directory"):
        list(iter_raw_records("math", str(tmp_path), {}))


def test_empty_file_raises(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    with pytest.raises(SourceError, match=r"empty\.jsonl: file is empty"):
        list(iter_raw_records("math", str(path), {}))


def test_blank_lines_only_file_raises(tmp_path):
    path = tmp_path / "blank.jsonl"
    path.write_bytes(b"\n  \n\r\n\t\n")
    with pytest.raises(SourceError, match="file is empty"):
        list(iter_raw_records("gsm8k", str(path), {}))


def test_blank_lines_are_skipped_and_counted(tmp_path):
    path = tmp_path / "gaps.jsonl"
    record = json.dumps(math_record())
    path.write_text(f"\n{record}\n\n   \n{record}\n", encoding="utf-8")

    records = list(iter_raw_records("math", str(path), {}))

    assert [record.line for record in records] == [2, 5]


def test_one_record_file(tmp_path):
    path = write_jsonl(tmp_path / "one.jsonl", [math_record()])
    records = list(iter_raw_records("math", str(path), {}))

    assert len(records) == 1
    assert records[0] == RawRecord(1, "test/prealgebra/1.json", math_record())


def test_last_line_without_newline(tmp_path):
    path = tmp_path / "no_newline.jsonl"
    path.write_text(json.dumps(math_record()), encoding="utf-8")

    assert len(list(iter_raw_records("math", str(path), {}))) == 1


def test_malformed_json_line_names_file_and_line(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text(json.dumps(math_record()) + "\n" + '{"problem": "x", \n', encoding="utf-8")

    with pytest.raises(SourceError, match=r"broken\.jsonl, line 2: invalid JSON") as raised:
        list(iter_raw_records("math", str(path), {}))
    assert raised.value.line == 2
    assert raised.value.path == str(path)
    assert "one JSON object per line" in raised.value.fix


def test_records_stream_before_a_later_error(tmp_path):
    path = tmp_path / "late_error.jsonl"
    path.write_text(json.dumps(math_record()) + "\nnot json\n", encoding="utf-8")
    records = iter_raw_records("math", str(path), {})

    assert next(records).line == 1
    with pytest.raises(SourceError, match="line 2"):
        next(records)


def test_non_utf8_bytes_name_the_line(tmp_path):
    path = tmp_path / "latin1.jsonl"
    good = json.dumps(math_record()).encode("utf-8")
    bad = '{"problem": "caf\u00e9", "solution": "x", "answer": "1"}'.encode("latin-1")
    path.write_bytes(good + b"\n" + good + b"\n" + bad + b"\n")

    with pytest.raises(SourceError, match=r"line 3: invalid UTF-8 byte 0xe9") as raised:
        list(iter_raw_records("math", str(path), {}))
    assert raised.value.line == 3
    assert "UTF-8" in raised.value.fix


def test_json_list_line_raises(tmp_path):
    path = tmp_path / "list.jsonl"
    path.write_text(json.dumps(math_record()) + "\n[1, 2, 3]\n", encoding="utf-8")

    with pytest.raises(SourceError, match=r"line 2: expected a JSON object, got a JSON array"):
        list(iter_raw_records("math", str(path), {}))


@pytest.mark.parametrize(
    ("line", "kind"),
    [('"text"', "string"), ("42", "number"), ("null", "null"), ("true", "boolean")],
)
def test_json_scalar_line_raises(tmp_path, line, kind):
    path = tmp_path / "scalar.jsonl"
    path.write_text(line + "\n", encoding="utf-8")

    with pytest.raises(SourceError, match=rf"line 1: expected a JSON object, got a JSON {kind}"):
        list(iter_raw_records("math", str(path), {}))


def test_utf8_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(math_record()).encode("utf-8") + b"\n")

    assert len(list(iter_raw_records("math", str(path), {}))) == 1


def test_unicode_line_separators_inside_strings(tmp_path):
    path = tmp_path / "separators.jsonl"
    records = [math_record(problem="a\u2028b\u0085c\u2029d"), math_record()]
    text = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
    path.write_text(text, encoding="utf-8")

    read = list(iter_raw_records("math", str(path), {}))

    assert [record.line for record in read] == [1, 2]
    assert read[0].fields["problem"] == "a\u2028b\u0085c\u2029d"


def test_megabyte_record_is_read(tmp_path):
    solution = "We add one more. " * 60_000 + "So $\\boxed{2}$."
    path = write_jsonl(tmp_path / "big.jsonl", [math_record(solution=solution)])

    example = to_example("math", next(iter_raw_records("math", str(path), {})), {})

    assert isinstance(example, Example)
    assert len(example.source_text) > 1_000_000
    assert example.source_text == solution


def test_unknown_format_raises_config_error(tmp_path):
    with pytest.raises(ConfigError, match="unknown source format 'csv'"):
        list(iter_raw_records("csv", str(tmp_path / "x.csv"), {}))


def test_invalid_style_raises_config_error():
    with pytest.raises(ConfigError, match="invalid style 'latex'"):
        style_of("jsonl", {"style": "latex"})


# Field mapping


def test_lone_surrogate_is_rejected(tmp_path):
    path = tmp_path / "surrogate.jsonl"
    path.write_text('{"problem": "bad \\ud800 text", "solution": "s", "answer": "1"}\n')
    raw = next(iter_raw_records("math", str(path), {}))

    rejected = to_example("math", raw, {})

    assert isinstance(rejected, Rejected)
    assert rejected.reason == "invalid_unicode"
    assert rejected.source == "math"
    assert rejected.line == 1
    assert rejected.detail.startswith(
        "field 'problem' (problem) contains a lone surrogate escape (\\ud800)"
    )
    assert "UTF-8" not in rejected.detail
    # The quarantined copy escapes the surrogate, so it can be written as UTF-8.
    assert rejected.record["problem"] == "bad \\ud800 text"
    rejected.record["problem"].encode("utf-8")


def test_lone_surrogate_in_metadata_is_rejected(tmp_path):
    path = write_jsonl(tmp_path / "meta.jsonl", [math_record(subject="Alg\ud800ebra")])
    raw = next(iter_raw_records("math", str(path), {}))

    rejected = to_example("math", raw, {})

    assert isinstance(rejected, Rejected)
    assert rejected.reason == "invalid_unicode"
    assert rejected.detail.startswith("field 'subject' contains a lone surrogate escape (\\ud800)")


def test_non_utf8_parquet_bytes_rejected():
    raw = RawRecord(1, "row-1", {"problem": b"caf\xe9", "solution": "s", "answer": "1"})

    rejected = to_example("parquet", raw, {})

    assert isinstance(rejected, Rejected)
    assert rejected.reason == "invalid_unicode"
    assert rejected.detail == "field 'problem' (problem) is not valid UTF-8"


def test_parquet_file_as_jsonl_names_format(tmp_path):
    path = tmp_path / "math.parquet"
    pq.write_table(pa.table({"problem": ["1+1?"], "solution": ["2"], "answer": ["2"]}), path)

    with pytest.raises(SourceError, match="looks like a Parquet file") as raised:
        list(iter_raw_records("math", str(path), {}))
    assert raised.value.line == 1
    assert "`parquet:`" in raised.value.fix
    assert "0x" not in str(raised.value)


def test_valid_surrogate_pair_is_kept(tmp_path):
    path = tmp_path / "emoji.jsonl"
    path.write_text('{"problem": "\\ud83d\\ude00 smile", "solution": "s", "answer": "1"}\n')
    example = to_example("math", next(iter_raw_records("math", str(path), {})), {})

    assert isinstance(example, Example)
    assert example.problem == "\U0001f600 smile"


@pytest.mark.parametrize("value", [None, "", "   \n"])
def test_missing_or_blank_field_is_rejected(tmp_path, value):
    path = write_jsonl(tmp_path / "missing.jsonl", [math_record(answer=value)])
    raw = next(iter_raw_records("math", str(path), {}))

    rejected = to_example("math", raw, {})

    assert isinstance(rejected, Rejected)
    assert rejected.reason == "missing_field"
    assert "'answer'" in rejected.detail


def test_absent_field_is_rejected(tmp_path):
    record = math_record()
    del record["solution"]
    path = write_jsonl(tmp_path / "absent.jsonl", [record])

    rejected = to_example("math", next(iter_raw_records("math", str(path), {})), {})

    assert isinstance(rejected, Rejected)
    assert rejected.reason == "missing_field"
    assert "'solution'" in rejected.detail


def test_structured_field_is_rejected(tmp_path):
    path = write_jsonl(tmp_path / "list.jsonl", [math_record(answer=[1, 2])])

    rejected = to_example("math", next(iter_raw_records("math", str(path), {})), {})

    assert isinstance(rejected, Rejected)
    assert rejected.reason == "invalid_field"
    assert "list" in rejected.detail


@pytest.mark.parametrize(
    ("value", "text"), [(42, "42"), (-7, "-7"), (2.5, "2.5"), (3.0, "3"), (True, "true")]
)
def test_non_string_answer_becomes_text(tmp_path, value, text):
    path = write_jsonl(tmp_path / "number.jsonl", [math_record(answer=value)])

    example = to_example("math", next(iter_raw_records("math", str(path), {})), {})

    assert isinstance(example, Example)
    assert example.reference_answer == text


def test_nan_answer_is_missing(tmp_path):
    path = tmp_path / "nan.jsonl"
    path.write_text('{"problem": "p", "solution": "s", "answer": NaN}\n')

    rejected = to_example("math", next(iter_raw_records("math", str(path), {})), {})

    assert isinstance(rejected, Rejected)
    assert rejected.reason == "missing_field"


def test_unicode_text_is_kept_exactly(tmp_path):
    problem = "Ein Zug f\u00e4hrt 60\u202fkm/h \u2014 \u5217\u8eca\u306f? e\u0301 \u2028 \U0001d465"
    path = write_jsonl(tmp_path / "unicode.jsonl", [math_record(problem=problem)])

    example = to_example("math", next(iter_raw_records("math", str(path), {})), {})

    assert isinstance(example, Example)
    assert example.problem == problem


def test_rejected_record_strings_are_truncated(tmp_path):
    path = write_jsonl(tmp_path / "long.jsonl", [math_record(answer=None, solution="x" * 5000)])

    rejected = to_example("math", next(iter_raw_records("math", str(path), {})), {})

    assert isinstance(rejected, Rejected)
    assert len(rejected.record["solution"]) == MAX_REJECTED_STRING_CHARS
    assert rejected.record["problem"] == "What is $1 + 1$?"


def test_gsm8k_without_answer_line_has_empty_reference(tmp_path):
    path = write_jsonl(tmp_path / "gsm.jsonl", [{"question": "q?", "answer": "It is 4."}])

    example = to_example("gsm8k", next(iter_raw_records("gsm8k", str(path), {})), {})

    assert isinstance(example, Example)
    assert example.reference_answer == ""


def test_generic_jsonl_maps_fields_and_style(tmp_path):
    record = {
        "id": 7,
        "q": "Find x.",
        "trace": "<think>\nx is 3\n</think>\n\n$\\boxed{3}$",
        "gold": 3,
    }
    path = write_jsonl(tmp_path / "generic.jsonl", [record])
    options = {
        "problem_field": "q",
        "solution_field": "trace",
        "answer_field": "gold",
        "id_field": "id",
        "style": "longcot",
    }

    raw = next(iter_raw_records("jsonl", str(path), options))
    example = to_example("jsonl", raw, options)

    assert raw.source_id == "7"
    assert style_of("jsonl", options) == "longcot"
    assert isinstance(example, Example)
    assert example.problem == "Find x."
    assert example.reference_answer == "3"
    assert example.metadata == {}


def test_generic_jsonl_defaults_follow_style(tmp_path):
    path = write_jsonl(tmp_path / "gsm_like.jsonl", [{"question": "q?", "answer": "2+2=4\n#### 4"}])
    options = {"style": "gsm8k"}

    example = to_example("jsonl", next(iter_raw_records("jsonl", str(path), options)), options)

    assert isinstance(example, Example)
    assert example.reference_answer == "4"


def test_generic_jsonl_missing_id_falls_back_to_line(tmp_path):
    path = write_jsonl(tmp_path / "ids.jsonl", [math_record(), {**math_record(), "key": "k2"}])

    records = list(iter_raw_records("jsonl", str(path), {"id_field": "key"}))

    assert [record.source_id for record in records] == ["line-1", "k2"]


# Parquet


def test_parquet_streams_across_record_batches(tmp_path):
    count = PARQUET_BATCH_ROWS * 2 + 5
    table = pa.table(
        {
            "key": [f"row-{index}" for index in range(count)],
            "problem": [f"What is {index} + 1?" for index in range(count)],
            "solution": [f"It is $\\boxed{{{index + 1}}}$." for index in range(count)],
            "answer": list(range(1, count + 1)),
        }
    )
    path = tmp_path / "rows.parquet"
    pq.write_table(table, path, row_group_size=700)
    options = {"id_field": "key"}

    records = list(iter_raw_records("parquet", str(path), options))

    assert len(records) == count
    assert records[0].line == 1
    assert records[-1].line == count
    assert records[-1].source_id == f"row-{count - 1}"
    example = to_example("parquet", records[1500], options)
    assert isinstance(example, Example)
    assert example.reference_answer == "1501"


def test_parquet_null_field_is_rejected(tmp_path):
    table = pa.table({"problem": ["p", None], "solution": ["s", "s"], "answer": ["1", "2"]})
    path = tmp_path / "nulls.parquet"
    pq.write_table(table, path)

    results = [to_example("parquet", raw, {}) for raw in iter_raw_records("parquet", str(path), {})]

    assert isinstance(results[0], Example)
    assert isinstance(results[1], Rejected)
    assert results[1].reason == "missing_field"
    assert results[1].line == 2


def test_corrupt_parquet_raises(tmp_path):
    path = tmp_path / "corrupt.parquet"
    path.write_bytes(b"PAR1 this is not a parquet file")

    with pytest.raises(SourceError, match=r"corrupt\.parquet: cannot be read as Parquet"):
        list(iter_raw_records("parquet", str(path), {}))


def test_jsonl_file_read_as_parquet_raises(tmp_path):
    path = write_jsonl(tmp_path / "rows.jsonl", [math_record()])

    with pytest.raises(SourceError, match="cannot be read as Parquet"):
        list(iter_raw_records("parquet", str(path), {}))


def test_empty_parquet_raises(tmp_path):
    table = pa.table({"problem": pa.array([], pa.string())})
    path = tmp_path / "empty.parquet"
    pq.write_table(table, path)

    with pytest.raises(SourceError, match="Parquet file has no rows"):
        list(iter_raw_records("parquet", str(path), {}))


# Synthetic


def test_synthetic_source_yields_count_records():
    records = list(iter_raw_records("synthetic_math", "", {"count": "25", "seed": "3"}))

    assert len(records) == 25
    assert [record.line for record in records] == list(range(1, 26))
    assert records[0].source_id.startswith("synthetic/")
    assert records[0].source_id.endswith("/0")
    assert set(records[0].fields) >= {"problem", "solution", "answer"}
    example = to_example("synthetic_math", records[0], {})
    assert isinstance(example, Example)
    assert style_of("synthetic_math", {}) == "math"


def test_synthetic_source_default_count():
    records = iter_raw_records("synthetic_math", "ignored", {"seed": "1"})

    assert sum(1 for _ in records) == 1000


def test_synthetic_source_requires_seed():
    with pytest.raises(ConfigError, match="needs the option seed"):
        list(iter_raw_records("synthetic_math", "", {"count": "3"}))


@pytest.mark.parametrize("count", ["0", "-4", "many"])
def test_synthetic_source_rejects_invalid_count(count):
    with pytest.raises(ConfigError, match="option count"):
        list(iter_raw_records("synthetic_math", "", {"count": count, "seed": "1"}))


def test_formats_constant():
    assert FORMATS == ("gsm8k", "math", "longcot", "jsonl", "parquet", "synthetic_math")
