"""LLaVA-Instruct-150K subset converters, from fixtures in the original conversation-list format."""

from __future__ import annotations

import pytest

from lavis_ib.datasets.converters.base import SourceError
from lavis_ib.datasets.converters.llava150k import SUBSETS, clean_question
from tests.datasets.converters.helpers import Fixture, load_converted, run, write_json


def human(value: str) -> dict:
    return {"from": "human", "value": value}


def gpt(value: str) -> dict:
    return {"from": "gpt", "value": value}


THREE_TURNS = {"id": "000000033471", "image": "000000033471.jpg", "conversations": [
    human("<image>\nWhat colour is the bus?"), gpt("The bus is red."),
    human("Where is it going?"), gpt("It is heading downtown."),
    human("Is it crowded?"), gpt("No, it looks almost empty."),
]}
MALFORMED = {"id": "9", "image": "000000000009.jpg", "conversations": [
    human("What is this?\n<image>"), human("Describe it."), gpt("A kitchen."),
    {"from": "system", "value": "hi"}, human("Anything else?"),
]}


def write_llava(src, filename="conversation_58k.json"):
    """One clean 3-turn conversation and one with a double human message, an unknown speaker and a dangling question."""
    write_json(src / filename, [THREE_TURNS, MALFORMED])


def test_every_turn_becomes_a_record_with_the_earlier_turns_as_history(tmp_path):
    write_llava(tmp_path)
    records, report = run("llava150k_conversation", tmp_path, tmp_path / "out", "train")
    assert report.written == 4
    assert report.skipped == {"human message followed by another human message": 1,
                              "message from unknown speaker 'system'": 1,
                              "trailing human message without an answer": 1}
    first, second, third, fourth = records
    assert first == {"image": "train2017/000000033471.jpg", "text_input": "What colour is the bus?",
                     "text_output": "The bus is red.", "question_id": "000000033471_1", "image_id": 33471,
                     "history": []}
    assert second["text_input"] == "Where is it going?" and second["question_id"] == "000000033471_2"
    assert second["history"] == [["What colour is the bus?", "The bus is red."]]
    assert third["history"] == [["What colour is the bus?", "The bus is red."],
                                ["Where is it going?", "It is heading downtown."]]
    assert third["text_output"] == "No, it looks almost empty."
    assert fourth["text_input"] == "Describe it." and fourth["history"] == [] and fourth["question_id"] == "9_1"


@pytest.mark.parametrize("name, filename", [("llava150k_reasoning", "complex_reasoning_77k.json"),
                                            ("llava150k_detail", "detail_23k.json")])
def test_each_subset_reads_its_own_file(tmp_path, name, filename):
    write_json(tmp_path / filename, [{"id": "5", "image": "000000000005.jpg",
                                      "conversations": [human("Why?\n<image>"), gpt("Because.")]}])
    records, _ = run(name, tmp_path, tmp_path / "out", "train")
    assert [(r["text_input"], r["text_output"], r["history"]) for r in records] == [("Why?", "Because.", [])]


def test_the_union_file_alone_is_refused_with_the_reason(tmp_path):
    write_llava(tmp_path, "llava_instruct_150k.json")
    with pytest.raises(SourceError, match="cannot be split into the three subsets.*detail_23k.json"):
        run("llava150k_detail", tmp_path, tmp_path / "out", "train")


def test_image_token_and_its_newline_are_removed():
    assert clean_question("<image>\nWhat is it?") == "What is it?"
    assert clean_question("What is it?\n<image>") == "What is it?"
    assert clean_question("Look:\n<image>\nWhat is it? ") == "Look:\nWhat is it?"


def test_llava_turn_two_renders_verbatim_after_the_first_turn(tmp_path, monkeypatch):
    write_llava(tmp_path / "src")
    items = load_converted("llava150k_conversation", tmp_path / "src", tmp_path, monkeypatch, "train",
                           media=["train2017/000000033471.jpg", "train2017/000000000009.jpg"])
    assert items[1]["image"].shape == (3, 16, 16)
    assert items[0]["text_input"] == "What colour is the bus?"
    assert items[1]["text_input"] == "Question: What colour is the bus? Answer: The bus is red.\nWhere is it going?"
    assert items[1]["text_output"] == "It is heading downtown." and items[1]["question_id"] == "000000033471_2"


CATALOGUE = {
    name: Fixture(lambda src, filename=filename: write_llava(src, filename), "train", 4)
    for name, filename in SUBSETS.items()
}
