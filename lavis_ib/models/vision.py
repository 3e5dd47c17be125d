"""EVA-CLIP ViT-g/14 image encoder (BLIP-2's 39-block, no-final-norm variant) built on timm's `Eva`, plus `ln_vision`.

timm's `Eva` has LAVIS's parameter names (`blocks.N.attn.q_bias`, ...), fused SDPA attention and per-block
gradient checkpointing, so nothing is vendored. Weights load from LAVIS's `eva_vit_g.pth` with the position grid
resampled for other image sizes (364 px captioning models).
"""

from __future__ import annotations

import logging
from functools import partial
from dataclasses import dataclass

import torch
from timm.layers import resample_abs_pos_embed
from timm.models.eva import Eva
from torch import nn

log = logging.getLogger(__name__)


@dataclass
class VisionConfig:
    """Architecture of the ViT; defaults are EVA ViT-g/14 as BLIP-2 uses it (1408-d, 39 blocks, 16 heads)."""

    width: int = 1408
    depth: int = 39
    num_heads: int = 16
    mlp_hidden: int = 6144
    patch_size: int = 14
    layer_norm_eps: float = 1e-6


def build_eva_vit(cfg: VisionConfig, image_size: int, drop_path_rate: float = 0.0, grad_checkpoint: bool = False) -> Eva:
    """A timm `Eva` with EVA-CLIP's layout: q/v biases, learned absolute positions, CLS token, no head or final norm."""
    vit = Eva(
        img_size=image_size,
        patch_size=cfg.patch_size,
        num_classes=0,
        global_pool="",
        embed_dim=cfg.width,
        depth=cfg.depth,
        num_heads=cfg.num_heads,
        qkv_bias=True,
        mlp_ratio=(cfg.mlp_hidden + 0.5) / cfg.width,  # int(width * ratio) == mlp_hidden exactly
        drop_path_rate=drop_path_rate,
        norm_layer=partial(nn.LayerNorm, eps=cfg.layer_norm_eps),
        use_post_transformer_norm=False,
        use_fc_norm=False,
    )
    vit.set_grad_checkpointing(grad_checkpoint)
    return vit


class LayerNormFp32(nn.LayerNorm):
    """LayerNorm computed in fp32 and returned in the input dtype (BLIP-2's `ln_vision`, stable under fp16)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight.float() if self.weight is not None else None
        bias = self.bias.float() if self.bias is not None else None
        out = nn.functional.layer_norm(x.float(), self.normalized_shape, weight, bias, self.eps)
        return out.to(x.dtype)


def adapt_vit_state_dict(state_dict: dict, vit: Eva) -> tuple[dict, list[str]]:
    """Fit an EVA checkpoint to `vit`: drop blocks beyond its depth and head/final-norm keys, resample `pos_embed`.

    Returns the adapted dict and the dropped keys (EVA-CLIP-g has 40 blocks; BLIP-2 keeps 39).
    """
    wanted = set(vit.state_dict())
    adapted = {k.removeprefix("visual_encoder."): v for k, v in state_dict.items()}
    dropped = sorted(k for k in adapted if k not in wanted)
    adapted = {k: v for k, v in adapted.items() if k in wanted}
    if "pos_embed" in adapted and adapted["pos_embed"].shape != vit.pos_embed.shape:
        grid = vit.patch_embed.grid_size
        # LAVIS's `interpolate_pos_embed`: plain bicubic (align_corners=False), no antialiasing (timm's default).
        adapted["pos_embed"] = resample_abs_pos_embed(
            adapted["pos_embed"].float(), new_size=list(grid), num_prefix_tokens=1, interpolation="bicubic",
            antialias=False,
        ).to(adapted["pos_embed"].dtype)
    return adapted, dropped
