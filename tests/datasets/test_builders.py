"""Builders and `load_dataset`: converted records → items with image tensors, rendered instructions, aligned batches."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from lavis_ib import Config, dataset_zoo, load_dataset, registry
from lavis_ib.common.media import MediaError
from lavis_ib.datasets import collate
from lavis_ib.datasets.builders import UnreadableDatasetError
from lavis_ib.datasets.convert import convert
from lavis_ib.datasets.templates import VQA
from tests.datasets.converters.test_vqa import TEN, write_vqav2

SMALL = {
    "vis_processor": {"train": {"name": "blip_image_eval", "image_size": 32},
                      "eval": {"name": "blip_image_eval", "image_size": 32}},
}


@pytest.fixture
def vqav2_cache(tmp_path, monkeypatch):
    """A cache root holding converted VQAv2 train records and COCO images (one image of the two is corrupt)."""
    monkeypatch.setenv("LAVIS_IB_CACHE", str(tmp_path / "cache"))
    write_vqav2(tmp_path / "src")
    convert("vqav2", tmp_path / "src", splits=["train"])
    images = tmp_path / "cache" / "coco" / "images" / "train2014"
    images.mkdir(parents=True)
    Image.new("RGB", (40, 30), (200, 10, 10)).save(images / "COCO_train2014_000000000009.jpg")
    return tmp_path / "cache"


def vqav2_block(**overrides):
    return registry.get_builder_class("vqav2").default_config(**SMALL, **overrides)


def test_items_carry_image_tensor_instruction_and_eval_fields(vqav2_cache):
    train = load_dataset("vqav2", vqav2_block(), splits=["train"])["train"]
    assert len(train) == 2
    item = train[0]
    assert item["image"].shape == (3, 32, 32) and item["image"].dtype == torch.float32
    rendered = {template[len("<Image>"):].format(Question="how many dogs?") for template in VQA}
    assert item["text_input"] in rendered
    assert item["text_output"] == "2" and item["answers"] == TEN and item["question_id"] == 90
    assert item["dataset"] == "vqav2" and item["instance_id"] == "0"


def test_template_choice_is_seeded_per_example_and_changes_with_epoch(vqav2_cache):
    train = load_dataset("vqav2", vqav2_block(), splits=["train"])["train"]
    first = [train[0]["text_input"] for _ in range(3)]
    assert len(set(first)) == 1
    drawn = set()
    for epoch in range(100):
        train.set_epoch(epoch)
        drawn.add(train[0]["text_input"])
    assert len(drawn) == len(VQA)


def test_batches_stay_aligned_and_a_dataset_without_readable_images_fails(vqav2_cache):
    """(Replacement of unreadable records and skip counts over workers: test_loading.py.)"""
    train = load_dataset("vqav2", vqav2_block(), splits=["train"])["train"]
    image_path = vqav2_cache / "coco/images/train2014/COCO_train2014_000000000009.jpg"
    (image_path.parent / "COCO_train2014_000000000025.jpg").write_bytes(b"not a jpeg")
    (batch,) = list(DataLoader(train, batch_size=2, num_workers=2, collate_fn=train.collator))
    assert batch["image"].shape == (2, 3, 32, 32)  # both questions are about image 9
    assert [len(a) for a in batch["answers"]] == [10, 10] and batch["question_id"] == [90, 91]
    assert "skipped" not in batch
    image_path.unlink()
    with pytest.raises(UnreadableDatasetError, match="vqav2: record 1 is unreadable .*file not found.* every other"):
        train[1]


def test_strict_mode_raises_with_the_path(vqav2_cache):
    (vqav2_cache / "coco/images/train2014/COCO_train2014_000000000009.jpg").unlink()
    train = load_dataset("vqav2", vqav2_block(strict=True), splits=["train"])["train"]
    with pytest.raises(MediaError, match="vqav2 record 0: .*COCO_train2014_000000000009.jpg"):
        train[0]


def test_collator_keeps_fields_aligned_when_some_samples_lack_them():
    samples = [{"image": torch.zeros(3, 2, 2), "answers": ["a", "b"], "text_output": "a"},
               {"image": torch.ones(3, 2, 2), "text_output": "c"},
               {"image": torch.ones(3, 2, 2), "answers": ["d", "e", "f"], "text_output": "d"}]
    batch = collate(samples)
    assert batch["answers"] == [["a", "b"], None, ["d", "e", "f"]] and batch["text_output"] == ["a", "c", "d"]


def test_lavis_collater_spelling_is_the_same_collator():
    """One collator: LAVIS code's `collate_fn=dataset.collater` gets the very function `dataset.collator` is."""
    from lavis_ib.datasets.builders.dataset import RecordDataset, ShardDataset
    from lavis_ib.datasets.sampling import MixtureDataset

    assert RecordDataset.collater is RecordDataset.collator is ShardDataset.collator is collate
    assert MixtureDataset.collater is MixtureDataset.collator


def test_unconverted_split_names_the_convert_command(tmp_path, monkeypatch):
    monkeypatch.setenv("LAVIS_IB_CACHE", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="python -m lavis_ib.datasets.convert vqav2 --src"):
        load_dataset("vqav2", splits=["val"])


def test_config_typo_names_closest_key(tmp_path):
    from lavis_ib.common.schema import ConfigError

    with pytest.raises(ConfigError, match="did you mean 'datasets.vqav2.sample_ratio'"):
        load_dataset("vqav2", vqav2_block(sample_ratoi=2.0))


def test_project_config_merges_dataset_defaults(tmp_path):
    project = tmp_path / "project.yaml"
    project.write_text("model: {arch: blip2_vicuna_instruct, model_type: tiny}\n"
                       "datasets: {vqav2: {sample_ratio: 2.0}}\nrun: {seed: 1}\n")
    cfg = Config(project)
    assert cfg.datasets_cfg.vqav2.sample_ratio == 2.0 and cfg.datasets_cfg.vqav2.instruction.train == "vqa"


def test_dataset_zoo_rows_give_role_splits_and_metric_from_the_configs():
    rows = {row[0]: row for row in dataset_zoo.rows()}
    assert rows["vqav2"] == ("vqav2", "held_in", "image question answering", "train, val", "vqa_accuracy")
    assert rows["msvd_qa"] == ("msvd_qa", "held_out", "video question answering", "train, val, test", "accuracy")
    assert rows["hateful_memes"][1:] == ("held_out", "image classification", "dev_seen, dev_unseen", "roc_auc")
    assert rows["visdial"][3:] == ("val", "mrr")
    real = [row for name, row in rows.items() if not name.startswith("synthetic_")]
    assert len(real) == 26 and sum(row[1] == "held_out" for row in real) == 13
    table = str(dataset_zoo).splitlines()
    assert table[0].split() == ["name", "role", "category", "splits", "metric"] and len(table) == 2 + len(rows)
    assert table[2 + sorted(rows).index("vqav2")].split()[:3] == ["vqav2", "held_in", "image"]


def test_config_variant_type_selects_its_yaml(tmp_path):
    project = tmp_path / "project.yaml"
    project.write_text("model: {arch: blip2_vicuna_instruct, model_type: tiny}\n"
                       "datasets: {capfilt14m: {type: wds}}\nrun: {seed: 1}\n")
    storage = Config(project).datasets_cfg.capfilt14m.build_info.annotations.train.storage
    assert storage == "datasets/capfilt14m/train-*.tar"


def test_random_answer_sampling_draws_unique_answers_per_epoch(vqav2_cache):
    train = load_dataset("vqav2", vqav2_block(answer_sampling="random"), splits=["train"])["train"]
    targets = []
    for epoch in range(30):
        train.set_epoch(epoch)
        targets.append(train[0]["text_output"])
    assert set(targets) == {"2", "two", "3"}
    train.set_epoch(0)
    assert train[0]["text_output"] == targets[0]
    default = load_dataset("vqav2", vqav2_block(), splits=["train"])["train"]
    assert {default[0]["text_output"] for _ in range(3)} == {"2"}
