"""Reading weight files (LAVIS `.pth`, our safetensors) and loading them with a report grouped by model part.

`.pth` files are read with `torch.load(weights_only=True)` so loading never unpickles code. Missing keys are
explained by group (e.g. frozen LLM weights that come from `llm_model`), not dumped as one long list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

# Keys present in LAVIS checkpoints that our modules deliberately do not have.
BENIGN_EXTRA_KEYS = (
    re.compile(r"^Qformer\.bert\.embeddings\.position_ids$"),
    re.compile(r".*\.rotary_emb\.inv_freq$"),
    re.compile(r"^Qformer\.cls\."),
)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict in a `.pth`/`.pt`/`.bin` (plain or LAVIS `{"model": ...}`) or `.safetensors` file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        return load_file(str(path))
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(payload, dict) and isinstance(payload.get("model"), dict):
        payload = payload["model"]
    if not isinstance(payload, dict) or not all(isinstance(v, torch.Tensor) for v in payload.values()):
        raise ValueError(f"{path}: expected a state dict (or a dict with key 'model' holding one)")
    return payload


@dataclass
class LoadReport:
    """What a checkpoint did and did not provide, grouped by top-level module."""

    loaded: int = 0
    missing: dict[str, list[str]] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    def describe(self, sources: dict[str, str]) -> str:
        lines = [f"loaded {self.loaded} tensors"]
        for group, keys in self.missing.items():
            origin = sources.get(group, "not provided by any configured source")
            lines.append(f"missing {len(keys)} '{group}.*' keys ({origin}), e.g. {keys[0]}")
        if self.unexpected:
            lines.append(f"unexpected keys: {', '.join(self.unexpected[:20])}")
        return "; ".join(lines)


def load_state_dict_into(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> LoadReport:
    """Copy matching tensors into `model` (shapes must agree) and report missing/unexpected keys by group."""
    own = model.state_dict()
    report = LoadReport()
    usable = {}
    for key, tensor in state_dict.items():
        if key not in own:
            (report.ignored if any(p.match(key) for p in BENIGN_EXTRA_KEYS) else report.unexpected).append(key)
            continue
        if own[key].shape != tensor.shape:
            raise ValueError(f"shape mismatch for {key}: checkpoint {tuple(tensor.shape)}, model {tuple(own[key].shape)}")
        usable[key] = tensor
    model.load_state_dict(usable, strict=False)
    report.loaded = len(usable)
    for key in own:
        if key not in usable:
            report.missing.setdefault(key.split(".")[0], []).append(key)
    return report
