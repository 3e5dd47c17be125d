"""A bounded LRU of frozen-ViT outputs for evaluation, keyed by image identity (the items' `media_key`).

A frozen ViT's output depends only on the pixels, and evaluation sets ask many questions about one image (GQA ≈ 31
per test-dev image, VQAv2 ≈ 5, VisDial 10 rounds), so repeats can skip the ViT. The Q-Former output cannot be
cached: it reads the instruction. Entries live on the model's device in the ViT's output dtype; one entry is
`(1 + patches) × width` values — 257 × 1408 for ViT-g at 224 px: 0.69 MiB in fp16/bf16, 1.38 MiB in fp32, so the
evaluation default of 2,048 entries holds ≈ 1.4 GiB (half precision) at most.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Sequence

import torch


class FeatureCache:
    """Up to `capacity` per-image tensors, least recently used evicted first, with hit and miss counts."""

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError(f"feature cache capacity must be ≥ 1 image, got {capacity}")
        self.capacity = capacity
        self.entries: OrderedDict[str, torch.Tensor] = OrderedDict()
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self.entries)

    def encode(self, keys: Sequence[str], images: torch.Tensor,
               encoder: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """`encoder(images)` with row i taken from the cache when `keys[i]` is stored; the other rows are encoded in
        one batch, each distinct key once (a key repeated within the batch is a hit), and stored."""
        if len(keys) != images.shape[0]:
            raise ValueError(f"feature cache: {len(keys)} keys for a batch of {images.shape[0]} images")
        found: dict[str, torch.Tensor] = {}
        for key in keys:
            if key in self.entries and key not in found:
                self.entries.move_to_end(key)
                found[key] = self.entries[key]
        missing: dict[str, int] = {}  # key → its first row in the batch
        for row, key in enumerate(keys):
            if key not in found:
                missing.setdefault(key, row)
        if missing:
            fresh = encoder(images[list(missing.values())])
            for key, features in zip(missing, fresh):
                found[key] = self.put(key, features)
        self.misses += len(missing)
        self.hits += len(keys) - len(missing)
        return torch.stack([found[key] for key in keys])

    def put(self, key: str, features: torch.Tensor) -> torch.Tensor:
        """Store a copy of one image's features (never a view that would keep its whole batch alive)."""
        stored = features.detach().clone()
        self.entries[key] = stored
        self.entries.move_to_end(key)
        while len(self.entries) > self.capacity:
            self.entries.popitem(last=False)
        return stored

    def reset_counts(self) -> None:
        """Start counting hits and misses anew (entries are kept)."""
        self.hits = self.misses = 0

    def __str__(self) -> str:
        looked_up = self.hits + self.misses
        rate = f" ({self.hits / looked_up:.0%})" if looked_up else ""
        return f"{self.hits:,} hits{rate}, {self.misses:,} misses, {len(self):,}/{self.capacity:,} images stored"


def frame_keys(media_keys: Sequence | None, frames: int | None = None) -> list[str] | None:
    """Cache keys of a batch's images — `media_key`, or `media_key#frame t` for each of a video's `frames` — in
    the order the ViT sees them (frame-major within a sample); None when some sample has no key."""
    if media_keys is None or not all(isinstance(key, str) and key for key in media_keys):
        return None
    if frames is None:
        return list(media_keys)
    return [f"{key}#frame {t}" for key in media_keys for t in range(frames)]
