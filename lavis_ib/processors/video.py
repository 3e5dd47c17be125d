"""Video processors (LAVIS `alpro_video_*`): a clip in, a normalised RGB float tensor [3, T, S, S] out.

Input: a video path, a dict `{"path": ..., "start": seconds, "end": seconds}`, or a list of frame image paths.
`n_frms` frames are sampled at evenly spaced centres of the clip. Deviations from LAVIS, on purpose: frames are RGB
(LAVIS's eval path hands BGR to the model, a bug), `image_size` defaults to 224 (LAVIS: 256 when unset) and `n_frms`
to 8 (LAVIS: MAX_INT, i.e. every frame), resizing is antialiased bicubic, and training has no per-video RandAugment.
The training crop and flip draw from the `generator` passed to the call (seeded per sample by the datasets).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, Union

import numpy as np
import torch
import torchvision.transforms.functional as TF

from lavis_ib.common.media import decode_video_frames, open_image, uniform_indices
from lavis_ib.common.registry import registry
from lavis_ib.processors.base import BaseProcessor
from lavis_ib.processors.image import (
    BICUBIC, CROP_RATIO, IMAGE_MEAN, IMAGE_STD, coin, normalization, random_resized_crop_params,
)

VideoInput = Union[str, "os.PathLike[str]", Mapping[str, Any], Sequence[str]]


def _load_frame_files(paths: Sequence[str], n_frms: int) -> torch.Tensor:
    """`n_frms` frames (uint8 [T, H, W, 3]) from a list of image files, subsampled or repeated uniformly."""
    chosen = [paths[i] for i in uniform_indices(len(paths), n_frms)]
    arrays = [np.asarray(open_image(path)) for path in chosen]
    sizes = {array.shape for array in arrays}
    if len(sizes) > 1:
        raise ValueError(f"video frames differ in size {sorted(sizes)}: {list(chosen)}")
    return torch.from_numpy(np.stack(arrays))


def load_clip(item: VideoInput, n_frms: int) -> torch.Tensor:
    """The sampled frames of a video input (path, {"path", "start", "end"} dict, or frame list) as uint8 [T,H,W,3]."""
    if isinstance(item, Mapping):
        if "path" not in item:
            raise ValueError(f"a video dict needs a 'path' key, got keys {sorted(item)}")
        return decode_video_frames(item["path"], n_frms, item.get("start"), item.get("end"))
    if isinstance(item, (str, os.PathLike)):
        return decode_video_frames(item, n_frms)
    if isinstance(item, Sequence) and len(item) > 0:
        return _load_frame_files(item, n_frms)
    raise TypeError(f"expected a video path, a dict with 'path', or a non-empty list of frame paths, got {item!r}")


class VideoProcessor(BaseProcessor):
    """Base of the video processors: load/sample frames, the subclass's geometry on [T, 3, H, W], then normalise."""

    def __init__(self, image_size: int, n_frms: int, mean: Sequence[float] | None, std: Sequence[float] | None):
        if n_frms < 1:
            raise ValueError(f"n_frms must be at least 1, got {n_frms}")
        self.image_size, self.n_frms = image_size, n_frms
        self.normalize = normalization(mean, std)

    def geometry(self, frames: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Resize/crop uint8 frames [T, 3, H, W] to [T, 3, S, S]; defined by each subclass."""
        raise NotImplementedError

    def __call__(self, item: VideoInput, generator: torch.Generator | None = None) -> torch.Tensor:
        """Process one clip into a normalised float tensor [3, T, S, S] (channels RGB); random steps use `generator`."""
        frames = load_clip(item, self.n_frms).permute(0, 3, 1, 2)
        frames = self.geometry(frames, generator).float().div(255)
        return self.normalize(frames).permute(1, 0, 2, 3).contiguous()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(image_size={self.image_size}, n_frms={self.n_frms})"


@registry.register_processor("alpro_video_train")
@registry.register_processor("video_train")
class VideoTrainProcessor(VideoProcessor):
    """Training: one bicubic RandomResizedCrop and one flip decision, shared by every frame of the clip."""

    def __init__(
        self,
        image_size: int = 224,
        n_frms: int = 8,
        min_scale: float = 0.5,
        max_scale: float = 1.0,
        mean: Sequence[float] | None = IMAGE_MEAN,
        std: Sequence[float] | None = IMAGE_STD,
    ):
        super().__init__(image_size, n_frms, mean, std)
        self.scale = (min_scale, max_scale)

    def geometry(self, frames: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Crop the same random box from every frame, resize it to S x S, and flip all frames or none."""
        top, left, height, width = random_resized_crop_params(
            frames.shape[-1], frames.shape[-2], self.scale, CROP_RATIO, generator
        )
        size = [self.image_size, self.image_size]
        frames = TF.resized_crop(frames, top, left, height, width, size, interpolation=BICUBIC, antialias=True)
        return TF.hflip(frames) if coin(0.5, generator) else frames


@registry.register_processor("alpro_video_eval")
@registry.register_processor("video_eval")
class VideoEvalProcessor(VideoProcessor):
    """Evaluation: every frame resized to S x S (bicubic, aspect not kept)."""

    def __init__(
        self,
        image_size: int = 224,
        n_frms: int = 8,
        mean: Sequence[float] | None = IMAGE_MEAN,
        std: Sequence[float] | None = IMAGE_STD,
    ):
        super().__init__(image_size, n_frms, mean, std)

    def geometry(self, frames: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Resize every frame to S x S (deterministic: `generator` is unused)."""
        size = [self.image_size, self.image_size]
        return TF.resize(frames, size, interpolation=BICUBIC, antialias=True)
