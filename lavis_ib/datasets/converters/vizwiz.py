"""VizWiz-VQA (questions from blind users; held-out, scored by the EvalAI server on test-dev).

Originals: `Annotations/{val,test}.json` (or the same files without the folder; LAVIS's `vizwiz/{val,test}.json`
have the same fields), a list of `{image: "VizWiz_val_00000000.jpg", question, answers[{answer,
answer_confidence}×10], answer_type, answerable}`; test has no answers.

Record: image = `<split>/<image>` (the extracted `val.zip` / `test.zip`), text_input = question, answers = the 10
answers, text_output = the most common ("" on test), image_id = the image file name (what EvalAI's
`[{"image", "answer"}]` expects), question_id = its stem (one question per image); answer_type and answerable
under `meta`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from lavis_ib.datasets.converters.base import field, find_source, load_json, most_common, register_converter, text


def read_vizwiz(src: Path, split: str) -> Iterator[dict]:
    """VizWiz records of `split`."""
    path = find_source(src, f"Annotations/{split}.json", f"{split}.json")
    for n, entry in enumerate(load_json(path)):
        where = f"{path}: [{n}]"
        image = field(entry, "image", where)
        answers = [field(a, "answer", f"{where}.answers") for a in entry["answers"]] if "answers" in entry else None
        record = {
            "image": f"{split}/{image}",
            "text_input": text(entry, "question", where),
            "text_output": most_common(answers or []),
            "question_id": Path(image).stem,
            "image_id": image,
        }
        if answers is not None:
            record["answers"] = answers
        meta = {k: entry[k] for k in ("answer_type", "answerable") if k in entry}
        if meta:
            record["meta"] = meta
        yield record


@register_converter("vizwiz", ("val", "test"), "Annotations/<split>.json")
def convert_vizwiz(src: Path, split: str):
    return read_vizwiz(src, split)
