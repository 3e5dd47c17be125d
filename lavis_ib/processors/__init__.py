"""Image, text and video processors (registered under kind `processor`), and builders from config.

Importing this package registers every processor; `load_processor` builds one by name and `build_processors` builds
the train/eval visual and text processors of a model's `preprocess` config (LAVIS `load_preprocess`).
`model_vis_defaults` reads the image size and normalisation a model expects, and `with_vis_defaults` fills them into
a dataset's visual processor entries that do not set them (so datasets follow the model).
"""

from __future__ import annotations

from typing import Any

from lavis_ib.common.registry import registry
from lavis_ib.processors import image, text, video
from lavis_ib.processors.base import BaseProcessor, config_to_dict
from lavis_ib.processors.image import (
    Blip2ImageTrainProcessor,
    BlipImageEvalProcessor,
    BlipImageTrainProcessor,
    ClipImageEvalProcessor,
    ClipImageTrainProcessor,
)
from lavis_ib.processors.randaugment import RandomAugment
from lavis_ib.processors.text import BlipCaptionProcessor, BlipQuestionProcessor
from lavis_ib.processors.video import VideoEvalProcessor, VideoTrainProcessor

SPLITS = ("train", "eval")
VIS_DEFAULT_KEYS = ("image_size", "mean", "std")
"""The visual processor keys a model dictates to datasets (unless a dataset config sets them)."""


def load_processor(name: str, cfg: Any = None) -> BaseProcessor:
    """The processor registered as `name`, built from `cfg` (dict/OmegaConf/None; unknown keys raise ValueError)."""
    return registry.get_processor_class(name).from_config(cfg)


def _build_from_entry(entry: Any) -> BaseProcessor:
    """A processor from a `{"name": ..., **options}` entry; the identity processor for a missing entry."""
    if entry is None:
        return BaseProcessor()
    options = config_to_dict(entry)
    if "name" not in options:
        raise ValueError(f"a processor config needs a 'name' key, got keys {sorted(options)}")
    return load_processor(options["name"], options)


def _build_splits(section: Any) -> dict[str, BaseProcessor]:
    """The train and eval processors of one `vis_processor` / `text_processor` section."""
    entries = config_to_dict(section)
    return {split: _build_from_entry(entries.get(split)) for split in SPLITS}


def build_processors(preprocess_cfg: Any) -> tuple[dict[str, BaseProcessor], dict[str, BaseProcessor]]:
    """(vis_processors, txt_processors), each {"train", "eval"}, from a `preprocess` config; missing → identity."""
    cfg = config_to_dict(preprocess_cfg)
    return _build_splits(cfg.get("vis_processor")), _build_splits(cfg.get("text_processor"))


def model_vis_defaults(preprocess_cfg: Any) -> dict[str, Any]:
    """`{image_size, mean, std}` (those set) of a model's `preprocess.vis_processor` (its eval entry, else train)."""
    section = config_to_dict(config_to_dict(preprocess_cfg).get("vis_processor"))
    entry = config_to_dict(section.get("eval") or section.get("train"))
    return {key: entry[key] for key in VIS_DEFAULT_KEYS if entry.get(key) is not None}


def with_vis_defaults(section: Any, defaults: Any, source: str = "vis_processor") -> dict[str, Any]:
    """A `vis_processor` section whose train/eval entries get each of `defaults` they lack and their processor accepts.

    Keys an entry sets win over `defaults`; `source` names the section in errors.
    """
    defaults = config_to_dict(defaults)
    unknown = sorted(set(defaults) - set(VIS_DEFAULT_KEYS))
    if unknown:
        raise ValueError(f"{source}: visual defaults accept only {', '.join(VIS_DEFAULT_KEYS)}, got {unknown}")
    filled = {}
    for split, entry in config_to_dict(section).items():
        entry = config_to_dict(entry)
        if "name" in entry:
            accepted = registry.get_processor_class(entry["name"]).config_defaults()
            entry = {**{k: v for k, v in defaults.items() if k in accepted and v is not None}, **entry}
        filled[split] = entry
    return filled


__all__ = [
    "BaseProcessor",
    "Blip2ImageTrainProcessor",
    "BlipCaptionProcessor",
    "BlipImageEvalProcessor",
    "BlipImageTrainProcessor",
    "BlipQuestionProcessor",
    "ClipImageEvalProcessor",
    "ClipImageTrainProcessor",
    "RandomAugment",
    "VideoEvalProcessor",
    "VideoTrainProcessor",
    "build_processors",
    "image",
    "load_processor",
    "model_vis_defaults",
    "text",
    "video",
    "with_vis_defaults",
]
