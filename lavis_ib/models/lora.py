"""`model.lora`: low-rank adapters on the frozen LLM's linear layers, through peft (LoRA; QLoRA when the LLM is
also quantized). What trains is still `requires_grad` — the Q-Former and the adapters — so optimizer groups,
`trainable_state_dict`, checkpoints, exact resume and evaluation need nothing of their own.

Adapters are injected in place (`peft.inject_adapter_in_model`), so the LLM keeps its class and its module paths;
peft moves each wrapped layer's weight under `<layer>.base_layer.` and adds `<layer>.lora_A/B.default.weight`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from torch import nn

from lavis_ib.common.extras import require
from lavis_ib.common.io import WeightMismatchError
from lavis_ib.common.schema import ConfigError

ADAPTER = "default"  # peft's adapter name: one adapter per model
LORA_MARK = ".lora_A."


@dataclass
class LoraSettings:
    """The `model.lora` block. `target_modules`: names (or dotted suffixes) of the LLM's linear layers to adapt;
    None takes the architecture's attention query/value projections, as the LoRA paper does."""

    r: int = 8
    alpha: float = 16.0
    dropout: float = 0.05
    target_modules: Optional[list[str]] = None

    def __post_init__(self):
        if self.r < 1:
            raise ValueError(f"model.lora.r must be a positive integer, got {self.r}")
        if self.alpha <= 0:
            raise ValueError(f"model.lora.alpha must be positive, got {self.alpha}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"model.lora.dropout must be in [0, 1), got {self.dropout}")


def linear_layer_names(llm: nn.Module) -> list[str]:
    """Dotted names of the LLM's linear layers (what LoRA can adapt)."""
    return [name for name, module in llm.named_modules() if isinstance(module, nn.Linear)]


def check_targets(targets: Sequence[str], skeleton: nn.Module) -> None:
    """Every target must name at least one linear layer of the LLM (its last components); else a `ConfigError`
    listing the candidates. `skeleton` may be on the meta device: no weight is needed. Needs peft (checked here,
    before any weight is read)."""
    require("peft", "lora", "model.lora")
    names = linear_layer_names(skeleton)
    for target in targets:
        if not any(name == target or name.endswith("." + target) for name in names):
            leaves = sorted({name.rsplit(".", 1)[-1] for name in names})
            raise ConfigError(f"model.lora.target_modules: {target!r} names no linear layer of the LLM "
                              f"({type(skeleton).__name__}); candidates: {', '.join(leaves)}")


def add_lora(llm: nn.Module, settings: LoraSettings, default_targets: Sequence[str]) -> None:
    """Inject trainable adapters into the (frozen, possibly quantized) `llm` in place (peft: see `check_targets`)."""
    from peft import LoraConfig, inject_adapter_in_model

    targets = list(settings.target_modules or default_targets)
    inject_adapter_in_model(LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                                       target_modules=targets), llm, adapter_name=ADAPTER)


def lora_layers(module: nn.Module) -> dict[str, nn.Module]:
    """`{dotted name: peft LoRA layer}` under `module` (empty when no adapter was added). Without peft imported no
    adapter can exist, so peft (which imports bitsandbytes, seconds of start-up) is never imported just to look."""
    peft_lora = sys.modules.get("peft.tuners.lora")
    if peft_lora is None:
        return {}
    return {name: layer for name, layer in module.named_modules() if isinstance(layer, peft_lora.LoraLayer)}


def set_dropout_mode(llm: nn.Module, training: bool) -> None:
    """The frozen LLM stays in eval mode; only its adapters' dropout follows the model's train / eval mode."""
    for layer in lora_layers(llm).values():
        layer.lora_dropout.train(training)


@torch.no_grad()
def merged_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """`model.state_dict()` with every adapter folded into its base weight (`W + scale * B @ A`, peft's
    `get_delta_weight`) under the layer's own name, and no adapter keys: the plain model's layout. The live model
    is not changed."""
    layers = lora_layers(model)
    state = {}
    for key, value in model.state_dict().items():
        owner = next((name for name in layers if key.startswith(name + ".")), None)
        if owner is None:
            state[key] = value
        elif key.startswith(f"{owner}.base_layer."):
            plain = key.replace(f"{owner}.base_layer.", f"{owner}.", 1)
            is_weight = key == f"{owner}.base_layer.weight"
            state[plain] = value + layers[owner].get_delta_weight(ADAPTER).to(value.dtype) if is_weight else value
    return state


def checkpoint_rank(state: dict[str, torch.Tensor]) -> Optional[int]:
    """The LoRA rank of a checkpoint's adapters, or None when it has none."""
    return next((tensor.shape[0] for key, tensor in state.items() if LORA_MARK in key), None)


def check_checkpoint_adapters(state: dict[str, torch.Tensor], settings: Optional[LoraSettings], added: bool,
                              source) -> None:
    """A checkpoint's adapters must fit the model: `settings` is `model.lora`, `added` whether the adapters are in
    the model yet (configured pretrained / finetuned weights load before them, `model.checkpoint` after)."""
    rank = checkpoint_rank(state)
    if rank is None:
        if added:
            raise WeightMismatchError(f"{source}: holds no LoRA adapters, but model.lora is set (r: {settings.r}). "
                                      f"To start LoRA training from it, name it as model.pretrained (loaded before "
                                      f"the adapters are added); to evaluate it, remove model.lora")
        return
    targets = sorted({key.split(LORA_MARK)[0].rsplit(".", 1)[-1] for key in state if LORA_MARK in key})
    if settings is None:
        raise WeightMismatchError(f"{source}: holds LoRA adapters (rank {rank} on {', '.join(targets)}); configure "
                                  f"the model with model.lora: {{r: {rank}, target_modules: [{', '.join(targets)}]}} "
                                  f"to load it")
    if not added:
        raise WeightMismatchError(f"{source}: holds LoRA adapters, which load after the adapters are added: name it "
                                  f"as model.checkpoint, not model.pretrained / model.finetuned")
    if rank != settings.r:
        raise WeightMismatchError(f"{source}: holds LoRA adapters of rank {rank}, but model.lora.r is {settings.r}; "
                                  f"set model.lora.r: {rank}")
