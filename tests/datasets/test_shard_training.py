"""Shard sets train through the balanced mixture: each rank draws only from its own shards, every record once per
epoch over the ranks, in orders that change per epoch; items come from `ShardDataset.get`; a resumed sampler
continues the identical stream and a checkpoint of another shard layout is refused."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from torch.utils.data import DataLoader

from lavis_ib.datasets.builders import SkipCounter, Skipped, collate
from lavis_ib.datasets.builders import dataset as dataset_module
from lavis_ib.datasets.builders.dataset import REPLACES, SHARD_STRIDE
from lavis_ib.datasets.sampling import balanced_mixture
from tests.datasets.test_loading import capfilt, shards_root
from tests.datasets.test_sampling import Numbers, draws

RECORDS, PER_SHARD = 11, 3  # shards of 3, 3, 3 and 2 records: rank 0 reads shards 0 and 2 (6), rank 1 shards 1, 3 (5)
MINE = {0: [0, 2], 1: [1, 3]}
SEED = 7


def shard_keys(root, rank: int, n: int = 400, **kwargs) -> list[tuple[int, int]]:
    """The (index, epoch) keys of the shard dataset among rank `rank`'s first `n` draws from a mixture with 40
    map-style numbers."""
    _, sampler = balanced_mixture({"numbers": Numbers("numbers", 40), "capfilt14m": capfilt(root, rank=rank,
                                   world_size=2)}, seed=SEED, rank=rank, world_size=2, num_samples=None, **kwargs)
    return [(index, epoch) for dataset, index, epoch in draws(sampler, n) if dataset == 1]


def by_epoch(keys: list[tuple[int, int]], epoch: int) -> list[int]:
    return [index for index, e in keys if e == epoch]


@pytest.fixture
def root(tmp_path, monkeypatch):
    return shards_root(tmp_path, monkeypatch, count=RECORDS, per_shard=PER_SHARD)


def test_two_ranks_draw_every_shard_record_once_per_epoch_each_from_its_own_shards(root):
    keys = {rank: shard_keys(root, rank) for rank in (0, 1)}
    every = [number * SHARD_STRIDE + position for number, size in enumerate([3, 3, 3, 2]) for position in range(size)]
    for rank in (0, 1):
        assert {index // SHARD_STRIDE for index, _ in keys[rank]} == set(MINE[rank])
        assert max(epoch for _, epoch in keys[rank]) >= 3
    for epoch in range(3):
        both = Counter(by_epoch(keys[0], epoch) + by_epoch(keys[1], epoch))
        assert sorted(both) == every and set(both.values()) == {1}
        assert [len(by_epoch(keys[rank], epoch)) for rank in (0, 1)] == [6, 5]  # each rank's own epoch length
    for rank in (0, 1):
        orders = [by_epoch(keys[rank], epoch) for epoch in range(3)]
        assert orders[0] != orders[1] != orders[2] != orders[0]


def test_the_mixture_sizes_a_shard_set_by_its_manifest_and_bounds_a_pass_by_each_ranks_shards(root):
    for rank, own in ((0, 6), (1, 5)):
        shards = capfilt(root, rank=rank, world_size=2)
        assert len(shards) == RECORDS and shards.shard_records == [3, 3, 3, 2]
        mixture, sampler = balanced_mixture({"numbers": Numbers("numbers", 40), "capfilt14m": shards}, rank=rank,
                                            world_size=2)
        assert len(sampler) == 40 // 2 + own
        assert "capfilt14m" in mixture.ratio_table() and f"{RECORDS:>12,}" in mixture.ratio_table()


def test_items_come_from_this_ranks_shards_with_the_shard_index_and_one_cached_shard(root, monkeypatch):
    read = []
    original = dataset_module.read_shard
    monkeypatch.setattr(dataset_module, "read_shard", lambda path, entry: (read.append(path.name),
                                                                          original(path, entry))[1])
    shards = capfilt(root, rank=1, world_size=2)
    mixture, sampler = balanced_mixture({"capfilt14m": shards}, seed=SEED, rank=1, world_size=2)
    keys = draws(sampler, 10)
    items = [mixture[key] for key in keys]
    for (_, index, _), item in zip(keys, items):
        number, position = divmod(index, SHARD_STRIDE)
        assert item["instance_id"] == str(index) and item["text_output"] == f"caption {number * PER_SHARD + position}"
    assert set(read) == {"train-000001.tar", "train-000003.tar"} and len(read) <= 4  # each visit reads a shard once
    assert shards._cached[0] == keys[-1][1] // SHARD_STRIDE
    with pytest.raises(ValueError, match=r"capfilt14m: shard number 2 is not one of rank 1's shards in .*capfilt14m "
                                         r"\(expected one of shards\[1::2\] of 4: a rank reads only its own\)"):
        shards.get(2 * SHARD_STRIDE, 0)
    loaded = {workers: list(DataLoader(mixture, batch_size=5, sampler=keys, num_workers=workers,
                                       collate_fn=mixture.collator)) for workers in (0, 2)}
    for first, second in zip(*loaded.values()):
        assert first["instance_id"] == second["instance_id"] and torch.equal(first["image"], second["image"])


def test_an_unreadable_shard_record_is_replaced_from_its_shard(root):
    (root / "capfilt14m/images/train2014/img4.png").unlink()  # shard 1, position 1
    shards = capfilt(root, rank=1, world_size=2)
    item = shards.get(1 * SHARD_STRIDE + 1, 0)
    (skipped,) = item[REPLACES]
    assert skipped == Skipped("capfilt14m", SHARD_STRIDE + 1, skipped.reason, skipped.path)
    assert skipped.path.endswith("img4.png")
    assert int(item["instance_id"]) in (SHARD_STRIDE, SHARD_STRIDE + 2) and shards.skipped == 1
    counter = SkipCounter()
    assert counter.update(collate([item])) == 1 and counter.by_dataset == {"capfilt14m": 1}


def test_a_resumed_sampler_continues_and_another_shard_layout_is_refused(root, tmp_path, monkeypatch):
    datasets = lambda folder: {"numbers": Numbers("numbers", 40), "capfilt14m": capfilt(folder, rank=0,
                                                                                        world_size=2)}
    _, sampler = balanced_mixture(datasets(root), seed=SEED, rank=0, world_size=2, num_samples=None)
    stream = draws(sampler, 300)
    _, resumed = balanced_mixture(datasets(root), seed=SEED, rank=0, world_size=2, num_samples=None)
    resumed.load_state_dict(sampler.state_dict(consumed=137))
    assert draws(resumed, 163) == stream[137:]
    other = shards_root(tmp_path / "other", monkeypatch, count=RECORDS, per_shard=4)  # 4, 4, 3: the same 11 records
    _, relaid = balanced_mixture(datasets(other), seed=SEED, rank=0, world_size=2, num_samples=None)
    with pytest.raises(ValueError) as error:
        relaid.load_state_dict(sampler.state_dict(consumed=137))
    assert str(error.value) == (
        "cannot resume: capfilt14m on rank 0 of 2 has shards train-000000.tar (4 records), train-000002.tar (3 "
        "records), the checkpoint has train-000000.tar (3 records), train-000002.tar (3 records); its stream follows "
        "the shard layout (was the set converted again with another per_shard?)")
    with pytest.raises(ValueError, match="capfilt14m: its shards were split for rank 1 of 2, the mixture is for rank "
                                         "0 of 2"):
        balanced_mixture({"capfilt14m": capfilt(root, rank=1, world_size=2)}, rank=0, world_size=2)
