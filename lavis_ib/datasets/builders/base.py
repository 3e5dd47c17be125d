"""The generic dataset builder: a dataset's config (default YAML ⊕ overrides) → `{split: dataset}`.

Every dataset with a `configs/datasets/<name>/defaults.yaml` gets one, registered under `<name>`; a dataset that
needs different behaviour registers its own subclass under the same name first. Variants other than `default` live
next to it as `<variant>.yaml`.

Precedence, most specific first. Relative storage paths resolve under the dataset config's `data_root`, else the
`data_root` given to the builder (a run-wide value), else the cache root (`$LAVIS_IB_CACHE`, `~/.cache/lavis_ib`).
A split's storage may also be a shard set's URL or `pipe:` command (`locations`), which is read remotely as it is.
Visual processors take `image_size` / `mean` / `std` from the dataset config's entry, else from `vis_defaults` (the
model's preprocessing, `processors.model_vis_defaults`), else DEFAULT_IMAGE_SIZE and the CLIP normalisation.
"""

from __future__ import annotations

import json
import logging
import os
from fnmatch import fnmatch
from pathlib import Path
from typing import Any, ClassVar, Sequence

from omegaconf import DictConfig, OmegaConf

from lavis_ib.common.paths import cache_root, configs_root, data_root, resolve_under
from lavis_ib.common.registry import UnknownNameError
from lavis_ib.common.schema import ConfigError, from_dict
from lavis_ib.datasets import templates
from lavis_ib.datasets.builders.dataset import ItemMaker, RecordDataset, ShardDataset
from lavis_ib.datasets.builders.schema import DatasetConfig
from lavis_ib.datasets.locations import Location, ShardURL, resolve_location
from lavis_ib.datasets.records import JsonlRecords, load_shard_set, manifest_path, shard_prefix
from lavis_ib.processors import build_processors, with_vis_defaults

logger = logging.getLogger(__name__)

DATASET_CONFIGS = configs_root / "datasets"
TRAIN_SPLIT = "train"
DEFAULT_IMAGE_SIZE = 224
"""InstructBLIP's input size: the visual processors' size when neither the dataset config nor the model sets one."""


def is_shard_pattern(location: Location) -> bool:
    """Whether a split's storage names webdataset shards (`<split>-*.tar`) rather than a JSON-lines file."""
    return location.name.endswith(".tar") or "*" in location.name


def _plain(node: Any) -> dict:
    if isinstance(node, DictConfig):
        return OmegaConf.to_container(node, resolve=True)
    return dict(node or {})


class DatasetBuilder:
    """Builds the splits of one dataset from its config; `name` is set per registered dataset."""

    name: ClassVar[str] = ""

    def __init__(
        self, cfg: Any = None, source: str | None = None, data_root: str | os.PathLike | None = None,
        vis_defaults: dict | None = None,
    ):
        """`cfg`: None (the default YAML), a YAML path, or a mapping/OmegaConf node of this dataset's block; a path
        or block is merged onto the default YAML of its `type` variant, so it needs to hold only what it changes.

        `data_root` and `vis_defaults` apply where the dataset config does not set its own (module docstring).
        """
        if cfg is None or isinstance(cfg, (str, os.PathLike)):
            path = Path(cfg) if cfg is not None else self.default_config_path()
            cfg, source = self.load_config_file(path), str(path)
        cfg = self.with_defaults(cfg)
        self.source = source or f"datasets.{self.name}"
        self.config: DatasetConfig = from_dict(DatasetConfig, _plain(cfg), self.source, f"datasets.{self.name}")
        self.data_root = data_root
        self.vis_defaults = {"image_size": DEFAULT_IMAGE_SIZE, **(vis_defaults or {})}

    @classmethod
    def config_schema(cls) -> type:
        return DatasetConfig

    @classmethod
    def default_config_path(cls, variant: str = "default") -> Path:
        path = DATASET_CONFIGS / cls.name / ("defaults.yaml" if variant == "default" else f"{variant}.yaml")
        if not path.is_file():
            known = sorted(p.stem for p in path.parent.glob("*.yaml"))
            raise ConfigError(f"dataset {cls.name!r} has no config variant {variant!r} (looked for {path}; "
                              f"found {', '.join(known) or 'none'})")
        return path

    @classmethod
    def default_config(cls, variant: str = "default", **overrides: Any) -> DictConfig:
        """This dataset's block of its default YAML (or of `variant`), with `overrides` merged on top."""
        return OmegaConf.merge(cls.load_config_file(cls.default_config_path(variant)), overrides)

    @classmethod
    def with_defaults(cls, block: Any) -> DictConfig:
        """`block` merged onto the default YAML of its `type` variant (as `Config` merges a project's block)."""
        block = OmegaConf.create(_plain(block))
        try:
            default = cls.load_config_file(cls.default_config_path(block.get("type", "default")))
        except ConfigError:
            if "type" in block:
                raise
            return block  # a builder without a default YAML: the block is the whole config
        return OmegaConf.merge(default, block)

    @classmethod
    def load_config_file(cls, path: Path) -> DictConfig:
        """This dataset's block of a dataset YAML (`datasets: {<name>: ...}`)."""
        blocks = OmegaConf.load(path).get("datasets") or {}
        if cls.name not in blocks:
            raise ConfigError(f"{path}: expected a block 'datasets.{cls.name}', found {list(blocks)}")
        return blocks[cls.name]

    @property
    def splits(self) -> list[str]:
        return list(self.config.build_info.annotations)

    @property
    def root(self) -> Path:
        """The folder relative storage paths resolve under (module docstring: config, then argument, then cache)."""
        return data_root(self.config.data_root, self.data_root)

    def storage(self, split: str) -> Location:
        """Where `split`'s records are: a local path (relative ones under `root`) or a remote shard set's `ShardURL`."""
        entry = self.config.build_info.annotations[split]
        return resolve_location(entry.storage, self.root, entry.retry)

    def media_root(self, vis_path: str | None = None) -> Path | None:
        """Where media paths of the records are relative to (`vis_path` overrides the config)."""
        if vis_path is not None:
            return Path(vis_path).expanduser()
        info = self.config.build_info
        entry = info.videos if self.config.data_type == "videos" and info.videos else info.images
        return resolve_under(entry.storage, self.root) if entry is not None else None

    def vis_processor_config(self) -> dict:
        """The `vis_processor` section with `vis_defaults` filled into entries that do not set those keys."""
        return with_vis_defaults(self.config.vis_processor, self.vis_defaults, f"{self.source}: vis_processor")

    def item_maker(self, split: str, vis_path: str | None = None) -> ItemMaker:
        cfg = self.config
        mode = "train" if split == TRAIN_SPLIT else "eval"
        sections = {"vis_processor": self.vis_processor_config(), "text_processor": cfg.text_processor}
        vis, text = build_processors(sections)
        spec = cfg.instruction.train if mode == "train" else cfg.instruction.eval
        return ItemMaker(
            name=self.name,
            media_root=self.media_root(vis_path),
            video=cfg.data_type == "videos",
            vis_processor=vis[mode],
            text_processor=text[mode],
            templates=templates.resolve_templates(spec, f"datasets.{self.name}.instruction.{mode}"),
            ocr_prefix=cfg.instruction.ocr_prefix,
            random_answer=mode == "train" and cfg.answer_sampling == "random",
            strict=cfg.strict,
            seed=cfg.seed,
            max_consecutive_skips=cfg.max_consecutive_skips,
            media_keys=mode == "eval",
        )

    def answer_list(self) -> list[str] | None:
        """The configured candidate answers (vocabulary ranking), or None."""
        entry = self.config.build_info.answer_list
        if entry is None:
            return None
        path = resolve_under(entry.storage, self.root)
        if not path.is_file():
            raise FileNotFoundError(f"{self.name}: answer list not found at {path} (the converter writes it)")
        answers = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
            raise ValueError(f"{path}: expected a JSON list of answer strings")
        return answers

    def convert_command(self, split: str) -> str:
        """The command that writes `split` where this builder reads it."""
        command = f"python -m lavis_ib.datasets.convert {self.name} --src <original folder> --split {split}"
        location = self.storage(split)
        if is_shard_pattern(location):
            command += " --format wds"
        if isinstance(location, ShardURL):
            command += " --out <local folder>"  # whose shards and manifest are then copied to the store
        elif location.parent != cache_root() / "datasets" / self.name:
            command += f" --out {location.parent}"
        return command

    def missing(self, split: str) -> str | None:
        """Why `split` cannot be loaded (its records are absent: path and convert command), or None when it can (a
        remote shard set always can here: its manifest is read, or found missing, when the split is built)."""
        if split not in self.config.build_info.annotations:
            known = ", ".join(self.splits)
            raise UnknownNameError(f"dataset {self.name!r} has no split {split!r}; configured splits: {known}")
        location = self.storage(split)
        if isinstance(location, ShardURL):  # a store need not be listable: a missing manifest is build_split's error
            if is_shard_pattern(location):
                return None
            raise ConfigError(f"datasets.{self.name}.build_info.annotations.{split}.storage: {location} is remote, "
                              f"and only webdataset shard sets (<split>-*.tar with their manifest) are read remotely; "
                              f"copy the JSON-lines file to a local folder, or convert the split with --format wds")
        if is_shard_pattern(location):  # shards without a manifest are found here and refused by build_split
            found = manifest_path(shard_prefix(location)).is_file() or any(location.parent.glob(location.name))
        else:
            found = location.is_file()
        if found:
            return None
        command = self.convert_command(split)
        return f"{self.name} {split}: records not found at {location}; convert them with `{command}`"

    def build_split(self, split: str, vis_path: str | None = None, rank: int = 0, world_size: int = 1):
        """One split as a `RecordDataset` (JSON lines) or a `ShardDataset` (webdataset shards, this rank's share).

        The dataset carries its answer list and its `sample_ratio` (the balanced-sampling multiplier). Only the train
        split replaces unreadable records; evaluation splits skip them, so no sample is scored twice.
        """
        reason = self.missing(split)
        if reason is not None:
            raise FileNotFoundError(reason)
        location = self.storage(split)
        make_item = self.item_maker(split, vis_path)
        ratio, train = self.config.sample_ratio, split == TRAIN_SPLIT
        if is_shard_pattern(location):
            shard_set = load_shard_set(location)  # the manifest, read once for the builder and the dataset
            shards = [path for path in shard_set.paths if fnmatch(path.name, location.name)]
            dataset = ShardDataset(shards, make_item, rank, world_size, ratio, replace_unreadable=train,
                                   entries=[shard_set.entry(path) for path in shards])
        else:
            dataset = RecordDataset(JsonlRecords(location), make_item, ratio, replace_unreadable=train)
        dataset.answer_list = self.answer_list()
        return dataset

    def build_datasets(
        self, splits: Sequence[str] | None = None, vis_path: str | None = None, rank: int = 0, world_size: int = 1
    ) -> dict:
        """`{split: dataset}` for the named splits (each must exist), or for every configured split that exists.

        Without `splits`, a split not converted yet is left out with a warning naming its path and convert command;
        it is an error only when none exists. `rank` / `world_size` pick each rank's shards of a sharded split.
        """
        if splits:
            return {split: self.build_split(split, vis_path, rank, world_size) for split in splits}
        reasons = {split: self.missing(split) for split in self.splits}
        present = [split for split, reason in reasons.items() if reason is None]
        if not present:
            raise FileNotFoundError(f"{self.name}: no split is converted yet:\n  " + "\n  ".join(reasons.values()))
        for reason in reasons.values():
            if reason is not None:
                logger.warning("%s (skipping this split; load it by name to make this an error)", reason)
        return {split: self.build_split(split, vis_path, rank, world_size) for split in present}


def builder_for(name: str) -> type[DatasetBuilder]:
    """A `DatasetBuilder` subclass bound to dataset `name`."""
    class_name = "".join(part.capitalize() for part in name.split("_")) + "Builder"
    return type(class_name, (DatasetBuilder,), {"name": name, "__doc__": f"Builder of dataset {name!r}."})
