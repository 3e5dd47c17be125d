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




def keep_4bit_weights_unpacked(model: torch.nn.Module) -> int:
    """Stop bitsandbytes from repacking 4-bit weights for its AVX512-BF16 CPU kernel; returns how many layers it
    would have repacked. bitsandbytes repacks a `Linear4bit` weight in place the first time it runs in eval mode
    without grad and leaves it packed when training resumes, so after a mid-run validation the training steps would
    compute differently from those of a run resumed from the checkpoint. The runner calls this for training."""
    layers = [module for module in model.modules() if hasattr(module, "support_avx512bf16_for_cpu")]
    for module in layers:
        module.support_avx512bf16_for_cpu = False
    return len(layers)
