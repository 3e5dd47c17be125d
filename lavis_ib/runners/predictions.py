"""Resumable per-split prediction files: `predictions.jsonl` plus the part files ranks append to as samples finish.

Layout of one split's folder: `protocol.json` (what produced the predictions: dataset, records, model, protocol),
`parts/rank<r>.jsonl` (appended line by line while evaluating) and, once the split is complete,
`predictions.jsonl` (every prediction, in record order). A re-run with the same job id reads all of them, so it
skips what is done whatever the world size was; a partial last line (a kill mid-write) is cut off and redone, and
a folder written under a different protocol is refused rather than mixed in.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any, Iterable, Iterator

from lavis_ib.common.io import atomic_write_path
from lavis_ib.common.schema import ConfigError

log = logging.getLogger(__name__)

PREDICTIONS = "predictions.jsonl"
PROTOCOL = "protocol.json"
PARTS = "parts"


def record_order(record_id: str) -> tuple:
    """Sort key: numeric ids in numeric order (record indices), then any others."""
    return (0, int(record_id), "") if record_id.isdigit() else (1, 0, record_id)


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """`{"a": {"b": 1}}` → `{"a.b": 1}`, for naming the keys two protocols differ in."""
    if not isinstance(value, dict):
        return {prefix: value}
    flat: dict[str, Any] = {}
    for key, item in value.items():
        flat.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def differences(old: dict, new: dict) -> list[str]:
    """`key: old → new` for every flattened key whose value differs."""
    a, b = flatten(old), flatten(new)
    return [f"{key}: {a.get(key)!r} → {b.get(key)!r}" for key in sorted(set(a) | set(b)) if a.get(key) != b.get(key)]


def read_lines(path: Path, repair: bool) -> list[dict]:
    """The JSON records of a JSON-lines file; an incomplete last line (no newline: the write was interrupted) is
    dropped, and with `repair` cut off the file so appends continue on a clean line. A complete line that is not
    JSON is an error naming `file:line`."""
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):
        log.warning("%s: dropping an incomplete last line (%d bytes, an interrupted write); it is redone",
                    path, len(data) - end)
        if repair:
            with open(path, "r+b") as handle:
                handle.truncate(end)
    records = []
    for number, line in enumerate(data[:end].splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}:{number}: not a JSON prediction record ({error.msg})") from None
        if not isinstance(record, dict) or not isinstance(record.get("id"), str):
            raise ValueError(f"{path}:{number}: a prediction record must be an object with a string 'id'")
        records.append(record)
    return records


class PredictionStore:
    """The prediction files of one dataset split (module docstring)."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)

    @property
    def parts(self) -> Path:
        return self.directory / PARTS

    def part_path(self, rank: int) -> Path:
        return self.parts / f"rank{rank}.jsonl"

    def check_protocol(self, protocol: dict) -> None:
        """Record `protocol` for a new folder; for an existing one, refuse a different protocol, naming what
        changed (predictions of two configs must never be mixed into one metric)."""
        path = self.directory / PROTOCOL
        if path.is_file():
            recorded = json.loads(path.read_text(encoding="utf-8"))
            changed = differences(recorded, protocol)
            if changed:
                raise ConfigError(
                    f"{self.directory}: these predictions were made with a different configuration "
                    f"({'; '.join(changed[:6])}{'; ...' if len(changed) > 6 else ''}); use another run.job_id, or "
                    f"delete the folder to start over"
                )
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        with atomic_write_path(path) as temporary:
            temporary.write_text(json.dumps(protocol, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    def load(self, repair: bool = True) -> dict[str, dict]:
        """Every prediction already made, by id (complete file first, then parts); a prediction replaces a
        `skipped` entry of the same record (a retry), other conflicting duplicates raise."""
        sources = [self.directory / PREDICTIONS] if (self.directory / PREDICTIONS).is_file() else []
        sources += sorted(self.parts.glob("rank*.jsonl")) if self.parts.is_dir() else []
        done: dict[str, dict] = {}
        for source in sources:
            for record in read_lines(source, repair):
                previous = done.setdefault(record["id"], record)
                if previous == record or "skipped" in record:
                    continue  # a record unreadable in a later pass keeps the prediction made when it was readable
                if "skipped" not in previous:
                    raise ValueError(f"{source}: record id {record['id']!r} was predicted twice with different "
                                     f"results; delete {self.directory} and evaluate again")
                done[record["id"]] = record  # a retry of a record that was unreadable before
        return done

    def append(self, rank: int, records: Iterable[dict]) -> None:
        """Add finished predictions to this rank's part file (one line each, flushed before returning)."""
        lines = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
        if not lines:
            return
        self.parts.mkdir(parents=True, exist_ok=True)
        with open(self.part_path(rank), "a", encoding="utf-8") as handle:
            handle.write(lines)
            handle.flush()

    def finalize(self, records: dict[str, dict]) -> Path:
        """Write the complete `predictions.jsonl` in record order (atomically), then remove the part files."""
        path = self.directory / PREDICTIONS
        with atomic_write_path(path) as temporary, open(temporary, "w", encoding="utf-8") as handle:
            for key in sorted(records, key=record_order):
                handle.write(json.dumps(records[key], ensure_ascii=False) + "\n")
        shutil.rmtree(self.parts, ignore_errors=True)
        return path

    def write_json(self, name: str, content: Any) -> Path:
        """A result file of this split (`metrics.json`, `result.json`, a submission), written atomically."""
        path = self.directory / name
        with atomic_write_path(path) as temporary:
            temporary.write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return path


def iter_records(records: dict[str, dict]) -> Iterator[dict]:
    """Predictions in record order."""
    for key in sorted(records, key=record_order):
        yield records[key]
