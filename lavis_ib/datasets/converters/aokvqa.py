"""A-OKVQA (direct-answer and multiple-choice questions on COCO-2017 images) and its question-generation version.

Originals: `aokvqa_v1p0_{train,val,test}.json`, each a list of `{split, image_id, question_id, question, choices[4],
correct_choice_idx, direct_answers[10], difficult_direct_answer, rationales[3]}`; the test file has no
`correct_choice_idx` / `direct_answers`. LAVIS's copy has the same name and adds `image` ("val2017/<12 digits>.jpg"),
which is used when present.

Record: image = `<entry split>2017/<12-digit image_id>.jpg`, text_input = question, answers = the 10 direct answers,
text_output = the most common of them ("" on test), choices, label = correct_choice_idx, question_id, image_id;
`difficult_direct_answer` and `rationales` go under `meta`. QG records swap answer and question (test excluded).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from lavis_ib.datasets.converters.base import (
    Skip,
    coco_2017_image,
    field,
    find_source,
    integer_id,
    load_json,
    most_common,
    register_converter,
    text,
)
from lavis_ib.datasets.converters.vqa import as_question_generation

AOKVQA_FILE = "aokvqa_v1p0_{split}.json"


def read_aokvqa(src: Path, split: str) -> Iterator[dict | Skip]:
    """A-OKVQA records of `split`; answers, target and label only where the file has them."""
    path = find_source(src, AOKVQA_FILE.format(split=split))
    for n, entry in enumerate(load_json(path)):
        where = f"{path}: [{n}]"
        image = entry.get("image") or coco_2017_image(
            field(entry, "split", where), integer_id(entry, "image_id", where))
        answers = entry.get("direct_answers")
        record = {
            "image": image,
            "text_input": text(entry, "question", where),
            "text_output": most_common(answers or []),
            "question_id": field(entry, "question_id", where),
            "image_id": field(entry, "image_id", where),
            "choices": field(entry, "choices", where),
        }
        if answers is not None:
            record["answers"] = answers
        if entry.get("correct_choice_idx") is not None:
            record["label"] = entry["correct_choice_idx"]
        meta = {k: entry[k] for k in ("difficult_direct_answer", "rationales") if k in entry}
        if meta:
            record["meta"] = meta
        yield record


@register_converter("aokvqa", ("train", "val", "test"), "aokvqa_v1p0_<split>.json (original or LAVIS copy)")
def convert_aokvqa(src: Path, split: str):
    return read_aokvqa(src, split)


@register_converter("aokvqa_qg", ("train", "val"), "the A-OKVQA files aokvqa_v1p0_<split>.json")
def convert_aokvqa_qg(src: Path, split: str):
    return as_question_generation(read_aokvqa(src, split))
