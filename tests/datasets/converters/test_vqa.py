"""VQAv2 / OK-VQA converters and their question-generation versions, from fixtures in the official VQA format."""

from __future__ import annotations

import pytest

from lavis_ib.datasets.converters.base import SourceError
from tests.datasets.converters.helpers import Fixture, load_converted, run, write_json

TEN = ["2", "2", "two", "2", "3", "2", "2", "two", "2", "2"]


def write_vqav2(src, split="train"):
    """Three questions: one with 10 answers incl. repeats, one with a single distinct answer, one unannotated."""
    write_json(src / f"v2_OpenEnded_mscoco_{split}2014_questions.json", {"info": {}, "questions": [
        {"image_id": 9, "question": "How many dogs?", "question_id": 90},
        {"image_id": 9, "question": "Is it sunny?", "question_id": 91},
        {"image_id": 25, "question": "What colour is the bus?", "question_id": 250},
    ]})
    write_json(src / f"v2_mscoco_{split}2014_annotations.json", {"annotations": [
        {"question_id": 90, "image_id": 9, "question_type": "how many", "answer_type": "number",
         "multiple_choice_answer": "2", "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": i + 1}
                                                    for i, a in enumerate(TEN)]},
        {"question_id": 91, "image_id": 9, "question_type": "is it", "answer_type": "yes/no",
         "multiple_choice_answer": "yes", "answers": [{"answer": "yes", "answer_confidence": "yes", "answer_id": i}
                                                      for i in range(10)]},
    ]})


def test_vqav2_keeps_all_ten_answers_and_the_most_common_as_target(tmp_path):
    write_vqav2(tmp_path / "src")
    records, report = run("vqav2", tmp_path / "src", tmp_path / "out", "train")
    assert report.written == 2 and report.skipped == {"question without annotation": 1}
    first = records[0]
    assert first["image"] == "train2014/COCO_train2014_000000000009.jpg"
    assert first["text_input"] == "How many dogs?" and first["text_output"] == "2"
    assert first["answers"] == TEN and first["question_id"] == 90 and first["image_id"] == 9
    assert first["meta"] == {"question_type": "how many", "answer_type": "number"}
    assert records[1]["answers"] == ["yes"] * 10


def test_vqav2_test_split_has_questions_without_answers(tmp_path):
    write_json(tmp_path / "v2_OpenEnded_mscoco_test2015_questions.json",
               {"questions": [{"image_id": 1, "question": "Why?", "question_id": 10}]})
    records, _ = run("vqav2", tmp_path, tmp_path / "out", "test")
    assert records == [{"image": "test2015/COCO_test2015_000000000001.jpg", "text_input": "Why?", "text_output": "",
                        "question_id": 10, "image_id": 1}]


def test_question_generation_swaps_answer_and_question(tmp_path):
    write_vqav2(tmp_path / "src")
    records, report = run("vqav2_qg", tmp_path / "src", tmp_path / "out", "train")
    assert [(r["text_input"], r["text_output"]) for r in records] == [("2", "How many dogs?"), ("yes", "Is it sunny?")]
    assert "answers" not in records[0] and report.skipped == {"question without annotation": 1}


def write_okvqa(src):
    """One OK-VQA val question with five "tennis" and five "squash" answers."""
    write_json(src / "OpenEnded_mscoco_val2014_questions.json",
               {"questions": [{"image_id": 3, "question": "What sport?", "question_id": 30}]})
    write_json(src / "mscoco_val2014_annotations.json", {"annotations": [
        {"question_id": 30, "image_id": 3, "answers": [{"answer": "tennis", "raw_answer": "Tennis",
                                                        "answer_confidence": "yes", "answer_id": i} for i in range(5)]
         + [{"answer": "squash", "raw_answer": "squash", "answer_confidence": "no", "answer_id": 6}] * 5}]})


def test_okvqa_reads_its_own_file_names(tmp_path):
    write_okvqa(tmp_path)
    records, _ = run("okvqa", tmp_path, tmp_path / "out", "val")
    assert records[0]["text_output"] == "tennis" and len(records[0]["answers"]) == 10
    qg, _ = run("okvqa_qg", tmp_path, tmp_path / "out", "val")
    assert qg[0]["text_input"] == "tennis" and qg[0]["text_output"] == "What sport?"


def test_lavis_preprocessed_json_is_read_when_originals_are_absent(tmp_path):
    write_json(tmp_path / "vqa_train.json", [{"question_id": 5, "question": "What?", "answer": ["a", "b", "b"],
                                              "image": "train2014/x.jpg", "dataset": "vqa"}])
    records, _ = run("vqav2", tmp_path, tmp_path / "out", "train")
    assert records == [{"image": "train2014/x.jpg", "text_input": "What?", "text_output": "b",
                        "answers": ["a", "b", "b"], "question_id": 5}]


def test_missing_file_names_every_path_tried(tmp_path):
    with pytest.raises(FileNotFoundError, match="v2_OpenEnded_mscoco_train2014_questions.json"):
        run("vqav2", tmp_path, tmp_path / "out", "train")


def test_malformed_annotation_names_file_and_entry(tmp_path):
    write_vqav2(tmp_path)
    write_json(tmp_path / "v2_OpenEnded_mscoco_train2014_questions.json", {"questions": [{"image_id": 1}]})
    with pytest.raises(SourceError, match=r"questions.json: questions\[0\]: missing key 'question_id'"):
        run("vqav2", tmp_path, tmp_path / "out", "train")


def test_vqav2_val_loads_with_the_zero_shot_prompt(tmp_path, monkeypatch):
    write_vqav2(tmp_path / "src", "val")
    items = load_converted("vqav2", tmp_path / "src", tmp_path, monkeypatch, "val",
                           media=["val2014/COCO_val2014_000000000009.jpg"])
    assert items[0]["image"].shape == (3, 16, 16)
    assert items[0]["text_input"] == "Question: how many dogs? Short answer:" and items[0]["answers"] == TEN


CATALOGUE = {
    "vqav2": Fixture(write_vqav2, "train", 2),
    "vqav2_qg": Fixture(write_vqav2, "train", 2),
    "okvqa": Fixture(write_okvqa, "val", 1),
    "okvqa_qg": Fixture(write_okvqa, "val", 1),
}
