"""A KV cache for beam search and multi-caption sampling whose prompt prefix is computed once per sample.

`DecoderOnlyBlip2.generate_ids_from` runs the `[pads | Q | prompt]` prefix (all but its last position) at batch B,
then hands `generate` this cache with each sample's rows repeated for its beams / captions. Two things differ from
transformers' `DynamicCache` layer, neither of which changes a value:

- the keys and values live in a buffer preallocated for the whole answer, so a decode step writes one position in
  place instead of `torch.cat`-ing a copy of the whole cache;
- `reorder_cache` (beam search picking parents) moves only the positions after the shared prefix: beam search only
  reorders within a sample (`generate` adds the batch offset to every beam index), and the prefix rows of one sample
  are equal, so reordering them is a no-op.

Attention reads a view of the buffer up to the current length: the same numbers as the contiguous tensor (the
tests compare token ids with the expanded-prefill path exactly).
"""

from __future__ import annotations

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer


class SharedPrefixLayer(DynamicLayer):
    """One layer's keys and values in a preallocated `[N, H, capacity, D]` buffer; the first `shared` positions
    are equal across the rows of a sample and never reordered."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, capacity: int):
        super().__init__()
        self.dtype, self.device = keys.dtype, keys.device
        self.shared = self.length = keys.shape[-2]
        self.key_buffer = self._allocate(keys, capacity)
        self.value_buffer = self._allocate(values, capacity)
        self.is_initialized = True
        self._expose()

    @staticmethod
    def _allocate(states: torch.Tensor, capacity: int) -> torch.Tensor:
        rows, heads, length, dim = states.shape
        buffer = states.new_empty(rows, heads, max(capacity, length), dim)
        buffer[:, :, :length].copy_(states)
        return buffer

    def _expose(self) -> None:
        self.keys = self.key_buffer[:, :, : self.length]
        self.values = self.value_buffer[:, :, : self.length]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        end = self.length + key_states.shape[-2]
        if end > self.key_buffer.shape[-2]:  # longer than planned: double (amortised), as a list would
            capacity = max(end, 2 * self.key_buffer.shape[-2])
            self.key_buffer = self._allocate(self.keys, capacity)
            self.value_buffer = self._allocate(self.values, capacity)
        self.key_buffer[:, :, self.length : end].copy_(key_states)
        self.value_buffer[:, :, self.length : end].copy_(value_states)
        self.length = end
        self._expose()
        return self.keys, self.values

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        if self.length > self.shared:
            beam_idx = beam_idx.to(self.device)
            for buffer in (self.key_buffer, self.value_buffer):
                own = buffer[:, :, self.shared : self.length]
                own.copy_(own.index_select(0, beam_idx))

    def reset(self) -> None:
        self.length = self.shared = 0
        self._expose()

    def crop(self, tokens_to_remove: int) -> None:
        if tokens_to_remove > 0:
            raise ValueError(f"crop takes a negative number of tokens to remove, got {tokens_to_remove}")
        self.length = max(self.length + tokens_to_remove, 0)
        self.shared = min(self.shared, self.length)
        self._expose()

    def batch_repeat_interleave(self, repeats: int) -> None:
        raise NotImplementedError("a SharedPrefixLayer is built already expanded (see `shared_prefix_cache`)")

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        raise NotImplementedError("a SharedPrefixLayer keeps its rows; select them before building it")


def expand_prefix_cache(prefix: DynamicCache, copies: int, capacity: int) -> DynamicCache:
    """`prefix` (a `DynamicCache` filled at batch B) with each row repeated `copies` times (row `b * copies + k`,
    the order of `generate`'s expansion): `SharedPrefixLayer`s with room for `capacity` positions when every layer
    is a plain full-attention one, else (sliding windows and the like) transformers' own layers, repeated."""
    if not all(type(layer) is DynamicLayer for layer in prefix.layers):
        prefix.batch_repeat_interleave(copies)
        return prefix
    for index, layer in enumerate(prefix.layers):
        prefix.layers[index] = SharedPrefixLayer(layer.keys.repeat_interleave(copies, dim=0),
                                                 layer.values.repeat_interleave(copies, dim=0), capacity)
    return prefix
