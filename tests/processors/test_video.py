"""Tests for video decoding and the video processors, on a tiny generated clip whose frame k has a known colour.

Frame k of the 12-frame, 12 fps, 32x32 clip is RGB (20k + 15, 100, 0): red encodes the frame index, blue is zero,
so the tests can read back which frames were sampled and that channels are RGB (BGR would put the code in blue).
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image

from lavis_ib.common import media
from lavis_ib.common.media import MediaError, decode_video_frames
from lavis_ib.common.registry import registry
from lavis_ib.processors import load_processor
from lavis_ib.processors.image import BICUBIC, CROP_RATIO, IMAGE_MEAN, IMAGE_STD, coin, random_resized_crop_params
from lavis_ib.processors.video import VideoEvalProcessor, VideoTrainProcessor

N_FRAMES, FPS, SIDE = 12, 12, 32
MEAN = torch.tensor(IMAGE_MEAN)[:, None, None, None]
STD = torch.tensor(IMAGE_STD)[:, None, None, None]


def _frame_colour(k: int) -> tuple[int, int, int]:
    """The RGB colour of frame k."""
    return (20 * k + 15, 100, 0)


def _frame_index(red: float) -> int:
    """The frame index encoded by a (decoded, slightly lossy) red value."""
    return round((red - 15) / 20)


@pytest.fixture(scope="module")
def video_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Encode the test clip with mpeg4 at a high bit rate (decoded colours are within ~3 levels)."""
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=FPS)
        stream.width, stream.height, stream.pix_fmt, stream.bit_rate = SIDE, SIDE, "yuv420p", 4_000_000
        for k in range(N_FRAMES):
            array = np.zeros((SIDE, SIDE, 3), np.uint8)
            array[...] = _frame_colour(k)
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _decoded_indices(frames: torch.Tensor) -> list[int]:
    """Frame indices of uint8 [T, H, W, 3] frames, checking green ≈ 100 and blue ≈ 0 (RGB order)."""
    means = frames.float().mean(dim=(1, 2))
    assert (means[:, 1] - 100).abs().max() < 6 and means[:, 2].max() < 6
    return [_frame_index(red) for red in means[:, 0].tolist()]


def _processed_indices(output: torch.Tensor) -> list[int]:
    """Frame indices of a normalised processor output [3, T, S, S], checking RGB order."""
    pixels = (output * STD + MEAN) * 255
    return _decoded_indices(pixels.permute(1, 2, 3, 0))


def test_decode_samples_evenly_spaced_centres(video_path: Path) -> None:
    """4 of 12 frames → indices 1, 4, 7, 10 as uint8 RGB [4, 32, 32, 3]."""
    frames = decode_video_frames(video_path, 4)
    assert frames.shape == (4, SIDE, SIDE, 3) and frames.dtype == torch.uint8
    assert _decoded_indices(frames) == [1, 4, 7, 10]


def test_decode_clip_range_in_seconds(video_path: Path) -> None:
    """[0.5 s, 1.0 s] at 12 fps is frames 6..11; 3 centres → 7, 9, 11."""
    assert _decoded_indices(decode_video_frames(video_path, 3, start=0.5, end=1.0)) == [7, 9, 11]


def test_decode_more_frames_than_video_repeats(video_path: Path) -> None:
    """Asking for 16 of 12 frames repeats some, in order, from first to last."""
    indices = _decoded_indices(decode_video_frames(video_path, 16))
    assert len(indices) == 16 and indices[0] == 0 and indices[-1] == 11
    assert indices == sorted(indices) and len(set(indices)) == 12


def test_decode_pads_with_last_frame_when_metadata_overcounts(
    video_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the container claims 24 frames but holds 12, indices past the end get the real last frame."""
    monkeypatch.setattr(media, "_probe", lambda path: (24, float(FPS)))
    assert _decoded_indices(decode_video_frames(video_path, 4)) == [3, 9, 11, 11]


def test_video_eval_output_layout_sampling_and_rgb(video_path: Path) -> None:
    """video_eval: [3, T, S, S] float, channel-first then time, sampled frames in order, RGB."""
    output = load_processor("video_eval", {"image_size": 16, "n_frms": 4})(str(video_path))
    assert output.shape == (3, 4, 16, 16) and output.dtype == torch.float32
    assert _processed_indices(output) == [1, 4, 7, 10]


def test_video_eval_accepts_clip_dicts(video_path: Path) -> None:
    """A {"path", "start", "end"} dict samples inside the clip."""
    processor = load_processor("video_eval", {"image_size": 16, "n_frms": 3})
    output = processor({"path": video_path, "start": 0.5, "end": 1.0})
    assert _processed_indices(output) == [7, 9, 11]


def test_video_eval_accepts_frame_lists(tmp_path: Path) -> None:
    """A list of frame files is subsampled (5 → 3: 0, 2, 4) or repeated (5 → 8) uniformly."""
    paths = []
    for k in range(5):
        paths.append(str(tmp_path / f"frame{k}.png"))
        Image.new("RGB", (20, 12), _frame_colour(k)).save(paths[-1])
    assert _processed_indices(load_processor("video_eval", {"image_size": 8, "n_frms": 3})(paths)) == [0, 2, 4]
    repeated = _processed_indices(load_processor("video_eval", {"image_size": 8, "n_frms": 8})(paths))
    assert repeated == [0, 0, 1, 2, 2, 3, 4, 4]


def _gradient_frames(tmp_path: Path, count: int = 4) -> list[str]:
    """`count` identical asymmetric gradient frames, so any per-frame difference in crop/flip would show."""
    ys, xs = np.mgrid[0:40, 0:60]
    array = np.stack([xs * 4, ys * 6, (xs + ys) * 2], axis=-1).astype(np.uint8)
    path = tmp_path / "gradient.png"
    Image.fromarray(array).save(path)
    return [str(path)] * count


def test_video_train_uses_one_crop_and_flip_for_all_frames(tmp_path: Path) -> None:
    """Identical input frames stay identical after train processing, for every seed (shared crop and flip)."""
    processor = load_processor("video_train", {"image_size": 24, "n_frms": 4})
    for seed in range(6):
        torch.manual_seed(seed)
        output = processor(_gradient_frames(tmp_path))
        assert output.shape == (3, 4, 24, 24)
        assert all(torch.equal(output[:, 0], output[:, t]) for t in range(1, 4))


def test_video_train_varies_with_seed_and_reproduces_with_it(tmp_path: Path) -> None:
    """Same seed → identical clip; different seeds → different crops."""
    processor = load_processor("video_train", {"image_size": 24, "n_frms": 2})
    outputs = []
    for seed in (0, 0, 1):
        torch.manual_seed(seed)
        outputs.append(processor(_gradient_frames(tmp_path, 2)))
    assert torch.equal(outputs[0], outputs[1]) and not torch.equal(outputs[0], outputs[2])


def test_video_train_keeps_frame_order_and_rgb(video_path: Path) -> None:
    """Training crops do not mix up frames or channels (frames are uniform colours)."""
    torch.manual_seed(0)
    output = load_processor("video_train", {"image_size": 16, "n_frms": 4})(video_path)
    assert _processed_indices(output) == [1, 4, 7, 10]


def test_video_names_aliases_and_defaults() -> None:
    """LAVIS names are aliases; defaults are image_size 224 and n_frms 8."""
    assert registry.get_processor_class("alpro_video_train") is VideoTrainProcessor
    assert registry.get_processor_class("alpro_video_eval") is VideoEvalProcessor
    norm = {"mean": IMAGE_MEAN, "std": IMAGE_STD}
    scales = {"min_scale": 0.5, "max_scale": 1.0}
    assert VideoTrainProcessor.config_defaults() == {"image_size": 224, "n_frms": 8, **scales, **norm}
    assert VideoEvalProcessor.config_defaults() == {"image_size": 224, "n_frms": 8, **norm}
    with pytest.raises(ValueError, match="n_frms"):
        load_processor("video_eval", {"n_frames": 4})


def test_video_processor_errors_name_the_input(tmp_path: Path) -> None:
    """Missing files fail with MediaError naming the path; malformed inputs fail with clear type/value errors."""
    with pytest.raises(MediaError, match="absent.mp4"):
        load_processor("video_eval")(str(tmp_path / "absent.mp4"))
    with pytest.raises(ValueError, match="'path'"):
        load_processor("video_eval")({"start": 0.0})
    with pytest.raises(TypeError):
        load_processor("video_eval")([])


def test_video_eval_normalises_known_colours_exactly(tmp_path: Path) -> None:
    """Uniform PNG frames of colour (20k + 15, 100, 0) give (colour / 255 - mean) / std at every pixel of frame k."""
    paths = []
    for k in range(3):
        paths.append(str(tmp_path / f"frame{k}.png"))
        Image.new("RGB", (20, 12), _frame_colour(k)).save(paths[-1])
    output = load_processor("video_eval", {"image_size": 8, "n_frms": 3})(paths)
    colours = torch.tensor([_frame_colour(k) for k in range(3)], dtype=torch.float32).T[:, :, None, None]
    expected = ((colours / 255 - MEAN) / STD).expand(3, 3, 8, 8)
    assert torch.allclose(output, expected, atol=1e-6)
    assert output[0, 2, 0, 0].item() == pytest.approx((55 / 255 - IMAGE_MEAN[0]) / IMAGE_STD[0], abs=1e-6)


def test_video_train_crop_and_flip_come_from_the_generator(tmp_path: Path) -> None:
    """The clip equals the crop box and flip drawn from the same seed, applied to every frame; global seed unused."""
    processor = load_processor("video_train", {"image_size": 24, "n_frms": 2})
    frames = _gradient_frames(tmp_path, 2)
    pixels = torch.from_numpy(np.array(Image.open(frames[0]))).permute(2, 0, 1)
    outputs = []
    for seed in range(4):
        generator = torch.Generator().manual_seed(seed)
        box = random_resized_crop_params(60, 40, (0.5, 1.0), CROP_RATIO, generator)
        expected = TF.resized_crop(pixels, *box, [24, 24], interpolation=BICUBIC, antialias=True)
        expected = TF.hflip(expected) if coin(0.5, generator) else expected
        expected = (expected.float() / 255 - MEAN[:, 0]) / STD[:, 0]
        torch.manual_seed(100 + seed)
        outputs.append(processor(frames, generator=torch.Generator().manual_seed(seed)))
        assert torch.allclose(outputs[-1], expected[:, None].expand(3, 2, 24, 24), atol=1e-6)
    assert len({tuple(o[0, 0, 0, :4].tolist()) for o in outputs}) == 4
