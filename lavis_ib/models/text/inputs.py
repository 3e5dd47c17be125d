"""Checks at the model's door: images, per-sample texts, candidates and generation arguments.

Each check names what was expected and what came in, under our (LAVIS) argument names, before anything reaches
torch or transformers, where the same mistakes surface as shape errors, `ZeroDivisionError`s or silent `''` answers.
"""

from __future__ import annotations

import numbers
from typing import Any, Sequence

import torch

PROCESSOR_HINT = "build it with vis_processors['eval'](image).unsqueeze(0)"


def check_image(image: Any, image_size: int) -> torch.Tensor:
    """A float `[B, 3, H, W]` image or `[B, 3, T, H, W]` video batch at the model's size; float64 becomes fp32."""
    expected = f"a float tensor [B, 3, {image_size}, {image_size}] (or video [B, 3, T, {image_size}, {image_size}])"
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"samples['image'] must be {expected}; got {type(image).__module__}.{type(image).__name__} "
                        f"({PROCESSOR_HINT})")
    shape = tuple(image.shape)
    if image.dim() not in (4, 5):
        raise ValueError(f"samples['image'] must be {expected}; got a {image.dim()}-D tensor of shape {shape}"
                         + (" (add the batch dimension: .unsqueeze(0))" if image.dim() == 3 else ""))
    if image.shape[1] != 3:
        hint = " (it looks channels-last: use .permute(0, 3, 1, 2))" if image.dim() == 4 and shape[-1] == 3 else ""
        raise ValueError(f"samples['image'] must have 3 (RGB) channels in dimension 1 as {expected}; got shape "
                         f"{shape}{hint}")
    if image.shape[0] == 0:
        raise ValueError(f"samples['image'] is an empty batch (shape {shape}); expected {expected}")
    if image.dim() == 5 and image.shape[2] == 0:
        raise ValueError(f"samples['image'] is a video with no frames (shape {shape}); expected T ≥ 1")
    if tuple(shape[-2:]) != (image_size, image_size):
        raise ValueError(f"samples['image'] is {shape[-2]}×{shape[-1]} px but this model takes "
                         f"{image_size}×{image_size} ({PROCESSOR_HINT} with this model's processors)")
    if not image.is_floating_point():
        raise TypeError(f"samples['image'] must be a normalised float tensor; got dtype {image.dtype} "
                        f"({PROCESSOR_HINT})")
    if not torch.isfinite(image).all():
        raise ValueError(f"samples['image'] contains NaN or infinite values (shape {shape})")
    return image.float() if image.dtype == torch.float64 else image


def check_texts(key: str, texts: Sequence[str], batch_size: int) -> list[str]:
    """One string per sample under `key`."""
    texts = [texts] if isinstance(texts, str) else list(texts)
    if len(texts) != batch_size:
        raise ValueError(f"samples[{key!r}] has {len(texts)} entries for a batch of {batch_size} images")
    bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
    if bad is not None:
        raise TypeError(f"samples[{key!r}][{bad}] must be a string, got {type(texts[bad]).__name__}")
    return texts


def check_candidates(candidates: Sequence, batch_size: int) -> list[list[str]]:
    """One non-empty list of non-empty strings per sample (a single list is shared by the batch)."""
    if isinstance(candidates, str) or not isinstance(candidates, Sequence) or len(candidates) == 0:
        raise ValueError(f"candidates must be a non-empty list of strings (or one list per sample), got {candidates!r}")
    per_sample = isinstance(candidates[0], (list, tuple))
    lists = [list(c) for c in candidates] if per_sample else [list(candidates)] * batch_size
    if len(lists) != batch_size:
        raise ValueError(f"candidates has {len(lists)} per-sample lists for a batch of {batch_size} images")
    for b, options in enumerate(lists):
        where = f"candidates[{b}]" if per_sample else "candidates"
        if not options:
            raise ValueError(f"{where} is empty: each sample needs at least one candidate")
        for i, option in enumerate(options):
            if not isinstance(option, str):
                raise TypeError(f"{where}[{i}] must be a string, got {type(option).__name__} {option!r}")
            if not option.strip():
                raise ValueError(f"{where}[{i}] is an empty string: it has no tokens to score (it would score 0.0 "
                                 f"and always rank first)")
    return lists


def _require(condition: bool, name: str, value: Any, expected: str) -> None:
    if not condition:
        raise ValueError(f"generate(): {name} must be {expected}, got {value!r}")


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_generate_args(args: dict) -> None:
    """Validate `generate`'s arguments under their LAVIS names."""
    _require(isinstance(args["use_nucleus_sampling"], bool), "use_nucleus_sampling", args["use_nucleus_sampling"],
             "True or False")
    for name in ("num_beams", "max_length", "num_captions"):
        _require(_is_int(args[name]) and args[name] >= 1, name, args[name], "an integer ≥ 1")
    _require(_is_int(args["min_length"]) and 0 <= args["min_length"] <= args["max_length"], "min_length",
             args["min_length"], f"an integer between 0 and max_length ({args['max_length']})")
    if not args["use_nucleus_sampling"]:
        _require(args["num_captions"] <= args["num_beams"], "num_captions", args["num_captions"],
                 f"≤ num_beams ({args['num_beams']}) for beam search (or use_nucleus_sampling=True)")
    _require(_is_number(args["top_p"]) and 0 < args["top_p"] <= 1, "top_p", args["top_p"], "in (0, 1]")
    _require(_is_number(args["temperature"]) and args["temperature"] > 0, "temperature", args["temperature"], "> 0")
    _require(_is_number(args["repetition_penalty"]) and args["repetition_penalty"] > 0, "repetition_penalty",
             args["repetition_penalty"], "> 0")
    _require(_is_number(args["length_penalty"]), "length_penalty", args["length_penalty"], "a number")
