"""The unified record every dataset is converted to, and its JSON-lines / webdataset-shard storage.

A record is a flat JSON object. Training needs `image`, `text_input` and `text_output`; evaluation adds the ground
truth its task scores against. `text_input` holds the *un-templated* text (the question, the answer for question
generation, the statement for VSR, "" for captioning): instruction templates are applied when the dataset is
loaded, so one converted file serves every template set. Readers validate every record and name the file and
line (or shard and key) of a bad one.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import tarfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from lavis_ib.common.registry import closest_match

_STR = (str,)
_ID = (str, int)
_NUMBER = (int, float)


@dataclass(frozen=True)
class Field:
    """One record field: accepted JSON types, whether it is required, and what it holds."""

    types: tuple
    doc: str
    required: bool = False
    item_types: tuple | None = None  # element types when the field is a list


FIELDS: dict[str, Field] = {
    "image": Field((str, list), "image path, video path, or list of frame paths (relative to the media root)", True, _STR),
    "text_input": Field(_STR, "un-templated input text: question, statement, answer (QG), '' for captions", True),
    "text_output": Field(_STR, "target text: caption, answer, question (QG); '' when a split has no answers", True),
    "start": Field(_NUMBER, "video clip start, seconds"),
    "end": Field(_NUMBER, "video clip end, seconds"),
    "question_id": Field(_ID, "id of the question, as the official scorer expects it"),
    "image_id": Field(_ID, "id of the image, as the official scorer expects it"),
    "answers": Field((list,), "all ground-truth answers (VQA: 10 human answers, with repeats)", item_types=_STR),
    "captions": Field((list,), "all reference captions", item_types=_STR),
    "choices": Field((list,), "multiple-choice options, in order", item_types=_STR),
    "label": Field((int,), "index of the correct choice, or the class (0/1) of a binary task"),
    "ocr_tokens": Field((list,), "scene-text tokens (Rosetta OCR or rendered words)", item_types=_STR),
    "context": Field(_STR, "textual context: ScienceQA hint, VisDial caption"),
    "history": Field((list,), "earlier dialog turns as [question, answer] pairs", item_types=(list,)),
    "answer_options": Field((list,), "VisDial: the 100 candidate answers of a round", item_types=_STR),
    "gt_index": Field((int,), "VisDial: index of the ground-truth answer in answer_options"),
    "meta": Field((dict,), "anything else a dataset keeps (domain, question type, split of origin, ...)"),
}
REQUIRED = tuple(name for name, spec in FIELDS.items() if spec.required)


class RecordError(ValueError):
    """A record that does not follow the schema; the message names where it came from."""


def validate_record(record: Any, where: str) -> dict:
    """`record` itself when it follows the schema; otherwise `RecordError` naming `where` and the bad field."""
    if not isinstance(record, dict):
        raise RecordError(f"{where}: expected a JSON object, got {type(record).__name__}")
    for name in REQUIRED:
        if name not in record:
            raise RecordError(f"{where}: missing required field {name!r} (record has {sorted(record)})")
    for name, value in record.items():
        spec = FIELDS.get(name)
        if spec is None:
            hint = closest_match(name, FIELDS)
            suggestion = f"; did you mean {hint!r}?" if hint else ""
            raise RecordError(f"{where}: unknown field {name!r}{suggestion} (extra data belongs under 'meta')")
        if value is None and not spec.required:
            continue
        if not isinstance(value, spec.types) or isinstance(value, bool):
            expected = " or ".join(t.__name__ for t in spec.types)
            raise RecordError(f"{where}: field {name!r} must be {expected}, got {type(value).__name__} {value!r:.80}")
        if isinstance(value, list) and spec.item_types is not None:
            bad = next((v for v in value if not isinstance(v, spec.item_types)), None)
            if bad is not None:
                expected = " or ".join(t.__name__ for t in spec.item_types)
                raise RecordError(f"{where}: every item of {name!r} must be {expected}, got {bad!r:.80}")
    if isinstance(record["image"], list) and not record["image"]:
        raise RecordError(f"{where}: field 'image' is an empty list of frames")
    return record


def _parse_line(line: bytes, where: str) -> dict:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise RecordError(f"{where}: not valid JSON ({error.msg} at column {error.colno})") from None
    return validate_record(record, where)


class JsonlRecords(Sequence):
    """Records of one JSON-lines file with random access: every line is validated once, only byte offsets are kept.

    Keeping offsets instead of parsed objects lets a 14M-record file (Web CapFilt) be indexed in ~110 MB.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"record file not found: {self.path}")
        offsets = []
        with open(self.path, "rb") as file:
            position, number = 0, 0
            for number, line in enumerate(file, 1):
                if line.strip():
                    _parse_line(line, f"{self.path}:{number}")
                    offsets.append(position)
                position += len(line)
        self._offsets = np.asarray(offsets, dtype=np.int64)
        self._file = None

    def __len__(self) -> int:
        return len(self._offsets)

    def __getitem__(self, index: int) -> dict:
        if not -len(self) <= index < len(self):
            raise IndexError(f"record {index} out of range for {self.path} ({len(self)} records)")
        if self._file is None:  # opened lazily, so each DataLoader worker gets its own handle
            self._file = open(self.path, "rb")
        self._file.seek(int(self._offsets[index]))
        return json.loads(self._file.readline())

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_file": None}


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Every record of a JSON-lines file, validated (errors name `path:line`)."""
    with open(path, "rb") as file:
        return [_parse_line(line, f"{path}:{n}") for n, line in enumerate(file, 1) if line.strip()]


class OutputExistsError(FileExistsError):
    """A finished output is already there; converting again needs an explicit overwrite."""


def _check_target(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} already exists; pass overwrite=True (CLI: --overwrite) to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)


@contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """A temporary sibling of `path` to write: renamed to `path` on success, removed on failure, so a crash never
    leaves a truncated file that looks finished."""
    partial = path.with_name(path.name + ".partial")
    try:
        yield partial
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def write_jsonl(records: Iterable[dict], path: str | os.PathLike, overwrite: bool = False) -> int:
    """Write validated records to `path` atomically; returns the count written."""
    path = Path(path)
    _check_target(path, overwrite)
    count = 0
    with atomic_file(path) as partial, open(partial, "w", encoding="utf-8") as file:
        for count, record in enumerate(records, 1):
            validate_record(record, f"record {count} for {path}")
            file.write(json.dumps(record, ensure_ascii=False) + "\n")
    return count


def shard_name(prefix: str | os.PathLike, index: int) -> Path:
    """The file name of shard `index` of a shard set: `<prefix>-000000.tar`."""
    return Path(f"{prefix}-{index:06d}.tar")


def _add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_shards(
    records: Iterable[dict], prefix: str | os.PathLike, per_shard: int = 10_000, overwrite: bool = False
) -> list[Path]:
    """Write records as webdataset tar shards (`<key>.json` members, keys zero-padded); returns the shard paths.

    Each shard is written atomically (`atomic_file`).
    """
    if per_shard < 1:
        raise ValueError(f"per_shard must be ≥ 1, got {per_shard}")
    _check_target(shard_name(prefix, 0), overwrite)
    numbered = enumerate(records)
    paths: list[Path] = []
    while chunk := list(itertools.islice(numbered, per_shard)):
        path = shard_name(prefix, len(paths))
        with atomic_file(path) as partial, tarfile.open(partial, "w") as tar:
            for count, record in chunk:
                validate_record(record, f"record {count + 1} for shards {prefix}")
                _add_member(tar, f"{count:09d}.json", json.dumps(record, ensure_ascii=False).encode())
        paths.append(path)
    return paths


def iter_shards(paths: Iterable[str | os.PathLike]) -> Iterator[dict]:
    """The validated records of webdataset shards, in order (errors name the shard and member)."""
    import webdataset as wds

    for path in paths:
        # One shard at a time and split by ShardDataset itself: webdataset must not split by node or worker again.
        for sample in wds.WebDataset(str(path), shardshuffle=False, empty_check=False, nodesplitter=None,
                                     workersplitter=None):
            yield _parse_line(sample["json"], f"{path}:{sample['__key__']}.json")
