"""The config schema of a dataset (`configs/datasets/<name>/defaults.yaml`), declared once as dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

ROLES = ("held_in", "held_out")
DATA_TYPES = ("images", "videos")
ANSWER_SAMPLING = ("most_common", "random")


@dataclass
class Storage:
    """A file or folder: absolute, `~`, or relative to the data root (`data_root`, default the cache root)."""

    storage: str


@dataclass
class BuildInfo:
    """Where the converted records of each split live, and the root their media paths are relative to."""

    annotations: dict[str, Any]  # split → {storage: <split>.jsonl | shard pattern <split>-{000000..000009}.tar}
    images: Optional[Storage] = None
    videos: Optional[Storage] = None
    answer_list: Optional[Storage] = None  # candidate answers for vocabulary ranking (MSVD-QA, MSRVTT-QA)


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
    seed: int = 0

    def __post_init__(self):
        for key, value, allowed in (
            ("role", self.role, ROLES),
            ("data_type", self.data_type, DATA_TYPES),
            ("answer_sampling", self.answer_sampling, ANSWER_SAMPLING),
        ):
            if value not in allowed:
                raise ValueError(f"dataset config: {key} must be one of {', '.join(allowed)}, got {value!r}")
        if self.sample_ratio < 0:
            raise ValueError(f"dataset config: sample_ratio must be ≥ 0, got {self.sample_ratio}")
