"""Visual Dialog v1.0 converter, from fixtures in the official `visdial_1.0_<split>.json` format."""

from __future__ import annotations

import pytest

from lavis_ib.datasets.converters.base import SourceError
from tests.datasets.converters.helpers import Fixture, load_converted, run, write_json

QUESTIONS = ["is it sunny", "how many dogs", "what colour is the bus", "is there a man"]
ANSWERS = [f"option {i}" for i in range(100)] + ["yes", "2", "red", "no"]  # 100 fillers, then the real answers


def options(gt: int, where: int) -> list[int]:
    """100 option indices with answer index `gt` at position `where`."""
    indices = [i for i in range(100) if i != where]
    return indices[:where] + [gt] + indices[where:]


def write_visdial(src, split="val"):
    """2 dialogs × 3 rounds; answers 100..103 sit at option positions 5, 0 and 99."""
    rounds = [(0, 100, 5), (1, 101, 0), (2, 102, 99)]
    dialog = [{"question": q, "answer": a, "answer_options": options(a, at), "gt_index": at} for q, a, at in rounds]
    write_json(src / f"visdial_1.0_{split}.json", {"version": "1.0", "split": f"{split}2018", "data": {
        "questions": QUESTIONS, "answers": ANSWERS,
        "dialogs": [{"image_id": 7, "caption": "a dog on a bus", "dialog": dialog},
                    {"image_id": 12, "caption": "a red bus.", "dialog": dialog[::-1]}]}})


def test_one_record_per_round_with_its_own_history(tmp_path):
    write_visdial(tmp_path)
    records, report = run("visdial", tmp_path, tmp_path / "out", "val")
    assert report.written == 6 and not report.skipped
    first, second, third = records[:3]
    assert first["image"] == "VisualDialog_val2018/VisualDialog_val2018_000000000007.jpg"
    assert first["text_input"] == "is it sunny" and first["text_output"] == "yes"
    assert first["question_id"] == "7_1" and first["image_id"] == 7 and first["meta"] == {"round": 1}
    assert first["context"] == "a dog on a bus" and first["history"] == []
    assert len(first["answer_options"]) == 100 and first["gt_index"] == 5 and first["answer_options"][5] == "yes"
    assert second["history"] == [["is it sunny", "yes"]] and second["answer_options"][0] == "2"
    assert third["history"] == [["is it sunny", "yes"], ["how many dogs", "2"]]
    assert third["question_id"] == "7_3" and third["answer_options"][third["gt_index"]] == third["text_output"] == "red"
    assert records[3]["question_id"] == "12_1" and records[3]["text_input"] == "what colour is the bus"
    assert records[5]["history"] == [["what colour is the bus", "red"], ["how many dogs", "2"]]


def test_test_split_yields_only_rounds_with_answer_options(tmp_path):
    write_json(tmp_path / "visdial_1.0_test.json", {"data": {"questions": QUESTIONS, "answers": ANSWERS, "dialogs": [
        {"image_id": 3, "caption": "a bus", "round_id": 2,
         "dialog": [{"question": 0, "answer": 100}, {"question": 3, "answer_options": list(range(100))}]}]}})
    records, _ = run("visdial", tmp_path, tmp_path / "out", "test")
    assert len(records) == 1 and "gt_index" not in records[0]
    assert records[0]["image"] == "VisualDialog_test2018/VisualDialog_test2018_000000000003.jpg"
    assert records[0]["text_output"] == "" and records[0]["history"] == [["is it sunny", "yes"]]
    assert records[0]["question_id"] == "3_2" and records[0]["answer_options"][:2] == ["option 0", "option 1"]


def test_train_images_are_named_by_id_in_one_folder(tmp_path):
    write_visdial(tmp_path, "train")
    records, _ = run("visdial", tmp_path, tmp_path / "out", "train")
    assert records[0]["image"] == "train/000000000007.jpg" and len(records) == 6


def test_out_of_range_index_names_dialog_and_round(tmp_path):
    write_visdial(tmp_path)
    path = tmp_path / "visdial_1.0_val.json"
    path.write_text(path.read_text().replace('"gt_index": 0', '"gt_index": 100'))
    with pytest.raises(SourceError, match=r"dialogs\[0\] \(image_id 7\) round 2: gt_index 100 out of range"):
        run("visdial", tmp_path, tmp_path / "out", "val")
    write_visdial(tmp_path)
    path.write_text(path.read_text().replace('"answer": 101', '"answer": 104'))
    with pytest.raises(SourceError, match=r"dialogs\[0\] \(image_id 7\) round 2: answer index 104 out of range"):
        run("visdial", tmp_path, tmp_path / "out", "val")


def test_visdial_val_loads_with_the_dialog_prompt(tmp_path, monkeypatch):
    write_visdial(tmp_path / "src")
    items = load_converted("visdial", tmp_path / "src", tmp_path, monkeypatch, "val",
                           media=["VisualDialog_val2018/VisualDialog_val2018_000000000007.jpg",
                                  "VisualDialog_val2018/VisualDialog_val2018_000000000012.jpg"])
    assert items[1]["image"].shape == (3, 16, 16)
    assert items[1]["text_input"] == ("Dialog history: a dog on a bus. Question: is it sunny Answer: yes.\n"
                                      " Question: how many dogs Short answer:")
    assert items[3]["text_input"] == "Dialog history: a red bus.\n Question: what colour is the bus Short answer:"
    assert len(items[1]["answer_options"]) == 100 and items[1]["gt_index"] == 0 and items[1]["text_output"] == "2"


CATALOGUE = {"visdial": Fixture(write_visdial, "val", 6)}
