"""Robust loading of images and video frames: every input ends up as 8-bit RGB, and failures name the file.

Images: EXIF orientation is applied, and every Pillow mode (1, L, LA, P with or without transparency, RGBA, CMYK,
I;16, I, F, ...) is mapped to RGB with high bit depths scaled, not clipped. Alpha is dropped (`convert("RGB")`, as
LAVIS does), not composited on a background. Videos are decoded with PyAV.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, BinaryIO, Union

import numpy as np
from PIL import Image, ImageOps

from lavis_ib.common.errors import UserError

if TYPE_CHECKING:
    import torch

ImageSource = Union[str, "os.PathLike[str]", BinaryIO]

_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


class MediaError(UserError, OSError):
    """An image or video that cannot be read; the message names the file and the reason."""

    def __init__(self, message: str, path: str | None = None):
        super().__init__(message)
        self.path = path


def _describe(source: object) -> str:
    """A printable name for a path or an open file (its `name`, else its repr)."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    return str(getattr(source, "name", repr(source)))


def _to_uint8(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Map values linearly from [low, high] to 0..255, rounding and clipping (NaN → 0; a constant image → 0)."""
    scale = 255.0 / (high - low) if high > low else 0.0
    scaled = (np.nan_to_num(values.astype(np.float64)) - low) * scale
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _high_depth_to_l(image: Image.Image) -> Image.Image:
    """An 8-bit L image from a 16-bit, 32-bit integer or float image, scaling the range rather than clipping it.

    I;16 uses the full 0..65535 range. `I` is read as 16-bit data (how Pillow decodes 16-bit PNG/TIFF) when it lies
    in 0..65535, `F` as 0..1 data when it lies in 0..1 and as 8-bit data when in 0..255; anything else is stretched
    from its min..max.
    """
    values = np.asarray(image)
    low, high = (float(np.nanmin(values)), float(np.nanmax(values))) if values.size else (0.0, 0.0)
    if image.mode in _SIXTEEN_BIT_MODES or (image.mode == "I" and low >= 0 and high <= 65535):
        low, high = 0.0, 65535.0
    elif image.mode == "F" and low >= 0 and high <= 1:
        low, high = 0.0, 1.0
    elif image.mode == "F" and low >= 0 and high <= 255:
        low, high = 0.0, 255.0
    return Image.fromarray(_to_uint8(values, low, high))


def to_rgb(image: Image.Image) -> Image.Image:
    """The image as 8-bit RGB (unchanged when already RGB); raises ValueError for a mode Pillow cannot convert."""
    if image.mode == "RGB":
        return image
    if image.mode in _SIXTEEN_BIT_MODES or image.mode in ("I", "F"):
        image = _high_depth_to_l(image)
    elif image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    return image.convert("RGB")


def open_image(source: ImageSource) -> Image.Image:
    """Open an image file as RGB with its EXIF orientation applied; `MediaError` naming the file on any failure."""
    name = _describe(source)
    try:
        with Image.open(source) as image:
            image.load()
            return to_rgb(ImageOps.exif_transpose(image))
    except FileNotFoundError:
        raise MediaError(f"cannot open image {name}: file not found", path=name) from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise MediaError(f"cannot open image {name}: {type(error).__name__}: {error}", path=name) from error


def uniform_indices(length: int, n: int, offset: int = 0) -> list[int]:
    """`n` indices into `length` items at evenly spaced centres (repeats when n > length), shifted by `offset`."""
    if length <= 0 or n <= 0:
        raise ValueError(f"need a positive length and count, got length={length}, n={n}")
    return [offset + min(length - 1, int((i + 0.5) * length / n)) for i in range(n)]


def _frame_span(total: int, fps: float, start: float | None, end: float | None) -> tuple[int, int]:
    """The [first, stop) frame range for a clip given in seconds, clamped to the video and never empty."""
    first = 0 if start is None else int(math.floor(start * fps))
    stop = total if end is None else int(math.ceil(end * fps))
    first = min(max(first, 0), total - 1)
    return first, min(max(stop, first + 1), total)


def _probe(path: str) -> tuple[int, float]:
    """(frame count, frames per second) of the first video stream; the count from metadata or by counting packets."""
    import av  # PyAV only where video is decoded: image-only runs (and the GPU check) do without it

    with av.open(path) as container:
        if not container.streams.video:
            raise MediaError(f"cannot decode video {path}: no video stream", path=path)
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 1)
        if stream.frames > 0:
            return int(stream.frames), fps
        return sum(1 for packet in container.demux(stream) if packet.size), fps


def _decode_selected(path: str, indices: list[int]) -> list[np.ndarray]:
    """The RGB frames at `indices`, decoding in order; an index past the real end gets the video's last frame."""
    import av

    wanted, stop = set(indices), max(indices)
    kept: dict[int, np.ndarray] = {}
    last = None
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for index, frame in enumerate(container.decode(stream)):
            last = frame
            if index in wanted:
                kept[index] = frame.to_ndarray(format="rgb24")
            if index >= stop:
                break
    if last is None:
        return []
    last_array = last.to_ndarray(format="rgb24")
    return [kept.get(index, last_array) for index in indices]


def decode_video_frames(
    path: str | os.PathLike[str], n_frms: int, start: float | None = None, end: float | None = None
) -> torch.Tensor:
    """`n_frms` RGB frames (uint8 [T, H, W, 3]) sampled at evenly spaced centres of the clip [start, end] seconds.

    The whole video is used when start/end are None. If the file holds fewer frames than its metadata promised,
    the last decoded frame is repeated. Any failure raises `MediaError` naming the file.
    """
    import av
    import torch  # here, not above: checking an image (the demo page's first seconds) needs no torch

    name = os.fspath(path)
    try:
        total, fps = _probe(name)
        if total <= 0:
            raise MediaError(f"cannot decode video {name}: no frames", path=name)
        first, stop = _frame_span(total, fps, start, end)
        indices = uniform_indices(stop - first, n_frms, offset=first)
        decoded = _decode_selected(name, indices)
    except MediaError:
        raise
    except FileNotFoundError:
        raise MediaError(f"cannot decode video {name}: file not found", path=name) from None
    except (OSError, av.FFmpegError, ValueError, IndexError) as error:
        raise MediaError(f"cannot decode video {name}: {type(error).__name__}: {error}", path=name) from error
    if not decoded:
        raise MediaError(f"cannot decode video {name}: no frame could be decoded", path=name)
    return torch.from_numpy(np.stack(decoded))


def encode_video(path: str | os.PathLike, frames: np.ndarray, fps: int = 8, bit_rate: int = 4_000_000) -> None:
    """Write uint8 RGB frames `[T, H, W, 3]` (even H and W) as an MPEG-4 video with PyAV (synthetic data, tests)."""
    frames = np.asarray(frames, dtype=np.uint8)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[1] % 2 or frames.shape[2] % 2:
        raise ValueError(f"expected frames [T, H, W, 3] with even H and W, got shape {frames.shape}")
    import av

    with av.open(os.fspath(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt, stream.bit_rate = "yuv420p", bit_rate
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
