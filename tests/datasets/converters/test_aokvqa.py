"""A-OKVQA converter and its question-generation version, from fixtures in the official aokvqa_v1p0 format."""

from __future__ import annotations

import pytest

from lavis_ib.datasets.converters.base import SourceError
from lavis_ib.datasets.templates import VQA, render
from tests.datasets.converters.helpers import Fixture, load_converted, run, write_json

DIRECT = ["bus", "bus", "coach", "bus", "van", "bus", "coach", "bus", "bus", "bus"]


def entry(split, question_id, image_id, question, direct=DIRECT, choice=1):
    """One A-OKVQA entry; `direct=None` writes it as the test file does (no answers)."""
    item = {"split": split, "image_id": image_id, "question_id": question_id, "question": question,
            "choices": ["car", "bus", "train", "bike"], "rationales": ["r1", "r2", "r3"]}
    if direct is not None:
        item.update(correct_choice_idx=choice, direct_answers=direct, difficult_direct_answer=False)
    return item


def write_aokvqa(src, split="train"):
    write_json(src / f"aokvqa_v1p0_{split}.json", [
        entry(split, "q1", 42, "What vehicle is this?"),
        entry(split, "q2", 7, "Which one rides on rails?", ["train"] * 10, 2),
    ])


def test_aokvqa_keeps_direct_answers_choices_and_label(tmp_path):
    write_aokvqa(tmp_path)
    records, report = run("aokvqa", tmp_path, tmp_path / "out", "train")
    assert report.written == 2 and not report.skipped
    assert records[0] == {
        "image": "train2017/000000000042.jpg", "text_input": "What vehicle is this?", "text_output": "bus",
        "question_id": "q1", "image_id": 42, "choices": ["car", "bus", "train", "bike"], "answers": DIRECT,
        "label": 1, "meta": {"difficult_direct_answer": False, "rationales": ["r1", "r2", "r3"]},
    }
    assert records[1]["label"] == 2 and records[1]["text_output"] == "train"


def test_aokvqa_test_split_has_no_answers_or_label(tmp_path):
    write_json(tmp_path / "aokvqa_v1p0_test.json", [entry("test", "t1", 5, "Why?", direct=None)])
    records, report = run("aokvqa", tmp_path, tmp_path / "out", "test")
    assert report.written == 1
    assert records[0]["image"] == "test2017/000000000005.jpg" and records[0]["text_output"] == ""
    assert "answers" not in records[0] and "label" not in records[0]
    assert records[0]["choices"] == ["car", "bus", "train", "bike"]


def test_lavis_copy_image_field_is_used(tmp_path):
    item = {**entry("val", "v1", 3, "What?"), "image": "val2017/custom.jpg"}
    write_json(tmp_path / "aokvqa_v1p0_val.json", [item])
    records, _ = run("aokvqa", tmp_path, tmp_path / "out", "val")
    assert records[0]["image"] == "val2017/custom.jpg"


def test_question_generation_swaps_and_excludes_test(tmp_path):
    write_aokvqa(tmp_path, "val")
    records, report = run("aokvqa_qg", tmp_path, tmp_path / "out", "val")
    assert [(r["text_input"], r["text_output"]) for r in records] == [
        ("bus", "What vehicle is this?"), ("train", "Which one rides on rails?")]
    assert "answers" not in records[0] and "meta" not in records[0] and report.written == 2
    with pytest.raises(ValueError, match="unknown split 'test'"):
        run("aokvqa_qg", tmp_path, tmp_path / "out", "test")


def test_entry_without_question_names_file_and_index(tmp_path):
    write_json(tmp_path / "aokvqa_v1p0_train.json", [{"split": "train", "image_id": 1, "question_id": "x"}])
    with pytest.raises(SourceError, match=r"aokvqa_v1p0_train.json: \[0\]: missing key 'question'"):
        run("aokvqa", tmp_path, tmp_path / "out", "train")


def test_aokvqa_train_loads_with_a_vqa_template(tmp_path, monkeypatch):
    write_aokvqa(tmp_path / "src")
    items = load_converted("aokvqa", tmp_path / "src", tmp_path, monkeypatch, "train",
                           media=["train2017/000000000042.jpg", "train2017/000000000007.jpg"])
    assert items[0]["image"].shape == (3, 16, 16)
    assert items[0]["text_input"] in {render(t, {"text_input": "what vehicle is this?"}) for t in VQA}
    assert items[0]["text_output"] == "bus" and items[0]["label"] == 1


def test_aokvqa_qg_val_loads_with_the_question_for_answer_prompt(tmp_path, monkeypatch):
    write_aokvqa(tmp_path / "src", "val")
    items = load_converted("aokvqa_qg", tmp_path / "src", tmp_path, monkeypatch, "val",
                           media=["val2017/000000000042.jpg", "val2017/000000000007.jpg"])
    assert items[0]["image"].shape == (3, 16, 16)
    assert items[0]["text_input"] == "Given the image, generate a question whose answer is: bus. Question:"
    assert items[0]["text_output"] == "What vehicle is this?"


CATALOGUE = {
    "aokvqa": Fixture(write_aokvqa, "train", 2),
    "aokvqa_qg": Fixture(lambda src: write_aokvqa(src, "val"), "val", 2),
}
