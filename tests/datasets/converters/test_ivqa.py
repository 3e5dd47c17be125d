"""iVQA converter, from CSV fixtures in the antoyang/just-ask format (five answers, clip start/end)."""

from __future__ import annotations

import pytest

from lavis_ib.datasets.converters.base import SourceError
from tests.datasets.converters.helpers import Fixture, load_converted, run

HEADER = "video_id,start,end,question,answer1,answer2,answer3,answer4,answer5\n"
ROWS = (
    "oX5w9JKsjRw,0.5,2.5,What is the man doing?,dance,dancing,dance,,dance\n"
    "Ab3-dE_fGhI,,,what color is the bowl?,red,blue,blue,red,green\n"
    "zz9_zz9_zz9,4,9,what is this?,,,,,\n"
)


def write_ivqa(src, split="test", rows=ROWS):
    src.mkdir(parents=True, exist_ok=True)
    (src / f"{split}.csv").write_text(HEADER + rows)


def test_ivqa_keeps_non_blank_answers_clip_bounds_and_row_index(tmp_path):
    write_ivqa(tmp_path)
    records, report = run("ivqa", tmp_path, tmp_path / "out", "test")
    assert report.written == 2 and report.skipped == {"all five answers blank": 1}
    assert records[0] == {"image": "oX5w9JKsjRw.mp4", "text_input": "What is the man doing?", "text_output": "dance",
                          "answers": ["dance", "dancing", "dance", "dance"], "question_id": 0,
                          "meta": {"video_id": "oX5w9JKsjRw"}, "start": 0.5, "end": 2.5}
    second = records[1]
    assert "start" not in second and "end" not in second and second["question_id"] == 1
    assert second["answers"] == ["red", "blue", "blue", "red", "green"] and second["text_output"] == "red"


def test_question_id_column_is_used_when_present(tmp_path):
    (tmp_path / "val.csv").write_text("qid,video_id,start,end,question,answer1,answer2,answer3,answer4,answer5\n"
                                      "17,abc,3,8,who?,a,a,b,c,d\n")
    records, _ = run("ivqa", tmp_path, tmp_path / "out", "val")
    assert records[0]["question_id"] == 17 and (records[0]["start"], records[0]["end"]) == (3, 8)


def test_bad_clip_bound_names_file_line_and_column(tmp_path):
    write_ivqa(tmp_path, "train", "abc,soon,9,why?,a,b,c,d,e\n")
    with pytest.raises(SourceError, match=r"train.csv:2: column 'start': expected a number of seconds"):
        run("ivqa", tmp_path, tmp_path / "out", "train")


def test_missing_column_is_named(tmp_path):
    (tmp_path / "test.csv").write_text("video_id,question,answer1\nabc,why?,a\n")
    with pytest.raises(SourceError, match=r"test.csv:2: missing key 'answer2'"):
        run("ivqa", tmp_path, tmp_path / "out", "test")


def test_ivqa_loads_the_clip_with_four_frames_and_the_zero_shot_prompt(tmp_path, monkeypatch):
    write_ivqa(tmp_path / "src")
    items = load_converted("ivqa", tmp_path / "src", tmp_path, monkeypatch, "test",
                           media=["oX5w9JKsjRw.mp4", "Ab3-dE_fGhI.mp4"])
    assert items[0]["image"].shape == (3, 4, 16, 16)
    assert items[0]["text_input"] == "Question: what is the man doing? Short answer:"
    assert items[0]["answers"] == ["dance", "dancing", "dance", "dance"]
    from lavis_ib import load_dataset

    dataset = load_dataset("ivqa", splits=["test"])["test"]
    media = dataset.make_item.media(dataset.records[0])
    assert media == {"path": str(dataset.make_item.media_root / "oX5w9JKsjRw.mp4"), "start": 0.5, "end": 2.5}
    assert dataset.make_item.media(dataset.records[1]) == str(dataset.make_item.media_root / "Ab3-dE_fGhI.mp4")
    assert dataset.answer_list is None


CATALOGUE = {"ivqa": Fixture(write_ivqa, "test", 2)}
