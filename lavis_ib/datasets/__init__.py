"""Datasets: unified records, converters from the original formats, builders, templates and balanced sampling.

`load_dataset(name)` builds a dataset's splits from its config (LAVIS's spelling); `dataset_zoo` lists them.
"""

from __future__ import annotations

import importlib
from typing import Any, Sequence

from lavis_ib.common.registry import registry

# Imported on first access: the builders need torch and the processors, the converters (and their CLI) do not.
_LAZY = {
    "converters": "lavis_ib.datasets.converters",
    "synthetic": "lavis_ib.datasets.synthetic",
    **{name: "lavis_ib.datasets.builders" for name in ("DatasetBuilder", "RecordDataset", "ShardDataset", "Skipped",
                                                         "collate")},
}


def __getattr__(name: str) -> Any:
    """The submodule or builder class `name`, imported on first access."""
    if name not in _LAZY:
        raise AttributeError(f"module 'lavis_ib.datasets' has no attribute {name!r}")
    module = importlib.import_module(_LAZY[name])
    return module if module.__name__.endswith(f".{name}") else getattr(module, name)


def load_dataset(
    name: str, cfg: Any = None, vis_path: str | None = None, splits: Sequence[str] | None = None, *,
    data_root: str | None = None, vis_defaults: dict | None = None, rank: int = 0, world_size: int = 1,
) -> dict[str, RecordDataset | ShardDataset]:
    """`{split: dataset}` of dataset `name`: its default config, or `cfg` (a YAML path or a config block).

    `vis_path` overrides the media root; `splits` names the splits to build (each must exist; default: every
    configured split that is converted, warning about the rest). `data_root` (where relative storage paths resolve)
    and `vis_defaults` (the model's `{image_size, mean, std}`, `processors.model_vis_defaults(preprocess)`) apply
    where the dataset config sets none; `rank` / `world_size` pick this rank's shards of sharded splits.
    """
    builder = registry.get_builder_class(name)(cfg, data_root=data_root, vis_defaults=vis_defaults)
    return builder.build_datasets(splits, vis_path, rank, world_size)


class DatasetZoo:
    """The registered datasets, printable as a table of role, category, splits and metric."""

    def names(self) -> list[str]:
        return registry.list_builders()

    def __iter__(self):
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def __contains__(self, name: str) -> bool:
        return name in registry["builder"]

    def rows(self) -> list[tuple[str, str, str, str, str]]:
        """One (name, role, category, splits, metric) row per dataset, from its default config."""
        rows = []
        for name in self.names():
            config = registry.get_builder_class(name)().config
            rows.append((name, config.role, config.category, ", ".join(config.build_info.annotations), config.metric))
        return rows

    def __str__(self) -> str:
        rows = [("name", "role", "category", "splits", "metric"), *self.rows()]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
        return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


dataset_zoo = DatasetZoo()

__all__ = ["DatasetBuilder", "RecordDataset", "ShardDataset", "Skipped", "collate", "converters", "dataset_zoo",
           "load_dataset", "synthetic"]
