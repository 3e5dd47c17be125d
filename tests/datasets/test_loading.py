"""Loading for training: unreadable records replaced (batches keep their size), per-sample augmentation RNG, skip
counts over DataLoader workers, shard indices, the data root, visual defaults from the model, and missing splits."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image
from torch.utils.data import DataLoader

from lavis_ib import load_dataset, registry
from lavis_ib.common.paths import configs_root
from lavis_ib.datasets.builders import SkipCounter, Skipped, UnreadableDatasetError, collate
from lavis_ib.datasets.builders.dataset import SHARD_STRIDE
from lavis_ib.datasets.records import write_jsonl, write_shards
from lavis_ib.processors import model_vis_defaults
from lavis_ib.processors.image import IMAGE_MEAN, IMAGE_STD

TRAIN_16 = {"train": {"name": "blip2_image_train", "image_size": 16}, "eval": {"name": "blip_image_eval"}}


def write_images(folder, count: int, same_image: bool = False) -> list[str]:
    """`count` distinct 40x30 noise PNGs (or one shared by every record); returns the record paths."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    names = []
    for i in range(count):
        name = "shared.png" if same_image else f"img{i}.png"
        if not (folder / name).exists():
            Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(folder / name)
        names.append(f"train2014/{name}")
    return names


def vqa_records(images: list[str]) -> list[dict]:
    return [{"image": image, "text_input": f"question {i}?", "text_output": f"answer {i}", "question_id": i}
            for i, image in enumerate(images)]


@pytest.fixture
def root(tmp_path, monkeypatch):
    """A data root (not the cache) holding 8 VQAv2-style train records over 8 images, val absent."""
    monkeypatch.setenv("LAVIS_IB_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "data"
    images = write_images(data / "coco/images/train2014", 8)
    write_jsonl(vqa_records(images), data / "datasets/vqav2/train.jsonl")
    return data


def vqav2(root, splits=("train",), **overrides):
    block = registry.get_builder_class("vqav2").default_config(**{"vis_processor": TRAIN_16, **overrides})
    return load_dataset("vqav2", block, splits=list(splits), data_root=str(root))["train"]


def unlink(root, *indices: int) -> None:
    for i in indices:
        (root / f"coco/images/train2014/img{i}.png").unlink()


def test_unreadable_records_are_replaced_so_batches_keep_their_size(root):
    unlink(root, 3, 5)
    train = vqav2(root)
    batches = list(DataLoader(train, batch_size=4, collate_fn=train.collator))
    assert [b["image"].shape for b in batches] == [(4, 3, 16, 16)] * 2
    skipped = [entry for b in batches for entry in b.get("skipped", [])]
    assert [(s.dataset, s.index) for s in skipped] == [("vqav2", 3), ("vqav2", 5)]
    assert all("file not found" in s.reason and "img" in s.reason for s in skipped)
    stand_ins = [batches[0]["question_id"][3], batches[1]["question_id"][1]]
    assert not set(stand_ins) & {3, 5}
    assert batches[0]["question_id"][:3] == [0, 1, 2] and train.skipped == 2
    again = vqav2(root)
    assert [again[3]["question_id"], again[5]["question_id"]] == stand_ins  # a pure function of (seed, epoch, index)


def test_skip_counts_are_totalled_over_dataloader_workers(root):
    unlink(root, 1, 6)
    train = vqav2(root)
    counter = SkipCounter()
    loader = DataLoader(train, batch_size=2, num_workers=2, collate_fn=train.collator)
    sizes = []
    for batch in loader:
        counter.update(batch)
        sizes.append(len(batch["image"]))
    assert sizes == [2, 2, 2, 2] and counter.total == 2 and counter.by_dataset == {"vqav2": 2}
    assert train.skipped == 0  # the workers counted, not this process: hence the counter
    resumed = SkipCounter()
    resumed.load_state_dict(json.loads(json.dumps(counter.state_dict())))
    resumed.update({"skipped": [Skipped("okvqa", 4, "file not found")]})
    assert resumed.total == 3 and str(resumed) == "vqav2: 2, okvqa: 1"


def test_an_all_unreadable_dataset_is_an_error_naming_it(root, tmp_path):
    unlink(root, *range(8))
    with pytest.raises(UnreadableDatasetError, match=r"vqav2: record 2 is unreadable .*every other record .*\(7\)"):
        vqav2(root)[2]
    big = tmp_path / "big"
    write_jsonl(vqa_records([f"train2014/absent{i}.png" for i in range(500)]), big / "datasets/vqav2/train.jsonl")
    with pytest.raises(UnreadableDatasetError, match=r"the 7 records tried after it \(max_consecutive_skips: 8\); "
                                                     r"first missing path: .*absent0.png; check the media root .*big"):
        vqav2(big)[0]


def test_evaluation_splits_skip_unreadable_records_instead_of_scoring_a_stand_in(root):
    images = [f"train2014/img{i}.png" for i in range(4)]
    write_jsonl(vqa_records(images), root / "datasets/vqav2/val.jsonl")
    unlink(root, 1)
    block = registry.get_builder_class("vqav2").default_config(vis_processor=TRAIN_16)
    val = load_dataset("vqav2", block, splits=["val"], data_root=str(root))["val"]
    assert isinstance(val[1], Skipped) and val[1].index == 1
    batch = collate([val[i] for i in range(4)])
    assert batch["question_id"] == [0, 2, 3] and [s.index for s in batch["skipped"]] == [1]
    assert collate([val[1]]) == {"skipped": [val[1]]}


def test_strict_mode_still_raises_instead_of_replacing(root):
    unlink(root, 0)
    from lavis_ib.common.media import MediaError

    with pytest.raises(MediaError, match="vqav2 record 0: .*img0.png"):
        vqav2(root, strict=True)[0]


def test_augmentation_is_a_function_of_seed_epoch_and_index(tmp_path, monkeypatch):
    monkeypatch.setenv("LAVIS_IB_CACHE", str(tmp_path / "cache"))
    images = write_images(tmp_path / "coco/images/train2014", 6, same_image=True)
    write_jsonl(vqa_records(images), tmp_path / "datasets/vqav2/train.jsonl")
    first, second = vqav2(tmp_path), vqav2(tmp_path)
    torch.manual_seed(0)
    a = first[2]["image"]
    torch.manual_seed(1)  # the global generator plays no part
    assert torch.equal(a, second[2]["image"])
    crops = [first[i]["image"] for i in range(6)]  # one image, six indices: six different crops
    assert len({tuple(c.flatten()[:64].tolist()) for c in crops}) == 6
    first.set_epoch(1)
    assert not torch.equal(first[2]["image"], a)
    loaded = {workers: torch.cat([b["image"] for b in DataLoader(second, batch_size=2, num_workers=workers,
                                                                   collate_fn=second.collator)])
              for workers in (0, 2)}
    assert torch.equal(loaded[0], loaded[2]) and torch.equal(loaded[0][2], a)
    assert torch.equal(vqav2(tmp_path, seed=1)[2]["image"], vqav2(tmp_path, seed=1)[2]["image"])
    assert not torch.equal(vqav2(tmp_path, seed=1)[2]["image"], a)


def shards_root(tmp_path, monkeypatch, count: int = 6, per_shard: int = 2):
    monkeypatch.setenv("LAVIS_IB_CACHE", str(tmp_path / "cache"))
    images = write_images(tmp_path / "capfilt14m/images/train2014", count)
    records = [{"image": image, "text_input": "", "text_output": f"caption {i}"} for i, image in enumerate(images)]
    write_shards(records, tmp_path / "datasets/capfilt14m/train", per_shard=per_shard)
    return tmp_path


def capfilt(root, **kwargs):
    block = registry.get_builder_class("capfilt14m").default_config("wds", vis_processor=TRAIN_16)
    return load_dataset("capfilt14m", block, splits=["train"], data_root=str(root), **kwargs)["train"]


def test_shard_items_are_identical_whatever_the_worker_count(tmp_path, monkeypatch):
    root = shards_root(tmp_path, monkeypatch)
    dataset = capfilt(root)
    by_workers = {}
    for workers in (0, 2):
        loader = DataLoader(dataset, batch_size=1, num_workers=workers, collate_fn=dataset.collator)
        by_workers[workers] = {b["instance_id"][0]: (b["text_output"][0], b["image"][0]) for b in loader}
    monkeypatch.setenv("WORLD_SIZE", "2")  # as under torchrun
    monkeypatch.setenv("RANK", "1")
    assert [item["text_output"] for item in capfilt(root, rank=1, world_size=2)] == ["caption 2", "caption 3"]
    assert sorted(by_workers[0]) == sorted(str(s * SHARD_STRIDE + p) for s in range(3) for p in range(2))
    for key, (text, image) in by_workers[0].items():
        assert by_workers[2][key][0] == text and torch.equal(by_workers[2][key][1], image)


def test_shards_are_split_across_ranks_and_unreadable_ones_replaced(tmp_path, monkeypatch):
    root = shards_root(tmp_path, monkeypatch)
    (root / "capfilt14m/images/train2014/img2.png").unlink()
    ranks = [list(capfilt(root, rank=r, world_size=2)) for r in (0, 1)]
    assert [[i["text_output"] for i in items] for items in ranks] == [  # rank 0 reads shards 0 and 2, rank 1 shard 1
        ["caption 0", "caption 1", "caption 4", "caption 5"], ["caption 3"],
    ]
    (replaced,) = ranks[1][0]["replaces"]
    missing = str(root / "capfilt14m/images/train2014/img2.png")
    assert replaced == Skipped("capfilt14m", SHARD_STRIDE * 1 + 0, replaced.reason, missing)
    assert collate(ranks[1])["skipped"] == ranks[1][0]["replaces"] and "img2.png" in str(ranks[1][0]["replaces"][0])
    with pytest.raises(ValueError, match="capfilt14m: 3 shards cannot be split across 4 ranks"):
        capfilt(root, rank=0, world_size=4)


def test_processors_follow_the_model_unless_the_dataset_sets_them(root):
    model_yaml = OmegaConf.load(configs_root / "models/blip2_opt/caption_coco_opt2.7b.yaml")
    model = model_vis_defaults(model_yaml.preprocess)
    assert model == {"image_size": 364}
    plain = {"train": {"name": "blip2_image_train"}, "eval": {"name": "blip_image_eval"}}
    block = registry.get_builder_class("vqav2").default_config(vis_processor=plain)
    default = load_dataset("vqav2", block, splits=["train"], data_root=str(root))["train"]
    assert default[0]["image"].shape == (3, 224, 224)  # no model: InstructBLIP's 224
    follows = load_dataset("vqav2", block, splits=["train"], data_root=str(root), vis_defaults=model)["train"]
    assert follows[0]["image"].shape == (3, 364, 364)
    override = {"vis_processor": {"train": {"image_size": 32}}}  # a project YAML pinning the training size
    pinned = registry.get_builder_class("vqav2")(OmegaConf.merge(block, override), data_root=str(root),
                                                 vis_defaults=model)
    assert pinned.vis_processor_config() == {"train": {"name": "blip2_image_train", "image_size": 32},
                                             "eval": {"name": "blip_image_eval", "image_size": 364}}
    assert pinned.build_split("train")[0]["image"].shape == (3, 32, 32)


def test_model_normalisation_reaches_the_dataset_and_defaults_to_clip(root):
    Image.new("RGB", (40, 30), (51, 102, 204)).save(root / "coco/images/train2014/img0.png")
    eval_only = {"train": {"name": "blip_image_eval"}, "eval": {"name": "blip_image_eval"}}
    block = registry.get_builder_class("vqav2").default_config(vis_processor=eval_only)
    identity = {"image_size": 8, "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}
    raw = load_dataset("vqav2", block, splits=["train"], data_root=str(root), vis_defaults=identity)["train"]
    assert torch.allclose(raw[0]["image"][:, 0, 0], torch.tensor([0.2, 0.4, 0.8]))
    clip = load_dataset("vqav2", block, splits=["train"], data_root=str(root), vis_defaults={"image_size": 8})
    expected = (torch.tensor([0.2, 0.4, 0.8]) - torch.tensor(IMAGE_MEAN)) / torch.tensor(IMAGE_STD)
    assert torch.allclose(clip["train"][0]["image"][:, 0, 0], expected, atol=1e-6)
    with pytest.raises(ValueError, match=r"vis_processor: visual defaults accept only .*got \['n_frms'\]"):
        load_dataset("vqav2", block, splits=["train"], data_root=str(root), vis_defaults={"n_frms": 4})


def test_data_root_precedence_config_then_argument_then_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LAVIS_IB_CACHE", str(tmp_path / "cache"))
    builder = registry.get_builder_class("vqav2")
    assert builder().storage("train") == tmp_path / "cache/datasets/vqav2/train.jsonl"
    assert builder(data_root=str(tmp_path / "arg")).storage("train") == tmp_path / "arg/datasets/vqav2/train.jsonl"
    configured = builder(builder.default_config(data_root=str(tmp_path / "cfg")), data_root=str(tmp_path / "arg"))
    assert configured.storage("train") == tmp_path / "cfg/datasets/vqav2/train.jsonl"
    assert configured.media_root() == tmp_path / "cfg/coco/images"


def test_missing_splits_are_left_out_with_a_warning_unless_named(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("LAVIS_IB_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "data/datasets/msvd_qa"
    write_jsonl([{"image": "a.avi", "text_input": "what is it?", "text_output": "dog"}], folder / "test.jsonl")
    (folder / "answer_list.json").write_text('["dog"]')
    with caplog.at_level(logging.WARNING, logger="lavis_ib.datasets.builders.base"):
        loaded = load_dataset("msvd_qa", data_root=str(tmp_path / "data"))
    assert list(loaded) == ["test"] and loaded["test"].answer_list == ["dog"]
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 2 and all("records not found at" in m for m in warned)
    assert f"msvd_qa train: records not found at {folder / 'train.jsonl'}" in warned[0]
    command = f"python -m lavis_ib.datasets.convert msvd_qa --src <original folder> --split val --out {folder}"
    assert command in warned[1]
    with pytest.raises(FileNotFoundError, match=r"msvd_qa train: records not found at .*train.jsonl; .*--split train"):
        load_dataset("msvd_qa", splits=["train"], data_root=str(tmp_path / "data"))
    with pytest.raises(FileNotFoundError, match=r"msvd_qa: no split is converted yet:\n  msvd_qa train: .*\n.*val"):
        load_dataset("msvd_qa", data_root=str(tmp_path / "empty"))


def test_sample_ratio_comes_from_the_dataset_config(root):
    assert vqav2(root).sample_ratio == 1.0 and vqav2(root, sample_ratio=2.5).sample_ratio == 2.5
