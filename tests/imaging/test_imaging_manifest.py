"""Tests of the image question-answer manifest reader and the VQA-RAD reader."""

from __future__ import annotations

import json
import pickle
from collections import Counter
from pathlib import Path

import pytest
from testsupport import require_shared

from corpusforge.generators.errors import SourceError
from corpusforge.generators.imaging.io import ImageError, load_image, safe_join
from corpusforge.generators.imaging.manifest import (
    ImageQARecord,
    field_text,
    infer_answer_type,
    iter_image_qa_manifest,
)
from corpusforge.generators.imaging.vqa_rad import iter_vqa_rad


def write_jsonl(path: Path, records: list) -> Path:
    lines = [record if isinstance(record, str) else json.dumps(record) for record in records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def image_folder(tmp_path: Path, *names: str) -> Path:
    folder = tmp_path / "images"
    folder.mkdir(exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"x")
    return folder


def source_error(path: Path, options: dict | None = None) -> SourceError:
    with pytest.raises(SourceError) as caught:
        list(iter_image_qa_manifest(str(path), options or {}))
    return caught.value


# CSV


def test_csv_manifest(tmp_path):
    image_folder(tmp_path, "a.png", "b.png")
    path = tmp_path / "qa.csv"
    path.write_text(
        "id,image,question,answer,modality\n"
        "q1,images/a.png,Is there a fracture?,Yes,xray\n"
        "q2,images/b.png,Which organ is shown?,liver,ct\n",
        encoding="utf-8",
    )

    records = list(iter_image_qa_manifest(str(path), {}))

    assert records == [
        ImageQARecord(
            line=2,
            qid="q1",
            image="images/a.png",
            image_path=(tmp_path / "images" / "a.png").resolve(),
            question="Is there a fracture?",
            answer="Yes",
            answer_type="closed",
            metadata={"modality": "xray"},
        ),
        ImageQARecord(
            line=3,
            qid="q2",
            image="images/b.png",
            image_path=(tmp_path / "images" / "b.png").resolve(),
            question="Which organ is shown?",
            answer="liver",
            answer_type="open",
            metadata={"modality": "ct"},
        ),
    ]


def test_csv_multiline_cells_keep_line_numbers(tmp_path):
    path = tmp_path / "qa.csv"
    path.write_text(
        'image,question,answer\r\na.png,"first line\r\nsecond line",no\r\n\r\nb.png,next,yes\r\n',
        encoding="utf-8",
    )

    records = list(iter_image_qa_manifest(str(path), {}))

    assert [record.line for record in records] == [2, 5]
    assert records[0].question == "first line\r\nsecond line"
    assert [record.qid for record in records] == ["line-2", "line-5"]


def test_csv_bom_and_unicode(tmp_path):
    path = tmp_path / "qa.csv"
    text = "image,question,answer\nrøntgen 画像.png,Ist das ein Bruch? 🦴,ja\n"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))

    (record,) = iter_image_qa_manifest(str(path), {})

    assert record.image == "røntgen 画像.png"
    assert record.question == "Ist das ein Bruch? 🦴"
    assert record.image_path == (tmp_path / "røntgen 画像.png").resolve()


def test_csv_field_mapping_and_image_root(tmp_path):
    (tmp_path / "pictures").mkdir()
    path = tmp_path / "qa.csv"
    path.write_text("file,q,a,key\nx.png,Q?,A,k1\n", encoding="utf-8")
    options = {
        "image_field": "file",
        "question_field": "q",
        "answer_field": "a",
        "id_field": "key",
        "image_root": "pictures",
    }

    (record,) = iter_image_qa_manifest(str(path), options)

    assert (record.qid, record.image, record.question, record.answer) == ("k1", "x.png", "Q?", "A")
    assert record.image_path == (tmp_path / "pictures" / "x.png").resolve()
    assert record.metadata == {}


@pytest.mark.parametrize(
    ("content", "message", "line"),
    [
        ("image,question\na.png,Q\n", "missing column(s) 'answer'", 1),
        ("image,question,answer,image\na,b,c,d\n", "duplicate column names 'image'", 1),
        ("image,question,answer\na.png,Q\n", "row has 2 cells but the header has 3", 2),
        ("image,question,answer\na.png,Q,A,extra\n", "row has 4 cells", 2),
        ("image,question,answer\n", "no records", None),
        ("\n\n", "file is empty", None),
    ],
)
def test_csv_structural_errors(tmp_path, content, message, line):
    path = tmp_path / "qa.csv"
    path.write_text(content, encoding="utf-8")

    error = source_error(path)

    assert message in error.message
    assert error.line == line
    assert error.fix


def test_csv_not_utf8(tmp_path):
    path = tmp_path / "qa.csv"
    path.write_bytes(b"image,question,answer\na.png,caf\xe9?,yes\n")

    error = source_error(path)

    assert "invalid UTF-8 byte 0xe9" in error.message
    assert error.line == 2


# JSONL


def test_jsonl_manifest_types_and_metadata(tmp_path):
    path = write_jsonl(
        tmp_path / "qa.jsonl",
        [
            {"id": 7, "image": "a.png", "question": "How many?", "answer": 3, "extra": [1, 2]},
            {"id": "x", "image": "b.png", "question": "Normal?", "answer": "NO "},
            {"image": "c.png", "question": None, "answer": 2.5, "answer_type": "OPEN "},
            {"image": "d.png", "question": "Big?", "answer": 10**30, "answer_type": "yes/no"},
        ],
    )

    records = list(iter_image_qa_manifest(str(path), {}))

    assert [record.qid for record in records] == ["7", "x", "line-3", "line-4"]
    assert [record.answer for record in records] == ["3", "NO ", "2.5", str(10**30)]
    assert [record.answer_type for record in records] == ["open", "closed", "open", "open"]
    assert records[0].metadata == {"extra": [1, 2]}
    assert records[2].question == ""
    assert records[3].metadata == {"answer_type": "yes/no"}


def test_jsonl_unicode_line_separator_in_string(tmp_path):
    path = tmp_path / "qa.jsonl"
    record = {"image": "a.png", "question": "one\u2028two\u0085three", "answer": "yes"}
    path.write_text(json.dumps(record, ensure_ascii=False) + "\n", encoding="utf-8")

    (result,) = iter_image_qa_manifest(str(path), {})

    assert result.question == "one\u2028two\u0085three"


def test_jsonl_huge_value(tmp_path):
    question = "Describe the finding. " * 50_000
    path = write_jsonl(
        tmp_path / "qa.jsonl", [{"image": "a.png", "question": question, "answer": "x"}]
    )

    (record,) = iter_image_qa_manifest(str(path), {})

    assert len(record.question) == len(question)


def test_jsonl_one_record_and_blank_lines(tmp_path):
    path = tmp_path / "qa.ndjson"
    path.write_text('\n\n{"image": "a.png", "question": "Q", "answer": "A"}\n\n', encoding="utf-8")

    (record,) = iter_image_qa_manifest(str(path), {})

    assert record.line == 3


def test_duplicate_ids_are_yielded(tmp_path):
    path = write_jsonl(
        tmp_path / "qa.jsonl",
        [{"id": "same", "image": f"{n}.png", "question": "Q", "answer": "A"} for n in range(3)],
    )

    records = list(iter_image_qa_manifest(str(path), {}))

    assert [record.qid for record in records] == ["same", "same", "same"]
    assert [record.line for record in records] == [1, 2, 3]


@pytest.mark.parametrize(
    ("lines", "message", "line"),
    [
        (['{"image": "a", "question": "q", "answer": "a"}', "{not json"], "invalid JSON", 2),
        (['["a", "b"]'], "expected a JSON object, got a JSON array", 1),
        (['{"image": "a", "question": "q"}'], "the first record has no field(s) 'answer'", 1),
        (['"text"'], "got a JSON string", 1),
    ],
)
def test_jsonl_structural_errors(tmp_path, lines, message, line):
    path = write_jsonl(tmp_path / "qa.jsonl", lines)

    error = source_error(path)

    assert message in error.message
    assert error.line == line


def test_later_record_missing_field_is_per_record(tmp_path):
    path = write_jsonl(
        tmp_path / "qa.jsonl",
        [{"image": "a.png", "question": "Q", "answer": "A"}, {"question": "Q2"}],
    )

    records = list(iter_image_qa_manifest(str(path), {}))

    assert records[1].image == ""
    assert records[1].image_path is None
    assert records[1].answer == ""


# Paths and files


def test_escaping_image_paths_are_none(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.png").write_bytes(b"x")
    root = tmp_path / "root"
    root.mkdir()
    (root / "link.png").symlink_to(outside / "secret.png")
    path = write_jsonl(
        root / "qa.jsonl",
        [
            {"image": image, "question": "Q", "answer": "A"}
            for image in ("../outside/secret.png", "/etc/passwd", "link.png", "ok.png")
        ],
    )

    records = list(iter_image_qa_manifest(str(path), {}))

    assert [record.image_path is None for record in records] == [True, True, True, False]
    with pytest.raises(ImageError) as caught:
        safe_join(root, records[0].image)
    assert caught.value.reason == "path_escapes_root"


def test_missing_manifest_and_folder(tmp_path):
    assert "file not found" in source_error(tmp_path / "absent.csv").message
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    assert "is not a file" in source_error(folder).message
    folder = tmp_path / "folder.jsonl"
    folder.mkdir()
    assert "is a directory, not a file" in source_error(folder).message
    assert "file not found" in source_error(tmp_path / "absent.jsonl").message


def test_unknown_suffix(tmp_path):
    path = tmp_path / "qa.json"
    path.write_text("[]", encoding="utf-8")
    assert "unknown manifest suffix '.json'" in source_error(path).message


def test_image_root_must_be_folder(tmp_path):
    path = write_jsonl(tmp_path / "qa.jsonl", [{"image": "a", "question": "q", "answer": "a"}])
    error = source_error(path, {"image_root": "nowhere"})
    assert "is not a folder" in error.message


def test_source_error_pickles(tmp_path):
    error = source_error(tmp_path / "absent.csv")
    assert str(pickle.loads(pickle.dumps(error))) == str(error)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, ""),
        ("", ""),
        (True, "true"),
        (0, "0"),
        (3.0, "3"),
        (0.1, "0.1"),
        (float("nan"), ""),
        (float("inf"), ""),
        ({"b": 1, "a": "é"}, '{"a": "é", "b": 1}'),
    ],
)
def test_field_text(value, text):
    assert field_text(value) == text


@pytest.mark.parametrize(
    ("answer", "kind"),
    [("yes", "closed"), (" No ", "closed"), ("YES", "closed"), ("yes, left", "open"), ("", "open")],
)
def test_infer_answer_type(answer, kind):
    assert infer_answer_type(answer) == kind


# VQA-RAD


@pytest.fixture(scope="module")
def vqa_rad_dir() -> Path:
    return require_shared("vqa_rad")


def test_vqa_rad_sample(vqa_rad_dir):
    records = list(iter_vqa_rad(str(vqa_rad_dir), {}))

    assert len(records) == 666
    assert len({record.qid for record in records}) == 666
    assert [record.line for record in records] == list(range(1, 667))
    assert Counter(record.answer_type for record in records) == {"closed": 431, "open": 235}
    assert all(isinstance(record.answer, str) and record.answer for record in records)
    assert all(record.image_path is not None for record in records)
    assert len({record.image_path for record in records}) == 60
    assert all(record.image_path.parent == (vqa_rad_dir / "images").resolve() for record in records)
    assert {key for record in records for key in record.metadata} == {
        "image_organ",
        "question_type",
        "phrase_type",
        "split",
    }
    assert {record.metadata["image_organ"] for record in records} == {"CHEST", "HEAD", "ABD"}


def test_vqa_rad_integer_answers_become_text(vqa_rad_dir):
    raw = json.loads((vqa_rad_dir / "qa.json").read_text(encoding="utf-8"))
    integer_qids = {str(item["qid"]) for item in raw if isinstance(item["answer"], int)}
    assert len(integer_qids) == 6

    records = {record.qid: record for record in iter_vqa_rad(str(vqa_rad_dir), {})}

    for qid in integer_qids:
        assert records[qid].answer.isdigit()


def test_vqa_rad_first_record(vqa_rad_dir):
    first = next(iter_vqa_rad(str(vqa_rad_dir / "qa.json"), {}))

    assert first.qid == "1198"
    assert first.image == "synpic100132.jpg"
    assert first.answer == "yes"
    assert first.answer_type == "closed"
    assert load_image(first.image_path).image.size == (2321, 1384)


def write_vqa_rad(folder: Path, items) -> Path:
    (folder / "images").mkdir(parents=True, exist_ok=True)
    text = items if isinstance(items, str) else json.dumps(items)
    (folder / "qa.json").write_text(text, encoding="utf-8")
    return folder


def vqa_item(**changes) -> dict:
    item = {
        "qid": 1,
        "image_name": "a.jpg",
        "image_organ": "HEAD",
        "question": "Is this a CT?",
        "answer": "Yes",
        "answer_type": "CLOSED ",
        "question_type": "MODALITY",
        "phrase_type": "freeform",
        "split": "test",
    }
    item.update(changes)
    return item


def test_vqa_rad_synthetic_quirks(tmp_path):
    folder = write_vqa_rad(
        tmp_path,
        [
            vqa_item(),
            vqa_item(qid=2, answer=4, answer_type="OPEN"),
            vqa_item(qid=3, image_name="../escape.jpg", answer_type=None),
            vqa_item(qid=4, extra="dropped"),
        ],
    )

    records = list(iter_vqa_rad(str(folder), {}))

    assert [record.answer for record in records] == ["Yes", "4", "Yes", "Yes"]
    assert [record.answer_type for record in records] == ["closed", "open", "closed", "closed"]
    assert records[2].image_path is None
    assert "extra" not in records[3].metadata


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[]", "contains no questions"),
        ('{"qid": 1}', "expected a JSON array"),
        ('[{"qid": 1},\n 5]', "item 2 of the list is a JSON number"),
        ('[{"qid": 1},\n {"qid": ', "invalid JSON"),
    ],
)
def test_vqa_rad_structural_errors(tmp_path, content, message):
    folder = write_vqa_rad(tmp_path, content)

    with pytest.raises(SourceError) as caught:
        list(iter_vqa_rad(str(folder), {}))
    assert message in caught.value.message


def test_vqa_rad_missing_parts(tmp_path):
    with pytest.raises(SourceError, match="qa.json not found"):
        list(iter_vqa_rad(str(tmp_path), {}))

    (tmp_path / "qa.json").write_text(json.dumps([vqa_item()]), encoding="utf-8")
    with pytest.raises(SourceError, match="image folder"):
        list(iter_vqa_rad(str(tmp_path), {}))


def test_vqa_rad_invalid_json_line(tmp_path):
    folder = write_vqa_rad(tmp_path, '[\n{"qid": 1},\n{"qid": 2,,}\n]')

    with pytest.raises(SourceError) as caught:
        list(iter_vqa_rad(str(folder), {}))
    assert caught.value.line == 3
