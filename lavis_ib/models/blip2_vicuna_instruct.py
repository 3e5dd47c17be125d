"""InstructBLIP with a Vicuna (LLaMA) LLM — registered as `blip2_vicuna_instruct` (LAVIS's `Blip2VicunaInstruct`).

Only what differs from the shared decoder-only path: the Vicuna tokenizer conventions (`[PAD]`=32000, BOS = EOS =
UNK = `</s>`), and LAVIS's output fix mapping id 0 to EOS before decoding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from lavis_ib.common.io import looks_like_hub_id
from lavis_ib.common.registry import registry
from lavis_ib.models.blip2 import Blip2Config
from lavis_ib.models.decoder_only import DecoderOnlyBlip2
from lavis_ib.models.text.tokenizers import load_vicuna_tokenizer


@dataclass
class VicunaInstructConfig(Blip2Config):
    """`llm_model`: a local Vicuna v1.1 directory (or hub id) — LAVIS's key name."""

    llm_model: Optional[str] = None


@registry.register_model("blip2_vicuna_instruct")
class Blip2VicunaInstruct(DecoderOnlyBlip2):
    """InstructBLIP (Vicuna-7B/13B): instruction-aware Q-Former feeding a frozen Vicuna."""

    ConfigSchema = VicunaInstructConfig
    PRETRAINED_MODEL_CONFIG_DICT = {
        "vicuna7b": "models/blip2_vicuna_instruct/vicuna7b.yaml",
        "vicuna13b": "models/blip2_vicuna_instruct/vicuna13b.yaml",
        "tiny": "models/blip2_vicuna_instruct/tiny.yaml",
    }

    def build_tokenizer(self):
        return load_vicuna_tokenizer(self.tokenizer_location, allow_download=looks_like_hub_id(self.tokenizer_location),
                                    key=self.tokenizer_key)

    def clean_output_ids(self, ids: torch.Tensor) -> torch.Tensor:
        """Id 0 (`<unk>`, no longer special after the remap) becomes EOS so decoding skips it, as in LAVIS."""
        return ids.masked_fill(ids == 0, self.eos_token_id)
