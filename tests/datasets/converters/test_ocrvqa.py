"""OCR-VQA converter, from fixtures in the official dataset.json format (and LAVIS's ocrvqa.json)."""

from __future__ import annotations

import pytest

from lavis_ib.datasets.templates import VQA, render
from tests.datasets.converters.helpers import Fixture, load_converted, run, write_json


def cover(split, questions, answers, url="http://ecx.images-amazon.com/images/I/51Bx.jpg"):
    return {"imageURL": url, "questions": questions, "answers": answers, "title": "A Book", "authorName": "A. Writer",
            "genre": "Travel", "split": split}


def write_ocrvqa(src):
    """Two train covers (one a .gif), one val cover, and a train cover whose lists differ in length."""
    write_json(src / "dataset.json", {
        "0001": cover(1, ["Who wrote this book?", "What is the title?"], ["A. Writer", "A Book"]),
        "0002": cover(1, ["Is this a travel book?"], ["Yes"], url="http://x.org/images/I/cover.gif"),
        "0003": cover(2, ["What is the genre?"], ["Travel"]),
        "0004": cover(1, ["Who wrote this book?", "Orphan question?"], ["Someone"]),
    })


def test_one_record_per_pair_of_the_split(tmp_path):
    write_ocrvqa(tmp_path)
    records, report = run("ocrvqa", tmp_path, tmp_path / "out", "train")
    assert report.written == 3 and report.skipped == {"questions and answers lists of different lengths": 1}
    assert records[0] == {"image": "images/0001.jpg", "text_input": "Who wrote this book?", "text_output": "A. Writer",
                          "answers": ["A. Writer"], "question_id": "0001_0", "image_id": "0001",
                          "meta": {"title": "A Book", "genre": "Travel"}}
    assert records[1]["question_id"] == "0001_1" and records[1]["text_output"] == "A Book"
    assert records[2]["image"] == "images/0002.gif" and "ocr_tokens" not in records[2]


def test_other_splits_are_filtered_silently(tmp_path):
    write_ocrvqa(tmp_path)
    records, report = run("ocrvqa", tmp_path, tmp_path / "out", "val")
    assert [r["question_id"] for r in records] == ["0003_0"] and not report.skipped
    records, report = run("ocrvqa", tmp_path, tmp_path / "out", "test")
    assert records == [] and report.written == 0


def test_lavis_file_is_read_for_train_when_original_is_absent(tmp_path):
    write_json(tmp_path / "ocrvqa.json", [{"sample_id": "77", "questions": ["Q1?", "Q2?"], "answers": ["a", "b"]}])
    records, _ = run("ocrvqa", tmp_path, tmp_path / "out", "train")
    assert [(r["image"], r["text_input"], r["text_output"]) for r in records] == [
        ("images/77.jpg", "Q1?", "a"), ("images/77.jpg", "Q2?", "b")]
    with pytest.raises(FileNotFoundError, match="dataset.json"):
        run("ocrvqa", tmp_path, tmp_path / "out", "val")


def test_ocrvqa_train_loads_with_a_vqa_template_and_no_ocr_prefix(tmp_path, monkeypatch):
    write_ocrvqa(tmp_path / "src")
    items = load_converted("ocrvqa", tmp_path / "src", tmp_path, monkeypatch, "train",
                           media=["images/0001.jpg", "images/0002.gif"])
    assert items[0]["image"].shape == (3, 16, 16)
    assert items[0]["text_input"] in {render(t, {"text_input": "who wrote this book?"}) for t in VQA}
    assert not items[0]["text_input"].startswith("OCR tokens")


CATALOGUE = {"ocrvqa": Fixture(write_ocrvqa, "train", 3)}
