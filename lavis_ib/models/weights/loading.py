"""Reading weight files (LAVIS `.pth`, our safetensors) and loading them with a report grouped by model part.

`.pth` files are read with `torch.load(weights_only=True)` so loading never unpickles code. A file whose content is
not what its suffix says (empty, text, truncated, safetensors under `.pth`, a bad safetensors header) is a
`FileFormatError` naming the file, what it holds and what was expected. Missing keys are explained by group (e.g.
frozen LLM weights that come from `llm_model`), not dumped as one long list.
"""

from __future__ import annotations

import json
import pickle
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from lavis_ib.common.io import FileFormatError, describe_content

# Keys present in LAVIS checkpoints that our modules deliberately do not have.
BENIGN_EXTRA_KEYS = (
    re.compile(r"^Qformer\.bert\.embeddings\.position_ids$"),
    re.compile(r".*\.rotary_emb\.inv_freq$"),
    re.compile(r"^Qformer\.cls\."),
)


ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default (zip) format
PICKLE_PROTOCOL_OPCODE = 0x80  # first byte of torch.save's legacy format and of any pickle protocol >= 2
SAFETENSORS_EXPECTED = "a safetensors file (8-byte little-endian header length, a JSON header, then tensor data)"
TORCH_EXPECTED = "a torch.save checkpoint (a zip archive or a pickle) holding a state dict"


class UnsafeCheckpointError(FileFormatError, pickle.UnpicklingError):
    """A `.pth` pickle holds objects beyond tensors and plain containers: refused, since loading never runs code."""


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict in a `.pth`/`.pt`/`.bin` (plain or LAVIS `{"model": ...}`) or `.safetensors` file.

    The content is checked against the suffix first, so a wrong or damaged file is reported as such.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    with open(path, "rb") as handle:
        head = handle.read(64)
    looks_safetensors = _safetensors_header_length(head) is not None
    if path.suffix == ".safetensors":
        if not looks_safetensors:
            raise FileFormatError(f"{path}: expected {SAFETENSORS_EXPECTED}, found {describe_content(path, head)}")
        return _read_safetensors(path)
    if looks_safetensors:
        raise FileFormatError(f"{path}: holds safetensors content ({describe_content(path, head)}), but its suffix "
                              f"{path.suffix!r} means {TORCH_EXPECTED}; rename it to {path.stem}.safetensors")
    if not (head.startswith(ZIP_MAGIC) or head[:1] == bytes([PICKLE_PROTOCOL_OPCODE])):
        raise FileFormatError(f"{path}: expected {TORCH_EXPECTED}, found {describe_content(path, head)}")
    payload = _torch_load(path)
    if isinstance(payload, dict) and isinstance(payload.get("model"), dict):
        payload = payload["model"]
    if not isinstance(payload, dict) or not all(isinstance(v, torch.Tensor) for v in payload.values()):
        raise FileFormatError(f"{path}: expected a state dict (or a dict with key 'model' holding one), found "
                              f"{type(payload).__name__}")
    return payload


def _safetensors_header_length(head: bytes) -> int | None:
    """The header length a safetensors file starts with, if `head` looks like one (length, then a JSON object)."""
    if len(head) < 9 or head[8:9] != b"{":
        return None
    return struct.unpack("<Q", head[:8])[0]


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """`load_file(path)`, with a truncated file or a malformed header reported in words instead of a Rust error."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        length = struct.unpack("<Q", handle.read(8))[0]
        if 8 + length > size:
            raise FileFormatError(f"{path}: truncated safetensors file: its header says {length} header bytes follow, "
                                  f"the file has {size - 8}; expected {SAFETENSORS_EXPECTED}")
        raw = handle.read(length)
    try:
        header = json.loads(raw)
        end = max((entry["data_offsets"][1] for name, entry in header.items() if name != "__metadata__"), default=0)
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, IndexError, AttributeError) as error:
        raise FileFormatError(f"{path}: bad safetensors header ({type(error).__name__}: {error}) in "
                              f"{raw[:60]!r}...; expected {SAFETENSORS_EXPECTED}") from None
    if 8 + length + end > size:
        raise FileFormatError(f"{path}: truncated safetensors file: its tensors need {end} data bytes, the file has "
                              f"{size - 8 - length}; expected {SAFETENSORS_EXPECTED}")
    try:
        return load_file(str(path))
    except Exception as error:  # safetensors' Rust errors share no Python base class beyond Exception
        raise FileFormatError(f"{path}: unreadable safetensors file ({error}); expected {SAFETENSORS_EXPECTED}") from None


def _torch_load(path: Path):
    """`torch.load(weights_only=True)` with its failures (and its advice to disable `weights_only`) in our words."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(error))
        what = f"the object {found.group(1)}" if found else "objects other than tensors and plain containers"
        raise UnsafeCheckpointError(
            f"{path}: refused: its pickle holds {what}, and loading never unpickles code; expected {TORCH_EXPECTED} "
            f"(re-save the tensors with torch.save(model.state_dict()) or as .safetensors)") from None
    except (RuntimeError, EOFError, OSError, KeyError, ValueError) as error:
        raise FileFormatError(f"{path}: truncated or corrupt torch checkpoint ({type(error).__name__}: "
                              f"{str(error).splitlines()[0] if str(error) else 'no detail'}); it is "
                              f"{describe_content(path)}; expected {TORCH_EXPECTED}") from None


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
