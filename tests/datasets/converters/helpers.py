"""Shared by the converter tests: write original-format fixtures, run a converter, read its records back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, NamedTuple

from lavis_ib.datasets.convert import SplitReport, convert
from lavis_ib.datasets.records import read_jsonl


class Fixture(NamedTuple):
    """An original-format fixture of one dataset: how to write it into a folder, the split, and its record count.

    Each converter test module lists its datasets in `CATALOGUE = {name: Fixture(...)}`; `test_catalogue` converts
    every one through the registry, so a dataset without a fixture, or a converter that breaks, fails there.
    """

    write: Callable[[Path], Any]
    split: str
    written: int


def write_json(path: Path, content) -> Path:
    """Write `content` as JSON at `path` (parents created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content))
    return path


def write_jsonl(path: Path, rows) -> Path:
    """Write one JSON object per line at `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def run(name: str, src: Path, out: Path, split: str) -> tuple[list[dict], SplitReport]:
    """Convert one split through the public `convert` API; the validated records read back, and the report."""
    (report,) = convert(name, src, out / name, [split], overwrite=True)
    assert report.written == len(report.paths and read_jsonl(report.paths[0]))
    return read_jsonl(report.paths[0]), report


TINY_PROCESSORS = {
    "images": {"train": {"name": "blip_image_eval", "image_size": 16}, "eval": {"name": "blip_image_eval", "image_size": 16}},
    "videos": {"train": {"name": "video_eval", "image_size": 16, "n_frms": 4},
               "eval": {"name": "video_eval", "image_size": 16, "n_frms": 4}},
}


def make_media(root: Path, relative_paths) -> None:
    """A small image (or, for .mp4/.avi/.webm paths, a 6-frame video) at each path under `root`."""
    import numpy as np
    from PIL import Image

    from lavis_ib.common.media import encode_video

    for relative in relative_paths:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix in (".mp4", ".avi", ".webm", ".mkv"):
            encode_video(path, np.full((6, 16, 16, 3), 120, np.uint8), fps=2)
        else:
            Image.new("RGB", (20, 16), (30, 120, 200)).save(path, format="PNG" if path.suffix == ".png" else "JPEG")


def load_converted(name: str, src: Path, tmp_path: Path, monkeypatch, split: str, media=()) -> list[dict]:
    """Convert `split` into a temporary cache root, create `media` there, and return every item of `load_dataset`.

    The dataset's default config is used, except for tiny visual processors (16 px, 4 frames).
    """
    from lavis_ib import load_dataset, registry

    cache = tmp_path / "cache"
    monkeypatch.setenv("LAVIS_IB_CACHE", str(cache))
    convert(name, src, splits=[split], overwrite=True)
    builder = registry.get_builder_class(name)
    block = builder.default_config(vis_processor=TINY_PROCESSORS[builder.default_config().data_type])
    dataset = load_dataset(name, block, splits=[split])[split]
    make_media(dataset.make_item.media_root, media)
    return [dataset[i] for i in range(len(dataset))]
