"""GQA converter, from the official dict-of-questions format and LAVIS's list format (same file name)."""

from __future__ import annotations

import pytest

from lavis_ib.datasets.converters.base import SourceError
from tests.datasets.converters.helpers import Fixture, load_converted, run, write_json

TYPES = {"structural": "query", "semantic": "attr", "detailed": "colorLarge"}


def write_gqa(src, split="testdev"):
    write_json(src / f"{split}_balanced_questions.json", {
        "20968379": {"imageId": "n288870", "question": "What color is the large car?", "answer": "red",
                     "fullAnswer": "The car is red.", "isBalanced": True, "types": TYPES, "semantic": [],
                     "semanticStr": "select: car", "annotations": {}, "entailed": [], "equivalent": [], "groups": {}},
        "201640614": {"imageId": "n161313", "question": "Is there a dog?", "answer": "no",
                      "fullAnswer": "No, there is no dog.", "isBalanced": True, "types": TYPES},
    })


def test_original_dict_of_questions(tmp_path):
    write_gqa(tmp_path)
    records, report = run("gqa", tmp_path, tmp_path / "out", "testdev")
    assert report.written == 2 and not report.skipped
    assert records[0] == {"image": "n288870.jpg", "text_input": "What color is the large car?", "text_output": "red",
                          "answers": ["red"], "question_id": "20968379", "image_id": "n288870",
                          "meta": {"fullAnswer": "The car is red.", "types": TYPES}}
    assert records[1]["question_id"] == "201640614" and records[1]["answers"] == ["no"]


def test_lavis_list_with_the_same_file_name(tmp_path):
    write_json(tmp_path / "testdev_balanced_questions.json",
               [{"image": "n288870.jpg", "question": "Is it red?", "question_id": 20968379, "answer": "yes"}])
    records, _ = run("gqa", tmp_path, tmp_path / "out", "testdev")
    assert records == [{"image": "n288870.jpg", "text_input": "Is it red?", "text_output": "yes",
                        "answers": ["yes"], "question_id": "20968379"}]


def test_other_content_and_bad_entries_are_named(tmp_path):
    write_json(tmp_path / "val_balanced_questions.json", "nonsense")
    with pytest.raises(SourceError, match="expected a dict of questions"):
        run("gqa", tmp_path, tmp_path / "out", "val")
    write_json(tmp_path / "val_balanced_questions.json", {"1": {"question": "Q?", "answer": "a"}})
    with pytest.raises(SourceError, match=r"val_balanced_questions.json: \['1'\]: missing key 'imageId'"):
        run("gqa", tmp_path, tmp_path / "out", "val")


def test_gqa_testdev_loads_with_the_zero_shot_prompt(tmp_path, monkeypatch):
    write_gqa(tmp_path / "src")
    items = load_converted("gqa", tmp_path / "src", tmp_path, monkeypatch, "testdev",
                           media=["n288870.jpg", "n161313.jpg"])
    assert items[0]["image"].shape == (3, 16, 16)
    assert items[0]["text_input"] == "Question: what color is the large car? Short answer:"
    assert items[0]["answers"] == ["red"] and items[0]["question_id"] == "20968379"


CATALOGUE = {"gqa": Fixture(write_gqa, "testdev", 2)}
