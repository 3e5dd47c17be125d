"""The precision policy: which dtype the frozen ViT and LLM weights are stored in, and who owns autocast.

The caller chooses the policy (`load_model(..., precision=...)`; the runners pass `common.precision.run_precision`'s
choice); the model only declares what must stay fp32 (`ln_vision` and the Q-Former, see `Blip2Base.full_precision`).
Model code never overrides an autocast the caller opened: it opens one itself only when none is active, to compute
in the dtype its weights are stored in.

`precision=None` keeps LAVIS's defaults: on CUDA the ViT's Linear/Conv weights take `vit_precision` and the LLM
`llm_precision` (fp16 Vicuna/OPT, bf16 Flan-T5); on CPU everything is fp32. A named precision (`fp32`, `fp16`,
`bf16`) applies to both frozen parts on any device.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from lavis_ib.common.precision import dtype_of


@dataclass(frozen=True)
class PrecisionPolicy:
    """Storage dtypes of the frozen parts: `vit` for the ViT's Linear/Conv weights, `llm` for the whole LLM."""

    vit: torch.dtype = torch.float32
    llm: torch.dtype = torch.float32

    @classmethod
    def resolve(cls, cfg, device: str | torch.device = "cpu", precision: str | None = None) -> "PrecisionPolicy":
        """The policy for a model config on `device`: LAVIS's per-part defaults when `precision` is None."""
        if precision is not None:
            dtype = dtype_of(precision, "load_model(precision=...)")
            return cls(vit=dtype, llm=dtype)
        vit = dtype_of(cfg.vit_precision, "model.vit_precision")
        llm = dtype_of(cfg.llm_precision, "model.llm_precision")
        if torch.device(device).type != "cuda":
            return cls()
        return cls(vit=vit, llm=llm)


def compute_in(dtype: torch.dtype, device: torch.device):
    """Autocast to `dtype` on `device` unless the caller already opened an autocast (theirs wins) or dtype is fp32."""
    if dtype == torch.float32 or torch.is_autocast_enabled(device.type):
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def full_precision(device: torch.device):
    """Disable any active autocast on `device`: for the modules that must compute in fp32."""
    if not torch.is_autocast_enabled(device.type):
        return contextlib.nullcontext()
    return torch.autocast(device.type, enabled=False)
