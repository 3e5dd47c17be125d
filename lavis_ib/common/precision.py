"""What a precision name means, decided here once for both runners: its torch dtype, the precision a run computes in
(`run.precision`, or the default for the device) and the autocast that computes in it.

`run.precision: null` means bf16 on CUDA (fp16 on a GPU without bf16 support) and fp32 on CPU, for training and
evaluation alike: validation during training and `evaluate.py` on the same checkpoint compute in the same dtype.
(The Python API's `load_model(precision=None)` keeps LAVIS's per-part storage dtypes instead: `models.precision`.)
"""

from __future__ import annotations

import contextlib
import typing
from typing import Optional

import torch

from lavis_ib.common.run_schema import Precision
from lavis_ib.common.schema import ConfigError

PRECISIONS: tuple[str, ...] = typing.get_args(Precision)  # the names, declared once with the config schemas
DTYPES: dict[str, torch.dtype] = dict(zip(PRECISIONS, (torch.float32, torch.float16, torch.bfloat16)))


def dtype_of(name: str, where: str) -> torch.dtype:
    """The torch dtype of a precision name; anything else is a `ConfigError` naming `where` and the valid names."""
    if name not in DTYPES:
        raise ConfigError(f"{where}: precision must be one of {', '.join(PRECISIONS)}, got {name!r}")
    return DTYPES[name]


def run_precision(requested: Optional[str], device: torch.device | str) -> str:
    """The precision a run computes and stores its frozen parts in: `requested` (`run.precision`) when set, else
    bf16 on CUDA (fp16 where the GPU has no bf16) and fp32 elsewhere. The same for training and evaluation."""
    if requested is not None:
        dtype_of(requested, "run.precision")
        return requested
    if torch.device(device).type != "cuda":
        return "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def autocast(precision: str, device: torch.device | str):
    """The autocast a run's forward passes go under: none for fp32, else `precision`'s dtype on `device`'s type."""
    dtype = dtype_of(precision, "run.precision")
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)
