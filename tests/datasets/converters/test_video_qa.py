"""MSVD-QA / MSRVTT-QA converters, from fixtures in the xudejing/video-question-answering format."""

from __future__ import annotations

import json

from lavis_ib.datasets.convert import convert

import pytest

from lavis_ib.datasets.converters.base import SourceError
from tests.datasets.converters.helpers import Fixture, load_converted, run, write_json

MAPPING = "-4wsuPCjDBc_5_15 vid1\nabc_DEF-12_0_9 vid2\n"
TRAIN = [{"answer": a, "id": i, "question": "what is shown?", "video_id": 1}
         for i, a in enumerate(["man", "dog", "man", "cook", "dog", "man"])]


def write_msvd(src, split="test"):
    """Three questions: two on mapped videos, one on video 7 that youtube_mapping.txt lacks; plus a train split."""
    write_json(src / f"{split}_qa.json", [
        {"answer": "dance", "id": 30933, "question": "What is the man doing?", "video_id": 1},
        {"answer": "two", "id": 30934, "question": "how many dogs play?", "video_id": 2},
        {"answer": "cat", "id": 30935, "question": "what runs?", "video_id": 7},
    ])
    write_json(src / "train_qa.json", TRAIN)
    (src / "youtube_mapping.txt").write_text(MAPPING)


def test_msvd_maps_video_ids_to_clips_and_skips_unmapped_ones(tmp_path):
    write_msvd(tmp_path / "src")
    records, report = run("msvd_qa", tmp_path / "src", tmp_path / "out", "test")
    assert report.written == 2 and report.skipped == {"video id not in youtube_mapping.txt": 1}
    assert records[0] == {"image": "YouTubeClips/-4wsuPCjDBc_5_15.avi", "text_input": "What is the man doing?",
                          "text_output": "dance", "answers": ["dance"], "question_id": 30933,
                          "meta": {"video_id": 1}}
    assert records[1]["image"] == "YouTubeClips/abc_DEF-12_0_9.avi" and records[1]["question_id"] == 30934


def test_answer_list_is_train_answers_by_frequency_and_written_with_every_split(tmp_path):
    write_msvd(tmp_path / "src")
    _, report = run("msvd_qa", tmp_path / "src", tmp_path / "out", "test")
    answer_list = tmp_path / "out" / "msvd_qa" / "answer_list.json"
    assert answer_list in report.paths
    assert json.loads(answer_list.read_text()) == ["man", "dog", "cook"]
    _, train_report = run("msvd_qa", tmp_path / "src", tmp_path / "out", "train")
    assert train_report.written == 6 and train_report.paths[1:] == [answer_list]
    write_msvd(tmp_path / "src", "val")
    reports = convert("msvd_qa", tmp_path / "src", tmp_path / "again", ["train", "val", "test"])
    assert [r.paths[-1].name for r in reports] == ["answer_list.json"] * 3


def test_lavis_train_ans2label_sets_the_answer_list_in_label_order(tmp_path):
    write_msvd(tmp_path)
    write_json(tmp_path / "train_ans2label.json", {"yes": 2, "dance": 0, "two": 1})
    run("msvd_qa", tmp_path, tmp_path / "out", "test")
    assert json.loads((tmp_path / "out" / "msvd_qa" / "answer_list.json").read_text()) == ["dance", "two", "yes"]


def write_msrvtt(src):
    """One MSRVTT-QA test question and one train question (the answer list)."""
    write_json(src / "test_qa.json", [
        {"answer": "cook", "category_id": 9, "id": 158581, "question": "what is a woman doing?", "video_id": 7010}])
    write_json(src / "train_qa.json", [{"answer": "man", "category_id": 1, "id": 0, "question": "who?",
                                        "video_id": 3}])


def test_msrvtt_keeps_category_and_names_videos_by_id(tmp_path):
    write_msrvtt(tmp_path)
    records, report = run("msrvtt_qa", tmp_path, tmp_path / "out", "test")
    assert records == [{"image": "video7010.mp4", "text_input": "what is a woman doing?", "text_output": "cook",
                        "answers": ["cook"], "question_id": 158581, "meta": {"video_id": 7010, "category_id": 9}}]
    assert report.skipped == {}
    assert json.loads((tmp_path / "out" / "msrvtt_qa" / "answer_list.json").read_text()) == ["man"]


def test_lavis_qa_json_is_read_when_originals_are_absent(tmp_path):
    write_json(tmp_path / "qa_test.json", [{"question": "what is he doing?", "answer": "sing",
                                            "video": "-4wsuPCjDBc_5_15.avi", "question_id": 4}])
    write_json(tmp_path / "qa_train.json", [{"question": "q", "answer": "sing", "video": "x.avi", "question_id": 0}])
    records, _ = run("msvd_qa", tmp_path, tmp_path / "out", "test")
    assert records == [{"image": "YouTubeClips/-4wsuPCjDBc_5_15.avi", "text_input": "what is he doing?",
                        "text_output": "sing", "answers": ["sing"], "question_id": 4}]


def test_missing_train_split_for_the_answer_list_names_every_path_tried(tmp_path):
    write_json(tmp_path / "test_qa.json", [])
    with pytest.raises(FileNotFoundError, match="train_ans2label.json.*train_qa.json.*qa_train.json"):
        run("msrvtt_qa", tmp_path, tmp_path / "out", "test")


def test_malformed_mapping_line_and_entry_are_named(tmp_path):
    write_msvd(tmp_path)
    (tmp_path / "youtube_mapping.txt").write_text("clip_1_2 vid1\nbroken line here\n")
    with pytest.raises(SourceError, match=r"youtube_mapping.txt:2: expected"):
        run("msvd_qa", tmp_path, tmp_path / "out", "test")
    write_msvd(tmp_path)
    write_json(tmp_path / "val_qa.json", [{"answer": "a", "id": 1, "video_id": 1}])
    with pytest.raises(SourceError, match=r"val_qa.json: \[0\]: missing key 'question'"):
        run("msvd_qa", tmp_path, tmp_path / "out", "val")


@pytest.mark.parametrize("name, video", [("msvd_qa", "YouTubeClips/-4wsuPCjDBc_5_15.avi"),
                                         ("msrvtt_qa", "video1.mp4")])
def test_video_qa_loads_four_frames_the_zero_shot_prompt_and_the_answer_list(tmp_path, monkeypatch, name, video):
    write_msvd(tmp_path / "src")
    if name == "msrvtt_qa":
        write_json(tmp_path / "src" / "test_qa.json", [
            {"answer": "dance", "category_id": 3, "id": 5, "question": "What is the man doing?", "video_id": 1}])
    items = load_converted(name, tmp_path / "src", tmp_path, monkeypatch, "test", media=[video])
    assert items[0]["image"].shape == (3, 4, 16, 16)
    assert items[0]["text_input"] == "Question: what is the man doing? Short answer:"
    assert items[0]["text_output"] == "dance" and items[0]["answers"] == ["dance"]
    from lavis_ib import load_dataset

    assert load_dataset(name, splits=["test"])["test"].answer_list == ["man", "dog", "cook"]


CATALOGUE = {"msvd_qa": Fixture(write_msvd, "test", 2), "msrvtt_qa": Fixture(write_msrvtt, "test", 1)}
