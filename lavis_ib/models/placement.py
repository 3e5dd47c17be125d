"""Where the frozen LLM's weights live: one device (the default), or spread by accelerate over the visible GPUs,
the CPU and disk (`model.device_map: auto` or a dict, `model.max_memory`, `model.offload_folder`), as transformers'
`from_pretrained(device_map=...)` places them. The ViT, Q-Former and projection stay on the first device.

A quantized LLM is loaded straight onto its device (bitsandbytes quantizes as the weights arrive), so a placed or
quantized LLM is never moved afterwards: `Blip2Base.to()` moves the other parts only. A named strategy (`auto`,
...) is turned into a module → device dict here, by accelerate, so that the input and output embeddings stay on the
first device: the tokenizer's added tokens grow them after the load, which an offloaded weight cannot take.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch

from torch import nn

from lavis_ib.common.extras import require
from lavis_ib.common.schema import ConfigError
from lavis_ib.models.llm import require_weights_directory


@dataclass(frozen=True)
class LlmPlacement:
    """`from_pretrained` keyword arguments that place the LLM; empty for a plain single-device load."""

    device_map: Optional[Any] = None
    max_memory: Optional[dict] = None
    offload_folder: Optional[str] = None

    @classmethod
    def resolve(cls, cfg, device: str | torch.device, llm_key: str) -> "LlmPlacement":
        """The placement `cfg` asks for on `device`; a quantized LLM without a device map goes whole to `device`."""
        if cfg.device_map is None:
            if cfg.max_memory is not None or cfg.offload_folder is not None:
                raise ConfigError("model.max_memory / model.offload_folder need model.device_map (auto or a dict)")
            return cls(device_map={"": str(torch.device(device))}) if cfg.quantization else cls()
        require("accelerate", "quant", "model.device_map")
        require_weights_directory(cfg, llm_key, "model.device_map", "places")
        if isinstance(cfg.device_map, str) and cfg.device_map not in ("auto", "balanced", "balanced_low_0",
                                                                        "sequential"):
            raise ConfigError(f"model.device_map must be auto, balanced, balanced_low_0, sequential or a dict of "
                              f"module → device, got {cfg.device_map!r}")
        return cls(device_map=cfg.device_map, max_memory=cfg.max_memory, offload_folder=cfg.offload_folder)

    def for_llm(self, skeleton: nn.Module, dtype: torch.dtype) -> "LlmPlacement":
        """This placement with a named strategy resolved into a dict for `skeleton` (the LLM on the meta device)."""
        if not isinstance(self.device_map, str):
            return self
        from accelerate import infer_auto_device_map
        from accelerate.utils import get_balanced_memory

        no_split = list(getattr(skeleton, "_no_split_modules", None) or [])
        budget = self.max_memory
        if self.device_map != "sequential":
            budget = get_balanced_memory(skeleton, max_memory=budget, no_split_module_classes=no_split, dtype=dtype,
                                         low_zero=self.device_map == "balanced_low_0")
        device_map = infer_auto_device_map(skeleton, max_memory=budget, no_split_module_classes=no_split, dtype=dtype,
                                           clean_result=False)  # one entry per module, the embeddings' own
        first = next((d for d in device_map.values() if d not in ("cpu", "disk")), "cpu")
        for embeddings in (skeleton.get_input_embeddings(), skeleton.get_output_embeddings()):
            name = next((n for n, m in skeleton.named_modules() if m is embeddings), None)
            if name:
                device_map = pin(device_map, name, first)
        return LlmPlacement(device_map=device_map, max_memory=self.max_memory, offload_folder=self.offload_folder)

    @property
    def placed(self) -> bool:
        """Whether the LLM is loaded where this says and must not be moved with the rest of the model."""
        return self.device_map is not None

    def from_pretrained_kwargs(self) -> dict:
        kwargs = {"device_map": self.device_map} if self.placed else {}
        if self.max_memory is not None:
            kwargs["max_memory"] = self.max_memory
        if self.offload_folder is not None:
            kwargs["offload_folder"] = self.offload_folder
        return kwargs


def pin(device_map: dict, module: str, device) -> dict:
    """`device_map` (accelerate's, one entry per module) with `module` on `device`."""
    if module not in device_map:
        raise ValueError(f"the device map has no entry of its own for {module!r}; give model.device_map as a dict")
    return {**device_map, module: device}
