"""What the demo page accepts, checked before the model runs.

Each bad input raises `DemoInputError`, whose message the page shows while the server keeps serving; an input the page
can repair (an image mode converted to RGB, an over-long instruction truncated as training truncates it) passes with a
notice saying what was done. No gradio here: the checks are plain functions of the values the page sends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from lavis_ib.common.errors import UserError
from lavis_ib.common.media import to_rgb

MIN_SIDE = 8
"""Smallest image side the page takes, in pixels: below it a picture shows nothing but a colour or two."""
MAX_ASPECT = 10
"""Largest ratio of an image's long side to its short side: the model squashes every image to a square."""
MAX_CANDIDATES = 50
MODE_NAMES = {
    "1": "1-bit black and white", "L": "greyscale", "LA": "greyscale with transparency", "P": "palette",
    "PA": "palette with transparency", "RGBA": "RGB with transparency", "CMYK": "CMYK", "YCbCr": "YCbCr",
    "LAB": "Lab", "HSV": "HSV", "I": "32-bit integer", "F": "32-bit float", "I;16": "16-bit greyscale",
    "I;16L": "16-bit greyscale", "I;16B": "16-bit greyscale", "I;16N": "16-bit greyscale",
}


class DemoInputError(UserError, ValueError):
    """An input the page cannot answer; the message says what is wrong and what to do instead."""


@dataclass
class CheckedImage:
    """An uploaded image as the model will see it (8-bit RGB) and what was done to make it so."""

    image: Image.Image
    notices: list[str] = field(default_factory=list)


def check_image(path: str | None, image_size: int) -> CheckedImage:
    """The image at `path` as RGB; `DemoInputError` for no file, a file that is not a readable image, and an image
    too small or too elongated to show anything once resized to the model's `image_size` square."""
    if not path:
        raise DemoInputError("No image: upload one, or pick an example scene from the gallery.")
    name = Path(path).name
    try:
        with Image.open(path) as raw:
            raw.load()
            mode, frames = raw.mode, getattr(raw, "n_frames", 1)
            transparent = "transparency" in raw.info or mode in ("RGBA", "LA", "PA")
            image = to_rgb(ImageOps.exif_transpose(raw))
    except UnidentifiedImageError:
        raise DemoInputError(f"{name} is not an image file this page can read: upload a PNG, JPEG, WebP, BMP, GIF "
                             f"or TIFF image.") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        reason = str(error).replace(str(path), name)
        raise DemoInputError(f"{name} cannot be read as an image ({type(error).__name__}: {reason}).") from None
    width, height = image.size
    if min(width, height) < MIN_SIDE:
        raise DemoInputError(f"{name} is {width}×{height} pixels: too small to show anything. The page takes images "
                             f"of at least {MIN_SIDE}×{MIN_SIDE} pixels (the model sees every image at "
                             f"{image_size}×{image_size}).")
    if max(width, height) > MAX_ASPECT * min(width, height):
        ratio = max(width, height) / min(width, height)
        raise DemoInputError(f"{name} is {width}×{height} pixels (aspect ratio {ratio:.0f}:1): squashed into the "
                             f"model's {image_size}×{image_size} square, nothing recognisable is left. Crop it to "
                             f"at most {MAX_ASPECT}:1 first.")
    notices = []
    if mode != "RGB":
        what = MODE_NAMES.get(mode, mode)
        dropped = "; transparency dropped (transparent pixels show their stored colour)" if transparent else ""
        scaled = "; its values scaled to 8 bits" if mode in ("I", "F") or mode.startswith("I;16") else ""
        notices.append(f"{name} is a {what} image (mode {mode}): converted to 8-bit RGB{scaled}{dropped}.")
    if frames > 1:
        notices.append(f"{name} has {frames} frames: the first one is used.")
    return CheckedImage(image, notices)


def check_instruction(text: str | None, tokenizer, max_tokens: int) -> tuple[str, list[str]]:
    """The instruction, stripped, with notices; `DemoInputError` when empty. One longer than the model's
    `max_tokens` (`max_txt_len`, BOS included) keeps its last tokens, as training truncates instructions."""
    text = (text or "").strip()
    if not text:
        raise DemoInputError("Empty instruction: type one, e.g. 'A short image caption:', or pick an example scene.")
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    room = max_tokens - 1  # the BOS the model puts in front
    if len(ids) <= room:
        return text, []
    kept = tokenizer.decode(ids[-room:], skip_special_tokens=True).strip()
    return kept, [f"The instruction is {len(ids)} tokens long and the model takes {room} (max_txt_len {max_tokens}, "
                  f"BOS included): its first {len(ids) - room} tokens were dropped, as in training, and the model "
                  f"read “{kept}”."]


def check_candidates(text: str | None) -> list[str]:
    """The candidate answers, one per line (or comma-separated on one line); `DemoInputError` for none, an empty
    one, a repeated one, or more than `MAX_CANDIDATES`."""
    text = (text or "").strip()
    if not text:
        raise DemoInputError("No candidates to rank: give the answers to compare, one per line or separated by "
                             "commas, e.g. 'circle, square, triangle'.")
    parts = [part.strip() for part in (text.splitlines() if "\n" in text else text.split(","))]
    for index, part in enumerate(parts, 1):
        if not part:
            raise DemoInputError(f"Candidate {index} of {len(parts)} is empty: remove the extra comma or blank line.")
    repeated = sorted({part for part in parts if parts.count(part) > 1})
    if repeated:
        raise DemoInputError(f"Candidate {repeated[0]!r} is listed twice: each candidate must be different.")
    if len(parts) > MAX_CANDIDATES:
        raise DemoInputError(f"{len(parts)} candidates: the page ranks at most {MAX_CANDIDATES}.")
    return parts


@dataclass(frozen=True)
class Decoding:
    """How the page generates: beam search (1 beam: greedy) or nucleus sampling, with LAVIS's `generate` knobs."""

    sampling: bool
    num_beams: int
    max_length: int
    min_length: int
    temperature: float
    top_p: float
    length_penalty: float
    repetition_penalty: float
    num_outputs: int

    @property
    def streams(self) -> bool:
        """Whether the answer can be shown token by token: one token is chosen per step (greedy or sampling)."""
        return self.sampling or self.num_beams == 1

    def generate_args(self) -> dict:
        """The keyword arguments of the model's `generate` (its LAVIS names)."""
        return dict(use_nucleus_sampling=self.sampling, num_beams=1 if self.sampling else self.num_beams,
                    max_length=self.max_length, min_length=self.min_length, top_p=self.top_p,
                    temperature=self.temperature, length_penalty=self.length_penalty,
                    repetition_penalty=self.repetition_penalty, num_captions=self.num_outputs,
                    length_semantics="new_tokens")  # the page's lengths count generated tokens

    def describe(self) -> str:
        """The settings as the page shows them beside an answer."""
        if self.sampling:
            method = f"nucleus sampling (temperature {self.temperature:g}, top-p {self.top_p:g})"
        else:
            method = "greedy search" if self.num_beams == 1 else f"beam search ({self.num_beams} beams)"
        return (f"{method}, {self.min_length}–{self.max_length} new tokens, length penalty {self.length_penalty:g}, "
                f"repetition penalty {self.repetition_penalty:g}, {self.num_outputs} output"
                f"{'s' if self.num_outputs > 1 else ''}")


def check_decoding(sampling: bool, num_beams, max_length, min_length, temperature, top_p, length_penalty,
                   repetition_penalty, num_outputs) -> Decoding:
    """The page's decoding settings, checked; `DemoInputError` names the setting and the values that work."""
    try:
        integers = {name: int(value) for name, value in (("number of beams", num_beams), ("max length", max_length),
                                                          ("min length", min_length), ("outputs", num_outputs))}
        numbers = {name: float(value) for name, value in (("temperature", temperature), ("top-p", top_p),
                                                          ("length penalty", length_penalty),
                                                          ("repetition penalty", repetition_penalty))}
    except (TypeError, ValueError):
        raise DemoInputError("Every decoding setting needs a number.") from None
    if integers["max length"] < 1 or integers["number of beams"] < 1 or integers["outputs"] < 1:
        raise DemoInputError("Max length, the number of beams and the number of outputs must be at least 1.")
    if integers["min length"] > integers["max length"]:
        raise DemoInputError(f"Min length {integers['min length']} is more than max length {integers['max length']}: "
                             f"raise the max length or lower the min length.")
    if sampling and numbers["temperature"] <= 0:
        raise DemoInputError(f"Temperature {numbers['temperature']:g} with nucleus sampling: sampling needs a "
                             f"temperature above 0. For the single most likely answer use beam search with 1 beam "
                             f"(greedy) instead.")
    if not 0 < numbers["top-p"] <= 1:
        raise DemoInputError(f"Top-p {numbers['top-p']:g} is outside (0, 1].")
    if numbers["repetition penalty"] <= 0:
        raise DemoInputError(f"Repetition penalty {numbers['repetition penalty']:g} must be above 0 (1 = none).")
    if not sampling and integers["outputs"] > integers["number of beams"]:
        raise DemoInputError(f"Beam search returns at most one output per beam: {integers['outputs']} outputs need "
                             f"at least {integers['outputs']} beams (or use nucleus sampling).")
    return Decoding(sampling, integers["number of beams"], integers["max length"], integers["min length"],
                    numbers["temperature"], numbers["top-p"], numbers["length penalty"],
                    numbers["repetition penalty"], integers["outputs"])
