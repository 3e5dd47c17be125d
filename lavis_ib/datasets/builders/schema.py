"""The config schema of a dataset (`configs/datasets/<name>/defaults.yaml`), declared once as dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Mapping, Optional

from lavis_ib.common.registry import closest_match

ROLES = ("held_in", "held_out")
DATA_TYPES = ("images", "videos")
ANSWER_SAMPLING = ("most_common", "random")


@dataclass
class Storage:
    """A file or folder: absolute, `~`, or relative to the data root (`data_root`, default the cache root)."""

    storage: str


def split_storage(split: str, entry: Any) -> Storage:
    """One `build_info.annotations` entry as a `Storage`: `{storage: path}` (or the bare path); an unknown key is an
    error with the closest valid one, so a typo never falls back to a default file."""
    where = f"build_info.annotations.{split}"
    if isinstance(entry, Storage):
        return entry
    if isinstance(entry, str):
        return Storage(entry)
    if not isinstance(entry, Mapping):
        raise ValueError(f"'{where}' must be {{storage: <path>}} or a path, got {entry!r}")
    valid = [f.name for f in fields(Storage)]
    for key in entry:
        if key not in valid:
            hint = closest_match(str(key), valid)
            suggestion = f"; did you mean '{where}.{hint}'?" if hint else ""
            raise ValueError(f"unknown key '{where}.{key}'{suggestion} (valid keys: {', '.join(valid)})")
    if not isinstance(entry.get("storage"), str):
        raise ValueError(f"'{where}.storage' must be a path (str), got {entry.get('storage')!r}")
    return Storage(entry["storage"])


@dataclass
class BuildInfo:
    """Where the converted records of each split live, and the root their media paths are relative to."""

    # split → {storage: <split>.jsonl | shard pattern <split>-*.tar}, each entry checked into a `Storage` (the
    # common schema checks dict values only as `Any`)
    annotations: dict[str, Any]
    images: Optional[Storage] = None
    videos: Optional[Storage] = None
    answer_list: Optional[Storage] = None  # candidate answers for vocabulary ranking (MSVD-QA, MSRVTT-QA)

    def __post_init__(self):
        self.annotations = {split: split_storage(split, entry) for split, entry in self.annotations.items()}


@dataclass
class Instruction:
    """How `text_input` becomes the instruction: a template family name, a list of templates, or null (verbatim)."""

    train: Any = None
    eval: Any = None
    ocr_prefix: bool = False  # prepend "OCR tokens: ... . " (TextCaps, OCR-VQA)


@dataclass
class DatasetConfig:
    """One dataset: storage, processors, instruction templates, and how it takes part in mixed training."""

    build_info: BuildInfo
    data_root: Optional[str] = None  # root of relative storage paths (default: load_dataset's data_root, else cache)
    data_type: str = "images"
    role: str = "held_in"
    category: str = ""
    metric: str = ""
    dataset_card: Optional[str] = None
    type: str = "default"
    vis_processor: Optional[dict] = None
    text_processor: Optional[dict] = None
    instruction: Instruction = field(default_factory=Instruction)
    answer_sampling: str = "most_common"  # training target for multi-answer VQA: the record's, or a random unique
    sample_ratio: float = 1.0  # multiplier on sqrt(size) in balanced sampling
    strict: bool = False  # a corrupt or missing image/video is an error instead of a counted skip
    max_consecutive_skips: int = 8  # unreadable records in a row (train or eval) that stop a run: wrong media root
    seed: int = 0

    def __post_init__(self):
        for key, value, allowed in (
            ("role", self.role, ROLES),
            ("data_type", self.data_type, DATA_TYPES),
            ("answer_sampling", self.answer_sampling, ANSWER_SAMPLING),
        ):
            if value not in allowed:
                raise ValueError(f"dataset config: {key} must be one of {', '.join(allowed)}, got {value!r}")
        if self.max_consecutive_skips < 1:
            raise ValueError(f"dataset config: max_consecutive_skips must be ≥ 1, got {self.max_consecutive_skips}")
        if self.sample_ratio < 0:
            raise ValueError(f"dataset config: sample_ratio must be ≥ 0, got {self.sample_ratio}")
