"""IconQA multi-text-choice (`choose_txt`) questions, and the `problems.json` + `pid_splits.json` reader it shares
with ScienceQA.

Originals (lupantech/IconQA): `iconqa_data/problems.json` (dict pid → {question, choices, answer (index),
ques_type ∈ choose_txt / choose_img / fill_in_blank, ...}) and `iconqa_data/pid_splits.json` (pid lists under
`choose_txt_<split>`, or under `<split>` for every question type). `--src` is the folder holding `iconqa_data/` (the
repository's `data/`, where `tools/download_data_and_models.sh` unzips it), `iconqa_data` itself, or the repository
root. LAVIS's `annotations_<split>.json` (list of {image, question, choices, answer index}) is read
when the originals are absent.

Record: image `iconqa_data/iconqa/<split>/choose_txt/<pid>/image.png`, text_input the question, choices, label the
answer index, text_output choices[label], question_id the pid. Other question types are skipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence

from lavis_ib.datasets.converters.base import (
    Skip,
    SourceError,
    field,
    find_source,
    lavis_copy,
    load_json,
    register_converter,
    text,
)

MULTI_TEXT_CHOICE = "choose_txt"
ICONQA_DIRS = ("iconqa_data/", "", "data/iconqa_data/")


def read_problems(
    src: Path, split_keys: Sequence[str], folders: Sequence[str] = ("",)
) -> Iterator[tuple[str, dict, str]]:
    """(pid, problem, where) for each pid listed under the first of `split_keys` in `pid_splits.json`, in order.

    `problems.json` and `pid_splits.json` are looked for in each of `folders` (relative to `src`); `where` names
    the file and pid for error messages.
    """
    problems_path = find_source(src, *(f"{folder}problems.json" for folder in folders))
    splits_path = find_source(src, *(f"{folder}pid_splits.json" for folder in folders))
    problems, pid_splits = load_json(problems_path), load_json(splits_path)
    if not isinstance(problems, dict):
        raise SourceError(f"{problems_path}: expected an object mapping pid → problem, got {type(problems).__name__}")
    key = next((k for k in split_keys if isinstance(pid_splits, dict) and k in pid_splits), None)
    if key is None:
        found = sorted(pid_splits) if isinstance(pid_splits, dict) else type(pid_splits).__name__
        raise SourceError(f"{splits_path}: no pid list under {' or '.join(map(repr, split_keys))} (found {found})")
    for pid in pid_splits[key]:
        problem = problems.get(str(pid))
        if problem is None:
            raise SourceError(f"{splits_path}: {key!r} lists pid {pid!r}, which {problems_path} does not have")
        yield str(pid), problem, f"{problems_path}: problem {pid!r}"


def choice_fields(entry: dict, where: str) -> dict:
    """`choices`, `label` (the answer index) and `text_output` (the answer text) of a multiple-choice entry."""
    choices = [str(c) for c in field(entry, "choices", where)]
    answer = field(entry, "answer", where)
    if isinstance(answer, str) and answer in choices:  # some re-distributions store the answer text
        answer = choices.index(answer)
    if not isinstance(answer, int) or isinstance(answer, bool) or not 0 <= answer < len(choices):
        raise SourceError(f"{where}: answer {answer!r} is not an index into its {len(choices)} choices")
    return {"choices": choices, "label": answer, "text_output": choices[answer]}


def _from_originals(src: Path, split: str) -> Iterator[dict | Skip]:
    for pid, problem, where in read_problems(src, (f"{MULTI_TEXT_CHOICE}_{split}", split), ICONQA_DIRS):
        ques_type = field(problem, "ques_type", where)
        if ques_type != MULTI_TEXT_CHOICE:
            yield Skip(f"not multi-text-choice ({ques_type})")
            continue
        folder = problem.get("split") or split
        yield {
            "image": f"iconqa_data/iconqa/{folder}/{MULTI_TEXT_CHOICE}/{pid}/image.png",
            "text_input": text(problem, "question", where),
            **choice_fields(problem, where),
            "question_id": pid,
        }


def _from_lavis(path: Path) -> Iterator[dict]:
    annotations = load_json(path)
    if not isinstance(annotations, list):
        raise SourceError(f"{path}: expected a list of annotations, got {type(annotations).__name__}")
    for n, entry in enumerate(annotations):
        where = f"{path}: [{n}]"
        record = {"image": field(entry, "image", where), "text_input": text(entry, "question", where),
                  **choice_fields(entry, where)}
        question_id = entry.get("question_id", entry.get("pid"))
        if question_id is not None:
            record["question_id"] = question_id
        yield record


@register_converter("iconqa", ("test", "val", "train"),
                    "iconqa_data/problems.json + iconqa_data/pid_splits.json (or LAVIS annotations_<split>.json)")
def convert_iconqa(src: Path, split: str) -> Iterator[dict | Skip]:
    originals = [f"{folder}problems.json" for folder in ICONQA_DIRS]
    lavis_name = f"annotations_{split}.json"
    if copy := lavis_copy(src, lavis_name, *originals):
        return _from_lavis(copy)
    return _from_originals(src, split)
