"""Tests for the image processors, RandomAugment, and processor config loading/validation."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from lavis_ib.common.media import open_image
from lavis_ib.common.registry import registry
from lavis_ib.processors import BaseProcessor, build_processors, load_processor
from lavis_ib.processors.image import IMAGE_MEAN, IMAGE_STD
from lavis_ib.processors.randaugment import OPS, RandomAugment

MEAN = torch.tensor(IMAGE_MEAN)[:, None, None]
STD = torch.tensor(IMAGE_STD)[:, None, None]
SIZES = {
    "blip_image_train": 384,
    "blip2_image_train": 364,
    "blip_image_eval": 384,
    "clip_image_train": 224,
    "clip_image_eval": 224,
}
TRAIN = [name for name in SIZES if name.endswith("_train")]
EVAL = [name for name in SIZES if name.endswith("_eval")]
GREY = (128, 128, 128)


def _noise(height: int, width: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    """Deterministic random uint8 pixels of shape [H, W, C] (C dropped when 1)."""
    array = np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)
    return array[..., 0] if channels == 1 else array


def _palette_with_transparency() -> Image.Image:
    """A noisy palette image whose entry 0 is transparent."""
    image = Image.fromarray(_noise(30, 40)).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    image.info["transparency"] = 0
    return image


def _exif_rotated_jpeg() -> Image.Image:
    """A 40x20 JPEG tagged with EXIF orientation 6, opened through `open_image` (so it arrives as 20x40)."""
    image = Image.fromarray(_noise(20, 40))
    exif = image.getexif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif.tobytes())
    buffer.seek(0)
    opened = open_image(buffer)
    assert opened.size == (20, 40)
    return opened


ODD_IMAGES: dict[str, Callable[[], Image.Image]] = {
    "grayscale": lambda: Image.fromarray(_noise(30, 40, 1)),
    "rgba": lambda: Image.fromarray(_noise(30, 40, 4)),
    "palette_transparent": _palette_with_transparency,
    "cmyk": lambda: Image.fromarray(_noise(30, 40, 4)).convert("RGBA").convert("CMYK"),
    "int16": lambda: Image.fromarray(np.full((30, 40), 32768, np.uint16)),
    "exif_rotated": _exif_rotated_jpeg,
    "one_pixel": lambda: Image.new("RGB", (1, 1), (200, 10, 30)),
    "very_wide": lambda: Image.fromarray(_noise(10, 1000)),
}


def _unnormalise(pixels: torch.Tensor) -> torch.Tensor:
    """Undo the default normalisation: back to 0..1 RGB."""
    return pixels * STD + MEAN


@pytest.mark.parametrize("image_name", list(ODD_IMAGES))
@pytest.mark.parametrize("processor_name", list(SIZES))
def test_every_processor_gives_square_finite_output_for_odd_images(processor_name: str, image_name: str) -> None:
    """Any input mode and aspect ratio → float32 [3, S, S], finite, within the normalised range of 0..1 pixels."""
    size = SIZES[processor_name]
    output = load_processor(processor_name)(ODD_IMAGES[image_name]())
    assert output.shape == (3, size, size)
    assert output.dtype == torch.float32
    assert torch.isfinite(output).all()
    pixels = _unnormalise(output)
    assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5


@pytest.mark.parametrize("processor_name", list(SIZES))
def test_16_bit_mid_grey_becomes_128_inside_every_processor(processor_name: str) -> None:
    """Processors convert an I;16 image themselves: 32768 → 128/255 everywhere (not clipped to white)."""
    output = load_processor(processor_name)(ODD_IMAGES["int16"]())
    assert torch.allclose(_unnormalise(output), torch.full_like(output, 128 / 255), atol=1e-5)


@pytest.mark.parametrize("processor_name", EVAL)
def test_eval_processors_are_deterministic(processor_name: str) -> None:
    """Eval output does not depend on the random state."""
    processor, image = load_processor(processor_name), Image.fromarray(_noise(48, 64))
    torch.manual_seed(0)
    first = processor(image)
    torch.manual_seed(1)
    assert torch.equal(first, processor(image))


@pytest.mark.parametrize("processor_name", TRAIN)
def test_train_processors_vary_with_seed_and_reproduce_with_it(processor_name: str) -> None:
    """Same torch seed → identical output; different seeds → different crops."""
    processor, image = load_processor(processor_name), Image.fromarray(_noise(48, 64))
    outputs = []
    for seed in (0, 0, 1):
        torch.manual_seed(seed)
        outputs.append(processor(image))
    assert torch.equal(outputs[0], outputs[1])
    assert not torch.equal(outputs[0], outputs[2])


def test_blip_eval_is_exact_normalisation_of_a_uniform_colour() -> None:
    """A uniform colour becomes (c/255 - mean) / std at every pixel."""
    colour = torch.tensor([100.0, 150.0, 200.0])[:, None, None]
    output = load_processor("blip_image_eval", {"image_size": 32})(Image.new("RGB", (50, 20), (100, 150, 200)))
    assert torch.allclose(output, ((colour / 255 - MEAN) / STD).expand(3, 32, 32), atol=1e-6)


def _striped(width: int = 400, height: int = 200) -> Image.Image:
    """Red outer quarters and a blue centre half, so squashing keeps red and centre-cropping removes it."""
    array = np.zeros((height, width, 3), np.uint8)
    array[:, :, 0] = 255
    array[:, width // 4 : 3 * width // 4] = (0, 0, 255)
    return Image.fromarray(array)


def test_clip_eval_centre_crops_and_blip_eval_squashes() -> None:
    """clip_image_eval keeps the aspect ratio and crops the centre (all blue); blip_image_eval keeps the red sides."""
    clip = _unnormalise(load_processor("clip_image_eval", {"image_size": 64})(_striped()))
    assert clip[2, :, 2:-2].min() > 0.98 and clip[0, :, 2:-2].max() < 0.02
    blip = _unnormalise(load_processor("blip_image_eval", {"image_size": 64})(_striped()))
    assert blip[0, :, :8].min() > 0.98 and blip[2, :, 24:40].min() > 0.98


def test_mean_and_std_overrides_give_plain_to_tensor() -> None:
    """mean 0 / std 1 (here from an OmegaConf list) leaves ToTensor's 0..1 values."""
    cfg = OmegaConf.create({"image_size": 8, "mean": [0, 0, 0], "std": [1, 1, 1]})
    output = load_processor("blip_image_eval", cfg)(Image.new("RGB", (8, 8), (255, 0, 51)))
    assert torch.allclose(output[:, 0, 0], torch.tensor([1.0, 0.0, 0.2]), atol=1e-6)


def _hf_processor(backend_class: type) -> object:
    """A transformers BLIP image processor configured like blip_image_eval(image_size=224)."""
    size = {"height": 224, "width": 224}
    return backend_class(size=size, image_mean=IMAGE_MEAN, image_std=IMAGE_STD, do_convert_rgb=True)


HF_IMAGES = {
    "downscale": lambda: Image.fromarray(_noise(300, 500)),
    "upscale": lambda: Image.fromarray(_noise(50, 70)),
    "grayscale": lambda: Image.fromarray(_noise(100, 90, 1)),
}


@pytest.mark.parametrize("image_name", list(HF_IMAGES))
def test_blip_eval_matches_transformers_pil_backend_exactly(image_name: str) -> None:
    """HF's PIL-backend BlipImageProcessor (PIL bicubic, rescale, normalise) equals blip_image_eval within 1e-5."""
    transformers = pytest.importorskip("transformers")
    image = HF_IMAGES[image_name]()
    expected = _hf_processor(transformers.BlipImageProcessorPil)(image, return_tensors="pt").pixel_values[0]
    assert (load_processor("blip_image_eval", {"image_size": 224})(image) - expected).abs().max() < 1e-5


@pytest.mark.parametrize("image_name", list(HF_IMAGES))
def test_blip_eval_matches_transformers_default_torchvision_backend_to_two_levels(image_name: str) -> None:
    """transformers 5's default BlipImageProcessor resizes uint8 tensors with torchvision's antialiased bicubic,
    which rounds differently from PIL: measured max 1 (downscaling) / 2 (upscaling) 8-bit levels, on a few pixels.
    So: at most 2 levels anywhere (2/255/std ≈ 0.030 normalised) and a mean difference below 1e-3."""
    transformers = pytest.importorskip("transformers")
    image = HF_IMAGES[image_name]()
    expected = _hf_processor(transformers.BlipImageProcessor)(image, return_tensors="pt").pixel_values[0]
    levels = (load_processor("blip_image_eval", {"image_size": 224})(image) - expected).abs() * STD * 255
    assert levels.max() <= 2.0 + 1e-3
    assert levels.mean() < 1e-3 * 255 * float(STD.min())


def test_randaugment_magnitudes_at_m5() -> None:
    """M=5 of 10: enhance factor 1.0, shear ±0.15, translate ±5 px, rotate ±15°."""
    augment = RandomAugment()
    assert augment.op_value("Brightness", -1) == pytest.approx(1.0)
    assert augment.op_value("Sharpness", 1) == pytest.approx(1.0)
    assert augment.op_value("ShearX", -1) == pytest.approx(-0.15)
    assert augment.op_value("ShearY", 1) == pytest.approx(0.15)
    assert augment.op_value("TranslateX", 1) == pytest.approx(5.0)
    assert augment.op_value("TranslateY", -1) == pytest.approx(-5.0)
    assert augment.op_value("Rotate", 1) == pytest.approx(15.0)
    assert RandomAugment(m=10).op_value("Brightness", 1) == pytest.approx(1.9)


def test_randaugment_enhance_ops_are_identity_at_m5() -> None:
    """With only Brightness/Sharpness, always applied, a seeded run returns the exact input pixels."""
    image = Image.fromarray(_noise(24, 32))
    torch.manual_seed(0)
    augment = RandomAugment(ops=("Brightness", "Sharpness"), prob=1.0)
    for _ in range(5):
        assert np.array_equal(np.asarray(augment(image)), np.asarray(image))


@pytest.mark.parametrize("op", ["ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate"])
def test_randaugment_geometric_ops_keep_size_and_fill_grey(op: str) -> None:
    """A geometric op changes the pixels, keeps the size, and fills uncovered pixels with (128, 128, 128)."""
    image = Image.fromarray(_noise(23, 37))
    torch.manual_seed(0)
    output = RandomAugment(n=1, ops=(op,), prob=1.0)(image)
    assert output.size == image.size and output.mode == "RGB"
    array = np.asarray(output)
    assert not np.array_equal(array, np.asarray(image))
    assert (array == GREY).all(axis=-1).sum() >= 10


def test_randaugment_translate_moves_content_by_five_pixels() -> None:
    """TranslateX +5: a white column at x=10 moves to x=15 and the left 5 columns become grey."""
    array = np.zeros((8, 20, 3), np.uint8)
    array[:, 10] = 255
    moved = np.asarray(RandomAugment().apply(Image.fromarray(array), [("TranslateX", 5.0)]))
    assert (moved[:, 15] == 255).all() and (moved[:, 10] == 0).all()
    assert (moved[:, :5] == GREY).all()


def test_randaugment_sampling_statistics_and_reproducibility() -> None:
    """≤2 ops per image, each applied about half the time, all ten ops and both signs occur; seeded plans repeat."""
    augment = RandomAugment()
    torch.manual_seed(0)
    plans = [augment.sample() for _ in range(2000)]
    assert max(len(plan) for plan in plans) == 2
    assert 0.45 < sum(len(plan) for plan in plans) / (2 * len(plans)) < 0.55
    assert {name for plan in plans for name, _ in plan} == set(OPS)
    assert {value for plan in plans for name, value in plan if name == "Rotate"} == {15.0, -15.0}
    torch.manual_seed(0)
    assert [augment.sample() for _ in range(2000)] == plans


def test_randaugment_rejects_unknown_ops() -> None:
    """A misspelt op name fails at construction."""
    with pytest.raises(ValueError, match="Rotat"):
        RandomAugment(ops=("Rotat",))


def test_declared_config_defaults_match_the_spec() -> None:
    """Each processor's config keys and defaults, as read from its signature."""
    defaults = {name: registry.get_processor_class(name).config_defaults() for name in SIZES}
    norm = {"mean": IMAGE_MEAN, "std": IMAGE_STD}
    assert defaults["blip_image_train"] == {"image_size": 384, "min_scale": 0.5, "max_scale": 1.0, **norm}
    assert defaults["blip2_image_train"] == {"image_size": 364, "min_scale": 0.5, "max_scale": 1.0, **norm}
    assert defaults["blip_image_eval"] == {"image_size": 384, **norm}
    assert defaults["clip_image_train"] == {"image_size": 224, "min_scale": 0.9, "max_scale": 1.0, **norm}
    assert defaults["clip_image_eval"] == {"image_size": 224, **norm}


def test_unknown_config_key_names_key_and_closest_match() -> None:
    """A misspelt key raises ValueError naming it and the valid key it resembles."""
    with pytest.raises(ValueError, match="image_sise") as caught:
        load_processor("blip_image_eval", {"image_sise": 224})
    assert "image_size" in str(caught.value)


def test_unknown_processor_name_suggests_close_match() -> None:
    """An unknown processor name raises KeyError listing the closest registered name."""
    with pytest.raises(KeyError, match="blip_image_eval"):
        load_processor("blip_image_evl")


def test_build_processors_from_omegaconf_with_missing_entries_as_identity() -> None:
    """Entries build their processors (the `name` key is not an option); missing entries are identity."""
    cfg = OmegaConf.create(
        {
            "vis_processor": {
                "train": {"name": "blip2_image_train", "image_size": 224},
                "eval": {"name": "blip_image_eval", "image_size": 224},
            },
            "text_processor": {"train": {"name": "blip_caption", "prompt": "a photo of "}},
        }
    )
    vis, txt = build_processors(cfg)
    assert set(vis) == set(txt) == {"train", "eval"}
    assert vis["eval"](Image.new("RGB", (10, 10))).shape == (3, 224, 224)
    assert txt["train"]("A Dog.") == "a photo of a dog"
    assert type(txt["eval"]) is BaseProcessor and txt["eval"]("As Is.") == "As Is."


def test_build_processors_none_and_bad_entries() -> None:
    """No config → identity everywhere; an entry without a name or with a bad key fails clearly."""
    vis, txt = build_processors(None)
    assert all(type(p) is BaseProcessor for p in (*vis.values(), *txt.values()))
    with pytest.raises(ValueError, match="'name'"):
        build_processors({"vis_processor": {"train": {"image_size": 224}}})
    with pytest.raises(ValueError, match="min_scale"):
        build_processors({"vis_processor": {"train": {"name": "blip_image_train", "min_scal": 0.2}}})
