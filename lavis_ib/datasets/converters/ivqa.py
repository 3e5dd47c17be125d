"""iVQA (antoyang/just-ask): open-ended video QA on YouTube clips, five annotator answers per question.

Originals: `train.csv` / `val.csv` / `test.csv` with columns `video_id` (YouTube id), `start`, `end` (clip bounds,
seconds), `question`, `answer1` .. `answer5`.

Record: `image` = `<video_id>.mp4` (the whole YouTube video; the clip is cut at load time), `start` / `end` =
the clip bounds (omitted when blank), `text_input` = question, `answers` = the non-blank answers in column order,
`text_output` = the most common of them (ties: the earliest column), `question_id` = the `question_id` / `qid`
column when present, else the 0-based data-row index (as just-ask and FrozenBiLM number questions),
`meta` = {video_id}. A row whose five answers are all blank is skipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from lavis_ib.datasets.converters.base import (
    Skip,
    SourceError,
    field,
    find_source,
    load_csv,
    most_common,
    register_converter,
    text,
)

ANSWER_COLUMNS = tuple(f"answer{i}" for i in range(1, 6))
ID_COLUMNS = ("question_id", "qid")


def parse_seconds(value: str, where: str) -> int | float | None:
    """A clip bound in seconds (int when whole), None when blank; anything else is an error naming `where`."""
    value = (value or "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        raise SourceError(f"{where}: expected a number of seconds, got {value!r}") from None
    return int(seconds) if seconds.is_integer() else seconds


def _question_id(row: dict, index: int, where: str) -> int | str:
    column = next((c for c in ID_COLUMNS if (row.get(c) or "").strip()), None)
    if column is None:
        return index
    value = row[column].strip()
    return int(value) if value.isdigit() else value


@register_converter("ivqa", ("test", "train", "val"), "<split>.csv (video_id, start, end, question, answer1..5)")
def convert_ivqa(src: Path, split: str) -> Iterator[dict | Skip]:
    path = find_source(src, f"{split}.csv")
    for index, (line, row) in enumerate(load_csv(path)):
        where = f"{path}:{line}"
        answers = [a.strip() for a in (field(row, c, where) or "" for c in ANSWER_COLUMNS) if a.strip()]
        if not answers:
            yield Skip("all five answers blank")
            continue
        video_id = str(field(row, "video_id", where)).strip()
        record = {
            "image": f"{video_id}.mp4",
            "text_input": str(text(row, "question", where)).strip(),
            "text_output": most_common(answers),
            "answers": answers,
            "question_id": _question_id(row, index, where),
            "meta": {"video_id": video_id},
        }
        for key in ("start", "end"):
            seconds = parse_seconds(field(row, key, where), f"{where}: column {key!r}")
            if seconds is not None:
                record[key] = seconds
        yield record
