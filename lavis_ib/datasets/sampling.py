"""Balanced multi-dataset sampling (paper §2.4): dataset d is drawn with probability ∝ sqrt(size_d) × its configured
`sample_ratio`.

Datasets are mixed per sample. The stream is a pure function of (seed, rank, position): dataset choices come in
fixed blocks from a generator seeded by (seed, rank, block), and the j-th draw of a dataset is key j of its draw
order, computable from j alone:

- a map-style dataset (JSON lines, `MapOrder`): element j of a chain of per-epoch permutations (seeded by seed,
  dataset and epoch) of which each rank takes every world_size-th element;
- a webdataset shard set (`ShardDataset`, `ShardOrder`): each rank draws only from its own shards
  (`shards[rank::world_size]`); epoch e visits them in an order seeded by (seed, dataset, epoch, rank) and each
  shard's records in an order seeded by (seed, dataset, epoch, shard). Its size in the mixture is the whole set's
  record count (the manifest's, the same on every rank); a rank's epoch is the records of its shards, so ranks'
  epochs differ in length when their shards do.

So ranks draw different streams, every rank sees disjoint samples within an epoch, and a resumed run continues the
identical stream from the number of samples consumed; a checkpoint names each shard dataset's per-rank shards and
counts, so a resume over another shard layout is refused.

`balanced_mixture` bounds a pass by default: `num_samples` (default: each dataset's per-rank share summed, one
"mixture epoch") gives the sampler a `__len__`, so `len(loader)` works and a `for` loop ends; the next pass continues
the stream rather than repeating it. `num_samples=None` makes it infinite, for iteration-based training.
"""

from __future__ import annotations

import logging
import math
from typing import Iterator, Mapping, Sequence

import numpy as np
from torch.utils.data import Dataset, Sampler

from lavis_ib.common.registry import UnknownNameError, closest_match
from lavis_ib.datasets.builders.dataset import SHARD_STRIDE, ShardDataset

logger = logging.getLogger(__name__)

BLOCK = 1 << 16


def balanced_ratios(sizes: Mapping[str, int], multipliers: Mapping[str, float] | None = None) -> dict[str, float]:
    """Sampling probabilities ∝ sqrt(size) × multiplier (default 1), normalised to sum to 1."""
    multipliers = dict(multipliers or {})
    for name in multipliers:
        if name not in sizes:
            hint = closest_match(name, sizes)
            suggestion = f"; did you mean {hint!r}?" if hint else ""
            raise UnknownNameError(f"sample ratio given for {name!r}, which is not a training dataset{suggestion} "
                           f"(datasets: {', '.join(sizes)})")
    weights = {}
    for name, size in sizes.items():
        multiplier = float(multipliers.get(name, 1.0))
        if size < 0 or multiplier < 0:
            raise ValueError(f"{name}: size and multiplier must be ≥ 0, got {size} and {multiplier}")
        weights[name] = math.sqrt(size) * multiplier
    total = sum(weights.values())
    if total <= 0:
        raise ValueError(f"every dataset has zero sampling weight: sizes {dict(sizes)}, multipliers {multipliers}")
    return {name: weight / total for name, weight in weights.items()}


def describe_ratios(sizes: Mapping[str, int], ratios: Mapping[str, float]) -> str:
    """A table of each dataset's size and effective sampling ratio, for the log."""
    width = max(len(name) for name in sizes)
    lines = [f"{'dataset'.ljust(width)}  {'size':>12}  ratio"]
    lines += [f"{name.ljust(width)}  {sizes[name]:>12,}  {100 * ratios[name]:6.2f}%" for name in sizes]
    return "\n".join(lines)


def _memo(cache: dict, key, make, keep: int = 4):
    """`cache[key]`, made by `make()` when absent; the cache is emptied first when full (only a few keys are live)."""
    if key not in cache:
        if len(cache) >= keep:
            cache.clear()
        cache[key] = make()
    return cache[key]


class MapOrder:
    """The draw order of a map-style dataset of `size` records on one rank: draw j is element j of a chain of
    per-epoch permutations (seeded by seed, dataset number and epoch), of which each rank takes every
    world_size-th element. Keys are `(record index, epoch)`."""

    def __init__(self, size: int, number: int, seed: int = 0, rank: int = 0, world_size: int = 1,
                 name: str | None = None):
        self.size, self.number, self.seed, self.rank, self.world_size = int(size), number, seed, rank, world_size
        self.name = name or f"dataset {number}"
        self.per_rank = self.size // world_size  # the draws of one epoch on this rank
        self._permutations: dict[int, np.ndarray] = {}

    def _permutation(self, epoch: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, 1 + self.number, epoch])
        return rng.permutation(self.size)

    def key(self, draw: int) -> tuple[int, int]:
        """(index, epoch) of the `draw`-th sample this rank takes from the dataset."""
        epoch, offset = divmod(draw, self.per_rank)
        permutation = _memo(self._permutations, epoch, lambda: self._permutation(epoch))
        return int(permutation[self.rank + offset * self.world_size]), epoch

    def layout(self) -> None:
        """What a checkpoint must match beyond the size: nothing, for a map-style dataset."""
        return None


_SHARD_VISITS, _SHARD_POSITIONS = 0, 1  # seed streams of a shard order: the shards' order, a shard's records' order


class ShardOrder:
    """The draw order of a webdataset shard set on one rank, which reads only its shards `[rank::world_size]`.

    `records[n]` is shard n's record count (the manifest's), `names[n]` its file name. Epoch e visits this rank's
    shards in an order seeded by (seed, dataset number, epoch, rank) and, inside each, the records in an order seeded
    by (seed, dataset number, epoch, shard): draw j is at offset j mod (this rank's records) of epoch j div that.
    Keys are `(shard × stride + position, epoch)`, the index convention of `ShardDataset`.
    """

    def __init__(self, records: Sequence[int], number: int, seed: int = 0, rank: int = 0, world_size: int = 1,
                 names: Sequence[str] | None = None, name: str | None = None, stride: int = SHARD_STRIDE):
        self.name = name or f"dataset {number}"
        self.records = [int(count) for count in records]
        self.number, self.seed, self.rank, self.stride = number, seed, rank, stride
        self.mine = np.arange(len(self.records))[rank::world_size]  # this rank's shard numbers
        self.names = [(names[n] if names else f"shard {n}") for n in self.mine]
        self.counts = np.asarray([self.records[n] for n in self.mine], dtype=np.int64)
        self.per_rank = int(self.counts.sum())  # the draws of one epoch on this rank
        if self.per_rank < 1:
            raise ValueError(f"{self.name}: rank {rank} of {world_size} has no records in its shards "
                             f"{', '.join(self.names) or '(none)'}; expected at least one shard with records per rank")
        self._visits: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._positions: dict[tuple[int, int], np.ndarray] = {}

    def _visit(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """This rank's shard numbers in epoch `epoch`'s order, and the cumulative record counts in that order."""
        rng = np.random.default_rng([self.seed, 1 + self.number, epoch, _SHARD_VISITS, self.rank])
        order = rng.permutation(len(self.mine))
        return self.mine[order], np.cumsum(self.counts[order])

    def _position_order(self, epoch: int, shard: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, 1 + self.number, epoch, _SHARD_POSITIONS, shard])
        return rng.permutation(self.records[shard])

    def key(self, draw: int) -> tuple[int, int]:
        """(shard × stride + position, epoch) of the `draw`-th record this rank takes from the shard set."""
        epoch, offset = divmod(draw, self.per_rank)
        shards, ends = _memo(self._visits, epoch, lambda: self._visit(epoch), keep=2)
        slot = int(np.searchsorted(ends, offset, side="right"))
        shard = int(shards[slot])
        local = offset - int(ends[slot]) + self.records[shard]
        positions = _memo(self._positions, (epoch, shard), lambda: self._position_order(epoch, shard))
        return shard * self.stride + int(positions[local]), epoch

    def layout(self) -> dict:
        """This rank's shards and their record counts: the stream depends on them, so a checkpoint must match."""
        return {"shards": list(self.names), "records": self.counts.tolist()}


DrawOrder = MapOrder | ShardOrder


def describe_layout(layout: Mapping | None) -> str:
    """A shard layout (`ShardOrder.layout`) as `name (records), ...`, for an error message."""
    if layout is None:
        return "a map-style dataset (JSON lines)"
    return ", ".join(f"{name} ({count:,} records)" for name, count in zip(layout["shards"], layout["records"]))


class BalancedSampler(Sampler):
    """Yields `(dataset, index, epoch)` keys for a `MixtureDataset`: per-sample draws ∝ ratios, per-rank streams.

    `orders` maps each dataset's draws to keys (`MapOrder` / `ShardOrder`; default: a `MapOrder` of each size with
    this seed, rank and world size). `num_samples` bounds one pass (None, this class's default: infinite, as
    iteration-based training wants; then `len()` raises). Pass k yields stream positions [k·n, (k+1)·n), so passes
    never repeat; a resumed pass ends at the next multiple of n. Use `state_dict(consumed)` with the number of
    samples the model actually consumed (a DataLoader prefetches ahead of that).
    """

    def __init__(
        self, sizes: Sequence[int], ratios: Sequence[float], seed: int = 0, rank: int = 0, world_size: int = 1,
        num_samples: int | None = None, orders: Sequence[DrawOrder] | None = None,
    ):
        if len(sizes) != len(ratios) or not sizes:
            raise ValueError(f"need one ratio per dataset, got {len(sizes)} sizes and {len(ratios)} ratios")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} out of range for world size {world_size}")
        if orders is None:
            orders = [MapOrder(size, number, seed, rank, world_size) for number, size in enumerate(sizes)]
        if len(orders) != len(sizes):
            raise ValueError(f"need one draw order per dataset, got {len(sizes)} sizes and {len(orders)} orders")
        for size, ratio, order in zip(sizes, ratios, orders):
            if ratio > 0 and order.per_rank < 1:
                raise ValueError(f"{order.name}: a dataset with {size} samples cannot be split across {world_size} "
                                 f"ranks")
        self.sizes, self.orders = [int(s) for s in sizes], list(orders)
        self.probabilities = np.asarray(ratios, dtype=np.float64) / np.sum(ratios)
        if num_samples is not None and num_samples < 1:
            raise ValueError(f"num_samples must be ≥ 1 or None (infinite), got {num_samples}")
        self.seed, self.rank, self.world_size, self.num_samples = seed, rank, world_size, num_samples
        self.position = 0
        self._block_cache: tuple[int, np.ndarray] | None = None

    def _choices(self, block: int) -> np.ndarray:
        if self._block_cache is None or self._block_cache[0] != block:
            rng = np.random.default_rng([self.seed, self.rank, block])
            self._block_cache = (block, rng.choice(len(self.sizes), size=BLOCK, p=self.probabilities))
        return self._block_cache[1]

    def _draw_counts(self, position: int) -> np.ndarray:
        """How many times each dataset was drawn in the first `position` draws."""
        counts = np.zeros(len(self.sizes), dtype=np.int64)
        full, rest = divmod(position, BLOCK)
        for block in range(full):
            counts += np.bincount(self._choices(block), minlength=len(self.sizes))
        if rest:
            counts += np.bincount(self._choices(full)[:rest], minlength=len(self.sizes))
        return counts

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        counts = self._draw_counts(self.position)
        end = None if self.num_samples is None else (self.position // self.num_samples + 1) * self.num_samples
        while end is None or self.position < end:
            block, offset = divmod(self.position, BLOCK)
            dataset = int(self._choices(block)[offset])
            index, epoch = self.orders[dataset].key(int(counts[dataset]))
            counts[dataset] += 1
            self.position += 1
            yield dataset, index, epoch

    def __len__(self) -> int:
        if self.num_samples is None:
            raise TypeError("an infinite BalancedSampler has no length; pass num_samples to bound it")
        return self.num_samples

    def state_dict(self, consumed: int | None = None) -> dict:
        """What a checkpoint stores: the stream's identity (shard layouts included) and the samples consumed."""
        return {
            "seed": self.seed, "rank": self.rank, "world_size": self.world_size, "sizes": list(self.sizes),
            "probabilities": self.probabilities.tolist(), "layouts": [order.layout() for order in self.orders],
            "position": self.position if consumed is None else consumed,
        }

    def load_state_dict(self, state: Mapping) -> None:
        """Continue the stream of `state`; a checkpoint of a different mixture, seed, world size or shard layout is
        an error."""
        for key in ("seed", "rank", "world_size", "sizes"):
            if state[key] != getattr(self, key):
                raise ValueError(f"cannot resume: checkpoint has {key}={state[key]!r}, this run {getattr(self, key)!r}")
        if not np.allclose(state["probabilities"], self.probabilities):
            raise ValueError("cannot resume: the checkpoint's dataset ratios differ from this run's")
        layouts = state.get("layouts") or [None] * len(self.orders)  # checkpoints from before shard datasets mixed
        for order, layout in zip(self.orders, layouts):
            if layout != order.layout():
                raise ValueError(
                    f"cannot resume: {order.name} on rank {self.rank} of {self.world_size} has shards "
                    f"{describe_layout(order.layout())}, the checkpoint has {describe_layout(layout)}; its stream "
                    f"follows the shard layout (was the set converted again with another per_shard?)")
        self.position = int(state["position"])


class MixtureDataset(Dataset):
    """Several datasets behind `(dataset, index, epoch)` keys from a `BalancedSampler`; items name their dataset.

    `ratios` holds each dataset's effective sampling probability; `ratio_table()` prints them with the sizes.
    """

    def __init__(self, datasets: Mapping[str, Dataset], ratios: Mapping[str, float] | None = None):
        self.ratios = dict(ratios or {})
        self.names = list(datasets)
        self.datasets = list(datasets.values())
        for name, dataset in datasets.items():
            if not hasattr(dataset, "__len__"):
                raise TypeError(f"{name}: balanced sampling needs a map-style dataset (JSON-lines records) or a "
                                f"ShardDataset (webdataset shards with a manifest), got {type(dataset).__name__}")

    def __len__(self) -> int:
        return sum(len(d) for d in self.datasets)

    def __getitem__(self, key: tuple[int, int, int]):
        dataset, index, epoch = key
        target = self.datasets[dataset]
        return target.get(index, epoch) if hasattr(target, "get") else target[index]

    def collator(self, samples):
        return self.datasets[0].collator(samples)

    collater = collator  # LAVIS's spelling, kept as an alias

    def ratio_table(self) -> str:
        """Each dataset's size and effective sampling ratio as a table (also logged at INFO by `balanced_mixture`)."""
        return describe_ratios({name: len(d) for name, d in zip(self.names, self.datasets)}, self.ratios)


def _records_file(dataset: Dataset) -> str:
    """Where a dataset's records come from, for an error message (its records file, else its type)."""
    return str(getattr(getattr(dataset, "records", None), "path", None) or type(dataset).__name__)


EPOCH = "epoch"


def balanced_mixture(
    datasets: Mapping[str, Dataset], *, seed: int = 0, rank: int = 0, world_size: int = 1,
    num_samples: int | str | None = EPOCH,
) -> tuple[MixtureDataset, BalancedSampler]:
    """The mixture of `datasets` and its sampler (`mixture.ratio_table()` shows the effective ratios).

    Each dataset's multiplier is its `sample_ratio` (set from its config's `sample_ratio` by the builder; 1 for a
    dataset without one): the config is the one place a mixture is tuned. `num_samples` bounds one pass of the
    sampler: "epoch" (default) is the sum of every sampled dataset's per-rank share (a shard dataset's: the records of
    this rank's shards), an int that many, None infinite. A dataset with no records is an error naming it and its
    file. A `ShardDataset` takes part with its whole set's record count and draws from this rank's shards only.
    """
    sizes = {name: len(dataset) for name, dataset in datasets.items()}
    multipliers = {name: float(getattr(dataset, "sample_ratio", 1.0)) for name, dataset in datasets.items()}
    for name, size in sizes.items():
        if size == 0 and multipliers[name] > 0:
            raise ValueError(f"{name}: no records in {_records_file(datasets[name])}; an empty dataset cannot take "
                             f"part in a mixture (did its conversion skip every entry?)")
    ratios = balanced_ratios(sizes, multipliers)
    mixture = MixtureDataset(datasets, ratios)
    logger.info("balanced sampling ratios (rank %d):\n%s", rank, mixture.ratio_table())
    orders = [draw_order(name, dataset, number, seed, rank, world_size)
              for number, (name, dataset) in enumerate(datasets.items())]
    if num_samples == EPOCH:
        num_samples = sum(order.per_rank for order, ratio in zip(orders, ratios.values()) if ratio > 0)
    sampler = BalancedSampler(list(sizes.values()), list(ratios.values()), seed, rank, world_size, num_samples, orders)
    return mixture, sampler


def draw_order(name: str, dataset: Dataset, number: int, seed: int, rank: int, world_size: int) -> DrawOrder:
    """How the mixture draws dataset `number`: a `ShardOrder` over this rank's shards for a `ShardDataset` (which
    must have been built for this rank and world size), else a `MapOrder` of its records."""
    if not isinstance(dataset, ShardDataset):
        return MapOrder(len(dataset), number, seed, rank, world_size, name)
    if (dataset.rank, dataset.world_size) != (rank, world_size):
        raise ValueError(f"{name}: its shards were split for rank {dataset.rank} of {dataset.world_size}, the mixture "
                         f"is for rank {rank} of {world_size}; build the split with the mixture's rank and world_size")
    names = [path.name for path in dataset.shards]
    return ShardOrder(dataset.shard_records, number, seed, rank, world_size, names, name)
