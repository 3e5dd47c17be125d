"""Datasets over converted records: media loaded and processed, instructions rendered, and an aligned collator.

An item is `{"image": tensor [3,H,W] (or [3,T,H,W] for video), "text_input": instruction, "text_output": target,
"instance_id", "dataset"}` plus every evaluation field the record has (`question_id`, `answers`, `choices`, ...)
and, under a deterministic (evaluation) visual processor, `media_key`: the identity of its pixels (`ItemMaker`).
Every random draw of an item (template, answer, crop, flip, RandomAugment) is a pure function of (seed, epoch,
index), so DataLoader workers, ranks and resumed runs see identical items. In training, a record whose media
cannot be read is replaced by a readable record of the same dataset (found by a seeded probe), so batches keep their
size on every rank; in evaluation it stays a `Skipped` marker that the collator drops, so no sample is scored twice.
Either way it is listed in `batch["skipped"]` (count them with `SkipCounter`). More than `max_consecutive_skips`
unreadable records in a row (train and eval alike) is an `UnreadableDatasetError` naming the media root and the first
missing path: the root is then wrong, and a run must not go on with empty batches. With `strict: true` an unreadable
record is an error at once.
"""

from __future__ import annotations

import json
import logging
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from lavis_ib.common.errors import UserError
from lavis_ib.common.media import MediaError, open_image
from lavis_ib.datasets import templates
from lavis_ib.datasets.locations import Location, ShardURL, as_location
from lavis_ib.datasets.records import read_shard, verify_shards

logger = logging.getLogger(__name__)

PASSTHROUGH = (
    "question_id", "image_id", "answers", "captions", "choices", "label", "ocr_tokens", "context", "history",
    "answer_options", "gt_index", "meta",
)
REPLACES = "replaces"
"""Item key: the `Skipped` records this item stands in for (moved into `batch["skipped"]` by `collate`)."""
MAX_CONSECUTIVE_SKIPS = 8
"""Default of the dataset config key `max_consecutive_skips`: unreadable records in a row (the record and its
replacement probes in training) before a dataset is declared unreadable (its media root is likely wrong)."""
SHARD_STRIDE = 1 << 32
"""A shard record's index is shard number × SHARD_STRIDE + position in the shard: stable across workers and ranks."""
_AUGMENT_STREAM, _PROBE_STREAM = 1, 2


@dataclass(frozen=True)
class Skipped:
    """A record whose media could not be read: which dataset, which record, and why."""

    dataset: str
    index: int
    reason: str
    path: str | None = None  # the media file that could not be read, when known

    def __str__(self) -> str:
        return f"{self.dataset}[{self.index}]: {self.reason}"


class UnreadableDatasetError(UserError, RuntimeError):
    """No readable record was found to replace an unreadable one: the dataset's media are missing or misplaced."""


def sample_seed(seed: int, epoch: int, index: int, dataset: str = "", stream: int = _AUGMENT_STREAM) -> int:
    """A 64-bit seed that is a pure function of (seed, epoch, index, dataset name, stream)."""
    entropy = [seed % (1 << 64), epoch, index, zlib.crc32(dataset.encode()), stream]
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0])


def sample_generator(seed: int, epoch: int, index: int, dataset: str = "") -> torch.Generator:
    """The torch generator the augmentations of sample `index` in `epoch` draw from (cf. `templates.example_rng`)."""
    return torch.Generator().manual_seed(sample_seed(seed, epoch, index, dataset))


def replacement_probes(
    size: int, index: int, seed: int, epoch: int, dataset: str = "", limit: int = MAX_CONSECUTIVE_SKIPS - 1,
    seed_index: int | None = None,
) -> list[int]:
    """The records tried, in order, to replace unreadable record `index` of `size`: up to `limit` others, drawn
    without replacement by a generator seeded like the sample's own draws (by `seed_index`, default `index`: a shard
    record probes its shard's positions but seeds by its dataset-wide index)."""
    seeded_by = index if seed_index is None else seed_index
    rng = np.random.default_rng(sample_seed(seed, epoch, seeded_by, dataset, _PROBE_STREAM))
    others = rng.choice(size - 1, size=min(size - 1, max(limit, 0)), replace=False)
    return [int(j) + int(j >= index) for j in others]


def collate(samples: Sequence[dict | Skipped]) -> dict:
    """A batch dict: tensors stacked, everything else a per-sample list aligned with the batch.

    A key some samples lack is None for them (never dropped or flattened, so `batch[k][i]` always belongs to sample
    i). `batch["skipped"]` lists the `Skipped` records that items replaced (and any raw `Skipped` marker, dropped).
    """
    kept = [s for s in samples if not isinstance(s, Skipped)]
    skipped = [entry for s in samples for entry in ([s] if isinstance(s, Skipped) else s.get(REPLACES, ()))]
    batch: dict[str, Any] = {}
    keys = list(dict.fromkeys(key for sample in kept for key in sample if key != REPLACES))
    for key in keys:
        values = [sample.get(key) for sample in kept]
        if all(isinstance(v, torch.Tensor) for v in values):
            shapes = {tuple(v.shape) for v in values}
            if len(shapes) > 1:
                raise ValueError(f"cannot batch {key!r}: samples have shapes {sorted(shapes)}")
            batch[key] = torch.stack(values)
        else:
            batch[key] = values
    if skipped:
        batch["skipped"] = skipped
    return batch


class SkipCounter:
    """Totals of unreadable records over the batches a run consumed, per dataset.

    Counted from `batch["skipped"]` in the training process, so the totals are right with any number of DataLoader
    workers (each worker's `dataset.skipped` only counts what that worker read). Sum across ranks with all-reduce.
    """

    def __init__(self) -> None:
        self.by_dataset: Counter[str] = Counter()

    def update(self, batch: Mapping[str, Any]) -> int:
        """Count one batch's skipped records; returns how many it had."""
        entries = batch.get("skipped") or ()
        self.by_dataset.update(entry.dataset for entry in entries)
        return len(entries)

    @property
    def total(self) -> int:
        return sum(self.by_dataset.values())

    def state_dict(self) -> dict[str, int]:
        """The per-dataset counts, for a checkpoint."""
        return dict(self.by_dataset)

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        """Continue counting from a checkpoint's counts."""
        self.by_dataset = Counter(dict(state))

    def __str__(self) -> str:
        return ", ".join(f"{name}: {count:,}" for name, count in self.by_dataset.most_common()) or "none"


@dataclass
class ItemMaker:
    """Turns one record into one item: media path resolution, processors, instruction and target.

    `vis_processor` is called as `vis_processor(media, generator=...)` with the sample's seeded generator.
    """

    name: str
    media_root: Path | None
    video: bool
    vis_processor: Callable
    text_processor: Callable
    templates: tuple[str, ...] | None
    ocr_prefix: bool
    random_answer: bool
    strict: bool
    seed: int = 0
    epoch: int = 0
    max_consecutive_skips: int = MAX_CONSECUTIVE_SKIPS
    media_keys: bool = True  # False under random (training) processors: the pixels also depend on the draw

    def media_key(self, record: dict) -> str:
        """The identity of the item's pixels: dataset, media path(s) under the media root, clip bounds and the visual
        processor's settings. Questions on one image share it, anything that changes the pixels changes it; the
        models' frozen-ViT feature cache is keyed by it."""
        media = [record["image"], record.get("start"), record.get("end")]
        return json.dumps([self.name, *media, processor_identity(self.vis_processor)], ensure_ascii=False)

    def media(self, record: dict) -> Any:
        """The processor input: a PIL image, a video path, a `{path, start, end}` clip, or a list of frame paths."""
        image = record["image"]
        if isinstance(image, list):
            return [str(self._path(p)) for p in image]
        if not self.video:
            return open_image(self._path(image))
        if record.get("start") is not None or record.get("end") is not None:
            return {"path": str(self._path(image)), "start": record.get("start"), "end": record.get("end")}
        return str(self._path(image))

    def _path(self, relative: str) -> Path:
        return self.media_root / relative if self.media_root is not None else Path(relative)

    def target(self, record: dict, index: int, epoch: int) -> str:
        """The training target: the record's `text_output`, or one of its unique answers drawn per example/epoch."""
        answers = record.get("answers")
        if self.random_answer and answers:
            unique = sorted(set(answers), key=answers.index)
            return templates.example_rng(self.seed, epoch, index).choice(unique)
        return record["text_output"]

    def __call__(self, record: dict, index: int, epoch: int | None = None) -> dict | Skipped:
        epoch = self.epoch if epoch is None else epoch
        generator = sample_generator(self.seed, epoch, index, self.name)
        try:
            image = self.vis_processor(self.media(record), generator=generator)
        except MediaError as error:
            if self.strict:
                raise MediaError(f"{self.name} record {index}: {error}", path=error.path) from error
            return Skipped(self.name, index, str(error), error.path and str(error.path))
        raw = dict(record)
        if raw["text_input"]:
            raw["text_input"] = self.text_processor(raw["text_input"])
        item = {
            "image": image,
            "text_input": templates.instruction(raw, self.templates, self.seed, index, epoch, self.ocr_prefix),
            "text_output": self.target(record, index, epoch),
        }
        item.update({key: record[key] for key in PASSTHROUGH if key in record})
        item["instance_id"] = str(index)
        item["dataset"] = self.name
        if self.media_keys:
            item["media_key"] = self.media_key(record)
        return item


def processor_identity(processor: Callable) -> str:
    """A visual processor's class and settings: its repr, plus its normalisation where the repr omits it (video)."""
    identity = f"{type(processor).__module__}.{type(processor).__qualname__}: {processor!r}"
    normalize = getattr(processor, "normalize", None)
    return identity + (f" {normalize!r}" if normalize is not None else "")


class SkipRun:
    """The unreadable records met in a row; reaching the dataset's `max_consecutive_skips` raises, since the media
    root is then wrong rather than a few files missing. `size`: the dataset's record count, when known."""

    def __init__(self, make_item: ItemMaker, size: int | None = None):
        self.make_item, self.size, self.records = make_item, size, []

    def add(self, skipped: Skipped) -> None:
        """Count one more unreadable record; `UnreadableDatasetError` when the run reaches the limit."""
        self.records.append(skipped)
        if len(self.records) >= self.make_item.max_consecutive_skips:
            raise self.error()

    def end(self) -> list[Skipped]:
        """A readable record ends the run: the unreadable ones it followed."""
        records, self.records = self.records, []
        return records

    def error(self) -> UnreadableDatasetError:
        """The dataset, the first record, its reason and path, and the media root (saying so when it is absent)."""
        first, others, root = self.records[0], len(self.records) - 1, self.make_item.media_root
        if self.size is not None and others == self.size - 1:
            scope = f"and so is every other record of the dataset ({others:,})"
        else:
            scope = f"and so are the {others:,} records tried after it"
        absent = " (which does not exist)" if root is not None and not root.exists() else ""
        return UnreadableDatasetError(
            f"{self.make_item.name}: record {first.index} is unreadable ({first.reason}) {scope} "
            f"(max_consecutive_skips: {self.make_item.max_consecutive_skips}); first missing path: "
            f"{first.path or first.reason}; check the media root {root}{absent} (build_info.images/videos.storage, "
            f"data_root or vis_path)"
        )


class MapAccess:
    """`get(index, epoch)` for a dataset with `make_item`, `replace_unreadable`, `skipped` and `_run` (a `SkipRun`):
    in training an unreadable record is replaced by the first readable of its probes (listed under `REPLACES`, which
    `collate` moves into `batch["skipped"]`); otherwise it is returned as `Skipped`. Subclasses give `_record` (the
    record of an index), `_probes` (the indices tried in its place) and `_run_size` (the record count, when the probes
    can reach every record; else None)."""

    def _make(self, index: int, epoch: int) -> dict | Skipped:
        item = self.make_item(self._record(index), index, epoch)
        self.skipped += isinstance(item, Skipped)
        return item

    def get(self, index: int, epoch: int) -> dict | Skipped:
        """Item `index` with the draws of `epoch`; an unreadable record is replaced by the first readable probe."""
        item = self._make(index, epoch)
        run = SkipRun(self.make_item, self._run_size) if self.replace_unreadable else self._run
        if not isinstance(item, Skipped):
            run.end()
            return item
        run.add(item)
        if not self.replace_unreadable:
            return item
        for probe in self._probes(index, epoch, self.make_item.max_consecutive_skips - 1):
            item = self._make(probe, epoch)
            if not isinstance(item, Skipped):
                item[REPLACES] = run.end()
                return item
            run.add(item)
        raise run.error()  # every record the probes can reach is unreadable

    def set_epoch(self, epoch: int) -> None:
        """Templates, answers and augmentations are drawn per (seed, epoch, index): a new epoch draws anew."""
        self.make_item.epoch = epoch

    collator = staticmethod(collate)
    collater = collator  # LAVIS's spelling (`DataLoader(..., collate_fn=dataset.collater)`), kept as an alias


class RecordDataset(MapAccess, Dataset):
    """Map-style dataset over a sequence of records (a `JsonlRecords` or a list).

    `replace_unreadable` (training) swaps an unreadable record for a readable one, else it is returned as `Skipped`.
    `sample_ratio` is the dataset's multiplier in balanced sampling; `skipped` counts the unreadable records this
    process read (use `SkipCounter` on the batches for the total over DataLoader workers).
    """

    def __init__(
        self, records: Sequence[dict], make_item: ItemMaker, sample_ratio: float = 1.0, replace_unreadable: bool = True
    ):
        self.records, self.make_item, self.sample_ratio = records, make_item, sample_ratio
        self.replace_unreadable = replace_unreadable
        self.skipped = 0
        self._run = SkipRun(make_item, len(records))  # evaluation: unreadable records in a row, in this process

    @property
    def name(self) -> str:
        return self.make_item.name

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict | Skipped:
        return self.get(index, self.make_item.epoch)

    def _record(self, index: int) -> dict:
        return self.records[index]

    @property
    def _run_size(self) -> int:
        return len(self)

    def _probes(self, index: int, epoch: int, limit: int) -> list[int]:
        """Other records of the dataset, in an order seeded by (seed, epoch, index)."""
        return replacement_probes(len(self), index, self.make_item.seed, epoch, self.name, limit)


class ShardDataset(MapAccess, IterableDataset):
    """Records of webdataset shards with a manifest; each rank reads only its own shards (`shards[rank::world_size]`).

    Two ways to read them. Iterating streams this rank's shards in order, each DataLoader worker its own; with
    `replace_unreadable` (training) an unreadable record is dropped and listed with the next readable item, so
    batches stay full, otherwise it is yielded as `Skipped`. `get(index, epoch)` serves one record for the balanced
    mixture (whose `ShardOrder` picks the order): `index` is shard number × SHARD_STRIDE + position, the convention
    of iteration too. It reads a whole shard (sha256 and count verified) when first needed and keeps only that one,
    per process; in training an unreadable record is replaced by a readable one of the same shard. `len()` is the
    whole set's record count (every rank's shards, from the manifest): its size in the mixture, the same on every
    rank; `shard_records` holds each shard's count. `entries`: the shards' manifest entries when the caller has read
    the manifest already (the builder), else it is read here. Shards may be local paths or `ShardURL`s (a URL or `pipe:`
    command, `locations`): a rank then fetches only its own shards, each whole and checked before use.
    """

    def __init__(
        self, shards: Sequence[str | Path | ShardURL], make_item: ItemMaker, rank: int = 0, world_size: int = 1,
        sample_ratio: float = 1.0, replace_unreadable: bool = True, entries: Sequence[dict] | None = None,
    ):
        if not 0 <= rank < world_size:
            raise ValueError(f"{make_item.name}: rank {rank} out of range for world size {world_size}")
        if len(shards) < world_size:
            raise ValueError(f"{make_item.name}: {len(shards)} shards cannot be split across {world_size} ranks "
                             f"(every rank needs at least one; write more shards)")
        self.shards, self.make_item, self.sample_ratio = list(map(as_location, shards)), make_item, sample_ratio
        if entries is None:  # published whole, with a manifest (checksums are checked as each shard is read)
            found = verify_shards(self.shards)
            entries = [found[shard] for shard in self.shards]
        self.entries = list(entries)  # each shard's manifest entry: reading a shard needs no second manifest read
        self.shard_records = [int(entry["records"]) for entry in self.entries]
        self.rank, self.world_size, self.replace_unreadable = rank, world_size, replace_unreadable
        self.skipped = 0
        self._run = SkipRun(make_item)  # evaluation through `get`: unreadable records in a row, in this process
        self._cached: tuple[int, list[dict]] | None = None  # (shard number, its records): the shard `get` reads

    @property
    def name(self) -> str:
        return self.make_item.name

    def __len__(self) -> int:
        return sum(self.shard_records)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_cached": None}  # a DataLoader worker loads its own shard

    def my_shards(self) -> list[tuple[int, Location]]:
        """(shard number, path) of this rank's and this worker's share of the shards (round-robin)."""
        worker = get_worker_info()
        workers, worker_id = (worker.num_workers, worker.id) if worker else (1, 0)
        mine = list(enumerate(self.shards))[self.rank :: self.world_size]
        return mine[worker_id::workers]

    def whole(self) -> RecordDataset:
        """Every record of the set (each shard read once and verified, in order) as a map-style `RecordDataset` of
        the same items and answer list: what evaluation reads, since it checks every record of a split before
        scoring and cuts its batches over the whole split. The set must have been built for one rank."""
        if self.world_size != 1:
            raise ValueError(f"{self.name}: whole() reads every shard; build the set with world_size=1 (this one is "
                             f"rank {self.rank}'s share of {self.world_size})")
        records = [record for path, entry in zip(self.shards, self.entries) for record in read_shard(path, entry)]
        dataset = RecordDataset(records, self.make_item, self.sample_ratio, replace_unreadable=self.replace_unreadable)
        dataset.answer_list = getattr(self, "answer_list", None)
        return dataset

    def shard(self, number: int) -> list[dict]:
        """The records of shard `number`, one of this rank's: read whole and verified on first use, then cached
        until another shard is needed (a rank never reads another rank's shard)."""
        if not 0 <= number < len(self.shards) or number % self.world_size != self.rank:
            raise ValueError(f"{self.name}: shard number {number} is not one of rank {self.rank}'s shards in "
                             f"{self.shards[0].parent} (expected one of shards[{self.rank}::{self.world_size}] of "
                             f"{len(self.shards)}: a rank reads only its own)")
        if self._cached is None or self._cached[0] != number:
            self._cached = None  # free the previous shard before reading the next
            self._cached = (number, list(read_shard(self.shards[number], self.entries[number])))
        return self._cached[1]

    def _locate(self, index: int) -> tuple[int, int, list[dict]]:
        """(shard number, position, that shard's records) of record `index`; out of range is an `IndexError`."""
        number, position = divmod(index, SHARD_STRIDE)
        records = self.shard(number)
        if not 0 <= position < len(records):
            raise IndexError(f"{self.name}: position {position} out of range for shard {self.shards[number]} "
                             f"({len(records)} records)")
        return number, position, records

    def _record(self, index: int) -> dict:
        _, position, records = self._locate(index)
        return records[position]

    _run_size = None  # probes stay in one shard: a failed run says how many were tried, not "every record"

    def _probes(self, index: int, epoch: int, limit: int) -> list[int]:
        """Other records of the same shard, in an order seeded by (seed, epoch, index)."""
        number, position, records = self._locate(index)
        probes = replacement_probes(len(records), position, self.make_item.seed, epoch, self.name, limit, index)
        return [number * SHARD_STRIDE + probe for probe in probes]

    def _records(self) -> Iterable[tuple[int, dict]]:
        for number, shard in self.my_shards():
            for position, record in enumerate(read_shard(shard, self.entries[number])):
                yield number * SHARD_STRIDE + position, record

    def __iter__(self) -> Iterator[dict | Skipped]:
        run = SkipRun(self.make_item)
        for index, record in self._records():
            item = self.make_item(record, index)
            if isinstance(item, Skipped):
                self.skipped += 1
                run.add(item)
                if not self.replace_unreadable:
                    yield item
                continue
            unreadable = run.end()
            if unreadable and self.replace_unreadable:
                item[REPLACES] = unreadable
            yield item
        if run.records and self.replace_unreadable:
            logger.warning("%s: the last %d records of this stream were unreadable and not replaced: %s",
                           self.name, len(run.records), "; ".join(map(str, run.records)))
