"""The unified record every dataset is converted to, and its JSON-lines / webdataset-shard storage.

A record is a flat JSON object. Training needs `image`, `text_input` and `text_output`; evaluation adds the ground
truth its task scores against. `text_input` holds the *un-templated* text (the question, the answer for question
generation, the statement for VSR, "" for captioning): instruction templates are applied when the dataset is
loaded, so one converted file serves every template set. Readers validate every record and name the file and
line (or shard and key) of a bad one; a line that is not UTF-8 names its byte offset and the encoding it looks like.

A webdataset shard set `<prefix>-NNNNNN.tar` is published with a manifest `<prefix>.manifest.json` (shard names,
record counts, sizes, sha256) written last: readers refuse a set without one (a conversion that never finished), with
shards it does not list (stale ones) or missing, or whose size, checksum or record count differs. A set can also be
read from an object store or web server (`s3://`, `gs://`, `hf://`, `https://`, any fsspec URL) or through a `pipe:`
command (`locations`): there the manifest's list of shards replaces listing the folder, and each shard is fetched
whole, with bounded retries, and checked before any of its records is used (`common.remote`).
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import re
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Iterator, Sequence

import numpy as np

from lavis_ib.common.errors import UserError
from lavis_ib.common.io import atomic_write_path, file_sha256
from lavis_ib.common.registry import closest_match
from lavis_ib.common.remote import fetch
from lavis_ib.datasets.encoding import decode_utf8
from lavis_ib.datasets.locations import Location, ShardURL, as_location

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


class RecordError(UserError, ValueError):
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


def _parse_line(line: bytes, where: str, offset: int = 0) -> dict:
    """The validated record of one line (`offset`: where it starts in its file, for an encoding error)."""
    try:
        record = json.loads(decode_utf8(line, where, offset))
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
                    _parse_line(line, f"{self.path}:{number}", position)
                    offsets.append(position)
                position += len(line)
        self._offsets = np.asarray(offsets, dtype=np.int64)
        self._file, self._file_pid = None, None

    def __len__(self) -> int:
        return len(self._offsets)

    def __getitem__(self, index: int) -> dict:
        if not -len(self) <= index < len(self):
            raise IndexError(f"record {index} out of range for {self.path} ({len(self)} records)")
        if self._file is None or self._file_pid != os.getpid():
            # One handle per process, opened lazily: a forked DataLoader worker would otherwise share the parent's
            # open file (one offset for all), and concurrent seek + readline would read another record's bytes.
            self._file, self._file_pid = open(self.path, "rb"), os.getpid()
        self._file.seek(int(self._offsets[index]))
        return json.loads(self._file.readline())

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_file": None, "_file_pid": None}


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Every record of a JSON-lines file, validated (errors name `path:line`)."""
    records, position = [], 0
    with open(path, "rb") as file:
        for number, line in enumerate(file, 1):
            if line.strip():
                records.append(_parse_line(line, f"{path}:{number}", position))
            position += len(line)
    return records


class OutputExistsError(UserError, FileExistsError):
    """A finished output is already there; converting again needs an explicit overwrite."""


def _check_target(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} already exists; pass overwrite=True (CLI: --overwrite) to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)


def write_jsonl(records: Iterable[dict], path: str | os.PathLike, overwrite: bool = False) -> int:
    """Write validated records to `path` atomically; returns the count written."""
    path = Path(path)
    _check_target(path, overwrite)
    count = 0
    with atomic_write_path(path) as partial, open(partial, "w", encoding="utf-8") as file:
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


MANIFEST_SUFFIX = ".manifest.json"
MANIFEST_FORMAT = "lavis_ib.shards/1"


class ShardSetError(UserError, ValueError):
    """A webdataset shard set that was not published whole: no manifest, or shards that disagree with it."""


def shard_prefix(location: str | os.PathLike | ShardURL) -> Location:
    """The prefix of the shard set a shard (`train-000003.tar`) or pattern (`train-*.tar`) belongs to: `train`."""
    location = as_location(location)
    match = re.fullmatch(r"(.+)-[^-]+\.tar", location.name)
    if match is None or any(c in match.group(1) for c in "*?[{"):
        raise ShardSetError(f"{location}: not a shard name or pattern of the form <prefix>-NNNNNN.tar / <prefix>-*.tar")
    return location.with_name(match.group(1))


def manifest_path(prefix: str | os.PathLike | ShardURL) -> Location:
    """The manifest of shard set `prefix`: `<prefix>.manifest.json` (for `pipe:`, the command naming that file)."""
    prefix = as_location(prefix)
    return prefix.with_name(prefix.name + MANIFEST_SUFFIX)


def shard_files(prefix: Path) -> list[Path]:
    """The shard files of set `prefix` present on disk (`<prefix>-NNNNNN.tar`), sorted."""
    return sorted(prefix.parent.glob(glob_escape(prefix.name) + "-[0-9][0-9][0-9][0-9][0-9][0-9].tar"))


def glob_escape(name: str) -> str:
    """`name` with glob metacharacters escaped."""
    return re.sub(r"([*?\[])", r"[\1]", name)


@dataclass(frozen=True)
class ShardSet:
    """A published shard set: its prefix and the manifest's entries (`name`, `records`, `bytes`, `sha256`)."""

    prefix: Location
    shards: tuple[dict, ...]

    @property
    def paths(self) -> list[Location]:
        return [self.prefix.with_name(entry["name"]) for entry in self.shards]

    @property
    def records(self) -> int:
        return sum(entry["records"] for entry in self.shards)

    def entry(self, path: Location) -> dict:
        """The manifest entry of shard `path`; a shard the manifest does not list is a `ShardSetError`."""
        for entry in self.shards:
            if entry["name"] == path.name:
                return entry
        raise ShardSetError(f"{path.parent}: shard {path.name} is not listed in {manifest_path(self.prefix).name}")


def load_shard_set(location: str | os.PathLike | ShardURL) -> ShardSet:
    """The shard set of a shard or pattern, checked against its manifest: present, complete, nothing stale, sizes.

    Checksums are verified per shard as it is read (`iter_shards`), so opening a large set stays cheap. A remote set
    (a `ShardURL`) is its manifest: a store cannot always be listed (HTTP), so sizes are checked as shards are read.
    """
    prefix = shard_prefix(location)
    if isinstance(prefix, ShardURL):
        return _remote_shard_set(prefix)
    manifest, present = manifest_path(prefix), {path.name: path for path in shard_files(prefix)}
    folder = f"{prefix.parent}: shard set {prefix.name!r}"
    if not manifest.is_file():
        raise ShardSetError(f"{folder} has no manifest {manifest.name} ({len(present)} shard files found): it was "
                            f"not published by a finished conversion; convert it again (with --overwrite)")
    shards = _parse_manifest(manifest.read_bytes(), folder, manifest.name)
    listed = [entry["name"] for entry in shards]
    problems = [f"missing shard {name}" for name in listed if name not in present]
    problems += [f"{name} is not in the manifest (stale, or from another conversion)" for name in present
                 if name not in listed]
    problems += [f"{e['name']} has {present[e['name']].stat().st_size:,} bytes, the manifest says {e['bytes']:,}"
                 for e in shards if e["name"] in present and present[e["name"]].stat().st_size != e["bytes"]]
    if problems:
        raise ShardSetError(f"{folder} does not match {manifest.name}: " + "; ".join(problems[:5])
                            + (f"; and {len(problems) - 5} more" if len(problems) > 5 else ""))
    return ShardSet(prefix, shards)


def _remote_shard_set(prefix: ShardURL) -> ShardSet:
    """The set whose manifest is read from `prefix`'s store (`fetch`, with its retries)."""
    manifest = manifest_path(prefix)
    folder = f"{prefix.parent}: shard set {prefix.name!r}"
    try:
        fetched = fetch(str(manifest), prefix.retry)
    except FileNotFoundError:
        raise ShardSetError(f"{folder} has no manifest {manifest.name} at {manifest}: it was not published by a "
                            f"finished conversion, or the location is wrong (a remote set is found through its "
                            f"manifest, never by listing)") from None
    with fetched.file:
        return ShardSet(prefix, _parse_manifest(fetched.file.read(), folder, manifest.name))


def _parse_manifest(content: bytes, folder: str, name: str) -> tuple[dict, ...]:
    """The shard entries of a manifest's bytes; anything but a consistent `MANIFEST_FORMAT` manifest is an error."""
    try:
        manifest = json.loads(content)
        shards = tuple(manifest["shards"])
        assert all(isinstance(entry["name"], str) and "/" not in entry["name"] for entry in shards)  # file names
        assert manifest["format"] == MANIFEST_FORMAT and manifest["records"] == sum(e["records"] for e in shards)
    except (ValueError, KeyError, TypeError, AssertionError):
        raise ShardSetError(f"{folder}: {name} is not a valid {MANIFEST_FORMAT} manifest") from None
    return shards


def verify_shards(paths: Iterable[str | os.PathLike | ShardURL]) -> dict[Location, dict]:
    """`{shard: manifest entry}` for shards that all belong to published sets (`load_shard_set`)."""
    sets: dict[Location, ShardSet] = {}
    entries = {}
    for path in map(as_location, paths):
        prefix = shard_prefix(path)
        if prefix not in sets:
            sets[prefix] = load_shard_set(path)
        entries[path] = sets[prefix].entry(path)
    return entries


def _write_shard(chunk: list[tuple[int, dict]], path: Path, prefix: str | os.PathLike) -> dict:
    """Write one shard atomically; its manifest entry."""
    with atomic_write_path(path) as partial:
        with tarfile.open(partial, "w") as tar:
            for count, record in chunk:
                validate_record(record, f"record {count + 1} for shards {prefix}")
                _add_member(tar, f"{count:09d}.json", json.dumps(record, ensure_ascii=False).encode())
        entry = {"name": path.name, "records": len(chunk), "bytes": partial.stat().st_size,
                 "sha256": file_sha256(partial)}
    return entry


def write_shards(
    records: Iterable[dict], prefix: str | os.PathLike, per_shard: int = 10_000, overwrite: bool = False
) -> list[Path]:
    """Write records as webdataset tar shards (`<key>.json` members, keys zero-padded) and, last, the set's manifest;
    returns the shard paths. A set killed before its manifest is written is refused by every reader.
    """
    if per_shard < 1:
        raise ValueError(f"per_shard must be ≥ 1, got {per_shard}")
    _check_target(shard_name(prefix, 0), overwrite)
    numbered = enumerate(records)
    entries: list[dict] = []
    while chunk := list(itertools.islice(numbered, per_shard)):
        entries.append(_write_shard(chunk, shard_name(prefix, len(entries)), prefix))
    manifest = {"format": MANIFEST_FORMAT, "records": sum(e["records"] for e in entries), "shards": entries}
    with atomic_write_path(manifest_path(prefix)) as partial:
        partial.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return [shard_name(prefix, n) for n in range(len(entries))]


def iter_shards(paths: Iterable[str | os.PathLike | ShardURL]) -> Iterator[dict]:
    """The validated records of published webdataset shards, in order; each shard's sha256 and record count are
    checked against its set's manifest (errors name the shard, and the member of a bad record)."""
    for path, entry in verify_shards(paths).items():
        yield from read_shard(path, entry)


def read_shard(path: Location, entry: dict) -> Iterator[dict]:
    """The validated records of one shard whose manifest entry is `entry` (`verify_shards`): its bytes are checked
    first (`open_shard`), its record count after the last record."""
    from webdataset.tariterators import group_by_keys, tar_file_expander

    count = 0
    # One shard at a time, split by ShardDataset itself: the stream webdataset's own `WebDataset` would read.
    with open_shard(path, entry) as stream:
        samples = group_by_keys(tar_file_expander([{"url": str(path), "stream": stream}]))
        for count, sample in enumerate(samples, 1):
            yield _parse_line(sample["json"], f"{path}:{sample['__key__']}.json")
    if count != entry["records"]:
        raise ShardSetError(f"{path.parent}: shard {path.name} holds {count} records, its manifest says "
                            f"{entry['records']}")


@contextlib.contextmanager
def open_shard(path: Location, entry: dict) -> Iterator[BinaryIO]:
    """Shard `path` open for reading once its bytes match manifest `entry` (a remote one fetched whole, retried)."""
    if isinstance(path, ShardURL):
        try:
            fetched = fetch(str(path), path.retry, expected_bytes=entry["bytes"])
        except FileNotFoundError:
            raise ShardSetError(f"{path.parent}: missing shard {path.name} (nothing at {path}), which its manifest "
                                f"lists") from None
        digest, file = fetched.sha256, fetched.file
        if fetched.size != entry["bytes"]:
            file.close()
            raise ShardSetError(f"{path.parent}: {path.name} has {fetched.size:,} bytes at {path}, the manifest says "
                                f"{entry['bytes']:,}")
    else:
        digest, file = file_sha256(path), open(path, "rb")
    with file:
        if digest != entry["sha256"]:
            raise ShardSetError(f"{path.parent}: shard {path.name} does not match its manifest's sha256 "
                                f"(changed or corrupted after it was written)")
        yield file
