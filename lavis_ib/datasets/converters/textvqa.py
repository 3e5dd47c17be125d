"""TextVQA 0.5.1 with Rosetta OCR tokens (held-out; the paper evaluates val).

Originals: `TextVQA_0.5.1_{train,val,test}.json` (`{"data": [{question, image_id, image_classes, answers[10],
question_id, set_name, ...}]}`, no answers in test) and `TextVQA_Rosetta_OCR_v0.2_{train,val,test}.json`
(`{"data": [{image_id, ocr_tokens[], ocr_info[]}]}`).

Record: image = `train_images/<image_id>.jpg` (train and val images share that folder; test: `test_images/`),
text_input = question, ocr_tokens (all Rosetta tokens of the image, [] when it has no entry; the prompt keeps the
first 30), answers = the 10 answers, text_output = the most common ("" on test), question_id, image_id;
image_classes under `meta`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from lavis_ib.datasets.converters.base import (
    field,
    find_source,
    load_json,
    most_common,
    read_rosetta_ocr,
    register_converter,
    section,
    text,
)

QUESTIONS_FILE = "TextVQA_0.5.1_{split}.json"
OCR_FILE = "TextVQA_Rosetta_OCR_v0.2_{split}.json"
IMAGE_FOLDERS = {"train": "train_images", "val": "train_images", "test": "test_images"}


def read_textvqa(src: Path, split: str) -> Iterator[dict]:
    """TextVQA records of `split`, each with its image's OCR tokens."""
    questions_path = find_source(src, QUESTIONS_FILE.format(split=split))
    ocr = read_rosetta_ocr(find_source(src, OCR_FILE.format(split=split)))
    for n, entry in enumerate(section(load_json(questions_path), "data", questions_path)):
        where = f"{questions_path}: data[{n}]"
        image_id = field(entry, "image_id", where)
        answers = entry.get("answers")
        record = {
            "image": f"{IMAGE_FOLDERS[split]}/{image_id}.jpg",
            "text_input": text(entry, "question", where),
            "text_output": most_common(answers or []),
            "question_id": field(entry, "question_id", where),
            "image_id": image_id,
            "ocr_tokens": ocr.get(image_id, []),
        }
        if answers is not None:
            record["answers"] = answers
        if "image_classes" in entry:
            record["meta"] = {"image_classes": entry["image_classes"]}
        yield record


@register_converter("textvqa", ("val", "train", "test"),
                    "TextVQA_0.5.1_<split>.json + TextVQA_Rosetta_OCR_v0.2_<split>.json")
def convert_textvqa(src: Path, split: str):
    return read_textvqa(src, split)
