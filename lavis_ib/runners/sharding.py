"""`run.fsdp: true`: the frozen LLM sharded across the ranks with torch's FSDP2 (`fully_shard`), for LLMs whose
training does not fit one GPU.

Each decoder block (the classes transformers lists in the model's `_no_split_modules`), the input embeddings and the
LM head (the models call both outside the LLM's forward), then the LLM as a whole become FSDP units: a rank keeps 1/N of the frozen weights and all-gathers one block at a time in forward and again
in backward (the Q-Former's gradient flows through the LLM's inputs). The weights stay frozen, so there is nothing to
reduce-scatter and no optimizer state to shard; the trainable parts stay replicated under DDP, and checkpoints are
unchanged (they hold only the trainable weights).

Training steps run the same number of forwards on every rank, which the per-block all-gathers need. Validation does
not (ranks get uneven shares of a split, generation stops at different lengths), so it runs inside `gathered`: the
LLM unsharded whole on every rank for its duration, then sharded again.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn
from torch.distributed.fsdp import FSDPModule, fully_shard


def shard_frozen_llm(llm: nn.Module) -> int:
    """`fully_shard` every decoder block of `llm`, then `llm` itself; returns the number of blocks sharded."""
    block_types = set(getattr(llm, "_no_split_modules", None) or ())
    blocks = [module for module in llm.modules() if type(module).__name__ in block_types]
    if not blocks:
        raise ValueError(f"{type(llm).__name__} lists no decoder block class in _no_split_modules; cannot shard it "
                         "block by block (set run.fsdp: false)")
    embeddings, head = llm.get_input_embeddings(), llm.get_output_embeddings()
    if head is not None and head.weight is embeddings.weight:
        raise ValueError(f"{type(llm).__name__} ties its LM head to its input embeddings (OPT); run.fsdp shards them "
                         "as separate units, which a shared weight cannot be (set run.fsdp: false)")
    # the models call the embeddings (and the head, when scoring) outside the LLM's forward: their own units
    for unit in blocks + [embeddings] + ([head] if head is not None else []):
        fully_shard(unit)
    fully_shard(llm)
    # FSDP2 makes the first unit called the root: one token through the LLM, before any direct call of a child unit
    with torch.no_grad():
        llm(input_ids=torch.zeros(1, 1, dtype=torch.long, device=embeddings.weight.device_mesh.device_type))
    return len(blocks)


@contextlib.contextmanager
def gathered(module: nn.Module) -> Iterator[None]:
    """Within the block, every FSDP unit of `module` holds its full weights and forwards run without collectives,
    so ranks may run different numbers of them; a module without FSDP units is left as it is."""
    units = [m for m in module.modules() if isinstance(m, FSDPModule)]
    for unit in units:
        unit.set_reshard_after_forward(False, recurse=False)
        unit.unshard()
    try:
        yield
    finally:
        for unit in units:
            unit.reshard()
            unit.set_reshard_after_forward(True, recurse=False)
