"""Building the frozen language model from transformers (never vendored): from a local dir / hub id, or randomly
from a config dict when a `tiny` model type says so; plus deterministic vocabulary growth for added tokens.

The LLM is built in its storage dtype from the start, never as an fp32 copy cast afterwards: `from_pretrained(dtype=)`
builds the modules on the meta device and reads each safetensors tensor straight into that dtype, so the peak
memory of a load is about one copy of the weights (see bench/llm_loading.py). `meta=True` builds only the skeleton,
with no weight IO at all, for loaders that place or shard the weights themselves (FSDP).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn
from transformers import AutoConfig, PretrainedConfig

from lavis_ib.common.io import WeightNotFoundError, read_json, resolve_dir_or_hub_id
from lavis_ib.common.schema import ConfigError


def language_model_config(
    location: Optional[str],
    location_key: str,
    llm_config: Optional[dict],
    random_init: bool,
    overrides: Optional[dict[str, Any]] = None,
) -> tuple[PretrainedConfig, Optional[str]]:
    """The LLM's transformers config and the directory / hub id of its weights (None: randomly initialised)."""
    overrides = overrides or {}
    if random_init or location is None:
        if llm_config is None:
            raise ValueError(f"model.{location_key} is required (or model.llm_config with model.random_init: true)")
        if not random_init:
            raise ValueError(f"model.{location_key} is not set; only random_init models may be built from llm_config")
        return AutoConfig.for_model(**{**llm_config, **overrides}), None
    path = resolve_dir_or_hub_id(location, location_key)
    config_file = Path(path) / "config.json"
    if not config_file.is_file():
        raise WeightNotFoundError(f"model.{location_key}: {path} has no config.json; expected a transformers model "
                                  f"directory (config.json and its weights)")
    read_json(config_file, f"the transformers config.json of the model that model.{location_key} names")
    return AutoConfig.from_pretrained(path, **overrides), path


def require_weights_directory(cfg, location_key: str, setting: str, does: str) -> None:
    """A `ConfigError` unless the LLM is read from its own directory: quantization and placement act as transformers'
    `from_pretrained` reads the weights, which an LLM built from `model.llm_config` never does."""
    if cfg.random_init or getattr(cfg, location_key) is None:
        raise ConfigError(f"{setting} {does} the LLM as transformers reads it from its own directory "
                          f"(model.{location_key}); this LLM is built from model.llm_config (random_init or an HF "
                          f"InstructBLIP directory), which has no weights to read at load. Point model.{location_key} "
                          f"at the LLM's weights, or remove {setting.split(':')[0]}")


def build_language_model(
    auto_cls,
    location: Optional[str],
    location_key: str,
    llm_config: Optional[dict],
    random_init: bool,
    overrides: Optional[dict[str, Any]] = None,
    dtype: torch.dtype = torch.float32,
    meta: bool = False,
    load_options: Optional[dict[str, Any]] = None,
) -> nn.Module:
    """`auto_cls.from_pretrained(location)` in `dtype` with SDPA attention, or `from_config(llm_config)` under
    `random_init`; `meta=True` builds the empty skeleton on the meta device and reads no weights. `load_options` are
    more `from_pretrained` arguments (`quantization_config`, `device_map`, ...); a random LLM takes none."""
    config, path = language_model_config(location, location_key, llm_config, random_init, overrides)
    if path is not None and not meta:
        return auto_cls.from_pretrained(path, config=config, attn_implementation="sdpa", dtype=dtype,
                                        **(load_options or {}))
    if load_options:
        raise ValueError(f"model.{location_key}: {', '.join(load_options)} need weights read from a directory, and "
                         f"this LLM is built from model.llm_config")
    with torch.device("meta") if meta else contextlib.nullcontext():
        llm = auto_cls.from_config(config, attn_implementation="sdpa", dtype=dtype)
    if {**(llm_config or {}), **(overrides or {})}.get("tie_word_embeddings") is False:
        untie_output_embeddings(llm)
    return llm


def untie_output_embeddings(llm: nn.Module) -> None:
    """Give the LM head its own weight when it shares the input embedding's (a copy, so the values are unchanged).

    transformers 5's `T5Config` forces `tie_word_embeddings=True` and `from_config` ties `lm_head` to `shared`,
    whereas Flan-T5 checkpoints (and configs saying `tie_word_embeddings: false`) keep them apart.
    """
    head, embeddings = llm.get_output_embeddings(), llm.get_input_embeddings()
    if head is None or head.weight is not embeddings.weight:
        return
    head.weight = nn.Parameter(embeddings.weight.detach().clone(), requires_grad=embeddings.weight.requires_grad)
    name = next(f"{prefix}.weight" if prefix else "weight" for prefix, module in llm.named_modules() if module is head)
    getattr(llm, "all_tied_weights_keys", {}).pop(name, None)


@torch.no_grad()
def grow_vocab(llm: nn.Module, new_size: int) -> None:
    """Resize embeddings (and an untied LM head) to `new_size` in their own dtype; new rows are the mean of the
    existing ones (averaged in fp32, so an fp16 vocabulary neither overflows nor rounds the sum)."""
    old = llm.get_input_embeddings().weight.shape[0]
    if new_size <= old:
        return
    llm.resize_token_embeddings(new_size, mean_resizing=False)
    for module in {id(m): m for m in (llm.get_input_embeddings(), llm.get_output_embeddings()) if m is not None}.values():
        module.weight[old:] = module.weight[:old].mean(dim=0, dtype=torch.float32).to(module.weight.dtype)
