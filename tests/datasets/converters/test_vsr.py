"""VSR converter, from fixtures in the official zero-shot JSON-lines format."""

from __future__ import annotations

import pytest

from lavis_ib.datasets.converters.base import SourceError
from tests.datasets.converters.helpers import Fixture, load_converted, run, write_jsonl


def vsr_line(image: str, caption: str, label, relation: str = "on") -> dict:
    """One line of `splits/zeroshot/<split>.jsonl`, every documented field present."""
    return {"image": image, "image_link": f"http://images.cocodataset.org/train2017/{image}", "caption": caption,
            "label": label, "relation": relation, "annotator_id": 31, "vote_true_validator_id": [2, 8],
            "vote_false_validator_id": []}


def write_vsr(src, split="test"):
    """A true statement and a false one."""
    write_jsonl(src / "splits" / "zeroshot" / f"{split}.jsonl", [
        vsr_line("000000050403.jpg", "The cat is on the mat.", 1, "on"),
        vsr_line("000000000139.jpg", "The teddy bear is in front of the person.", 0, "in front of"),
    ])


def test_vsr_labels_become_true_false_targets_indexing_the_choices(tmp_path):
    write_vsr(tmp_path)
    records, report = run("vsr", tmp_path, tmp_path / "out", "test")
    assert report.written == 2 and not report.skipped
    assert records[0] == {"image": "000000050403.jpg", "text_input": "The cat is on the mat.", "text_output": "true",
                          "choices": ["false", "true"], "label": 1, "meta": {"relation": "on"}}
    second = records[1]
    assert second["label"] == 0 and second["text_output"] == "false"
    assert second["choices"][second["label"]] == second["text_output"]
    assert second["meta"] == {"relation": "in front of"}


@pytest.mark.parametrize("src", ["", "data", "data/splits"])
def test_vsr_src_may_be_the_cloned_repository_or_its_data_or_splits_folder(tmp_path, src):
    write_vsr(tmp_path / "repo" / "data")  # the repository keeps the splits under data/splits/zeroshot/
    records, report = run("vsr", tmp_path / "repo" / src, tmp_path / "out", "test")
    assert report.written == 2 and [r["label"] for r in records] == [1, 0]


def test_vsr_dev_split_reads_its_own_file(tmp_path):
    write_vsr(tmp_path, "dev")
    records, _ = run("vsr", tmp_path, tmp_path / "out", "dev")
    assert [r["label"] for r in records] == [1, 0]


@pytest.mark.parametrize("label", [2, "1", True, None])
def test_vsr_label_outside_0_1_names_file_and_line(tmp_path, label):
    write_jsonl(tmp_path / "splits" / "zeroshot" / "test.jsonl",
                [vsr_line("a.jpg", "A dog.", 1), vsr_line("b.jpg", "A cat.", label)])
    with pytest.raises(SourceError, match=r"zeroshot/test.jsonl:2: label must be 0 or 1"):
        run("vsr", tmp_path, tmp_path / "out", "test")


def test_vsr_missing_file_names_every_path_tried(tmp_path):
    with pytest.raises(FileNotFoundError, match="data/splits/zeroshot/test.jsonl, .*/splits/zeroshot/test.jsonl"):
        run("vsr", tmp_path, tmp_path / "out", "test")


def test_vsr_test_loads_with_the_zero_shot_prompt(tmp_path, monkeypatch):
    write_vsr(tmp_path / "src")
    items = load_converted("vsr", tmp_path / "src", tmp_path, monkeypatch, "test",
                           media=["000000050403.jpg", "000000000139.jpg"])
    assert items[0]["image"].shape == (3, 16, 16)
    assert items[0]["text_input"] == ('Based on the image, is this statement true or false? "The cat is on the mat." '
                                      "Answer:")
    assert items[0]["text_output"] == "true" and items[0]["label"] == 1 and items[0]["choices"] == ["false", "true"]


CATALOGUE = {"vsr": Fixture(write_vsr, "test", 2)}
