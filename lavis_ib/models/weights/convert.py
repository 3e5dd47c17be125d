"""State-dict and config mapping between our (LAVIS) naming and Hugging Face InstructBLIP / BLIP-2 naming.

The key mapping is data: `RenameRule`s pair a template in our naming with one in HF naming; `{name}` placeholders
stand for one of the alternatives in `PLACEHOLDERS` (e.g. `{i}` a layer index) and are carried across unchanged.
Conversion is strict: every input key must match a rule (or a documented drop / fusion), else `ValueError`.

Keys that need more than a rename:
- EVA qkv bias: ours has `attn.q_bias` and `attn.v_bias`; HF has one `self_attn.qkv.bias` = cat(q, zeros, v). Going
  back, the middle (key) third must be exactly zero, as our attention has no key bias.
- Q-Former `embeddings.position_ids`: a buffer in LAVIS checkpoints (and in HF checkpoints written by old transformers);
  accepted on input, never produced (both models in this repo keep it non-persistent or lack it).
- Tied LLM weights (T5 `shared` / `encoder.embed_tokens` / `decoder.embed_tokens` / `lm_head`, OPT `lm_head`): the
  mapping is a pure rename, so a full `state_dict()` (which lists every tied alias) converts to a full one and loads
  with `strict=True` on either side. `save_pretrained` safetensors omit tied aliases; restore them on our side with
  `fill_tied_weights(sd, llm_tied_weights_keys(arch, llm_config))` (HF's own `from_pretrained` re-ties by itself).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch
from transformers import (
    MODEL_FOR_CAUSAL_LM_MAPPING,
    MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING,
    AutoConfig,
    Blip2Config,
    InstructBlipConfig,
    InstructBlipVideoConfig,
    PretrainedConfig,
)

ARCH_PROJ = {"blip2_vicuna_instruct": "llm_proj", "blip2_t5_instruct": "t5_proj", "blip2_opt": "opt_proj"}
ARCH_LLM = {"blip2_vicuna_instruct": "llm_model", "blip2_t5_instruct": "t5_model", "blip2_opt": "opt_model"}
# Which HF model family holds each arch: InstructBLIP (Q-Former with text embeddings) or BLIP-2 (without).
ARCH_FAMILY = {"blip2_vicuna_instruct": "instructblip", "blip2_t5_instruct": "instructblip", "blip2_opt": "blip2"}

HF_CONFIG_CLASSES: dict[str, type[PretrainedConfig]] = {
    "instructblip": InstructBlipConfig,
    "instructblipvideo": InstructBlipVideoConfig,
    "blip-2": Blip2Config,
}

PLACEHOLDERS = {
    "i": r"\d+",
    "n": "1|2",
    "wb": "weight|bias",
    "attn": "attention|crossattention",
    "qkv": "query|key|value",
    "sub": "dense|LayerNorm",
    "ffn": "intermediate|intermediate_query|output|output_query",
    "ffn_out": "output|output_query",
    "emb": "word_embeddings|position_embeddings",
    "part": "q|v",
    "rest": r".+",
}


@dataclass(frozen=True)
class RenameRule:
    """One key pattern in our naming and its HF counterpart; both use the same `{placeholder}`s."""

    ours: str
    hf: str


VISION_RULES = (
    RenameRule("visual_encoder.cls_token", "vision_model.embeddings.class_embedding"),
    RenameRule("visual_encoder.pos_embed", "vision_model.embeddings.position_embedding"),
    RenameRule("visual_encoder.patch_embed.proj.{wb}", "vision_model.embeddings.patch_embedding.{wb}"),
    RenameRule("visual_encoder.blocks.{i}.norm{n}.{wb}", "vision_model.encoder.layers.{i}.layer_norm{n}.{wb}"),
    RenameRule("visual_encoder.blocks.{i}.attn.qkv.weight", "vision_model.encoder.layers.{i}.self_attn.qkv.weight"),
    RenameRule("visual_encoder.blocks.{i}.attn.proj.{wb}", "vision_model.encoder.layers.{i}.self_attn.projection.{wb}"),
    RenameRule("visual_encoder.blocks.{i}.mlp.fc{n}.{wb}", "vision_model.encoder.layers.{i}.mlp.fc{n}.{wb}"),
    RenameRule("ln_vision.{wb}", "vision_model.post_layernorm.{wb}"),
    RenameRule("query_tokens", "query_tokens"),
)

QFORMER_LAYER_RULES = (
    RenameRule(
        "Qformer.bert.encoder.layer.{i}.{attn}.self.{qkv}.{wb}", "qformer.encoder.layer.{i}.{attn}.attention.{qkv}.{wb}"
    ),
    RenameRule(
        "Qformer.bert.encoder.layer.{i}.{attn}.output.{sub}.{wb}", "qformer.encoder.layer.{i}.{attn}.output.{sub}.{wb}"
    ),
    RenameRule("Qformer.bert.encoder.layer.{i}.{ffn}.dense.{wb}", "qformer.encoder.layer.{i}.{ffn}.dense.{wb}"),
    RenameRule(
        "Qformer.bert.encoder.layer.{i}.{ffn_out}.LayerNorm.{wb}", "qformer.encoder.layer.{i}.{ffn_out}.LayerNorm.{wb}"
    ),
)

# The Q-Former embedding LayerNorm lives under `embeddings` in InstructBLIP; BLIP-2's generation model has no
# Q-Former text embeddings at all and keeps the (query-only) LayerNorm at `qformer.layernorm`.
QFORMER_EMBEDDING_RULES = {
    "instructblip": (
        RenameRule("Qformer.bert.embeddings.{emb}.weight", "qformer.embeddings.{emb}.weight"),
        RenameRule("Qformer.bert.embeddings.LayerNorm.{wb}", "qformer.embeddings.layernorm.{wb}"),
    ),
    "blip2": (RenameRule("Qformer.bert.embeddings.LayerNorm.{wb}", "qformer.layernorm.{wb}"),),
}

# The same buffer in both namings: accepted on input and dropped (see module docstring).
DROPPED_BUFFER = RenameRule("Qformer.bert.embeddings.position_ids", "qformer.embeddings.position_ids")

# EVA attention bias: two tensors on our side ({part} = q or v), one fused [q, 0, v] tensor on the HF side.
QKV_BIAS = RenameRule(
    "visual_encoder.blocks.{i}.attn.{part}_bias", "vision_model.encoder.layers.{i}.self_attn.qkv.bias"
)

MAX_LISTED_KEYS = 20


def arch_rules(arch: str) -> tuple[RenameRule, ...]:
    """All plain rename rules for `arch`: shared vision / Q-Former rules plus its family's and projection / LLM ones."""
    family = _family(arch)
    return (
        VISION_RULES
        + QFORMER_EMBEDDING_RULES[family]
        + QFORMER_LAYER_RULES
        + (
            RenameRule(f"{ARCH_PROJ[arch]}.{{wb}}", "language_projection.{wb}"),
            RenameRule(f"{ARCH_LLM[arch]}.{{rest}}", "language_model.{rest}"),
        )
    )


def lavis_to_hf_state_dict(state_dict: Mapping[str, torch.Tensor], arch: str) -> dict[str, torch.Tensor]:
    """Our/LAVIS state dict -> HF InstructBLIP (or BLIP-2 for `blip2_opt`) state dict; raises on unknown keys."""
    return _convert(state_dict, arch, to_hf=True)


def hf_to_lavis_state_dict(state_dict: Mapping[str, torch.Tensor], arch: str) -> dict[str, torch.Tensor]:
    """HF InstructBLIP / InstructBlipVideo / BLIP-2 state dict -> our/LAVIS state dict; raises on unknown keys."""
    return _convert(state_dict, arch, to_hf=False)


def _family(arch: str) -> str:
    if arch not in ARCH_FAMILY:
        raise ValueError(f"unknown arch {arch!r}; expected one of {sorted(ARCH_FAMILY)}")
    return ARCH_FAMILY[arch]


def _side(rule: RenameRule, to_hf: bool) -> tuple[str, str]:
    """(source template, target template) of `rule` for the given direction."""
    return (rule.ours, rule.hf) if to_hf else (rule.hf, rule.ours)


@lru_cache(maxsize=None)
def _template_regex(template: str) -> re.Pattern[str]:
    """Compile a `{placeholder}` template into a full-match regex with one named group per placeholder."""
    pieces = re.split(r"\{(\w+)\}", template)
    regex = "".join(
        re.escape(piece) if index % 2 == 0 else f"(?P<{piece}>{PLACEHOLDERS[piece]})"
        for index, piece in enumerate(pieces)
    )
    return re.compile(regex)


def _match(template: str, key: str) -> dict[str, str] | None:
    found = _template_regex(template).fullmatch(key)
    return None if found is None else found.groupdict()


def _rename(key: str, rules: tuple[RenameRule, ...], to_hf: bool) -> str | None:
    """The target name of `key` under the first matching rule, or None if no rule matches."""
    for rule in rules:
        source, target = _side(rule, to_hf)
        groups = _match(source, key)
        if groups is not None:
            return target.format(**groups)
    return None


def _convert(state_dict: Mapping[str, torch.Tensor], arch: str, to_hf: bool) -> dict[str, torch.Tensor]:
    """Apply the qkv-bias fusion / split, the drops and the rename rules; collect and report unmatched keys."""
    rules = arch_rules(arch)
    qkv_source, _ = _side(QKV_BIAS, to_hf)
    dropped, _ = _side(DROPPED_BUFFER, to_hf)
    bias_keys = [key for key in state_dict if _match(qkv_source, key) is not None]
    out = _fuse_qkv_bias(state_dict, bias_keys) if to_hf else _split_qkv_bias(state_dict, bias_keys)
    handled = {dropped, *bias_keys}
    unknown = []
    for key, value in state_dict.items():
        if key in handled:
            continue
        target = _rename(key, rules, to_hf)
        if target is None:
            unknown.append(key)
        else:
            out[target] = value
    if unknown:
        raise ValueError(_unknown_message(unknown, arch, "LAVIS->HF" if to_hf else "HF->LAVIS"))
    return out


def _unknown_message(keys: list[str], arch: str, direction: str) -> str:
    listed = "\n  ".join(keys[:MAX_LISTED_KEYS])
    more = f"\n  ... and {len(keys) - MAX_LISTED_KEYS} more" if len(keys) > MAX_LISTED_KEYS else ""
    return f"{len(keys)} key(s) match no {direction} rule for arch {arch!r}:\n  {listed}{more}"


def _fuse_qkv_bias(state_dict: Mapping[str, torch.Tensor], bias_keys: list[str]) -> dict[str, torch.Tensor]:
    """Our per-block q_bias / v_bias -> HF fused qkv.bias = cat(q, zeros, v)."""
    parts: dict[str, dict[str, torch.Tensor]] = {}
    for key in bias_keys:
        groups = _match(QKV_BIAS.ours, key)
        parts.setdefault(groups["i"], {})[groups["part"]] = state_dict[key]
    fused = {}
    for index, pair in parts.items():
        if set(pair) != {"q", "v"}:
            raise ValueError(f"visual_encoder.blocks.{index}.attn needs both q_bias and v_bias, got {sorted(pair)}")
        fused[QKV_BIAS.hf.format(i=index)] = torch.cat((pair["q"], torch.zeros_like(pair["q"]), pair["v"]))
    return fused


def _split_qkv_bias(state_dict: Mapping[str, torch.Tensor], bias_keys: list[str]) -> dict[str, torch.Tensor]:
    """HF fused qkv.bias -> our q_bias / v_bias; the key third must be all zeros (our attention has no key bias)."""
    split = {}
    for key in bias_keys:
        index = _match(QKV_BIAS.hf, key)["i"]
        q_bias, k_bias, v_bias = state_dict[key].chunk(3)
        if torch.count_nonzero(k_bias):
            raise ValueError(f"{key}: the key bias (middle third) is nonzero; EVA q_bias/v_bias cannot represent it")
        split[QKV_BIAS.ours.format(i=index, part="q")] = q_bias.clone()
        split[QKV_BIAS.ours.format(i=index, part="v")] = v_bias.clone()
    return split


def _llm_class(llm_config: PretrainedConfig) -> type:
    """The HF LLM class our `*_model` holds: causal LM for decoder-only configs, seq2seq LM (T5) otherwise."""
    if type(llm_config) in MODEL_FOR_CAUSAL_LM_MAPPING:
        return MODEL_FOR_CAUSAL_LM_MAPPING[type(llm_config)]
    return MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING[type(llm_config)]


def _llm_config(llm_config: PretrainedConfig | Mapping[str, Any]) -> PretrainedConfig:
    if isinstance(llm_config, PretrainedConfig):
        return llm_config
    fields = dict(llm_config)
    return AutoConfig.for_model(fields.pop("model_type"), **fields)


def llm_tied_weights_keys(arch: str, llm_config: PretrainedConfig | Mapping[str, Any]) -> dict[str, str]:
    """{tied alias: source} in our naming for the LLM of `arch`, read from the HF class (no model is built).

    Mirrors transformers: nothing is tied unless `tie_word_embeddings` (T5 in transformers 5 always ties).
    """
    config = _llm_config(llm_config)
    if not getattr(config, "tie_word_embeddings", False):
        return {}
    prefix = ARCH_LLM[arch]
    tied = _llm_class(config)._tied_weights_keys or {}
    return {f"{prefix}.{target}": f"{prefix}.{source}" for target, source in tied.items()}


def fill_tied_weights(state_dict: Mapping[str, torch.Tensor], tied: Mapping[str, str]) -> dict[str, torch.Tensor]:
    """Add each missing tied alias (e.g. dropped by `save_pretrained`) as the tensor of its present source."""
    out = dict(state_dict)
    for target, source in tied.items():
        if target not in out and source in out:
            out[target] = out[source]
    return out


def _as_hf_config(hf_config: PretrainedConfig | Mapping[str, Any]) -> PretrainedConfig:
    """Accept a config object or a config.json dict (dispatched on its `model_type`)."""
    if isinstance(hf_config, PretrainedConfig):
        return hf_config
    model_type = hf_config.get("model_type")
    if model_type not in HF_CONFIG_CLASSES:
        raise ValueError(f"unsupported HF model_type {model_type!r}; expected one of {sorted(HF_CONFIG_CLASSES)}")
    return HF_CONFIG_CLASSES[model_type].from_dict(dict(hf_config))


def _infer_arch(config: PretrainedConfig) -> str:
    """blip2_vicuna_instruct / blip2_t5_instruct for InstructBLIP(-Video), blip2_opt for BLIP-2 with a causal LM."""
    decoder_only = config.use_decoder_only_language_model
    llm_type = config.text_config.model_type
    if isinstance(config, Blip2Config):
        if decoder_only:
            return "blip2_opt"
        if llm_type == "t5":
            raise NotImplementedError("blip2_t5 is not supported yet")
    elif decoder_only:
        return "blip2_vicuna_instruct"
    elif llm_type == "t5":
        return "blip2_t5_instruct"
    raise NotImplementedError(f"{config.model_type} with a {llm_type!r} language model is not supported")


def _square(size: int | list[int] | tuple[int, int]) -> int | tuple[int, int]:
    """HF allows (h, w) sizes; collapse square ones to the int our configs use."""
    if isinstance(size, int):
        return size
    height, width = size
    return height if height == width else (height, width)


@dataclass(frozen=True)
class ConfigField:
    """One sized setting: its dotted path in our model config and in the HF config, and how HF values read back."""

    ours: str
    hf: str
    from_hf: Callable[[Any], Any] = lambda value: value


# The one field map between our model config and InstructBlipConfig / Blip2Config, read in both directions.
CONFIG_FIELDS = (
    ConfigField("image_size", "vision_config.image_size", _square),
    ConfigField("vision.width", "vision_config.hidden_size"),
    ConfigField("vision.depth", "vision_config.num_hidden_layers"),
    ConfigField("vision.num_heads", "vision_config.num_attention_heads"),
    ConfigField("vision.mlp_hidden", "vision_config.intermediate_size"),
    ConfigField("vision.patch_size", "vision_config.patch_size", _square),
    ConfigField("vision.layer_norm_eps", "vision_config.layer_norm_eps"),
    ConfigField("num_query_token", "num_query_tokens"),
    ConfigField("qformer.hidden_size", "qformer_config.hidden_size"),
    ConfigField("qformer.num_layers", "qformer_config.num_hidden_layers"),
    ConfigField("qformer.num_heads", "qformer_config.num_attention_heads"),
    ConfigField("qformer.intermediate_size", "qformer_config.intermediate_size"),
    ConfigField("qformer.cross_attention_freq", "qformer_config.cross_attention_frequency"),
    ConfigField("qformer.vocab_size", "qformer_config.vocab_size"),
    ConfigField("qformer.max_position_embeddings", "qformer_config.max_position_embeddings"),
    ConfigField("qformer.layer_norm_eps", "qformer_config.layer_norm_eps"),
    ConfigField("qformer.hidden_dropout", "qformer_config.hidden_dropout_prob"),
    ConfigField("qformer.attention_dropout", "qformer_config.attention_probs_dropout_prob"),
)


def _get_path(tree: Any, dotted: str) -> Any:
    """`tree.a.b` for `"a.b"`, through mappings and attributes alike."""
    for part in dotted.split("."):
        tree = tree[part] if isinstance(tree, Mapping) else getattr(tree, part)
    return tree


def _set_path(tree: dict[str, Any], dotted: str, value: Any) -> None:
    """`tree["a"]["b"] = value` for `"a.b"`, creating the intermediate dicts."""
    *parents, leaf = dotted.split(".")
    for part in parents:
        tree = tree.setdefault(part, {})
    tree[leaf] = value


def model_cfg_from_hf_config(hf_config: PretrainedConfig | Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """(arch, our model config dict) reproducing the HF InstructBLIP / InstructBlipVideo / BLIP-2 model exactly."""
    config = _as_hf_config(hf_config)
    arch = _infer_arch(config)
    cfg: dict[str, Any] = {"arch": arch}
    for field in CONFIG_FIELDS:
        _set_path(cfg, field.ours, field.from_hf(_get_path(config, field.hf)))
    # HF's post_layernorm (our ln_vision) uses the vision layer_norm_eps; LAVIS itself used 1e-5 here.
    cfg["ln_vision_eps"] = cfg["vision"]["layer_norm_eps"]
    cfg["qformer_text_input"] = not isinstance(config, Blip2Config) or config.qformer_config.use_qformer_text_input
    cfg["llm_config"] = config.text_config.to_dict()
    _copy_token_index(config, cfg)
    return arch, cfg


# HF's LLM placeholder token ids (InstructBlipVideo calls its one `video_token_index`) and where our cfg keeps them.
TOKEN_INDEX_KEYS = (("image_token_index", "hf_image_token_index"), ("video_token_index", "hf_video_token_index"))


def _copy_token_index(config: PretrainedConfig, cfg: dict[str, Any]) -> None:
    """Keep the HF placeholder token ids that are set, under the cfg keys of `TOKEN_INDEX_KEYS`."""
    for attribute, key in TOKEN_INDEX_KEYS:
        if getattr(config, attribute, None) is not None:
            cfg[key] = getattr(config, attribute)


def hf_config_from_model_cfg(
    arch: str, cfg: Mapping[str, Any], image_token_index: int | None = None
) -> PretrainedConfig:
    """Inverse of `model_cfg_from_hf_config`: InstructBlipConfig for the instruct archs, Blip2Config for blip2_opt.

    HF has no separate ln_vision eps (post_layernorm uses the vision layer_norm_eps), so `ln_vision_eps` is not kept.
    `image_token_index` defaults to `cfg["hf_image_token_index"]`.
    """
    family = _family(arch)
    fields: dict[str, Any] = {}
    for field in CONFIG_FIELDS:
        _set_path(fields, field.hf, _get_path(cfg, field.ours))
    if family == "blip2":
        fields["qformer_config"]["use_qformer_text_input"] = bool(cfg.get("qformer_text_input", False))
    config_class = Blip2Config if family == "blip2" else InstructBlipConfig
    return config_class(
        **fields,
        text_config=dict(cfg["llm_config"]),
        image_token_index=image_token_index if image_token_index is not None else cfg.get("hf_image_token_index"),
    )
