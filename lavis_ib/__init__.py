"""lavis_ib: a LAVIS-style research framework for InstructBLIP / BLIP-2 vision-language models.

Public API: `load_model_and_preprocess`, `load_model`, `load_preprocess`, `model_zoo`, `load_dataset`,
`dataset_zoo`, `registry`, `Config`. Each is imported on first use, so `import lavis_ib` (and any tool under it,
such as the dataset converter CLI) does not pay for torch and transformers until a model is asked for.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name → the module defining it
_EXPORTS = {
    "Config": "lavis_ib.common.config",
    "registry": "lavis_ib.common.registry",
    "dataset_zoo": "lavis_ib.datasets",
    "load_dataset": "lavis_ib.datasets",
    "load_model": "lavis_ib.models",
    "load_model_and_preprocess": "lavis_ib.models",
    "load_preprocess": "lavis_ib.models",
    "model_zoo": "lavis_ib.models",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import a public name's module on first access and cache the value on the package."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'lavis_ib' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
