"""VizWiz-VQA converter, from fixtures in the official Annotations/{val,test}.json format."""

from __future__ import annotations

from tests.datasets.converters.helpers import Fixture, load_converted, run, write_json

ANSWERS = ["coffee", "coffee", "unanswerable", "coffee", "tea", "coffee", "coffee", "coffee", "coffee", "coffee"]


def write_vizwiz(src):
    write_json(src / "Annotations" / "val.json", [
        {"image": "VizWiz_val_00000000.jpg", "question": "What is in this cup?", "answer_type": "other",
         "answerable": 1, "answers": [{"answer": a, "answer_confidence": "yes"} for a in ANSWERS]},
    ])
    write_json(src / "Annotations" / "test.json", [{"image": "VizWiz_test_00000007.jpg", "question": "What is this?"}])


def test_val_keeps_ten_answers_and_the_image_name(tmp_path):
    write_vizwiz(tmp_path)
    records, report = run("vizwiz", tmp_path, tmp_path / "out", "val")
    assert report.written == 1 and not report.skipped
    assert records[0] == {"image": "val/VizWiz_val_00000000.jpg", "text_input": "What is in this cup?",
                          "text_output": "coffee", "question_id": "VizWiz_val_00000000",
                          "image_id": "VizWiz_val_00000000.jpg", "answers": ANSWERS,
                          "meta": {"answer_type": "other", "answerable": 1}}


def test_test_split_has_no_answers(tmp_path):
    write_vizwiz(tmp_path)
    records, _ = run("vizwiz", tmp_path, tmp_path / "out", "test")
    assert records == [{"image": "test/VizWiz_test_00000007.jpg", "text_input": "What is this?", "text_output": "",
                        "question_id": "VizWiz_test_00000007", "image_id": "VizWiz_test_00000007.jpg"}]


def test_file_outside_the_annotations_folder_is_read(tmp_path):
    write_json(tmp_path / "val.json", [{"image": "VizWiz_val_00000001.jpg", "question": "Q?",
                                        "answers": [{"answer": "a", "answer_confidence": "no"}]}])
    records, _ = run("vizwiz", tmp_path, tmp_path / "out", "val")
    assert records[0]["answers"] == ["a"] and "meta" not in records[0]


def test_vizwiz_val_loads_with_the_zero_shot_prompt(tmp_path, monkeypatch):
    write_vizwiz(tmp_path / "src")
    items = load_converted("vizwiz", tmp_path / "src", tmp_path, monkeypatch, "val",
                           media=["val/VizWiz_val_00000000.jpg"])
    assert items[0]["image"].shape == (3, 16, 16)
    assert items[0]["text_input"] == "Question: what is in this cup? Short answer:"
    assert items[0]["image_id"] == "VizWiz_val_00000000.jpg"


CATALOGUE = {"vizwiz": Fixture(write_vizwiz, "val", 1)}
