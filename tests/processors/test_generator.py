"""Random training steps draw from a passed generator, in torchvision's order: same ops, same ranges, same pixels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

from lavis_ib.processors import load_processor
from lavis_ib.processors.image import BICUBIC, IMAGE_MEAN, IMAGE_STD, random_resized_crop_params
from lavis_ib.processors.randaugment import RandomAugment


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def noise(height: int = 48, width: int = 64) -> Image.Image:
    return Image.fromarray(np.random.default_rng(3).integers(0, 256, (height, width, 3), dtype=np.uint8))


@pytest.mark.parametrize("size", [(64, 48), (1000, 10), (10, 1000), (1, 1)])
def test_crop_boxes_are_torchvisions_for_the_same_seed(size):
    """Extreme aspect ratios take torchvision's central-crop fallback after ten misses, identically."""
    width, height = size
    for seed in range(50):
        torch.manual_seed(seed)
        expected = transforms.RandomResizedCrop.get_params(torch.zeros(3, height, width), [0.5, 1.0], [3 / 4, 4 / 3])
        assert random_resized_crop_params(width, height, (0.5, 1.0), generator=seeded(seed)) == expected


@pytest.mark.parametrize("seed", range(8))
def test_blip2_train_equals_torchvisions_pipeline_under_the_same_seed(seed):
    """blip2_image_train(generator seeded s) == LAVIS's Compose(RRC, flip, ToTensor, Normalize) after manual_seed(s)."""
    lavis = transforms.Compose([
        transforms.RandomResizedCrop(24, scale=(0.5, 1.0), interpolation=BICUBIC), transforms.RandomHorizontalFlip(),
        transforms.ToTensor(), transforms.Normalize(IMAGE_MEAN, IMAGE_STD),
    ])
    torch.manual_seed(seed)
    expected = lavis(noise())
    torch.manual_seed(seed + 1000)  # the global state must not matter when a generator is given
    processor = load_processor("blip2_image_train", {"image_size": 24})
    assert torch.equal(processor(noise(), generator=seeded(seed)), expected)


def test_train_processors_reproduce_from_the_generator_and_fall_back_to_the_global_one():
    for name in ("blip_image_train", "blip2_image_train", "clip_image_train"):
        processor = load_processor(name, {"image_size": 20})
        first, again, other = (processor(noise(), generator=seeded(s)) for s in (5, 5, 6))
        assert torch.equal(first, again) and not torch.equal(first, other)
        torch.manual_seed(5)
        assert torch.equal(processor(noise()), first)  # no generator: the same draws from the global state


def test_randaugment_plan_comes_from_the_generator():
    augment = RandomAugment()
    plans = [augment.sample(seeded(s)) for s in range(300)]
    assert plans[:50] == [augment.sample(seeded(s)) for s in range(50)]
    applied = sum(len(p) for p in plans) / (2 * len(plans))
    assert abs(applied - 0.5) < 0.05  # each of the n=2 ops kept with probability 0.5
    values = {value for plan in plans for name, value in plan if name == "Rotate"}
    assert values == {15.0, -15.0}  # ±(5/10)·30°, both signs
