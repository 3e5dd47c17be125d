"""BLIP-2 with an OPT LLM — registered as `blip2_opt` (LAVIS's `Blip2OPT`).

The Q-Former sees no text; generation stops at a newline (LAVIS's OPT EOS). Training accepts LAVIS's captioning
layout (`text_input` is the caption, the configured `prompt` prefix is not supervised) and, beyond LAVIS, the
instruction layout of the unified records when `text_output` is present.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Optional

from lavis_ib.common.io import looks_like_hub_id
from lavis_ib.common.registry import registry
from lavis_ib.models.blip2 import Blip2Config
from lavis_ib.models.decoder_only import DecoderOnlyBlip2
from lavis_ib.models.text.batching import OPTTextBatcher
from lavis_ib.models.text.tokenizers import encode, load_opt_tokenizer


@dataclass
class OPTConfig(Blip2Config):
    """`opt_model`: an OPT directory or hub id (LAVIS key); BLIP-2 defaults differ from InstructBLIP's."""

    opt_model: Optional[str] = None
    qformer_text_input: bool = False
    max_txt_len: int = 32


@registry.register_model("blip2_opt")
class Blip2OPT(DecoderOnlyBlip2):
    """BLIP-2 (OPT-2.7B/6.7B): queries only through the Q-Former, projected into a frozen OPT."""

    ConfigSchema = OPTConfig
    LLM_KEY = "opt_model"
    LLM_MODULE = "opt_model"
    PROJ_MODULE = "opt_proj"
    TARGET_SUFFIX = "\n"
    GENERATE_DEFAULTS = {**DecoderOnlyBlip2.GENERATE_DEFAULTS, "max_length": 30, "repetition_penalty": 1.0}
    PRETRAINED_MODEL_CONFIG_DICT = {
        "pretrain_opt2.7b": "models/blip2_opt/pretrain_opt2.7b.yaml",
        "pretrain_opt6.7b": "models/blip2_opt/pretrain_opt6.7b.yaml",
        "caption_coco_opt2.7b": "models/blip2_opt/caption_coco_opt2.7b.yaml",
        "caption_coco_opt6.7b": "models/blip2_opt/caption_coco_opt6.7b.yaml",
        "tiny": "models/blip2_opt/tiny.yaml",
    }

    def build_tokenizer(self):
        return load_opt_tokenizer(self.tokenizer_location, allow_download=looks_like_hub_id(self.tokenizer_location),
                                 key=self.tokenizer_key)

    @cached_property
    def eos_token_id(self) -> int:
        """The id of a newline (computed once): BLIP-2 OPT captions end at the first line break."""
        return encode(self.tokenizer, ["\n"], padding_side="right", truncation_side="right",
                      add_special_tokens=False)["input_ids"][0, 0].item()

    def build_text_batcher(self) -> OPTTextBatcher:
        """Instruction layout when `text_output` is present, else LAVIS's captioning layout (see `OPTTextBatcher`)."""
        return OPTTextBatcher(self.tokenizer, self.qformer_tokenizer, self.cfg)
