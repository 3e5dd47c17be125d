"""Visual Dialog v1.0: one record per dialog round, with the caption as context and the earlier rounds as history.

Originals: `visdial_1.0_{train,val,test}.json`, each `{"version", "split", "data": {"questions": [str], "answers":
[str], "dialogs": [{"image_id", "caption", "dialog": [{"question": idx, "answer": idx, "answer_options": [100 idx],
"gt_index": int}]}]}}`; in the test file only the last round of a dialog has `answer_options` and it has no answer.

Record of round r (1-based) of a dialog: `text_input` = question text as given (lowercase, no "?"), `context` =
caption, `history` = `[[question, answer], ...]` of rounds 1..r-1 (a fresh list per record, unlike LAVIS, whose
records all alias one mutated dict), `answer_options` = the 100 option strings, `gt_index`, `text_output` = the
ground-truth answer ("" on test), `question_id` = "<image_id>_<r>", `image_id`, `meta.round` = r.
Images: val/test `VisualDialog_{val,test}2018/VisualDialog_{val,test}2018_<12-digit id>.jpg` (the official zips);
train `train/<12-digit id>.jpg`, one flat folder of COCO train+val images named by id (COCO-2017 file names), since
the id alone does not say whether an image is in COCO train2014 or val2014.
On test, a round without `answer_options` only feeds the history of the round after it and yields no record.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from lavis_ib.datasets.converters.base import (
    SourceError, field, find_source, integer_id, load_json, register_converter, section, text,
)

FILES = {split: f"visdial_1.0_{split}.json" for split in ("val", "train", "test")}


def visdial_image(split: str, image_id: int) -> str:
    """The image path of a dialog, relative to the VisDial image root (see the module docstring)."""
    if split == "train":
        return f"train/{int(image_id):012d}.jpg"
    folder = f"VisualDialog_{split}2018"
    return f"{folder}/{folder}_{int(image_id):012d}.jpg"


def _lookup(table: list[str], index: object, what: str, where: str) -> str:
    """`table[index]`, or a `SourceError` naming `where` when the index is not an int in range."""
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(table):
        raise SourceError(f"{where}: {what} index {index!r} out of range (the file has {len(table)} {what}s)")
    return table[index]


def _round_record(turn: dict, round_number: int, dialog: dict, texts: tuple[list, list], split: str, where: str
                  ) -> tuple[dict | None, list[str] | None]:
    """(record or None, [question, answer] for the history of later rounds or None) of one round."""
    questions, answers = texts
    question = _lookup(questions, field(turn, "question", where), "question", where)
    has_answer = split != "test" or "answer" in turn
    answer = _lookup(answers, field(turn, "answer", where), "answer", where) if has_answer else None
    if split == "test" and "answer_options" not in turn:
        return None, [question, answer] if answer is not None else None
    options = [_lookup(answers, i, "answer", where) for i in field(turn, "answer_options", where)]
    record = {
        "image": visdial_image(split, dialog["image_id"]),
        "text_input": question,
        "text_output": answer or "",
        "question_id": f"{dialog['image_id']}_{round_number}",
        "image_id": dialog["image_id"],
        "context": dialog["caption"],
        "answer_options": options,
    }
    if split != "test" or "gt_index" in turn:
        gt_index = field(turn, "gt_index", where)
        if isinstance(gt_index, bool) or not isinstance(gt_index, int) or not 0 <= gt_index < len(options):
            raise SourceError(f"{where}: gt_index {gt_index!r} out of range ({len(options)} answer options)")
        record["gt_index"] = gt_index
    record["meta"] = {"round": round_number}
    return record, [question, answer] if answer is not None else None


def read_visdial(src: Path, split: str) -> Iterator[dict]:
    """One record per round of every dialog of `split` (test: only the rounds that carry answer options)."""
    path = find_source(src, FILES[split])
    data = section(load_json(path), "data", path)
    where = f"{path}: data"
    texts = (field(data, "questions", where), field(data, "answers", where))
    for n, dialog in enumerate(field(data, "dialogs", where)):
        where = f"{path}: dialogs[{n}]"
        image_id = integer_id(dialog, "image_id", where)
        header = {"image_id": image_id, "caption": text(dialog, "caption", where)}
        history: list[list[str]] = []
        for r, turn in enumerate(field(dialog, "dialog", where), 1):
            record, pair = _round_record(turn, r, header, texts, split, f"{where} (image_id {image_id}) round {r}")
            if record is not None:
                yield {**record, "history": [list(p) for p in history]}
            if pair is not None:
                history.append(pair)


@register_converter("visdial", tuple(FILES), "visdial_1.0_<split>.json")
def convert_visdial(src: Path, split: str):
    return read_visdial(src, split)
