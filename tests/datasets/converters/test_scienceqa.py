"""ScienceQA converter, from fixtures in the official `problems.json` + `pid_splits.json` format."""

from __future__ import annotations

import pytest

from lavis_ib.datasets.converters.base import SourceError
from tests.datasets.converters.helpers import Fixture, load_converted, run, write_json


def problem(question, choices, answer, image="image.png", hint="", split="test", **extra) -> dict:
    """One entry of `problems.json`, every documented field present."""
    return {"question": question, "choices": choices, "answer": answer, "hint": hint, "image": image,
            "task": "closed choice", "grade": "grade5", "subject": "natural science", "topic": "geography",
            "category": "Geography", "skill": "Read a map: cardinal directions", "lecture": "Maps have four "
            "cardinal directions.", "solution": "Look at the compass rose.", "split": split, **extra}


PROBLEMS = {
    "5": problem("Which of these states is farthest north?", ["West Virginia", "Louisiana", "Arizona", "Oklahoma"], 0),
    "6": problem("Which word would you find on a dictionary page?", ["badge", "bright"], 1, image=None,
                 hint="", subject="language science"),
    "7": problem("Which animal's neck is also adapted for hunting?", ["rabbit", "giant anteater"], 1,
                 hint="Herons live near water. The heron's neck is adapted for hunting.", grade="grade4"),
    "8": problem("What is the capital of Utah?", ["Salt Lake City", "Provo"], 0, image=None,
                 hint="Utah is a state."),
    "12": problem("Identify the question that Tom's experiment can best answer.", ["a", "b", "c"], 2, split="val"),
}


def write_scienceqa(src):
    write_json(src / "problems.json", PROBLEMS)
    write_json(src / "pid_splits.json", {"train": [], "val": ["12"], "test": ["5", "6", "7", "8"], "minival": ["12"]})


def test_scienceqa_keeps_image_questions_with_their_hint_as_context(tmp_path):
    write_scienceqa(tmp_path)
    records, report = run("scienceqa", tmp_path, tmp_path / "out", "test")
    assert report.written == 2 and report.skipped == {"no image context": 2}
    assert records[0] == {
        "image": "images/test/5/image.png", "text_input": "Which of these states is farthest north?", "context": "",
        "choices": ["West Virginia", "Louisiana", "Arizona", "Oklahoma"], "label": 0, "text_output": "West Virginia",
        "question_id": "5", "meta": {"subject": "natural science", "grade": "grade5", "topic": "geography",
                                     "category": "Geography", "skill": "Read a map: cardinal directions"}}
    second = records[1]
    assert second["context"] == "Herons live near water. The heron's neck is adapted for hunting."
    assert second["label"] == 1 and second["text_output"] == "giant anteater" and second["meta"]["grade"] == "grade4"


def test_scienceqa_minival_images_live_under_the_problems_own_split(tmp_path):
    write_scienceqa(tmp_path)
    records, _ = run("scienceqa", tmp_path, tmp_path / "out", "minival")
    assert [(r["image"], r["text_output"]) for r in records] == [("images/val/12/image.png", "c")]


def test_scienceqa_src_may_be_the_repository_root(tmp_path):
    write_scienceqa(tmp_path / "data" / "scienceqa")
    records, _ = run("scienceqa", tmp_path, tmp_path / "out", "val")
    assert records[0]["question_id"] == "12"


def test_scienceqa_errors_name_the_file_and_entry(tmp_path):
    write_json(tmp_path / "problems.json", {"5": {k: v for k, v in PROBLEMS["5"].items() if k != "choices"}})
    write_json(tmp_path / "pid_splits.json", {"test": ["5"]})
    with pytest.raises(SourceError, match=r"problems.json: problem '5': missing key 'choices'"):
        run("scienceqa", tmp_path, tmp_path / "out", "test")
    write_json(tmp_path / "only_problems" / "problems.json", PROBLEMS)
    with pytest.raises(FileNotFoundError, match=r"looked for: .*only_problems/pid_splits.json"):
        run("scienceqa", tmp_path / "only_problems", tmp_path / "out", "test")


def test_scienceqa_test_loads_with_the_zero_shot_prompt(tmp_path, monkeypatch):
    write_scienceqa(tmp_path / "src")
    items = load_converted("scienceqa", tmp_path / "src", tmp_path, monkeypatch, "test",
                           media=["images/test/5/image.png", "images/test/7/image.png"])
    assert items[1]["image"].shape == (3, 16, 16)
    assert items[1]["text_input"] == (
        "Context: Herons live near water. The heron's neck is adapted for hunting. "
        "Question: Which animal's neck is also adapted for hunting? Options: (a) rabbit (b) giant anteater. Answer:")
    assert items[1]["context"] == PROBLEMS["7"]["hint"] and items[1]["label"] == 1


CATALOGUE = {"scienceqa": Fixture(write_scienceqa, "test", 2)}
