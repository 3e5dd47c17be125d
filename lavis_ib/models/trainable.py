"""What trains, declared once: trainable means `requires_grad`, and the optimizer groups follow LAVIS's rules.

LAVIS (`Blip2Base.get_optimizer_params`): a trainable tensor that is 1-D or whose name ends in `.bias` gets no weight
decay; parameters of an unfrozen ViT go into per-layer groups scaled by `lr_layer_decay ** (depth + 1 - layer_id)`
(embeddings are layer 0, block k is layer k + 1, the rest layer `depth`). LAVIS's schedulers then ignore the scale;
each group here carries it as `lr_scale` for the runner to apply.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

VIT_PREFIX = "visual_encoder."
VIT_EMBEDDING_NAMES = ("cls_token", "pos_embed", "patch_embed")


def is_no_decay(name: str, param: torch.Tensor) -> bool:
    """LAVIS's rule: 1-D tensors (norms, biases, ...) and anything named `*.bias` are not weight-decayed."""
    return param.ndim == 1 or name.endswith(".bias")


def vit_layer_id(name: str, depth: int) -> int:
    """LAVIS's `get_num_layer` for a ViT parameter name without the `visual_encoder.` prefix."""
    if name.startswith(VIT_EMBEDDING_NAMES):
        return 0
    if name.startswith("blocks."):
        return int(name.split(".")[1]) + 1
    return depth


def trainable_parameters(model: nn.Module) -> Iterable[tuple[str, nn.Parameter]]:
    """`(name, parameter)` of every parameter with `requires_grad` — the single definition of 'trainable'."""
    return ((name, p) for name, p in model.named_parameters() if p.requires_grad)


def optimizer_param_groups(model: nn.Module, weight_decay: float, lr_layer_decay: float = 1.0,
                           vit_depth: int = 0) -> list[dict]:
    """AdamW parameter groups: `{"name", "params", "weight_decay", "lr_scale"}`, empty groups dropped."""
    groups: dict[str, dict] = {}
    for name, param in trainable_parameters(model):
        no_decay = is_no_decay(name, param)
        scale, group = 1.0, "no_decay" if no_decay else "decay"
        if name.startswith(VIT_PREFIX):
            layer = vit_layer_id(name.removeprefix(VIT_PREFIX), vit_depth)
            scale = lr_layer_decay ** (vit_depth + 1 - layer)
            group = f"vit_layer_{layer}_{group}"
        entry = groups.setdefault(group, {"name": group, "params": [], "weight_decay": 0.0 if no_decay else
                                          weight_decay, "lr_scale": scale})
        entry["params"].append(param)
    return list(groups.values())
