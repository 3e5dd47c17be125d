"""GQA balanced questions (held-out visual reasoning; the paper evaluates test-dev).

Originals: `{testdev,val,train}_balanced_questions.json`, each a dict `question_id → {imageId, question, answer,
fullAnswer, isBalanced, types{structural, semantic, detailed}, semantic, annotations, ...}`. LAVIS's files have the
same names but hold a list of `{image, question, question_id, answer}`; the content decides which is read.

Record: image = `<imageId>.jpg` (GQA's `images/` folder), text_input = question, text_output = answer,
answers = [answer], question_id (string), image_id; `fullAnswer` and `types` under `meta`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from lavis_ib.datasets.converters.base import SourceError, field, find_source, load_json, register_converter, text

GQA_FILE = "{split}_balanced_questions.json"


def _record(entry: dict, image: str, question_id: str, where: str) -> dict:
    answer = field(entry, "answer", where)
    return {"image": image, "text_input": text(entry, "question", where), "text_output": answer,
            "answers": [answer], "question_id": question_id}


def _from_original(path: Path, questions: dict) -> Iterator[dict]:
    for question_id, entry in questions.items():
        where = f"{path}: [{question_id!r}]"
        image_id = field(entry, "imageId", where)
        record = _record(entry, f"{image_id}.jpg", str(question_id), where)
        record["image_id"] = image_id
        meta = {k: entry[k] for k in ("fullAnswer", "types") if k in entry}
        if meta:
            record["meta"] = meta
        yield record


def _from_lavis(path: Path, questions: list) -> Iterator[dict]:
    for n, entry in enumerate(questions):
        where = f"{path}: [{n}]"
        yield _record(entry, field(entry, "image", where), str(field(entry, "question_id", where)), where)


@register_converter("gqa", ("testdev", "val", "train"), "<split>_balanced_questions.json (original dict or LAVIS list)")
def convert_gqa(src: Path, split: str):
    path = find_source(src, GQA_FILE.format(split=split))
    questions = load_json(path)
    if isinstance(questions, dict):
        return _from_original(path, questions)
    if isinstance(questions, list):
        return _from_lavis(path, questions)
    raise SourceError(f"{path}: expected a dict of questions (GQA) or a list (LAVIS), got {type(questions).__name__}")
