"""BLIP / BLIP-2 / CLIP image processors: PIL image in, normalised float tensor [3, S, S] out (LAVIS transforms).

Every processor converts its input to RGB first (`lavis_ib.common.media.to_rgb`), then runs its geometric steps on
the PIL image with bicubic resampling, then the shared tail ToTensor → Normalize(mean, std).

Random steps (crop, flip, RandomAugment) draw from the `generator` passed to the processor call — the datasets pass
one seeded per sample by (seed, epoch, index), so pixels do not depend on worker count or resumption — and from
torch's global generator when none is given. The draws are torchvision's, in its order: with a generator seeded s
the output equals torchvision's transform after `torch.manual_seed(s)`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torchvision import transforms
from torchvision.transforms import InterpolationMode

from lavis_ib.common.media import to_rgb
from lavis_ib.common.registry import registry
from lavis_ib.processors.base import BaseProcessor
from lavis_ib.processors.randaugment import RandomAugment

IMAGE_MEAN = (0.48145466, 0.4578275, 0.40821073)
IMAGE_STD = (0.26862954, 0.26130258, 0.27577711)
BICUBIC = InterpolationMode.BICUBIC
CROP_RATIO = (3.0 / 4.0, 4.0 / 3.0)


def normalization(mean: Sequence[float] | None, std: Sequence[float] | None) -> transforms.Normalize:
    """Per-channel Normalize with the CLIP defaults for a None mean/std; checks there are three of each."""
    mean = tuple(IMAGE_MEAN if mean is None else mean)
    std = tuple(IMAGE_STD if std is None else std)
    if len(mean) != 3 or len(std) != 3:
        raise ValueError(f"mean and std need 3 values (RGB), got mean={mean}, std={std}")
    return transforms.Normalize(mean, std)


def random_resized_crop_params(
    width: int, height: int, scale: Sequence[float], ratio: Sequence[float] = CROP_RATIO,
    generator: torch.Generator | None = None,
) -> tuple[int, int, int, int]:
    """(top, left, height, width) of a random crop box: torchvision's `RandomResizedCrop.get_params` algorithm, with
    every draw taken from `generator` (the global generator when None)."""
    area = height * width
    log_ratio = torch.log(torch.tensor(ratio))
    for _ in range(10):
        target_area = area * torch.empty(1).uniform_(scale[0], scale[1], generator=generator).item()
        aspect_ratio = torch.exp(torch.empty(1).uniform_(log_ratio[0], log_ratio[1], generator=generator)).item()
        w = int(round(math.sqrt(target_area * aspect_ratio)))
        h = int(round(math.sqrt(target_area / aspect_ratio)))
        if 0 < w <= width and 0 < h <= height:
            top = torch.randint(0, height - h + 1, size=(1,), generator=generator).item()
            left = torch.randint(0, width - w + 1, size=(1,), generator=generator).item()
            return top, left, h, w
    in_ratio = width / height  # ten misses: the central crop of the nearest allowed aspect ratio
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        w, h = int(round(height * max(ratio))), height
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def coin(probability: float, generator: torch.Generator | None = None) -> bool:
    """One biased coin flip from `generator` (torchvision's `torch.rand(1) < p`)."""
    return bool(torch.rand(1, generator=generator) < probability)


class RandomResizedCrop:
    """Bicubic crop of a random box covering `scale` of the area, resized to a square `size` (torchvision's)."""

    def __init__(self, size: int, scale: Sequence[float], ratio: Sequence[float] = CROP_RATIO):
        self.size, self.scale, self.ratio = size, tuple(scale), tuple(ratio)

    def __call__(self, image: Image.Image, generator: torch.Generator | None = None) -> Image.Image:
        """The cropped and resized PIL image; the box is drawn from `generator`."""
        top, left, h, w = random_resized_crop_params(*image.size, self.scale, self.ratio, generator)
        return TF.resized_crop(image, top, left, h, w, [self.size, self.size], interpolation=BICUBIC)

    def __repr__(self) -> str:
        return f"RandomResizedCrop(size={self.size}, scale={self.scale}, ratio={self.ratio}, interpolation=bicubic)"


class RandomHorizontalFlip:
    """Mirror the image left-right with probability `p`."""

    def __init__(self, p: float = 0.5):
        self.p = p

    def __call__(self, image: Image.Image, generator: torch.Generator | None = None) -> Image.Image:
        """The image, mirrored or not by one draw from `generator`."""
        return TF.hflip(image) if coin(self.p, generator) else image

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


RANDOM_STEPS = (RandomResizedCrop, RandomHorizontalFlip, RandomAugment)
"""Steps that take the per-call generator; every other step is a deterministic torchvision transform."""


class ImageProcessor(BaseProcessor):
    """Base of the image processors: RGB conversion, the subclass's PIL steps, then ToTensor and Normalize."""

    def __init__(self, steps: Sequence[object], mean: Sequence[float] | None, std: Sequence[float] | None):
        self.steps = list(steps)
        self.to_tensor = transforms.Compose([transforms.ToTensor(), normalization(mean, std)])

    def __call__(self, image: Image.Image, generator: torch.Generator | None = None) -> torch.Tensor:
        """Transform one PIL image (any mode) into a normalised float tensor [3, S, S]; random steps use `generator`."""
        image = to_rgb(image)
        for step in self.steps:
            image = step(image, generator) if isinstance(step, RANDOM_STEPS) else step(image)
        return self.to_tensor(image)

    def __repr__(self) -> str:
        steps = ", ".join(map(repr, [*self.steps, *self.to_tensor.transforms]))
        return f"{type(self).__name__}([{steps}])"


@registry.register_processor("blip_image_train")
class BlipImageTrainProcessor(ImageProcessor):
    """BLIP training: RandomResizedCrop → horizontal flip → RandomAugment(2, 5) → ToTensor → Normalize."""

    def __init__(
        self,
        image_size: int = 384,
        min_scale: float = 0.5,
        max_scale: float = 1.0,
        mean: Sequence[float] | None = IMAGE_MEAN,
        std: Sequence[float] | None = IMAGE_STD,
    ):
        crop = RandomResizedCrop(image_size, (min_scale, max_scale))
        super().__init__([crop, RandomHorizontalFlip(), RandomAugment(n=2, m=5)], mean, std)


@registry.register_processor("blip2_image_train")
class Blip2ImageTrainProcessor(ImageProcessor):
    """BLIP-2 training: RandomResizedCrop → horizontal flip → ToTensor → Normalize (no RandomAugment)."""

    def __init__(
        self,
        image_size: int = 364,
        min_scale: float = 0.5,
        max_scale: float = 1.0,
        mean: Sequence[float] | None = IMAGE_MEAN,
        std: Sequence[float] | None = IMAGE_STD,
    ):
        crop = RandomResizedCrop(image_size, (min_scale, max_scale))
        super().__init__([crop, RandomHorizontalFlip()], mean, std)


@registry.register_processor("blip_image_eval")
class BlipImageEvalProcessor(ImageProcessor):
    """BLIP / BLIP-2 evaluation: bicubic resize to a square (aspect not kept) → ToTensor → Normalize."""

    def __init__(
        self,
        image_size: int = 384,
        mean: Sequence[float] | None = IMAGE_MEAN,
        std: Sequence[float] | None = IMAGE_STD,
    ):
        super().__init__([transforms.Resize((image_size, image_size), interpolation=BICUBIC)], mean, std)


@registry.register_processor("clip_image_train")
class ClipImageTrainProcessor(ImageProcessor):
    """CLIP training: RandomResizedCrop (no flip) → ToTensor → Normalize."""

    def __init__(
        self,
        image_size: int = 224,
        min_scale: float = 0.9,
        max_scale: float = 1.0,
        mean: Sequence[float] | None = IMAGE_MEAN,
        std: Sequence[float] | None = IMAGE_STD,
    ):
        super().__init__([RandomResizedCrop(image_size, (min_scale, max_scale))], mean, std)


@registry.register_processor("clip_image_eval")
class ClipImageEvalProcessor(ImageProcessor):
    """CLIP evaluation: bicubic resize of the shorter side to `image_size` → CenterCrop → ToTensor → Normalize."""

    def __init__(
        self,
        image_size: int = 224,
        mean: Sequence[float] | None = IMAGE_MEAN,
        std: Sequence[float] | None = IMAGE_STD,
    ):
        steps = [transforms.Resize(image_size, interpolation=BICUBIC), transforms.CenterCrop(image_size)]
        super().__init__(steps, mean, std)
