"""TextVQA converter, from fixtures in the official TextVQA 0.5.1 + Rosetta OCR v0.2 formats."""

from __future__ import annotations

import pytest

from tests.datasets.converters.helpers import Fixture, load_converted, run, write_json

TEN = ["stop", "stop", "stop sign", "stop", "stop", "stop", "halt", "stop", "stop", "stop"]


def question(qid, image_id, text, answers=TEN):
    item = {"question": text, "image_id": image_id, "image_classes": ["Traffic sign"], "flickr_original_url": "u",
            "flickr_300k_url": "u", "image_width": 1024, "image_height": 768, "question_tokens": text.split(),
            "question_id": qid, "set_name": "val"}
    if answers is not None:
        item["answers"] = answers
    return item


def write_textvqa(src, split="val", answers=TEN):
    """Two questions: one on an image with OCR tokens, one on an image the OCR file does not list."""
    write_json(src / f"TextVQA_0.5.1_{split}.json", {"dataset_type": split, "data": [
        question(34602, "003a8ae2ef43b901", "What is written?", answers),
        question(34603, "ffff0000aaaa1111", "What brand?", answers),
    ]})
    write_json(src / f"TextVQA_Rosetta_OCR_v0.2_{split}.json", {"data": [
        {"image_id": "003a8ae2ef43b901", "ocr_tokens": ["Stop", "Ahead"],
         "ocr_info": [{"word": "Stop", "bounding_box": {}}, {"word": "Ahead", "bounding_box": {}}]},
    ]})


def test_records_carry_ocr_tokens_and_ten_answers(tmp_path):
    write_textvqa(tmp_path)
    records, report = run("textvqa", tmp_path, tmp_path / "out", "val")
    assert report.written == 2 and not report.skipped
    assert records[0] == {"image": "train_images/003a8ae2ef43b901.jpg", "text_input": "What is written?",
                          "text_output": "stop", "question_id": 34602, "image_id": "003a8ae2ef43b901",
                          "ocr_tokens": ["Stop", "Ahead"], "answers": TEN, "meta": {"image_classes": ["Traffic sign"]}}
    assert records[1]["ocr_tokens"] == []


def test_test_split_has_no_answers_and_its_own_image_folder(tmp_path):
    write_textvqa(tmp_path, "test", answers=None)
    records, _ = run("textvqa", tmp_path, tmp_path / "out", "test")
    assert records[0]["image"] == "test_images/003a8ae2ef43b901.jpg"
    assert records[0]["text_output"] == "" and "answers" not in records[0]


def test_missing_ocr_file_is_named(tmp_path):
    write_textvqa(tmp_path)
    (tmp_path / "TextVQA_Rosetta_OCR_v0.2_val.json").unlink()
    with pytest.raises(FileNotFoundError, match="TextVQA_Rosetta_OCR_v0.2_val.json"):
        run("textvqa", tmp_path, tmp_path / "out", "val")


def test_textvqa_val_loads_with_the_ocr_zero_shot_prompt(tmp_path, monkeypatch):
    write_textvqa(tmp_path / "src")
    items = load_converted("textvqa", tmp_path / "src", tmp_path, monkeypatch, "val",
                           media=["train_images/003a8ae2ef43b901.jpg", "train_images/ffff0000aaaa1111.jpg"])
    assert items[0]["image"].shape == (3, 16, 16)
    assert items[0]["text_input"] == "OCR tokens: Stop, Ahead. Question: what is written? Short answer:"
    assert items[1]["text_input"] == "OCR tokens: . Question: what brand? Short answer:"
    assert items[0]["answers"] == TEN


CATALOGUE = {"textvqa": Fixture(write_textvqa, "val", 2)}
