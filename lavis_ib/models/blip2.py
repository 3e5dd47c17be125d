"""What every BLIP-2 / InstructBLIP model shares: config schema, ViT → Q-Former → projection (images and video),
precision handling, weight loading, prompt handling for `generate`, and candidate scoring. LAVIS's `predict_answers`
/ `predict_class` come from `inference.lavis_api`.

Architectures subclass `Blip2Base` and supply only the LLM-specific parts: how the LLM and its tokenizer are
built, the training loss layout, text generation from visual tokens, and per-candidate log-likelihoods.
"""

from __future__ import annotations

import logging
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Sequence, Union

import torch
from torch import nn
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import (
    _CHECKPOINT_PREFIX,
    CheckpointWrapper,
    apply_activation_checkpointing,
    checkpoint_wrapper,
)
from transformers.modeling_layers import GradientCheckpointingLayer

from lavis_ib.common.io import WeightMismatchError, looks_like_hub_id, resolve_file
from lavis_ib.common.run_schema import Precision
from lavis_ib.models import lora
from lavis_ib.models.base import BaseModel
from lavis_ib.models.inference.candidate_scoring import CandidateScores
from lavis_ib.models.inference.feature_cache import FeatureCache, frame_keys
from lavis_ib.models.inference.lavis_api import LavisTaskApi
from lavis_ib.models.llm import build_language_model
from lavis_ib.models.lora import LoraSettings
from lavis_ib.models.placement import LlmPlacement
from lavis_ib.models.precision import PrecisionPolicy, compute_in, full_precision
from lavis_ib.models.qformer import QFormer, QFormerConfig
from lavis_ib.models.quantization import Quantization, bitsandbytes_config, check_quantization
from lavis_ib.models.text.batching import IGNORE, TextBatcher
from lavis_ib.models.text.collator import ModelCollator
from lavis_ib.models.text.inputs import check_candidates, check_generate_args, check_image, check_texts
from lavis_ib.models.text.prompts import instructions_for
from lavis_ib.models.text.tokenizers import load_qformer_tokenizer
from lavis_ib.models.trainable import is_no_decay, optimizer_param_groups, trainable_parameters
from lavis_ib.models.vision import LayerNormFp32, VisionConfig, adapt_vit_state_dict, build_eva_vit
from lavis_ib.models.weights.loading import LoadReport, load_state_dict_into, read_state_dict

log = logging.getLogger(__name__)

LengthSemantics = Literal["lavis", "new_tokens"]
LENGTH_SEMANTICS: tuple[str, ...] = typing.get_args(LengthSemantics)


@dataclass
class Blip2Config:
    """Keys shared by every BLIP-2 family model (LAVIS names where LAVIS has them)."""

    arch: str = ""
    model_type: str = ""
    # vision
    vit_model: Literal["eva_clip_g"] = "eva_clip_g"  # the only ViT BLIP-2 / InstructBLIP checkpoints use
    image_size: int = 224
    drop_path_rate: float = 0.0
    use_grad_checkpoint: bool = False
    vit_precision: Precision = "fp16"
    freeze_vit: bool = True
    vit_weights: Optional[str] = None
    vision: VisionConfig = field(default_factory=VisionConfig)
    ln_vision_eps: float = 1e-5
    # Q-Former
    num_query_token: int = 32
    qformer: QFormerConfig = field(default_factory=QFormerConfig)
    qformer_tokenizer: str = "bert-base-uncased"
    qformer_text_input: bool = True
    qformer_grad_checkpoint: bool = False
    llm_grad_checkpoint: bool = False  # recompute the frozen LLM's activations in backward (saves memory)
    max_txt_len: int = 128
    max_output_txt_len: int = 256
    # LLM (the location key itself is declared per architecture: llm_model / t5_model / opt_model)
    llm_config: Optional[dict] = None
    llm_tokenizer: Optional[str] = None
    llm_precision: Precision = "fp16"
    # big LLMs on small devices: bitsandbytes quantization (models/quantization.py), LoRA adapters (models/lora.py),
    # placement over several devices / CPU / disk (models/placement.py); all three act on the frozen LLM only
    quantization: Optional[Quantization] = None
    quantization_compute_dtype: Optional[Precision] = None  # 4-bit matmul dtype; None: the LLM's own precision
    quantization_double_quant: bool = False  # also quantize the 4-bit scales (QLoRA's double quantization)
    lora: Optional[LoraSettings] = None
    device_map: Optional[Union[str, dict]] = None  # accelerate's: auto, balanced, sequential, or module → device
    max_memory: Optional[dict] = None  # device → budget for device_map, e.g. {0: 20GiB, cpu: 60GiB}
    offload_folder: Optional[str] = None  # where device_map's "disk" layers are written
    prompt: str = ""
    apply_lemmatizer: bool = False
    length_semantics: LengthSemantics = "lavis"  # how generate's max_length/min_length count
    # weights
    random_init: bool = False
    load_pretrained: bool = True
    pretrained: Optional[str] = None
    load_finetuned: bool = False
    finetuned: Optional[str] = None
    checkpoint: Optional[str] = None  # loaded by load_model after the configured weights (.pth, safetensors, HF dir)
    hf_image_token_index: Optional[int] = None
    hf_video_token_index: Optional[int] = None  # InstructBlipVideo's placeholder id (kept by convert.py)

    def __post_init__(self):
        for key in ("image_size", "num_query_token", "max_txt_len", "max_output_txt_len"):
            if getattr(self, key) < 1:
                raise ValueError(f"model.{key} must be a positive integer, got {getattr(self, key)}")
        if not 0.0 <= self.drop_path_rate < 1.0:
            raise ValueError(f"model.drop_path_rate must be in [0, 1), got {self.drop_path_rate}")


class Blip2Base(LavisTaskApi, BaseModel):
    """ViT + Q-Former + projection into an LLM; subclasses name and build the LLM side."""

    LLM_KEY = "llm_model"  # config key of the LLM location (LAVIS name)
    LLM_MODULE = "llm_model"  # attribute / state-dict prefix of the LLM
    PROJ_MODULE = "llm_proj"
    GENERATE_DEFAULTS: dict[str, Any] = dict(
        use_nucleus_sampling=False, num_beams=5, max_length=256, min_length=1, top_p=0.9,
        repetition_penalty=1.5, length_penalty=1.0, num_captions=1, temperature=1.0, length_semantics=None,
    )
    LAVIS_MAX_LENGTH_OFFSET = 1  # LAVIS's max_length counts a BOS placeholder (decoder-only LLMs)
    ANSWER_LENGTH_PENALTY = 0.0
    LABEL_SHIFT = 0  # label positions the loss skips at the start (decoder-only LLMs predict position t + 1)
    LLM_AUTO_CLASS: Any = None  # the transformers auto class the LLM is built with
    LLM_CONFIG_OVERRIDES: dict[str, Any] = {}  # values forced onto the LLM's config
    LORA_TARGETS: tuple[str, ...] = ("q_proj", "v_proj")  # `model.lora`'s default: attention query / value
    feature_cache: Optional[FeatureCache] = None  # frozen-ViT outputs by image identity (`enable_feature_cache`)

    def __init__(self, cfg: Blip2Config, precision: PrecisionPolicy | None = None,
                 placement: LlmPlacement | None = None):
        super().__init__()
        self.cfg = cfg
        self.precision = precision or PrecisionPolicy()
        self.placement = placement or LlmPlacement()
        self.visual_encoder = build_eva_vit(cfg.vision, cfg.image_size, cfg.drop_path_rate, cfg.use_grad_checkpoint)
        self.ln_vision = LayerNormFp32(cfg.vision.width, eps=cfg.ln_vision_eps)
        self.Qformer = QFormer(cfg.qformer, cfg.vision.width, has_text=cfg.qformer_text_input)
        self.Qformer.bert.encoder.grad_checkpointing = cfg.qformer_grad_checkpoint
        self.query_tokens = nn.Parameter(torch.zeros(1, cfg.num_query_token, cfg.qformer.hidden_size))
        nn.init.normal_(self.query_tokens, std=0.02)
        self.qformer_tokenizer = (
            load_qformer_tokenizer(cfg.qformer_tokenizer, allow_download=looks_like_hub_id(cfg.qformer_tokenizer))
            if cfg.qformer_text_input else None
        )
        self.tokenizer = self.build_tokenizer()
        self.text = self.build_text_batcher()
        llm = self.build_llm()
        for param in llm.parameters():
            param.requires_grad = False
        setattr(self, self.LLM_MODULE, llm)
        setattr(self, self.PROJ_MODULE, nn.Linear(cfg.qformer.hidden_size, llm.config.get_text_config().hidden_size))
        if cfg.freeze_vit:
            for param in self.visual_encoder.parameters():
                param.requires_grad = False
        self.set_llm_grad_checkpointing(cfg.llm_grad_checkpoint)
        self.train(False)

    @classmethod
    def build(cls, cfg: Blip2Config, device, precision: str | None) -> "Blip2Base":
        """The modules for `device`, after the LLM's loading options are checked (no weight is read before)."""
        check_quantization(cfg, cls.LLM_KEY)
        placement = LlmPlacement.resolve(cfg, device, cls.LLM_KEY)
        policy = PrecisionPolicy.resolve(cfg, device, precision)
        if cfg.lora is not None or isinstance(placement.device_map, str):
            skeleton = cls.llm_skeleton(cfg)  # one meta skeleton for both: LoRA targets, a named device map
            if cfg.lora is not None:
                lora.check_targets(cfg.lora.target_modules or cls.LORA_TARGETS, skeleton)
            placement = placement.for_llm(skeleton, policy.llm)
        return cls(cfg, policy, placement)

    @classmethod
    def llm_skeleton(cls, cfg: Blip2Config) -> nn.Module:
        """The LLM's modules on the meta device: its structure, without reading a weight."""
        return build_language_model(cls.LLM_AUTO_CLASS, getattr(cfg, cls.LLM_KEY), cls.LLM_KEY, cfg.llm_config,
                                    cfg.random_init, overrides=cls.LLM_CONFIG_OVERRIDES, meta=True)

    def build_llm(self) -> nn.Module:
        """The frozen LLM in its storage dtype, quantized and placed as configured."""
        load = self.placement.from_pretrained_kwargs()
        if self.cfg.quantization:
            load["quantization_config"] = bitsandbytes_config(self.cfg, self.llm_dtype)
        return build_language_model(self.LLM_AUTO_CLASS, self.llm_location, self.LLM_KEY, self.cfg.llm_config,
                                    self.cfg.random_init, overrides=self.LLM_CONFIG_OVERRIDES, dtype=self.llm_dtype,
                                    load_options=load)

    def finish_loading(self) -> None:
        """After the configured weights: add `model.lora`'s adapters (fresh; a LoRA checkpoint loads after this)."""
        if self.cfg.lora is not None and not self.has_adapters:
            lora.add_lora(self.llm, self.cfg.lora, self.LORA_TARGETS)
            self.train(self.training)

    @property
    def has_adapters(self) -> bool:
        return bool(lora.lora_layers(self.llm))

    def _apply(self, fn, recurse: bool = True):
        """`to()` / `cuda()` / `half()` and the like leave a placed or quantized LLM where it was loaded."""
        if not self.placement.placed:
            return super()._apply(fn, recurse)
        modules = self._modules
        self._modules = {name: module for name, module in modules.items() if name != self.LLM_MODULE}
        try:
            return super()._apply(fn, recurse)
        finally:
            self._modules = modules

    # ----- pieces each architecture provides -------------------------------------------------------------------
    def build_tokenizer(self):
        raise NotImplementedError

    def build_text_batcher(self) -> TextBatcher:
        raise NotImplementedError

    def forward(self, samples: dict) -> dict:
        raise NotImplementedError

    def generate_ids_from(self, visual: torch.Tensor, prompt_tokens: dict, gen_kwargs: dict) -> torch.Tensor:
        """New token ids generated by the LLM from visual tokens and tokenized prompts (`TextBatcher.prompts`)."""
        raise NotImplementedError

    def candidate_log_likelihood(self, visual: torch.Tensor, prompt: str, candidates: Sequence[str],
                                 n_segments: int = 1):
        """Returns `(sum_logprob[C], num_tokens[C])` for one sample's visual tokens `[1, Q, D]`, the prefix run
        once and the candidates in at least `n_segments` batches."""
        raise NotImplementedError

    # ----- shared plumbing ----------------------------------------------------------------------------------
    @property
    def llm(self) -> nn.Module:
        return getattr(self, self.LLM_MODULE)

    @property
    def proj(self) -> nn.Linear:
        return getattr(self, self.PROJ_MODULE)

    @property
    def llm_location(self) -> Optional[str]:
        return getattr(self.cfg, self.LLM_KEY)

    @property
    def tokenizer_key(self) -> str:
        """The config key the LLM tokenizer location came from, for error messages."""
        return "llm_tokenizer" if self.cfg.llm_tokenizer else self.LLM_KEY

    @property
    def tokenizer_location(self) -> str:
        location = self.cfg.llm_tokenizer or self.llm_location
        if location is None:
            raise ValueError(f"model.{self.LLM_KEY} (or model.llm_tokenizer) must name the LLM tokenizer location")
        return location

    def train(self, mode: bool = True):
        """Train mode for the trainable parts only: a frozen ViT and the frozen LLM always stay in eval mode."""
        super().train(mode)
        if self.cfg.freeze_vit:
            self.visual_encoder.train(False)
        self.llm.train(False)
        lora.set_dropout_mode(self.llm, mode)
        return self

    @property
    def llm_dtype(self) -> torch.dtype:
        """The dtype the frozen LLM is built and loaded in (never an fp32 copy cast afterwards)."""
        return self.precision.llm

    def apply_precision(self) -> "Blip2Base":
        """Cast the ViT's Linear/Conv weights to the policy's ViT dtype (LAVIS `convert_weights_to_fp16`).

        The LLM is already in its dtype (built so); `ln_vision`, the Q-Former and the projection stay fp32.
        """
        for module in self.visual_encoder.modules():
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                module.to(self.precision.vit)
        return self

    def vit_compute(self):
        """Autocast for the ViT in its weights' dtype, unless the caller owns an autocast."""
        return compute_in(self.precision.vit, self.device)

    def llm_compute(self):
        """Autocast for the LLM in its weights' dtype, unless the caller owns an autocast."""
        return compute_in(self.precision.llm, self.device)

    def enable_feature_cache(self, capacity: int) -> None:
        """Keep the frozen ViT's output of up to `capacity` images (0: no cache) for `encode_image` to reuse; a new
        cache each call. Evaluation turns it on (`run.feature_cache_size`); see
        `lavis_ib.models.inference.feature_cache`."""
        self.feature_cache = FeatureCache(capacity) if capacity else None

    def uses_feature_cache(self) -> bool:
        """Whether a cache is on and valid now: eval mode and a frozen ViT (training augments pixels, and a trainable
        ViT changes its output)."""
        return self.feature_cache is not None and not self.training and self.cfg.freeze_vit

    def encode_image(self, image: torch.Tensor, media_keys: Sequence[str] | None = None) -> torch.Tensor:
        """`[N, 3, H, W]` → `ln_vision(ViT(image))` `[N, 1 + patches, width]`.

        `media_keys` (one identity per image, `frame_keys`) lets the ViT output of an image seen before come from the
        feature cache when `uses_feature_cache()`; `ln_vision` always runs, since it trains while the ViT is frozen.
        """
        keys = frame_keys(media_keys) if self.uses_feature_cache() else None
        with self.vit_compute():
            if keys is None:
                features = self.visual_encoder.forward_features(image)
            else:
                features = self.feature_cache.encode(keys, image, self.visual_encoder.forward_features)
        with full_precision(self.device):
            return self.ln_vision(features)

    def supervised_tokens(self, samples: dict) -> int:
        """How many target tokens `forward(samples)`'s mean loss is over (collated `train_tokens`): the runner weights
        micro-batches by it so gradient accumulation equals a larger batch."""
        labels = samples["train_tokens"]["labels"][:, self.LABEL_SHIFT:]
        return int((labels != IGNORE).sum())

    def collator(self, mode: str = "train") -> ModelCollator:
        """A DataLoader `collate_fn` that tokenizes dataset batches for `mode` ("train", "generate", "score") in the
        workers with this model's tokenizers."""
        return ModelCollator(self.text, mode)

    def input_image(self, samples: dict) -> torch.Tensor:
        """`samples["image"]` checked against the `[B, 3, H, W]` / `[B, 3, T, H, W]` contract, on the model's device."""
        if "image" not in samples:
            raise KeyError(f"samples need an 'image' tensor; got keys {sorted(samples)}")
        return check_image(samples["image"], self.cfg.image_size).to(self.device)

    def training_instructions(self, samples: dict, batch_size: int) -> list[str]:
        """The instructions `forward` trains on, with the targets checked to be one string per sample."""
        if samples.get("text_output") is not None:
            check_texts("text_output", samples["text_output"], batch_size)
        return instructions_for(samples, "forward", self.cfg.prompt, batch_size)

    def qformer_inputs(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """BERT ids/mask of the instructions: right padding, left truncation at `max_txt_len` (keeps the end)."""
        tokens = self.text.qformer(texts)
        return tokens["input_ids"].to(self.device), tokens["attention_mask"].to(self.device)

    def query_features(self, image: torch.Tensor | None, instructions: Sequence[str] | None,
                       qformer_tokens: dict | None = None, image_embeds: torch.Tensor | None = None,
                       media_keys: Sequence[str] | None = None) -> torch.Tensor:
        """Visual tokens for the LLM: `[B, Q, D]` for images, `[B, T*Q, D]` for video `[B, 3, T, H, W]`.

        Video frames go through the ViT and Q-Former independently (batched as B*T) with their sample's instruction,
        and their query outputs are concatenated frame after frame, as in LAVIS. `qformer_tokens` (from the
        collator) replaces tokenizing `instructions` here. `image_embeds`, precomputed `encode_image` outputs
        (`[B, 1 + patches, width]`, or `[B, T, 1 + patches, width]` for video), replace running the ViT on `image`
        (then optional); `media_keys` (the batch's `media_key`s) let `encode_image` reuse cached ViT outputs.
        """
        if image_embeds is None:
            video = image.dim() == 5
            flat = image.permute(0, 2, 1, 3, 4).flatten(0, 1) if video else image  # (B*T, 3, H, W), frame-major
            image_embeds = self.encode_image(flat, frame_keys(media_keys, image.shape[2] if video else None))
            image_embeds = image_embeds.unflatten(0, (image.shape[0], -1)) if video else image_embeds
        frames = image_embeds.shape[1] if image_embeds.dim() == 4 else 1
        image_embeds = image_embeds.reshape(-1, *image_embeds.shape[-2:]).float()  # (B*T, 1 + patches, width)
        queries = self.query_tokens.expand(image_embeds.shape[0], -1, -1)
        with full_precision(self.device):
            if self.cfg.qformer_text_input and (instructions is not None or qformer_tokens is not None):
                if qformer_tokens is None:
                    qformer_tokens = self.text.qformer(instructions)
                ids, mask = (qformer_tokens[k].to(self.device).repeat_interleave(frames, dim=0)
                             for k in ("input_ids", "attention_mask"))
                hidden = self.Qformer(queries, image_embeds, ids, mask)
            else:
                hidden = self.Qformer(queries, image_embeds)
        visual = self.proj(hidden[:, : queries.shape[1]])
        return visual.reshape(-1, frames * queries.shape[1], visual.shape[-1])

    # ----- weights ----------------------------------------------------------------------------------------
    def load_configured_weights(self) -> None:
        """Load ViT and (finetuned or pretrained) checkpoints named in the config; `random_init` loads nothing."""
        if self.cfg.random_init:
            log.warning("%s/%s: random_init is set, weights are random", self.cfg.arch, self.cfg.model_type)
            return
        if self.cfg.vit_weights:
            self.load_vit_weights(resolve_file(self.cfg.vit_weights, "vit_weights"))
        if self.cfg.load_finetuned and self.cfg.finetuned:
            self.load_checkpoint(resolve_file(self.cfg.finetuned, "finetuned"))
        elif self.cfg.load_pretrained and self.cfg.pretrained:
            self.load_checkpoint(resolve_file(self.cfg.pretrained, "pretrained"))

    def load_vit_weights(self, path) -> None:
        """Load an EVA ViT state dict (e.g. LAVIS's `eva_vit_g.pth`), strictly after adapting depth and positions."""
        adapted, dropped = adapt_vit_state_dict(read_state_dict(path), self.visual_encoder)
        missing = sorted(set(self.visual_encoder.state_dict()) - set(adapted))
        if missing:
            raise WeightMismatchError(f"{path}: ViT weights lack {len(missing)} keys, e.g. {missing[:5]}")
        self.visual_encoder.load_state_dict(adapted)
        if dropped:
            log.info("%s: ignored %d ViT keys beyond this architecture (%s ...)", path, len(dropped), dropped[0])

    def weight_sources(self) -> dict[str, str]:
        """Where each top-level group is expected to come from, for load reports."""
        return {
            "visual_encoder": "frozen ViT weights expected from vit_weights",
            self.LLM_MODULE: f"frozen LLM weights expected from {self.LLM_KEY}",
        }

    def load_checkpoint(self, path, strict: bool = True) -> LoadReport:
        """Load a LAVIS `.pth` (trimmed or full), our safetensors file, or a state dict file.

        Strict about what a checkpoint must hold: every trainable tensor (`requires_grad`, the same definition
        `trainable_state_dict` saves by) must be present and no unknown key may appear; frozen tensors may be absent.
        """
        state = read_state_dict(path)
        lora.check_checkpoint_adapters(state, self.cfg.lora, self.has_adapters, path)
        report = load_state_dict_into(self, state)
        required = self.trainable_names()
        lacking = {g: [k for k in keys if k in required] for g, keys in report.missing.items()}
        lacking = {g: keys for g, keys in lacking.items() if keys}
        if strict and (lacking or report.unexpected):
            raise WeightMismatchError(f"{path}: checkpoint lacks trainable tensors or has unknown keys; "
                           + report.describe(self.weight_sources()))
        log.info("%s: %s", path, report.describe(self.weight_sources()))
        return report

    def export_hf(self, directory) -> "Path":
        """Write an HF-format directory that transformers' InstructBLIP / BLIP-2 classes load (see `hf_interop`)."""
        from lavis_ib.models.weights.hf_interop import export_hf

        return export_hf(self, directory)

    def trainable_names(self) -> set[str]:
        """State-dict names of the parameters that train (`requires_grad`)."""
        return {strip_wrapper_prefix(name) for name, _ in trainable_parameters(self)}

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """LAVIS's checkpoint content: the trainable parameters and the buffers. Frozen parameters are left out, and
        so is what a quantized frozen weight adds to the state dict (its scales and quantization state)."""
        kept = self.trainable_names() | {strip_wrapper_prefix(n) for n, _ in self.named_buffers()}
        return {k: v for k, v in self.state_dict().items() if k in kept}

    def no_weight_decay(self) -> set[str]:
        """Trainable parameters excluded from weight decay (1-D or `*.bias`, LAVIS's rule)."""
        return {strip_wrapper_prefix(n) for n, p in trainable_parameters(self) if is_no_decay(n, p)}

    def optimizer_param_groups(self, weight_decay: float, lr_layer_decay: float = 1.0) -> list[dict]:
        """AdamW groups with LAVIS's decay rule and, for an unfrozen ViT, layer-wise `lr_scale` (see `trainable`)."""
        return optimizer_param_groups(self, weight_decay, lr_layer_decay, vit_depth=self.cfg.vision.depth)

    @property
    def llm_grad_checkpointing(self) -> bool:
        """Whether the LLM's layers are wrapped for activation checkpointing."""
        return any(isinstance(module, CheckpointWrapper) for module in self.llm.modules())

    def set_llm_grad_checkpointing(self, enabled: bool = True) -> None:
        """Recompute the frozen LLM's layer activations in backward (gradients still reach the queries).

        Uses torch's own `checkpoint_wrapper` (non-reentrant) around each transformer layer: transformers' switch
        only acts in train mode, and the frozen LLM always stays in eval mode. State-dict names are unchanged.
        """
        if enabled == self.llm_grad_checkpointing:
            return
        if not enabled:
            raise ValueError("LLM gradient checkpointing cannot be removed once applied; rebuild the model")
        apply_activation_checkpointing(
            self.llm, checkpoint_wrapper_fn=checkpoint_wrapper,
            check_fn=lambda module: isinstance(module, GradientCheckpointingLayer),
        )

    # ----- user-facing inference ----------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, samples: dict, **overrides) -> list[str]:
        """Text for each image (`num_captions` each): beam search by default, nucleus sampling on request.

        Arguments (LAVIS names): use_nucleus_sampling, num_beams, max_length, min_length, top_p, repetition_penalty,
        length_penalty, num_captions, temperature; `length_semantics` says how the lengths count (see
        `new_token_bounds`; default `model.length_semantics`, "lavis").
        """
        return self.decode(self.generate_token_ids(samples, **overrides))

    @torch.no_grad()
    def generate_token_ids(self, samples: dict, **overrides) -> torch.Tensor:
        """The generated token ids behind `generate` (new tokens only), before decoding."""
        unknown = set(overrides) - set(self.GENERATE_DEFAULTS)
        if unknown:
            raise TypeError(f"generate() got unknown arguments {sorted(unknown)}; valid: {sorted(self.GENERATE_DEFAULTS)}")
        args = {**self.GENERATE_DEFAULTS, **overrides}
        check_generate_args(args)
        image = self.input_image(samples)
        prompts = instructions_for(samples, "generate", self.cfg.prompt, image.shape[0])
        prompt_tokens = samples.get("prompt_tokens") or self.text.prompts(prompts)
        visual = self.query_features(image, prompts, samples.get("qformer_tokens"), media_keys=samples.get("media_key"))
        max_new, min_new = self.new_token_bounds(args["max_length"], args["min_length"],
                                                 args["length_semantics"] or self.cfg.length_semantics)
        gen_kwargs = dict(
            num_beams=args["num_beams"], max_new_tokens=max_new, min_new_tokens=min_new,
            repetition_penalty=args["repetition_penalty"], length_penalty=args["length_penalty"],
            num_return_sequences=args["num_captions"], do_sample=args["use_nucleus_sampling"],
        )
        if args["use_nucleus_sampling"]:
            gen_kwargs.update(top_p=args["top_p"], temperature=args["temperature"])
        with warnings.catch_warnings():
            # LAVIS semantics: the repetition penalty applies to generated tokens only, which is what we want.
            warnings.filterwarnings("ignore", message=".*repetition_penalty.*inputs_embeds.*")
            return self.generate_ids_from(visual, prompt_tokens, gen_kwargs)

    def new_token_bounds(self, max_length: int, min_length: int, semantics: str) -> tuple[int, int]:
        """`(max_new_tokens, min_new_tokens)` for `generate`'s `max_length` / `min_length`.

        `new_tokens`: both count generated tokens. `lavis`: as LAVIS's calls behave under the transformers it pins
        (4.33), where the paper's numbers come from: decoder-only LLMs count a BOS placeholder in both (one token
        fewer), T5 counts its decoder start token in `min_length` only; so `min_length=1` allows an empty answer.
        """
        if semantics not in LENGTH_SEMANTICS:
            raise ValueError(f"length_semantics must be one of {', '.join(LENGTH_SEMANTICS)}, got {semantics!r}")
        if semantics == "new_tokens":
            return max_length, min_length
        max_new, min_new = max_length - self.LAVIS_MAX_LENGTH_OFFSET, max(min_length - 1, 0)
        if max_new < 1:
            raise ValueError(f"max_length={max_length} leaves no token to generate with length_semantics='lavis' "
                             f"(it counts a BOS placeholder); use max_length ≥ {self.LAVIS_MAX_LENGTH_OFFSET + 1}")
        return max_new, min_new

    def decode(self, ids: torch.Tensor) -> list[str]:
        """Token ids → strings, special tokens skipped and whitespace stripped."""
        return [t.strip() for t in self.tokenizer.batch_decode(ids, skip_special_tokens=True)]

    @torch.no_grad()
    def score_candidates(self, samples: dict, candidates: Sequence, n_segments: int = 1) -> CandidateScores:
        """Log-likelihood of each candidate text given image + prompt: sums and per-token means, per sample.

        `candidates` is one list shared by the batch or one list per sample. Each sample's prefix runs once and its
        candidates follow in LLM batches sized automatically to bound memory; `n_segments` splits them at least
        that many ways (the scores do not depend on it beyond float rounding).
        """
        image = self.input_image(samples)
        batch = image.shape[0]
        prompts = instructions_for(samples, "score", self.cfg.prompt, batch)
        per_sample = check_candidates(candidates, batch)
        visual = self.query_features(image, prompts, samples.get("qformer_tokens"), media_keys=samples.get("media_key"))
        scored = [self.candidate_log_likelihood(visual[b : b + 1], prompts[b], per_sample[b], n_segments)
                  for b in range(batch)]
        sums, counts = [s for s, _ in scored], [c for _, c in scored]
        return CandidateScores(sum=sums, mean=[s / c.clamp(min=1) for s, c in zip(sums, counts)], num_tokens=counts)

def strip_wrapper_prefix(name: str) -> str:
    """A parameter name as the state dict spells it (without activation-checkpoint wrapper components)."""
    return name.replace(_CHECKPOINT_PREFIX, "")
