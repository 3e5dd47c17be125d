"""The config schema of a dataset (`configs/datasets/<name>/defaults.yaml`), declared once as dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Mapping, Optional

from lavis_ib.common.registry import closest_match
from lavis_ib.common.remote import Retry

ROLES = ("held_in", "held_out")
DATA_TYPES = ("images", "videos")
ANSWER_SAMPLING = ("most_common", "random")
EVAL_MODES = ("generate", "rank")
CANDIDATE_SOURCES = ("choices", "choice_letters", "answer_list", "answer_options", "verbalizers")
SUBMISSION_FORMATS = ("vqa", "vizwiz")


@dataclass
class Storage:
    """A file or folder: absolute, `~`, or relative to the data root (`data_root`, default the cache root)."""

    storage: str


@dataclass
class SplitStorage(Storage):
    """A split's records: a local path, or a shard set's URL / `pipe:` command, read remotely with `tries` in all
    (pausing `backoff_s`, doubling, between them: `common.remote.Retry`)."""

    tries: int = Retry.tries
    backoff_s: float = Retry.backoff_s

    def __post_init__(self):
        self.retry  # a Retry checks both values

    @property
    def retry(self) -> Retry:
        return Retry(self.tries, self.backoff_s)


def split_storage(split: str, entry: Any) -> SplitStorage:
    """One `build_info.annotations` entry as a `SplitStorage`: `{storage: path, ...}` (or the bare path); an unknown
    key is an error with the closest valid one, so a typo never falls back to a default file."""
    where = f"build_info.annotations.{split}"
    if isinstance(entry, Storage):
        return entry if isinstance(entry, SplitStorage) else SplitStorage(entry.storage)
    if isinstance(entry, str):
        return SplitStorage(entry)
    if not isinstance(entry, Mapping):
        raise ValueError(f"'{where}' must be {{storage: <path>}} or a path, got {entry!r}")
    valid = [f.name for f in fields(SplitStorage)]
    for key in entry:
        if key not in valid:
            hint = closest_match(str(key), valid)
            suggestion = f"; did you mean '{where}.{hint}'?" if hint else ""
            raise ValueError(f"unknown key '{where}.{key}'{suggestion} (valid keys: {', '.join(valid)})")
    if not isinstance(entry.get("storage"), str):
        raise ValueError(f"'{where}.storage' must be a path (str), got {entry.get('storage')!r}")
    try:
        return SplitStorage(**entry)
    except ValueError as error:  # tries / backoff_s out of range
        raise ValueError(f"{where}.{error}") from None


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
class Decoding:
    """Generation settings of an evaluation (LAVIS names); None takes the task's default, the paper's protocol."""

    num_beams: Optional[int] = None
    max_len: Optional[int] = None
    min_len: Optional[int] = None
    length_penalty: Optional[float] = None  # None for VQA: the model's answer default (LAVIS: Vicuna 0, T5 -1)
    repetition_penalty: Optional[float] = None
    length_semantics: Optional[str] = None  # None: the model's `length_semantics`


@dataclass
class EvalProtocol:
    """How a dataset is evaluated (its `eval:` block): the task, how answers are produced, the metric.

    `task` names a registered task (`captioning`, `vqa`, `classification`, `dialog`); `mode` is `generate` or `rank`
    (log-likelihood ranking of `candidates`: the record's `choices`, their letters "(a)".., the dataset's
    `answer_list`, VisDial's `answer_options`, or fixed `verbalizers`, one word list per class label). `prompt`
    replaces `instruction.eval` when set. `splits` are the splits the paper evaluates (`run.test_splits`, when set,
    overrides them for every dataset).
    """

    task: str = ""
    mode: str = "generate"
    splits: list = field(default_factory=list)
    metric: str = ""  # a registered metric; "" = the task's default
    metric_options: dict = field(default_factory=dict)  # keyword arguments of the metric, e.g. {variant: aokvqa}
    report: str = ""  # the metric key reported as `agg_metrics` (e.g. CIDEr); "" = the metric's main key
    prompt: Any = None
    candidates: Optional[str] = None
    verbalizers: Optional[list] = None  # [[words of label 0], [words of label 1], ...]; quote yes/no in YAML
    normalize: str = "sum"  # rank by summed ("sum") or per-token ("mean") candidate log-likelihood
    n_segments: int = 1  # split each sample's candidates into this many LLM batches (memory; scores unchanged)
    decoding: Decoding = field(default_factory=Decoding)
    apply_lemmatizer: bool = False  # OK-VQA: spaCy lemmas of the generated answers (needs en_core_web_sm)
    group_by: Optional[str] = None  # a `meta` key whose values get their own metrics (NoCaps `domain`)
    submission: Optional[str] = None  # write the answers of splits without ground truth in this format

    def __post_init__(self):
        for key, value, allowed in (
            ("mode", self.mode, EVAL_MODES),
            ("normalize", self.normalize, ("sum", "mean")),
            ("candidates", self.candidates, (None, *CANDIDATE_SOURCES)),
            ("submission", self.submission, (None, *SUBMISSION_FORMATS)),
        ):
            if value not in allowed:
                shown = ", ".join(str(a) for a in allowed if a is not None)
                raise ValueError(f"eval.{key} must be one of {shown}, got {value!r}")
        if self.mode == "rank" and self.candidates is None:
            raise ValueError(f"eval.mode 'rank' needs eval.candidates (one of {', '.join(CANDIDATE_SOURCES)})")
        if self.n_segments < 1:
            raise ValueError(f"eval.n_segments must be ≥ 1, got {self.n_segments}")
        if self.verbalizers is not None:
            for label, words in enumerate(self.verbalizers):
                if not isinstance(words, list) or not words or not all(isinstance(w, str) for w in words):
                    raise ValueError(
                        f"eval.verbalizers[{label}] must be a non-empty list of strings, got {words!r} "
                        "(YAML reads unquoted yes/no/true/false as booleans: quote them)"
                    )


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
    eval: Optional[EvalProtocol] = None  # the zero-shot evaluation protocol (`lavis_ib.tasks`)

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
