"""RandomAugment for BLIP training: N random PIL ops per image, each applied with probability 0.5 at magnitude M.

Magnitudes follow the LAVIS definition on a 0..10 scale: enhance factor (M/10)*1.8+0.1 (1.0, i.e. identity, at the
default M=5), shear ±(M/10)*0.3, translate ±(M/10)*translate_const pixels, rotate ±(M/10)*30 degrees, each with a
random sign; geometric ops fill uncovered pixels with grey. Randomness comes from the `generator` passed in (the
datasets seed one per sample), or from torch's global generator when none is given.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from PIL import Image, ImageEnhance, ImageOps

MAX_LEVEL = 10.0
Fill = tuple[int, int, int]


def _affine(image: Image.Image, coefficients: tuple[float, ...], fill: Fill) -> Image.Image:
    """Apply a PIL affine map (output → input coefficients a..f), keeping the size and filling with `fill`."""
    return image.transform(image.size, Image.Transform.AFFINE, coefficients, Image.Resampling.BILINEAR, fillcolor=fill)


def _identity(image: Image.Image, value: float, fill: Fill) -> Image.Image:
    """Return the image unchanged."""
    return image


def _auto_contrast(image: Image.Image, value: float, fill: Fill) -> Image.Image:
    """Stretch each channel to the full 0..255 range."""
    return ImageOps.autocontrast(image)


def _equalize(image: Image.Image, value: float, fill: Fill) -> Image.Image:
    """Equalise each channel's histogram."""
    return ImageOps.equalize(image)


def _brightness(image: Image.Image, value: float, fill: Fill) -> Image.Image:
    """Scale brightness by the factor `value` (1.0 = unchanged)."""
    return ImageEnhance.Brightness(image).enhance(value)


def _sharpness(image: Image.Image, value: float, fill: Fill) -> Image.Image:
    """Change sharpness by the factor `value` (1.0 = unchanged)."""
    return ImageEnhance.Sharpness(image).enhance(value)


def _shear_x(image: Image.Image, value: float, fill: Fill) -> Image.Image:
    """Shear horizontally by `value` (x shifts by value * y)."""
    return _affine(image, (1, value, 0, 0, 1, 0), fill)


def _shear_y(image: Image.Image, value: float, fill: Fill) -> Image.Image:
    """Shear vertically by `value` (y shifts by value * x)."""
    return _affine(image, (1, 0, 0, value, 1, 0), fill)


def _translate_x(image: Image.Image, value: float, fill: Fill) -> Image.Image:
    """Shift the content `value` pixels right."""
    return _affine(image, (1, 0, -value, 0, 1, 0), fill)


def _translate_y(image: Image.Image, value: float, fill: Fill) -> Image.Image:
    """Shift the content `value` pixels down."""
    return _affine(image, (1, 0, 0, 0, 1, -value), fill)


def _rotate(image: Image.Image, value: float, fill: Fill) -> Image.Image:
    """Rotate `value` degrees counter-clockwise about the centre, keeping the size."""
    return image.rotate(value, resample=Image.Resampling.BILINEAR, fillcolor=fill)


OPS: dict[str, Callable[[Image.Image, float, Fill], Image.Image]] = {
    "Identity": _identity,
    "AutoContrast": _auto_contrast,
    "Brightness": _brightness,
    "Sharpness": _sharpness,
    "Equalize": _equalize,
    "ShearX": _shear_x,
    "ShearY": _shear_y,
    "TranslateX": _translate_x,
    "TranslateY": _translate_y,
    "Rotate": _rotate,
}
"""Every op by name; an op takes (image, value from `RandomAugment.op_value`, fill colour)."""

_ENHANCE_OPS = ("Brightness", "Sharpness")
_TRANSLATE_OPS = ("TranslateX", "TranslateY")
_SPANS = {"ShearX": 0.3, "ShearY": 0.3, "Rotate": 30.0}
"""Full-magnitude (M=10) argument of the shear and rotate ops; translation uses `translate_const`."""


class RandomAugment:
    """Apply `n` ops drawn with replacement from `ops`, each with probability `prob`, at magnitude `m` of 10."""

    def __init__(
        self,
        n: int = 2,
        m: float = 5,
        ops: Sequence[str] = tuple(OPS),
        prob: float = 0.5,
        translate_const: float = 10.0,
        fill: Fill = (128, 128, 128),
    ):
        unknown = [name for name in ops if name not in OPS]
        if unknown:
            raise ValueError(f"unknown RandomAugment ops {unknown}; known: {', '.join(OPS)}")
        self.n, self.m, self.ops, self.prob = n, m, tuple(ops), prob
        self.translate_const, self.fill = translate_const, tuple(fill)

    def op_value(self, name: str, sign: int) -> float:
        """The argument an op gets at this magnitude; `sign` (±1) applies to the geometric ops only."""
        level = self.m / MAX_LEVEL
        if name in _ENHANCE_OPS:
            return level * 1.8 + 0.1
        span = self.translate_const if name in _TRANSLATE_OPS else _SPANS.get(name, 0.0)
        return sign * level * span

    def sample(self, generator: torch.Generator | None = None) -> list[tuple[str, float]]:
        """Draw this image's (op name, value) list: n ops with replacement, each kept with probability `prob`."""
        chosen = torch.randint(len(self.ops), (self.n,), generator=generator).tolist()
        plan = []
        for index in chosen:
            applied, negative = (torch.rand(2, generator=generator) < torch.tensor([self.prob, 0.5])).tolist()
            if applied:
                name = self.ops[index]
                plan.append((name, self.op_value(name, -1 if negative else 1)))
        return plan

    def apply(self, image: Image.Image, plan: Sequence[tuple[str, float]]) -> Image.Image:
        """Apply a sampled plan to a PIL image."""
        for name, value in plan:
            image = OPS[name](image, value, self.fill)
        return image

    def __call__(self, image: Image.Image, generator: torch.Generator | None = None) -> Image.Image:
        """Augment one PIL image with a plan drawn from `generator`; returns a PIL image."""
        return self.apply(image, self.sample(generator))

    def __repr__(self) -> str:
        return f"RandomAugment(n={self.n}, m={self.m}, prob={self.prob}, ops={list(self.ops)})"
