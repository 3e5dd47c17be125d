"""Fixtures for the big-LLM options (quantization, LoRA, placement): the demo model's pre-trained tiny LLaMA (a real
weight directory, as quantization and placement need) and a tiny Flan-T5-style directory saved by transformers."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForSeq2SeqLM

from lavis_ib import load_model
from lavis_ib.common.paths import assets_root
from lavis_ib.models.blip2_t5_instruct import Blip2T5Instruct

VICUNA = "blip2_vicuna_instruct"
DEMO_WEIGHTS = {"random_init": False, "load_pretrained": False, "llm_model": str(assets_root / "tiny_lm"),
                "vit_weights": str(assets_root / "tiny_vit" / "vit.safetensors")}
PROMPTS = ["what colour is the circle?", "how many shapes are there?"]
ANSWERS = ["red", "two shapes", "a blue square"]


def images(count: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(count, 3, 56, 56, generator=torch.Generator().manual_seed(seed))


def load_vicuna(is_eval: bool = True, seed: int = 0, **options):
    """The tiny InstructBLIP-Vicuna on the committed LLaMA; the same `seed`, the same Q-Former and projection."""
    torch.manual_seed(seed)
    return load_model(VICUNA, "tiny", is_eval=is_eval, options={**DEMO_WEIGHTS, **options})


def save_tiny_t5(directory: Path) -> Path:
    """A random T5 of the `tiny` type's dimensions, saved by `save_pretrained` with distinct (non-init) values."""
    llm_config = dict(Blip2T5Instruct.default_config("tiny").model.llm_config)
    model = AutoModelForSeq2SeqLM.from_config(AutoConfig.for_model(**llm_config))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "layer_norm" in name:
                continue
            param.copy_(0.3 * torch.randn(param.shape, generator=generator))
    model.save_pretrained(directory)
    return directory


def llm_logits(model, ids: torch.Tensor) -> torch.Tensor:
    """The frozen LLM's fp32 logits for token ids (decoder-only) — the quantity quantization perturbs."""
    with torch.no_grad():
        return model.llm(input_ids=ids).logits.float()
