"""VSR (Visual Spatial Reasoning), the official zero-shot split.

Originals (cambridgeltl/visual-spatial-reasoning): `data/splits/zeroshot/{train,dev,test}.jsonl`, one JSON per
line {image: "000000050403.jpg", image_link, caption, label 0/1, relation, annotator_id, vote_true_validator_id,
vote_false_validator_id}; label 1 = true. `--src` is the repository as cloned, its `data/` folder, `splits/`,
`zeroshot/`, or a folder of bare `<split>.jsonl` files (LAVIS's mirror of the same lines). Images are one flat folder
of COCO-2017 files.

Record: image the file name, text_input the caption (the statement), label 0/1, text_output "false"/"true",
choices ["false", "true"] (label indexes them), meta relation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from lavis_ib.datasets.converters.base import SourceError, field, find_source, load_jsonl, register_converter, text

CHOICES = ["false", "true"]


def binary_label(entry: dict, where: str) -> int:
    """The entry's `label`, which must be 0 or 1 (a `SourceError` naming `where` otherwise)."""
    label = field(entry, "label", where)
    if type(label) is not int or label not in (0, 1):
        raise SourceError(f"{where}: label must be 0 or 1, got {label!r}")
    return label


ZEROSHOT_FOLDERS = ("data/splits/zeroshot/", "splits/zeroshot/", "zeroshot/", "")  # repository root first


@register_converter("vsr", ("test", "dev", "train"), "data/splits/zeroshot/<split>.jsonl (repository root)")
def convert_vsr(src: Path, split: str) -> Iterator[dict]:
    path = find_source(src, *(f"{folder}{split}.jsonl" for folder in ZEROSHOT_FOLDERS))
    for line, entry in load_jsonl(path):
        where = f"{path}:{line}"
        label = binary_label(entry, where)
        record = {
            "image": field(entry, "image", where),
            "text_input": text(entry, "caption", where),
            "text_output": CHOICES[label],
            "choices": list(CHOICES),
            "label": label,
        }
        if entry.get("relation") is not None:
            record["meta"] = {"relation": entry["relation"]}
        yield record
