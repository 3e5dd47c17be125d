"""Tests for lavis_ib.models.weights.convert: HF <-> LAVIS state-dict renaming and config mapping, on tiny random HF
models."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache, partial

import pytest
import torch
from safetensors.torch import load_file
from timm.layers import LayerNorm
from timm.models.eva import Eva
from transformers import (
    Blip2Config,
    Blip2ForConditionalGeneration,
    InstructBlipConfig,
    InstructBlipForConditionalGeneration,
    InstructBlipVideoConfig,
    InstructBlipVideoForConditionalGeneration,
    LlamaConfig,
    LlamaForCausalLM,
    OPTConfig,
    PreTrainedModel,
    T5Config,
)

from lavis_ib.models.weights.convert import (
    ARCH_LLM,
    ARCH_PROJ,
    fill_tied_weights,
    hf_config_from_model_cfg,
    hf_to_lavis_state_dict,
    lavis_to_hf_state_dict,
    llm_tied_weights_keys,
    model_cfg_from_hf_config,
)

# Q-Former and LLM widths differ from the vision width so that shape checks can tell them apart.
VISION = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 72,
    "image_size": 12,
    "patch_size": 4,
}
QFORMER = {
    "hidden_size": 24,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "intermediate_size": 40,
    "vocab_size": 100,
    "max_position_embeddings": 40,
    "cross_attention_frequency": 2,
}
LLM_HIDDEN = 40
LLM_CONFIGS = {
    "llama": lambda: LlamaConfig(
        hidden_size=LLM_HIDDEN, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=128,
    ),
    "t5": lambda: T5Config(
        d_model=LLM_HIDDEN, d_ff=64, d_kv=10, num_layers=2, num_decoder_layers=2, num_heads=4, vocab_size=128,
    ),
    "opt": lambda: OPTConfig(
        hidden_size=LLM_HIDDEN, ffn_dim=64, num_hidden_layers=2, num_attention_heads=4, vocab_size=128,
        word_embed_proj_dim=LLM_HIDDEN, max_position_embeddings=64,
    ),
}


@dataclass(frozen=True)
class Kind:
    """A tiny HF model flavour: model / config classes, LLM, expected arch and extra config fields."""

    model_class: type[PreTrainedModel]
    config_class: type
    llm: str
    arch: str
    extra: tuple[tuple[str, object], ...] = ()
    qformer_extra: tuple[tuple[str, object], ...] = ()


KINDS = {
    "instructblip_llama": Kind(
        InstructBlipForConditionalGeneration, InstructBlipConfig, "llama", "blip2_vicuna_instruct",
        (("image_token_index", 127),),
    ),
    "instructblip_t5": Kind(InstructBlipForConditionalGeneration, InstructBlipConfig, "t5", "blip2_t5_instruct"),
    "blip2_opt": Kind(Blip2ForConditionalGeneration, Blip2Config, "opt", "blip2_opt", (("image_token_index", 50),)),
    "blip2_opt_text": Kind(
        Blip2ForConditionalGeneration, Blip2Config, "opt", "blip2_opt",
        qformer_extra=(("use_qformer_text_input", True),),
    ),
    "instructblipvideo_llama": Kind(
        InstructBlipVideoForConditionalGeneration, InstructBlipVideoConfig, "llama", "blip2_vicuna_instruct",
        (("video_token_index", 126),),
    ),
}


def make_config(kind: Kind):
    return kind.config_class(
        vision_config=VISION,
        qformer_config={**QFORMER, **dict(kind.qformer_extra)},
        text_config=LLM_CONFIGS[kind.llm]().to_dict(),
        num_query_tokens=4,
        **dict(kind.extra),
    )


@lru_cache(maxsize=None)
def make_model(name: str) -> PreTrainedModel:
    """A tiny HF model with every weight random (so bit-exactness means something) except the zero key bias."""
    torch.manual_seed(0)
    model = KINDS[name].model_class(make_config(KINDS[name])).eval()
    with torch.no_grad():
        for param_name, param in model.named_parameters():
            param.normal_()
            if param_name.endswith("self_attn.qkv.bias"):
                param.view(3, -1)[1].zero_()
    return model


def lavis_state_dict(name: str) -> dict[str, torch.Tensor]:
    return hf_to_lavis_state_dict(make_model(name).state_dict(), KINDS[name].arch)


@pytest.mark.parametrize("name", sorted(KINDS))
def test_hf_lavis_hf_round_trip_is_bit_exact(name: str) -> None:
    model = make_model(name)
    hf_sd = model.state_dict()
    back = lavis_to_hf_state_dict(hf_to_lavis_state_dict(hf_sd, KINDS[name].arch), KINDS[name].arch)
    assert set(back) == set(hf_sd)
    for key, tensor in hf_sd.items():
        assert back[key].dtype == tensor.dtype and torch.equal(back[key], tensor), key
    model.load_state_dict(back, strict=True)


@pytest.mark.parametrize("name", sorted(KINDS))
def test_arch_is_inferred(name: str) -> None:
    assert model_cfg_from_hf_config(make_model(name).config)[0] == KINDS[name].arch


def expected_instructblip_llama_keys() -> set[str]:
    """The LAVIS names of tiny InstructBLIP-Llama, spelled out from the LAVIS naming (independent of convert.py)."""
    keys = {"query_tokens", "ln_vision.weight", "ln_vision.bias", "llm_proj.weight", "llm_proj.bias"}
    keys |= {f"visual_encoder.{name}" for name in ("cls_token", "pos_embed", "patch_embed.proj.weight")}
    keys.add("visual_encoder.patch_embed.proj.bias")
    block = ["attn.qkv.weight", "attn.q_bias", "attn.v_bias"]
    modules = ("norm1", "norm2", "attn.proj", "mlp.fc1", "mlp.fc2")
    block += [f"{module}.{p}" for module in modules for p in ("weight", "bias")]
    keys |= {f"visual_encoder.blocks.{i}.{name}" for i in range(VISION["num_hidden_layers"]) for name in block}
    embeddings = ["word_embeddings.weight", "position_embeddings.weight", "LayerNorm.weight", "LayerNorm.bias"]
    keys |= {f"Qformer.bert.embeddings.{name}" for name in embeddings}
    for i in range(QFORMER["num_hidden_layers"]):
        attentions = ["attention"] + (["crossattention"] if i % QFORMER["cross_attention_frequency"] == 0 else [])
        modules = [f"{a}.self.{m}" for a in attentions for m in ("query", "key", "value")]
        modules += [f"{a}.output.{m}" for a in attentions for m in ("dense", "LayerNorm")]
        modules += ["intermediate.dense", "output.dense", "output.LayerNorm"]
        modules += ["intermediate_query.dense", "output_query.dense", "output_query.LayerNorm"]
        keys |= {f"Qformer.bert.encoder.layer.{i}.{m}.{p}" for m in modules for p in ("weight", "bias")}
    llm = LlamaForCausalLM(LLM_CONFIGS["llama"]())
    keys |= {f"llm_model.{name}" for name in llm.state_dict()}
    return keys


def test_lavis_keys_for_instructblip_llama_follow_lavis_naming() -> None:
    sd = lavis_state_dict("instructblip_llama")
    assert set(sd) == expected_instructblip_llama_keys()
    assert sd["visual_encoder.blocks.0.attn.q_bias"].shape == (VISION["hidden_size"],)
    cross_key = sd["Qformer.bert.encoder.layer.0.crossattention.self.key.weight"]
    assert cross_key.shape == (QFORMER["hidden_size"], VISION["hidden_size"])
    assert not any(key.startswith("Qformer.bert.encoder.layer.1.crossattention") for key in sd)
    assert sd["llm_proj.weight"].shape == (LLM_HIDDEN, QFORMER["hidden_size"])
    assert sd["query_tokens"].shape == (1, 4, QFORMER["hidden_size"])


def test_blip2_opt_lavis_keys_have_no_qformer_text_side() -> None:
    sd = lavis_state_dict("blip2_opt")
    assert "Qformer.bert.embeddings.LayerNorm.weight" in sd and "opt_proj.weight" in sd
    assert "opt_model.model.decoder.embed_tokens.weight" in sd and "opt_model.lm_head.weight" in sd
    assert not any(".word_embeddings." in key or ".intermediate.dense" in key for key in sd)
    assert any(".intermediate.dense" in key for key in lavis_state_dict("blip2_opt_text"))


def test_vision_keys_load_into_timm_eva_and_match_hf_numerically() -> None:
    model = make_model("instructblip_llama")
    _, cfg = model_cfg_from_hf_config(model.config)
    vision = cfg["vision"]
    eva = Eva(
        img_size=cfg["image_size"], patch_size=vision["patch_size"], embed_dim=vision["width"], depth=vision["depth"],
        num_heads=vision["num_heads"], mlp_ratio=(vision["mlp_hidden"] + 0.5) / vision["width"], qkv_bias=True,
        num_classes=0, global_pool="", use_post_transformer_norm=False,
        norm_layer=partial(LayerNorm, eps=vision["layer_norm_eps"]),
    ).eval()
    prefix = "visual_encoder."
    sd = lavis_state_dict("instructblip_llama")
    eva.load_state_dict({k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}, strict=True)

    pixel_values = torch.randn(2, 3, cfg["image_size"], cfg["image_size"], generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        hf_vision = model.vision_model
        hf_features = hf_vision.encoder(inputs_embeds=hf_vision.embeddings(pixel_values)).last_hidden_state
        ours = eva.forward_features(pixel_values)
        hf_normed = hf_vision(pixel_values).last_hidden_state
        ours_normed = torch.nn.functional.layer_norm(
            ours, (vision["width"],), sd["ln_vision.weight"], sd["ln_vision.bias"], eps=cfg["ln_vision_eps"]
        )
    torch.testing.assert_close(ours, hf_features, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours_normed, hf_normed, atol=1e-5, rtol=1e-5)


def test_nonzero_key_bias_raises() -> None:
    hf_sd = dict(make_model("instructblip_llama").state_dict())
    key = "vision_model.encoder.layers.1.self_attn.qkv.bias"
    bias = hf_sd[key].clone()
    bias[VISION["hidden_size"] + 3] = 0.5
    hf_sd[key] = bias
    with pytest.raises(ValueError, match="layers.1.self_attn.qkv.bias"):
        hf_to_lavis_state_dict(hf_sd, "blip2_vicuna_instruct")


def test_unknown_keys_raise_and_are_named() -> None:
    mystery = "vision_model.encoder.layers.0.mystery.weight"
    hf_sd = {**make_model("instructblip_llama").state_dict(), mystery: torch.ones(1)}
    with pytest.raises(ValueError, match=r"mystery\.weight"):
        hf_to_lavis_state_dict(hf_sd, "blip2_vicuna_instruct")
    lavis_sd = {**lavis_state_dict("instructblip_llama"), "Qformer.cls.predictions.bias": torch.ones(1)}
    with pytest.raises(ValueError, match=r"Qformer\.cls\.predictions\.bias"):
        lavis_to_hf_state_dict(lavis_sd, "blip2_vicuna_instruct")


def test_wrong_arch_projection_and_half_bias_raise() -> None:
    lavis_sd = lavis_state_dict("instructblip_llama")
    with pytest.raises(ValueError, match="llm_proj.weight"):
        lavis_to_hf_state_dict(lavis_sd, "blip2_t5_instruct")
    without_v = {k: v for k, v in lavis_sd.items() if k != "visual_encoder.blocks.0.attn.v_bias"}
    with pytest.raises(ValueError, match="v_bias"):
        lavis_to_hf_state_dict(without_v, "blip2_vicuna_instruct")
    with pytest.raises(ValueError, match="unknown arch"):
        lavis_to_hf_state_dict(lavis_sd, "blip2_vicuna")


def test_lavis_position_ids_buffer_is_accepted_and_dropped() -> None:
    position_ids = {"Qformer.bert.embeddings.position_ids": torch.arange(512)[None]}
    lavis_sd = {**lavis_state_dict("instructblip_llama"), **position_ids}
    hf_sd = lavis_to_hf_state_dict(lavis_sd, "blip2_vicuna_instruct")
    assert not any("position_ids" in key for key in hf_sd)
    make_model("instructblip_llama").load_state_dict(hf_sd, strict=True)


@pytest.mark.parametrize("name", ["instructblip_t5", "blip2_opt", "instructblip_llama"])
def test_tied_weights_dropped_by_save_pretrained_are_restored(name: str, tmp_path) -> None:
    model, arch = make_model(name), KINDS[name].arch
    model.save_pretrained(tmp_path)
    saved = load_file(tmp_path / "model.safetensors")
    assert set(model.state_dict()) - set(saved) == set(model.all_tied_weights_keys)
    _, cfg = model_cfg_from_hf_config(model.config)
    tied = llm_tied_weights_keys(arch, cfg["llm_config"])
    assert tied == {lavis_name(k, arch): lavis_name(v, arch) for k, v in model.all_tied_weights_keys.items()}
    restored = fill_tied_weights(hf_to_lavis_state_dict(saved, arch), tied)
    full = lavis_state_dict(name)
    assert set(restored) == set(full)
    assert all(torch.equal(restored[key], full[key]) for key in full)


def lavis_name(hf_llm_key: str, arch: str) -> str:
    return ARCH_LLM[arch] + hf_llm_key.removeprefix("language_model")


@pytest.mark.parametrize("name", sorted(KINDS))
@pytest.mark.parametrize("as_dict", [False, True])
def test_config_round_trip_keeps_sizes(name: str, as_dict: bool) -> None:
    config = make_config(KINDS[name])
    arch, cfg = model_cfg_from_hf_config(config.to_dict() if as_dict else config)
    rebuilt = hf_config_from_model_cfg(arch, cfg)
    expected_class = Blip2Config if arch == "blip2_opt" else InstructBlipConfig
    assert type(rebuilt) is expected_class and cfg["arch"] == arch
    for sub in ("vision_config", "qformer_config"):
        for field, value in getattr(config, sub).to_dict().items():
            if field not in ("transformers_version", "model_type", "architectures", "dtype"):
                assert getattr(getattr(rebuilt, sub), field) == value, (sub, field)
    assert rebuilt.text_config.to_dict() == config.text_config.to_dict()
    assert rebuilt.num_query_tokens == config.num_query_tokens
    assert rebuilt.image_token_index == getattr(config, "image_token_index", None)
    assert cfg.get("hf_video_token_index") == getattr(config, "video_token_index", None)
    assert cfg["qformer_text_input"] == (name != "blip2_opt")  # the HF Q-Former carries the text FFN


def test_model_cfg_fields() -> None:
    arch, cfg = model_cfg_from_hf_config(make_config(KINDS["instructblip_llama"]))
    assert cfg["image_size"] == VISION["image_size"]
    assert cfg["vision"] == {
        "width": 32, "depth": 2, "num_heads": 4, "mlp_hidden": 72, "patch_size": 4, "layer_norm_eps": 1e-6,
    }
    assert cfg["ln_vision_eps"] == 1e-6 and cfg["num_query_token"] == 4 and cfg["qformer_text_input"] is True
    assert cfg["qformer"]["cross_attention_freq"] == 2 and cfg["qformer"]["num_layers"] == 3
    assert cfg["llm_config"]["model_type"] == "llama" and cfg["hf_image_token_index"] == 127
    assert ARCH_PROJ[arch] == "llm_proj" and ARCH_LLM[arch] == "llm_model"


def test_blip2_t5_is_not_supported() -> None:
    config = Blip2Config(vision_config=VISION, qformer_config=QFORMER, text_config=LLM_CONFIGS["t5"]().to_dict())
    with pytest.raises(NotImplementedError, match="blip2_t5 is not supported yet"):
        model_cfg_from_hf_config(config)
