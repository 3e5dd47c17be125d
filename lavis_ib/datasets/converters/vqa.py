"""VQAv2 and OK-VQA (VQA-format question + annotation files), and their question-generation versions.

Originals: VQAv2 `v2_OpenEnded_mscoco_{train,val}2014_questions.json` + `v2_mscoco_{train,val}2014_annotations.json`
(test: `v2_OpenEnded_mscoco_test2015_questions.json`, no answers); OK-VQA `OpenEnded_mscoco_{train,val}2014_
questions.json` + `mscoco_{train,val}2014_annotations.json`. LAVIS's `vqa_{train,val}.json` / `okvqa_{train,val}.json`
(lists with `question_id, question, answer[10], image`) are read when the originals are absent.

VQA records keep all 10 answers; `text_output` is the most frequent one (VQAv2's `multiple_choice_answer`).
QG records swap the roles: `text_input` is that answer and `text_output` the question.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from lavis_ib.datasets.converters.base import (
    Skip,
    coco_2014_image,
    field,
    find_source,
    integer_id,
    lavis_copy,
    load_json,
    most_common,
    register_converter,
    section,
    text,
)

VQAV2_FILES = {
    "train": ("v2_OpenEnded_mscoco_train2014_questions.json", "v2_mscoco_train2014_annotations.json"),
    "val": ("v2_OpenEnded_mscoco_val2014_questions.json", "v2_mscoco_val2014_annotations.json"),
    "test": ("v2_OpenEnded_mscoco_test2015_questions.json", None),
}
OKVQA_FILES = {
    "train": ("OpenEnded_mscoco_train2014_questions.json", "mscoco_train2014_annotations.json"),
    "val": ("OpenEnded_mscoco_val2014_questions.json", "mscoco_val2014_annotations.json"),
}
LAVIS_FILES = {"vqav2": "vqa_{split}.json", "okvqa": "okvqa_{split}.json"}



def _coco_image(split: str, image_id: int) -> str:
    return coco_2014_image(split, image_id) if split != "test" else f"test2015/COCO_test2015_{int(image_id):012d}.jpg"


def _from_originals(src: Path, split: str, questions_name: str, annotations_name: str | None) -> Iterator[dict | Skip]:
    questions_path = find_source(src, questions_name)
    questions = section(load_json(questions_path), "questions", questions_path)
    annotations = {}
    if annotations_name is not None:
        annotations_path = find_source(src, annotations_name)
        for n, entry in enumerate(section(load_json(annotations_path), "annotations", annotations_path)):
            annotations[field(entry, "question_id", f"{annotations_path}: annotations[{n}]")] = entry
    for n, question in enumerate(questions):
        where = f"{questions_path}: questions[{n}]"
        question_id = field(question, "question_id", where)
        record = {
            "image": _coco_image(split, integer_id(question, "image_id", where)),
            "text_input": text(question, "question", where),
            "text_output": "",
            "question_id": question_id,
            "image_id": question["image_id"],
        }
        if annotations_name is not None:
            annotation = annotations.get(question_id)
            if annotation is None:
                yield Skip("question without annotation")
                continue
            where = f"annotation of question {question_id}"
            answers = [field(a, "answer", where) for a in field(annotation, "answers", where)]
            record["answers"] = answers
            record["text_output"] = annotation.get("multiple_choice_answer") or most_common(answers)
            kinds = {k: annotation[k] for k in ("question_type", "answer_type") if k in annotation}
            if kinds:
                record["meta"] = kinds
        yield record


def _from_lavis(path: Path) -> Iterator[dict]:
    for n, entry in enumerate(load_json(path)):
        where = f"{path}: [{n}]"
        answers = field(entry, "answer", where)
        answers = [answers] if isinstance(answers, str) else list(answers)
        yield {
            "image": field(entry, "image", where),
            "text_input": text(entry, "question", where),
            "text_output": most_common(answers),
            "answers": answers,
            "question_id": field(entry, "question_id", where),
        }


def read_vqa(name: str, src: Path, split: str) -> Iterator[dict | Skip]:
    """VQA records of `split` from the original files, or from LAVIS's JSON when only that is present."""
    files = VQAV2_FILES if name == "vqav2" else OKVQA_FILES
    questions_name, annotations_name = files[split]
    lavis_name = LAVIS_FILES[name].format(split=split)
    if copy := lavis_copy(src, lavis_name, questions_name):
        return _from_lavis(copy)
    return _from_originals(src, split, questions_name, annotations_name)


def as_question_generation(entries) -> Iterator[dict | Skip]:
    """QG records from VQA records: the answer becomes the input and the question the target."""
    for entry in entries:
        if isinstance(entry, Skip):
            yield entry
        elif not entry["text_output"]:
            yield Skip("no answer to generate a question for")
        else:
            qg = {k: v for k, v in entry.items() if k not in ("answers", "meta")}
            qg["text_input"], qg["text_output"] = entry["text_output"], entry["text_input"]
            yield qg


@register_converter("vqav2", ("train", "val", "test"), "v2_OpenEnded_mscoco_<split>2014_questions.json + "
                    "v2_mscoco_<split>2014_annotations.json (or LAVIS vqa_<split>.json)")
def convert_vqav2(src: Path, split: str):
    return read_vqa("vqav2", src, split)


@register_converter("okvqa", ("train", "val"), "OpenEnded_mscoco_<split>2014_questions.json + "
                    "mscoco_<split>2014_annotations.json (or LAVIS okvqa_<split>.json)")
def convert_okvqa(src: Path, split: str):
    return read_vqa("okvqa", src, split)


@register_converter("vqav2_qg", ("train", "val"), "the VQAv2 files")
def convert_vqav2_qg(src: Path, split: str):
    return as_question_generation(read_vqa("vqav2", src, split))


@register_converter("okvqa_qg", ("train", "val"), "the OK-VQA files")
def convert_okvqa_qg(src: Path, split: str):
    return as_question_generation(read_vqa("okvqa", src, split))
