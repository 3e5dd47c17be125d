"""ScienceQA, image-context (IMG) questions only.

Originals (lupantech/ScienceQA, `data/scienceqa/`): `problems.json` (dict pid → {question, choices[2-5], answer
(index), hint, image: "image.png" | null, task, grade, subject, topic, category, skill, lecture, solution, split})
and `pid_splits.json` ({train, val, test, minival, ...}: pid lists); images from `tools/download.sh` at
`images/<split>/<pid>/image.png`. `--src` is `data/scienceqa` (or the repository root). The file layout is read by
the reader shared with IconQA.

Record: image `images/<split of the problem>/<pid>/<image>`, text_input the question, context the hint ("" when
absent), choices, label the answer index, text_output choices[label], question_id the pid, meta subject/grade
(plus topic/category/skill). Questions without an image are skipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from lavis_ib.datasets.converters.base import Skip, field, register_converter, text
from lavis_ib.datasets.converters.iconqa import choice_fields, read_problems

SCIENCEQA_DIRS = ("", "data/scienceqa/")
META_KEYS = ("subject", "grade", "topic", "category", "skill")


@register_converter("scienceqa", ("test", "val", "train", "minival"),
                    "problems.json + pid_splits.json (+ images/<split>/<pid>/image.png)")
def convert_scienceqa(src: Path, split: str) -> Iterator[dict | Skip]:
    for pid, problem, where in read_problems(src, (split,), SCIENCEQA_DIRS):
        image = field(problem, "image", where)
        if not image:
            yield Skip("no image context")
            continue
        folder = problem.get("split") or split  # minival pids are val problems, stored under images/val/
        record = {
            "image": f"images/{folder}/{pid}/{image}",
            "text_input": text(problem, "question", where),
            "context": problem.get("hint") or "",
            **choice_fields(problem, where),
            "question_id": pid,
        }
        meta = {key: problem[key] for key in META_KEYS if problem.get(key) is not None}
        if meta:
            record["meta"] = meta
        yield record
