"""The demo page's gallery: scenes of the synthetic world with the instruction each task's evaluation asks about them.

A small world is drawn and converted by the world's own code (`synthetic.generate_world`, the task converters), and
each example's instruction is rendered by its dataset's evaluation templates, so the page asks what `make demo`'s
validation (held-in tasks) and zero-shot evaluation (held-out tasks) ask.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

GALLERY = (  # (dataset, split, what the page calls it)
    ("synthetic_caption", "val", "held-in: captioning"),
    ("synthetic_vqa", "val", "held-in: VQA"),
    ("synthetic_ocrvqa", "val", "held-in: OCR-VQA"),
    ("synthetic_count", "test", "held-out: counting"),
    ("synthetic_spatial", "test", "held-out: true/false spatial"),
    ("synthetic_choice", "test", "held-out: multiple choice (ranked)"),
)
WORLD_IMAGES = 40  # enough for val and test scenes of every kind


@dataclass(frozen=True)
class GalleryExample:
    """One gallery entry: the scene, its label, the instruction, and the candidates when the task ranks them."""

    label: str
    image: str
    instruction: str
    candidates: tuple[str, ...] = ()


def gallery_examples(folder: Path) -> list[GalleryExample]:
    """Draw a small world under `folder` and return one example per `GALLERY` task (the n-th entry its n-th record,
    so the scenes differ)."""
    from lavis_ib.common.registry import registry  # the dataset builders import torch: not before the page is up
    from lavis_ib.datasets import synthetic

    source = folder / "synthetic"
    synthetic.generate_world(source, n_images=WORLD_IMAGES, n_videos=0)
    examples = []
    for position, (name, split, label) in enumerate(GALLERY):
        records = [r for r in registry.get_converter_class(name)(source, split) if isinstance(r, dict)]
        index = position % len(records)
        record = records[index]
        builder = registry.get_builder_class(name)()
        item = builder.item_maker(split, vis_path=str(source))(record, index)
        protocol = builder.config.eval
        candidates = tuple(record["choices"]) if protocol is not None and protocol.mode == "rank" else ()
        examples.append(GalleryExample(label, str(source / record["image"]), item["text_input"], candidates))
    return examples


class Gallery:
    """The gallery's examples, drawn under `folder` once the page is up (drawing needs the dataset code and torch,
    which the page itself does not): a visitor who comes earlier waits for them."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.examples: list[GalleryExample] = []
        self.ready = threading.Event()

    def draw(self) -> None:
        try:
            self.examples = gallery_examples(self.folder)
        finally:
            self.ready.set()

    def wait(self) -> list[GalleryExample]:
        self.ready.wait()
        return self.examples
