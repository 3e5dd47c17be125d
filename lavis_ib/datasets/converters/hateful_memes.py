"""Hateful Memes (binary classification of meme image + text).

Originals (Facebook AI Hateful Memes challenge, the `data/` folder): `train.jsonl` (8,500), `dev_seen.jsonl` (500),
`dev_unseen.jsonl` (540), `test_seen.jsonl` (1,000), `test_unseen.jsonl` (2,000); each line {id, img:
"img/42953.png", label 0|1, text}; test files may have no label. `--src` is the folder holding them (or its parent,
with them under `data/`).

Record: image the `img` path, text_input the meme text, label 0/1, text_output "no"/"yes" ("" and no label when
the line has none), choices ["no", "yes"] (label indexes them), question_id the id.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from lavis_ib.datasets.converters.base import field, find_source, load_jsonl, register_converter, text
from lavis_ib.datasets.converters.vsr import binary_label

CHOICES = ["no", "yes"]
SPLITS = ("dev_seen", "dev_unseen", "train", "test_seen", "test_unseen")


@register_converter("hateful_memes", SPLITS, "<split>.jsonl: train, dev_seen, dev_unseen, test_seen, test_unseen")
def convert_hateful_memes(src: Path, split: str) -> Iterator[dict]:
    path = find_source(src, f"{split}.jsonl", f"data/{split}.jsonl")
    for line, entry in load_jsonl(path):
        where = f"{path}:{line}"
        record = {
            "image": field(entry, "img", where),
            "text_input": text(entry, "text", where),
            "text_output": "",
            "choices": list(CHOICES),
            "question_id": field(entry, "id", where),
        }
        if entry.get("label") is not None:
            record["label"] = binary_label(entry, where)
            record["text_output"] = CHOICES[record["label"]]
        yield record
