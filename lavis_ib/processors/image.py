"""BLIP / BLIP-2 / CLIP image processors: PIL image in, normalised float tensor [3, S, S] out (LAVIS transforms).

Every processor converts its input to RGB first (`lavis_ib.common.media.to_rgb`), then runs its geometric steps on
the PIL image with bicubic resampling, then the shared tail ToTensor → Normalize(mean, std).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
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


def normalization(mean: Sequence[float] | None, std: Sequence[float] | None) -> transforms.Normalize:
    """Per-channel Normalize with the CLIP defaults for a None mean/std; checks there are three of each."""
    mean = tuple(IMAGE_MEAN if mean is None else mean)
    std = tuple(IMAGE_STD if std is None else std)
    if len(mean) != 3 or len(std) != 3:
        raise ValueError(f"mean and std need 3 values (RGB), got mean={mean}, std={std}")
    return transforms.Normalize(mean, std)


class ImageProcessor(BaseProcessor):
    """Base of the image processors: RGB conversion, the subclass's PIL steps, then ToTensor and Normalize."""

    def __init__(self, steps: Sequence[object], mean: Sequence[float] | None, std: Sequence[float] | None):
        self.transform = transforms.Compose([*steps, transforms.ToTensor(), normalization(mean, std)])

    def __call__(self, image: Image.Image) -> torch.Tensor:
        """Transform one PIL image (any mode) into a normalised float tensor [3, S, S]."""
        return self.transform(to_rgb(image))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.transform})"


def _random_resized_crop(image_size: int, min_scale: float, max_scale: float) -> transforms.RandomResizedCrop:
    """A bicubic RandomResizedCrop to a square `image_size` covering min_scale..max_scale of the area."""
    return transforms.RandomResizedCrop(image_size, scale=(min_scale, max_scale), interpolation=BICUBIC)


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
        crop = _random_resized_crop(image_size, min_scale, max_scale)
        super().__init__([crop, transforms.RandomHorizontalFlip(), RandomAugment(n=2, m=5)], mean, std)


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
        crop = _random_resized_crop(image_size, min_scale, max_scale)
        super().__init__([crop, transforms.RandomHorizontalFlip()], mean, std)


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
        super().__init__([_random_resized_crop(image_size, min_scale, max_scale)], mean, std)


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
