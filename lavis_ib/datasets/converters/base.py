"""What every converter shares: registration, the `Skip` marker, and readers of original annotation files.

A converter is a function `(src: Path, split: str) -> Iterable[record | Skip]` registered under the dataset name
with the splits it knows. It reads the dataset's folder exactly as the authors distribute it and yields unified
records (see `lavis_ib.datasets.records`); anything it leaves out is yielded as a `Skip` with a reason, so the CLI
can count what was dropped and why. Side files (an answer vocabulary) are yielded as `Artifact`s.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from lavis_ib.common.errors import UserError
from lavis_ib.common.registry import registry
from lavis_ib.datasets.encoding import read_utf8


@dataclass(frozen=True)
class Skip:
    """An annotation entry deliberately not converted, with the reason (counted and printed by the CLI)."""

    reason: str


@dataclass(frozen=True)
class Artifact:
    """A side file a converter produces besides the records (e.g. an answer vocabulary), written as JSON."""

    filename: str
    content: Any


ConvertFn = Callable[[Path, str], Iterable[Any]]


@dataclass(frozen=True)
class Converter:
    """A registered converter: the dataset name, its splits (first = default), and the function."""

    name: str
    splits: tuple[str, ...]
    function: ConvertFn
    sources: str

    def __call__(self, src: str | Path, split: str) -> Iterable[Any]:
        if split not in self.splits:
            raise ValueError(f"{self.name}: unknown split {split!r}; this converter knows {', '.join(self.splits)}")
        return self.function(Path(src), split)


def register_converter(name: str, splits: Sequence[str], sources: str) -> Callable[[ConvertFn], ConvertFn]:
    """Decorator registering `fn(src, split)` as the converter of dataset `name`; `sources` names the files read."""

    def decorate(fn: ConvertFn) -> ConvertFn:
        registry.register_converter(name)(Converter(name, tuple(splits), fn, sources))
        return fn

    return decorate


class SourceError(UserError, ValueError):
    """An original annotation file that is missing, unreadable or not in the documented format."""


def find_source(src: Path, *names: str) -> Path:
    """The first of `names` (paths relative to `src`) that exists; otherwise an error listing every path tried."""
    for name in names:
        if (src / name).is_file():
            return src / name
    tried = ", ".join(str(src / name) for name in names)
    raise FileNotFoundError(f"annotation file not found; looked for: {tried}")


def has_source(src: Path, *names: str) -> bool:
    """Whether any of `names` exists under `src` (used to pick between original and LAVIS formats)."""
    return any((src / name).is_file() for name in names)


def lavis_copy(src: Path, lavis_name: str, *original_names: str) -> Path | None:
    """LAVIS's preprocessed file `src/lavis_name` when it exists and none of the original files do; else None.

    The originals always win, so a folder holding both converts from the authors' files.
    """
    if has_source(src, lavis_name) and not has_source(src, *original_names):
        return src / lavis_name
    return None


def load_json(path: Path) -> Any:
    """A JSON file's content; a parse error names the file, line and column."""
    try:
        return json.loads(read_utf8(path))
    except json.JSONDecodeError as error:
        raise SourceError(f"{path}:{error.lineno}:{error.colno}: not valid JSON ({error.msg})") from None


def load_jsonl(path: Path) -> Iterable[tuple[int, dict]]:
    """(line number, object) for each non-empty line of a JSON-lines file; a bad line is named."""
    for number, line in enumerate(read_utf8(path).split("\n"), 1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as error:
            raise SourceError(f"{path}:{number}: not valid JSON ({error.msg})") from None


def load_csv(path: Path) -> Iterable[tuple[int, dict]]:
    """(line number, row dict) for each data row of a CSV file with a header."""
    reader = csv.DictReader(io.StringIO(read_utf8(path), newline=""))
    for row in reader:
        yield reader.line_num, row


def field(entry: Any, key: str, where: str) -> Any:
    """`entry[key]`, or a `SourceError` naming `where` and the keys the entry does have."""
    if not isinstance(entry, dict):
        raise SourceError(f"{where}: expected an object, got {type(entry).__name__}")
    if key not in entry:
        raise SourceError(f"{where}: missing key {key!r} (found {sorted(entry)})")
    return entry[key]


def text(entry: Any, key: str, where: str) -> str:
    """`entry[key]` when it is a string, else a `SourceError` naming `where`, the key and the value found."""
    value = field(entry, key, where)
    if not isinstance(value, str):
        raise SourceError(f"{where}: {key!r} must be a string, got {type(value).__name__} {value!r:.80}")
    return value


def integer_id(entry: Any, key: str, where: str) -> int:
    """`entry[key]` as an int (an int or a string of digits), else a `SourceError` naming `where` and the value."""
    value = field(entry, key, where)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    raise SourceError(f"{where}: {key!r} must be a number (an integer or a string of digits), got {value!r:.80}")


def section(document: Any, key: str, path: Path) -> Any:
    """The top-level `key` of a loaded annotation file, or a `SourceError` naming the file."""
    return field(document, key, str(path))


def most_common(answers: Sequence[str]) -> str:
    """The most frequent answer; ties go to the one given first (deterministic, unlike a random pick)."""
    if not answers:
        return ""
    counts = Counter(answers)
    return max(answers, key=lambda a: (counts[a], -answers.index(a)))


def coco_2014_image(split: str, image_id: int) -> str:
    """`train2014/COCO_train2014_000000123456.jpg`, the COCO-2014 file layout used by VQAv2, OKVQA and COCO."""
    return f"{split}2014/COCO_{split}2014_{int(image_id):012d}.jpg"


def coco_2017_image(split: str, image_id: int) -> str:
    """`train2017/000000123456.jpg`, the COCO-2017 layout used by A-OKVQA and LLaVA."""
    return f"{split}2017/{int(image_id):012d}.jpg"


def read_rosetta_ocr(path: Path) -> dict[str, list[str]]:
    """`image_id → ocr_tokens` from a Rosetta OCR file (`TextVQA_Rosetta_OCR_v0.2_<split>.json`; TextVQA and
    TextCaps)."""
    tokens = {}
    for n, entry in enumerate(section(load_json(path), "data", path)):
        where = f"{path}: data[{n}]"
        tokens[field(entry, "image_id", where)] = [str(t) for t in field(entry, "ocr_tokens", where)]
    return tokens
