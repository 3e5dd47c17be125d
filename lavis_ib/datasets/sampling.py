"""Balanced multi-dataset sampling (paper §2.4): dataset d is drawn with probability ∝ sqrt(size_d) × its configured
`sample_ratio`.

Datasets are mixed per sample. The stream is a pure function of (seed, rank, position): dataset choices come in
fixed blocks from a generator seeded by (seed, rank, block), and the j-th draw of a dataset is element j of a chain
of per-epoch permutations (seeded by seed, dataset and epoch) of which each rank takes every world_size-th element.
So ranks draw different streams, every rank sees disjoint samples within an epoch, and a resumed run continues the
identical stream from the number of samples consumed.

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


class BalancedSampler(Sampler):
    """Yields `(dataset, index, epoch)` keys for a `MixtureDataset`: per-sample draws ∝ ratios, per-rank streams.

    `num_samples` bounds one pass (None, this class's default: infinite, as iteration-based training wants; then
    `len()` raises). Pass k yields stream positions [k·n, (k+1)·n), so passes never repeat; a resumed pass ends at the
    next multiple of n. Use `state_dict(consumed)` with the number of samples the model actually consumed (a
    DataLoader prefetches ahead of that).
    """

    def __init__(
        self, sizes: Sequence[int], ratios: Sequence[float], seed: int = 0, rank: int = 0, world_size: int = 1,
        num_samples: int | None = None,
    ):
        if len(sizes) != len(ratios) or not sizes:
            raise ValueError(f"need one ratio per dataset, got {len(sizes)} sizes and {len(ratios)} ratios")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} out of range for world size {world_size}")
        for size, ratio in zip(sizes, ratios):
            if ratio > 0 and size < world_size:
                raise ValueError(f"a dataset with {size} samples cannot be split across {world_size} ranks")
        self.sizes = [int(s) for s in sizes]
        self.probabilities = np.asarray(ratios, dtype=np.float64) / np.sum(ratios)
        if num_samples is not None and num_samples < 1:
            raise ValueError(f"num_samples must be ≥ 1 or None (infinite), got {num_samples}")
        self.seed, self.rank, self.world_size, self.num_samples = seed, rank, world_size, num_samples
        self.position = 0
        self._block_cache: tuple[int, np.ndarray] | None = None
        self._permutation_cache: dict[tuple[int, int], np.ndarray] = {}

    def _choices(self, block: int) -> np.ndarray:
        if self._block_cache is None or self._block_cache[0] != block:
            rng = np.random.default_rng([self.seed, self.rank, block])
            self._block_cache = (block, rng.choice(len(self.sizes), size=BLOCK, p=self.probabilities))
        return self._block_cache[1]

    def _per_rank(self, dataset: int) -> int:
        return self.sizes[dataset] // self.world_size

    def _element(self, dataset: int, draw: int) -> tuple[int, int]:
        """(index, epoch) of the `draw`-th sample this rank takes from `dataset`."""
        epoch, offset = divmod(draw, self._per_rank(dataset))
        key = (dataset, epoch)
        if key not in self._permutation_cache:
            if len(self._permutation_cache) > 4 * len(self.sizes):
                self._permutation_cache.clear()
            rng = np.random.default_rng([self.seed, 1 + dataset, epoch])
            self._permutation_cache[key] = rng.permutation(self.sizes[dataset])
        return int(self._permutation_cache[key][self.rank + offset * self.world_size]), epoch

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
            index, epoch = self._element(dataset, int(counts[dataset]))
            counts[dataset] += 1
            self.position += 1
            yield dataset, index, epoch

    def __len__(self) -> int:
        if self.num_samples is None:
            raise TypeError("an infinite BalancedSampler has no length; pass num_samples to bound it")
        return self.num_samples

    def state_dict(self, consumed: int | None = None) -> dict:
        """What a checkpoint stores: the stream's identity and the number of samples consumed."""
        return {
            "seed": self.seed, "rank": self.rank, "world_size": self.world_size, "sizes": list(self.sizes),
            "probabilities": self.probabilities.tolist(), "position": self.position if consumed is None else consumed,
        }

    def load_state_dict(self, state: Mapping) -> None:
        """Continue the stream of `state`; a checkpoint of a different mixture, seed or world size is an error."""
        for key in ("seed", "rank", "world_size", "sizes"):
            if state[key] != getattr(self, key):
                raise ValueError(f"cannot resume: checkpoint has {key}={state[key]!r}, this run {getattr(self, key)!r}")
        if not np.allclose(state["probabilities"], self.probabilities):
            raise ValueError("cannot resume: the checkpoint's dataset ratios differ from this run's")
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
                raise TypeError(f"{name}: balanced sampling needs a map-style dataset (JSON-lines records), "
                                f"got {type(dataset).__name__}")

    def __len__(self) -> int:
        return sum(len(d) for d in self.datasets)

    def __getitem__(self, key: tuple[int, int, int]):
        dataset, index, epoch = key
        target = self.datasets[dataset]
        return target.get(index, epoch) if hasattr(target, "get") else target[index]

    def collater(self, samples):
        return self.datasets[0].collater(samples)

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
    sampler: "epoch" (default) is the sum of every sampled dataset's per-rank share, an int that many, None infinite.
    A dataset with no records is an error naming it and its file.
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
    if num_samples == EPOCH:
        num_samples = sum(size // world_size for name, size in sizes.items() if ratios[name] > 0)
    sampler = BalancedSampler(list(sizes.values()), list(ratios.values()), seed, rank, world_size, num_samples)
    return mixture, sampler
