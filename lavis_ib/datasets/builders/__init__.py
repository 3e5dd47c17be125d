"""Dataset builders: one generic `DatasetBuilder` per dataset config folder, registered under kind `builder`."""

from __future__ import annotations

from lavis_ib.common.registry import registry
from lavis_ib.datasets.builders.base import DATASET_CONFIGS, DatasetBuilder, builder_for
from lavis_ib.datasets.builders.dataset import (
    ItemMaker, RecordDataset, ShardDataset, SkipCounter, Skipped, UnreadableDatasetError, collate,
)
from lavis_ib.datasets.builders.schema import DatasetConfig


def _register_generic_builders() -> None:
    for path in sorted(DATASET_CONFIGS.glob("*/defaults.yaml")):
        name = path.parent.name
        if name not in registry["builder"]:
            registry.register_builder(name)(builder_for(name))


_register_generic_builders()

__all__ = [
    "DatasetBuilder", "DatasetConfig", "ItemMaker", "RecordDataset", "ShardDataset", "SkipCounter", "Skipped",
    "UnreadableDatasetError", "builder_for", "collate",
]
