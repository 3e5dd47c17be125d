"""Building the frozen language model from transformers (never vendored): from a local dir / hub id, or randomly
from a config dict when a `tiny` model type says so; plus deterministic vocabulary growth for added tokens."""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn
from transformers import AutoConfig

from lavis_ib.common.io import resolve_dir_or_hub_id


def build_language_model(
    auto_cls,
    location: Optional[str],
    location_key: str,
    llm_config: Optional[dict],
    random_init: bool,
    overrides: Optional[dict[str, Any]] = None,
    dtype: torch.dtype = torch.float32,
) -> nn.Module:
    """`auto_cls.from_pretrained(location)` with SDPA attention, or `from_config(llm_config)` under `random_init`."""
    overrides = overrides or {}
    if random_init or location is None:
        if llm_config is None:
            raise ValueError(f"model.{location_key} is required (or model.llm_config with model.random_init: true)")
        if not random_init:
            raise ValueError(f"model.{location_key} is not set; only random_init models may be built from llm_config")
        config_dict = {**llm_config, **overrides}
        config = AutoConfig.for_model(**config_dict)
        return auto_cls.from_config(config, attn_implementation="sdpa", dtype=dtype)
    path = resolve_dir_or_hub_id(location, location_key)
    config = AutoConfig.from_pretrained(path, **overrides)
    return auto_cls.from_pretrained(path, config=config, attn_implementation="sdpa", dtype=dtype)


@torch.no_grad()
def grow_vocab(llm: nn.Module, new_size: int) -> None:
    """Resize embeddings (and an untied LM head) to `new_size`; new rows are the mean of the existing ones."""
    old = llm.get_input_embeddings().weight.shape[0]
    if new_size <= old:
        return
    llm.resize_token_embeddings(new_size, mean_resizing=False)
    for module in {id(m): m for m in (llm.get_input_embeddings(), llm.get_output_embeddings()) if m is not None}.values():
        module.weight[old:] = module.weight[:old].mean(dim=0)
