"""IconQA converter, from fixtures in the official `problems.json` + `pid_splits.json` format."""

from __future__ import annotations

import pytest

from lavis_ib.datasets.converters.base import SourceError
from tests.datasets.converters.helpers import Fixture, load_converted, run, write_json

PROBLEMS = {
    "34": {"question": "Which shape is bigger?", "choices": ["the circle", "the square"], "answer": 1,
           "ques_type": "choose_txt", "grade": "kindergarten", "label": "comparing", "split": "test"},
    "35": {"question": "Which picture shows a cat?", "choices": ["image1.png", "image2.png"], "answer": 0,
           "ques_type": "choose_img", "grade": "grade1", "label": "animals", "split": "test"},
    "36": {"question": "How many dots are there?", "choices": [], "answer": "7",
           "ques_type": "fill_in_blank", "grade": "grade1", "label": "counting", "split": "test"},
    "40": {"question": "What time is shown?", "choices": ["7:00", "12:00", "3:30"], "answer": 2,
           "ques_type": "choose_txt", "grade": "grade2", "label": "time", "split": "test"},
    "90": {"question": "Is the dog left of the cat?", "choices": ["yes", "no"], "answer": 0,
           "ques_type": "choose_txt", "grade": "grade1", "label": "spatial", "split": "val"},
}


def write_iconqa(src, splits):
    write_json(src / "iconqa_data" / "problems.json", PROBLEMS)
    write_json(src / "iconqa_data" / "pid_splits.json", splits)


def test_iconqa_reads_choose_txt_split_lists(tmp_path):
    write_iconqa(tmp_path, {"choose_txt_test": ["34", "40"], "choose_img_test": ["35"], "fill_in_blank_test": ["36"],
                            "choose_txt_val": ["90"]})
    records, report = run("iconqa", tmp_path, tmp_path / "out", "test")
    assert report.written == 2 and not report.skipped
    assert records[0] == {"image": "iconqa_data/iconqa/test/choose_txt/34/image.png",
                          "text_input": "Which shape is bigger?", "choices": ["the circle", "the square"], "label": 1,
                          "text_output": "the square", "question_id": "34"}
    assert records[1]["label"] == 2 and records[1]["text_output"] == "3:30"
    val, _ = run("iconqa", tmp_path, tmp_path / "out", "val")
    assert [r["image"] for r in val] == ["iconqa_data/iconqa/val/choose_txt/90/image.png"]


def test_iconqa_whole_split_lists_skip_other_question_types(tmp_path):
    write_iconqa(tmp_path, {"test": ["34", "35", "36", "40"], "val": ["90"]})
    records, report = run("iconqa", tmp_path, tmp_path / "out", "test")
    assert [r["question_id"] for r in records] == ["34", "40"]
    assert report.skipped == {"not multi-text-choice (choose_img)": 1, "not multi-text-choice (fill_in_blank)": 1}


def test_iconqa_src_may_be_the_repository_root(tmp_path):
    write_iconqa(tmp_path / "data", {"choose_txt_test": ["34"]})  # tools/download_data_and_models.sh unzips in data/
    records, _ = run("iconqa", tmp_path, tmp_path / "out", "test")
    assert [r["question_id"] for r in records] == ["34"]


def test_iconqa_src_may_be_the_iconqa_data_folder(tmp_path):
    write_iconqa(tmp_path, {"choose_txt_test": ["40"]})
    records, _ = run("iconqa", tmp_path / "iconqa_data", tmp_path / "out", "test")
    assert records[0]["image"] == "iconqa_data/iconqa/test/choose_txt/40/image.png"


def test_iconqa_lavis_annotations_are_read_when_originals_are_absent(tmp_path):
    write_json(tmp_path / "annotations_test.json", [
        {"image": "test/choose_txt/40/image.png", "question": "What time is shown?", "choices": ["7:00", "3:30"],
         "answer": 1, "question_id": "40"}])
    records, _ = run("iconqa", tmp_path, tmp_path / "out", "test")
    assert records == [{"image": "test/choose_txt/40/image.png", "text_input": "What time is shown?",
                        "choices": ["7:00", "3:30"], "label": 1, "text_output": "3:30", "question_id": "40"}]


def test_iconqa_errors_name_the_file_and_entry(tmp_path):
    write_iconqa(tmp_path, {"train": ["34"]})
    no_list = r"pid_splits.json: no pid list under 'choose_txt_test' or 'test' \(found \['train'\]\)"
    with pytest.raises(SourceError, match=no_list):
        run("iconqa", tmp_path, tmp_path / "out", "test")
    write_iconqa(tmp_path, {"choose_txt_test": ["999"]})
    with pytest.raises(SourceError, match=r"lists pid '999', which .*problems.json does not have"):
        run("iconqa", tmp_path, tmp_path / "out", "test")
    write_json(tmp_path / "iconqa_data" / "problems.json", {"34": {**PROBLEMS["34"], "answer": 5}})
    write_json(tmp_path / "iconqa_data" / "pid_splits.json", {"choose_txt_test": ["34"]})
    with pytest.raises(SourceError, match=r"problems.json: problem '34': answer 5 is not an index into its 2 choices"):
        run("iconqa", tmp_path, tmp_path / "out", "test")


def test_iconqa_test_loads_with_the_zero_shot_prompt(tmp_path, monkeypatch):
    write_iconqa(tmp_path / "src", {"choose_txt_test": ["40"]})
    items = load_converted("iconqa", tmp_path / "src", tmp_path, monkeypatch, "test",
                           media=["iconqa_data/iconqa/test/choose_txt/40/image.png"])
    assert items[0]["image"].shape == (3, 16, 16)
    assert items[0]["text_input"] == "Question: what time is shown? Options: (a) 7:00 (b) 12:00 (c) 3:30. Short answer:"
    assert items[0]["label"] == 2 and items[0]["choices"] == ["7:00", "12:00", "3:30"]


CATALOGUE = {"iconqa": Fixture(lambda src: write_iconqa(src, {"choose_txt_test": ["34", "40"]}), "test", 2)}
