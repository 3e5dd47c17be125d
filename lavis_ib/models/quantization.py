"""`model.quantization`: the frozen LLM loaded in 8 or 4 bits by bitsandbytes, through transformers'
`BitsAndBytesConfig` (no quantization code here). The ViT, `ln_vision`, the Q-Former and the projection are never
quantized: only the LLM is built with `from_pretrained(quantization_config=...)`, and transformers keeps the modules
its classes mark fp32 (Flan-T5's `wo`, against HF#24884's int8 garbage) and the LM head unquantized.
"""

from __future__ import annotations

import typing
from typing import Literal

import torch

from lavis_ib.common.extras import require
from lavis_ib.models.llm import require_weights_directory

Quantization = Literal["int8", "nf4", "fp4"]
QUANTIZATIONS: tuple[str, ...] = typing.get_args(Quantization)


def check_quantization(cfg, llm_key: str) -> None:
    """Fail before any weight is read: bitsandbytes missing, or an LLM that is not read from its own directory."""
    if cfg.quantization is None:
        return
    require("bitsandbytes", "quant", f"model.quantization: {cfg.quantization}")
    require("accelerate", "quant", f"model.quantization: {cfg.quantization}")
    require_weights_directory(cfg, llm_key, f"model.quantization: {cfg.quantization}", "quantizes")


def bitsandbytes_config(cfg, llm_dtype: torch.dtype):
    """transformers' `BitsAndBytesConfig` for `model.quantization`; 4-bit matmuls compute in
    `model.quantization_compute_dtype`, by default the dtype the LLM would otherwise be stored in."""
    from transformers import BitsAndBytesConfig

    from lavis_ib.common.precision import dtype_of

    if cfg.quantization == "int8":
        return BitsAndBytesConfig(load_in_8bit=True)
    compute = llm_dtype if cfg.quantization_compute_dtype is None else \
        dtype_of(cfg.quantization_compute_dtype, "model.quantization_compute_dtype")
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=cfg.quantization,
                              bnb_4bit_compute_dtype=compute, bnb_4bit_use_double_quant=cfg.quantization_double_quant)


