"""HatefulMemes converter, from fixtures in the challenge's JSON-lines format."""

from __future__ import annotations

import pytest

from lavis_ib.datasets.converters.base import SourceError
from tests.datasets.converters.helpers import Fixture, load_converted, run, write_jsonl

DEV = [
    {"id": 42953, "img": "img/42953.png", "label": 0, "text": "its their character not their color that matters"},
    {"id": 23058, "img": "img/23058.png", "label": 1, "text": "don't be afraid to love again"},
]


def write_dev_seen(src):
    """`dev_seen.jsonl` with one benign and one hateful meme."""
    write_jsonl(src / "dev_seen.jsonl", DEV)


def test_hateful_memes_dev_seen_labels_become_yes_no(tmp_path):
    write_dev_seen(tmp_path)
    records, report = run("hateful_memes", tmp_path, tmp_path / "out", "dev_seen")
    assert report.written == 2 and not report.skipped
    assert records[0] == {"image": "img/42953.png", "text_input": "its their character not their color that matters",
                          "text_output": "no", "choices": ["no", "yes"], "question_id": 42953, "label": 0}
    assert records[1]["label"] == 1 and records[1]["text_output"] == "yes" and records[1]["question_id"] == 23058


def test_hateful_memes_test_without_labels_has_empty_target(tmp_path):
    write_jsonl(tmp_path / "data" / "test_unseen.jsonl", [
        {"id": 1, "img": "img/00001.png", "text": "hello"},
        {"id": 2, "img": "img/00002.png", "text": "bye", "label": None},
    ])
    records, report = run("hateful_memes", tmp_path, tmp_path / "out", "test_unseen")
    assert report.written == 2
    for record in records:
        assert record["text_output"] == "" and "label" not in record and record["choices"] == ["no", "yes"]
    assert records[0]["image"] == "img/00001.png" and records[0]["text_input"] == "hello"


def test_hateful_memes_bad_label_and_missing_text_name_file_and_line(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", [DEV[0], {**DEV[1], "label": 3}])
    with pytest.raises(SourceError, match=r"train.jsonl:2: label must be 0 or 1, got 3"):
        run("hateful_memes", tmp_path, tmp_path / "out", "train")
    write_jsonl(tmp_path / "train.jsonl", [{"id": 5, "img": "img/5.png", "label": 1}])
    with pytest.raises(SourceError, match=r"train.jsonl:1: missing key 'text'"):
        run("hateful_memes", tmp_path, tmp_path / "out", "train")


def test_hateful_memes_dev_seen_loads_with_the_zero_shot_prompt(tmp_path, monkeypatch):
    write_jsonl(tmp_path / "src" / "dev_seen.jsonl", DEV)
    items = load_converted("hateful_memes", tmp_path / "src", tmp_path, monkeypatch, "dev_seen",
                           media=["img/42953.png", "img/23058.png"])
    assert items[1]["image"].shape == (3, 16, 16)
    assert items[1]["text_input"] == ('This is an image with: "don\'t be afraid to love again" written on it. '
                                      "Is it hateful? Answer:")
    assert items[1]["label"] == 1 and items[1]["text_output"] == "yes"


CATALOGUE = {"hateful_memes": Fixture(write_dev_seen, "dev_seen", 2)}
