"""The evaluation fixtures load through `load_dataset` with the default configs, carrying what each metric needs."""

from __future__ import annotations

import json

import pytest
import torch

from lavis_ib import load_dataset
from lavis_ib.datasets.builders.dataset import Skipped
from lavis_ib.datasets.records import read_jsonl
from tests.tasks.fixtures import FIXTURE_SPLITS, NOCAPS_DOMAINS, write_eval_fixture

VIDEO = {"msvd_qa", "msrvtt_qa", "ivqa"}
# The item fields each dataset's metric reads (besides the prediction).
GROUND_TRUTH = {
    "nocaps": ("captions", "image_id", "meta"),
    "flickr30k": ("captions", "image_id"),
    "coco_caption": ("captions", "image_id"),
    "textcaps": ("captions", "image_id", "ocr_tokens"),
    "gqa": ("answers", "question_id"),
    "vsr": ("label", "choices"),
    "iconqa": ("choices", "label", "question_id"),
    "textvqa": ("answers", "question_id", "ocr_tokens"),
    "visdial": ("answer_options", "gt_index", "question_id", "image_id", "history", "context", "meta"),
    "hateful_memes": ("label", "choices", "question_id"),
    "vizwiz": ("answers", "question_id", "image_id"),
    "scienceqa": ("choices", "label", "context", "question_id"),
    "msvd_qa": ("answers", "question_id"),
    "msrvtt_qa": ("answers", "question_id"),
    "ivqa": ("answers", "question_id"),
    "okvqa": ("answers", "question_id"),
    "aokvqa": ("answers", "question_id", "choices", "label"),
    "vqav2": ("answers", "question_id"),
}
N = 6


def load(tmp_path, name: str, split: str):
    return load_dataset(name, splits=[split], data_root=str(tmp_path), vis_defaults={"image_size": 32})[split]


def test_every_dataset_has_ground_truth_fields():
    assert set(GROUND_TRUTH) == set(FIXTURE_SPLITS)


@pytest.mark.parametrize("name", sorted(FIXTURE_SPLITS))
def test_fixture_loads_with_ground_truth(tmp_path, name):
    split = FIXTURE_SPLITS[name]
    path = write_eval_fixture(tmp_path, name, n=N, num_options=5)
    assert path.is_file() and len(read_jsonl(path)) == N  # validated on read
    dataset = load(tmp_path, name, split)
    assert len(dataset) == N
    item = dataset[0]
    assert not isinstance(item, Skipped), item
    expected = (3, 4, 32, 32) if name in VIDEO else (3, 32, 32)  # video_eval samples n_frms: 4
    assert isinstance(item["image"], torch.Tensor) and tuple(item["image"].shape) == expected
    assert torch.isfinite(item["image"]).all()
    for key in GROUND_TRUTH[name]:
        assert key in item and item[key] is not None, key
    assert item["text_output"]
    if "answers" in item:
        assert item["text_output"] in item["answers"]
    if "choices" in item and name != "aokvqa":  # A-OKVQA's target is the most common direct answer, not the choice
        assert item["choices"][item["label"]] == item["text_output"]
    if "captions" in item:
        assert item["text_output"] == item["captions"][0]
    if name == "visdial":
        assert len(item["answer_options"]) == 5 and item["answer_options"][item["gt_index"]] == item["text_output"]
    if dataset.answer_list is not None:
        assert all(answer in dataset.answer_list for r in read_jsonl(path) for answer in r["answers"])
    batch = dataset.collator([dataset[i] for i in range(N)])
    assert batch["image"].shape[0] == N and "skipped" not in batch


@pytest.mark.parametrize("name", ["vqav2", "vizwiz", "textvqa"])
def test_vqa_answers_vary(tmp_path, name):
    records = read_jsonl(write_eval_fixture(tmp_path, name))
    assert all(len(r["answers"]) == 10 for r in records)
    assert any(len(set(r["answers"])) == 1 for r in records)  # all identical
    assert any(len(set(r["answers"])) > 1 for r in records)  # mixed
    assert len({r["text_output"] for r in records}) == len(records)
    assert len({r["question_id"] for r in records}) == len(records)


def test_vqa_answers_exercise_normalisation(tmp_path):
    answers = [a for r in read_jsonl(write_eval_fixture(tmp_path, "vqav2", n=8)) for a in r["answers"]]
    assert {"two", "2", "red.", "Red", "a dog"} <= set(answers)


def test_nocaps_covers_all_domains(tmp_path):
    records = read_jsonl(write_eval_fixture(tmp_path, "nocaps"))
    assert {r["meta"]["domain"] for r in records} == set(NOCAPS_DOMAINS)
    assert all(len(r["captions"]) == 10 for r in records)


def test_binary_tasks_have_both_classes(tmp_path):
    for name in ("vsr", "hateful_memes"):
        assert {r["label"] for r in read_jsonl(write_eval_fixture(tmp_path, name))} == {0, 1}


def test_visdial_history_matches_round(tmp_path):
    records = read_jsonl(write_eval_fixture(tmp_path, "visdial", n=8, num_options=3))
    for record in records:
        round_number = record["meta"]["round"]
        assert len(record["history"]) == round_number - 1
        assert record["question_id"] == f"{record['image_id']}_{round_number}"
        assert len(set(record["answer_options"])) == 3
    assert {r["meta"]["round"] for r in records} == {1, 2, 3, 4}


def test_fixtures_are_deterministic(tmp_path):
    first = write_eval_fixture(tmp_path / "a", "aokvqa").read_bytes()
    assert write_eval_fixture(tmp_path / "b", "aokvqa").read_bytes() == first


def test_corrupt_media_are_skipped(tmp_path):
    write_eval_fixture(tmp_path, "vqav2", n=N, corrupt=2)
    dataset = load(tmp_path, "vqav2", "val")
    items = [dataset[i] for i in range(N)]
    assert [isinstance(item, Skipped) for item in items] == [True, True] + [False] * (N - 2)
    assert [item.index for item in items[:2]] == [0, 1]
    batch = dataset.collator(items)
    assert batch["image"].shape[0] == N - 2 and len(batch["skipped"]) == 2


def test_corrupt_video_is_skipped(tmp_path):
    write_eval_fixture(tmp_path, "msrvtt_qa", n=3, corrupt=1)
    dataset = load(tmp_path, "msrvtt_qa", "test")
    assert isinstance(dataset[0], Skipped) and not isinstance(dataset[1], Skipped)


def test_vizwiz_test_has_no_answers(tmp_path):
    path = write_eval_fixture(tmp_path, "vizwiz", split="test", n=4)
    assert path.name == "test.jsonl"
    first = read_jsonl(path)[0]
    assert first == {"image": "test/VizWiz_test_00000000.jpg", "text_input": first["text_input"], "text_output": "",
                     "question_id": "VizWiz_test_00000000", "image_id": "VizWiz_test_00000000.jpg"}
    dataset = load(tmp_path, "vizwiz", "test")
    assert len(dataset) == 4
    item = dataset[0]
    assert tuple(item["image"].shape) == (3, 32, 32)
    assert item["text_output"] == "" and "answers" not in item
    assert item["text_input"].startswith("Question: ") and item["text_input"].endswith(" Short answer:")


def test_answer_list_is_written(tmp_path):
    write_eval_fixture(tmp_path, "msvd_qa")
    answers = json.loads((tmp_path / "datasets/msvd_qa/answer_list.json").read_text())
    assert answers[0] == "man" and len(answers) == len(set(answers))


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError):
        write_eval_fixture(tmp_path, "vqav2", n=2, corrupt=3)
    with pytest.raises(KeyError):
        write_eval_fixture(tmp_path, "vqav2", split="test")
