"""The precision policy: the caller decides, the model keeps `ln_vision` and the Q-Former in fp32.

Checked on CPU with bf16 (CPU autocast supports it); the CUDA defaults are checked as resolved policies.
"""

from __future__ import annotations

import pytest
import torch

from lavis_ib import load_model
from lavis_ib.common.registry import registry
from lavis_ib.common.schema import ConfigError
from lavis_ib.models.precision import PrecisionPolicy

SAMPLES = {"text_input": ["What is it?", "Colour?"], "text_output": ["a ball", "red"]}


def parsed(arch, model_type):
    model_cls = registry.get_model_class(arch)
    return model_cls.parse_config(model_cls.default_config(model_type).model)


@pytest.mark.parametrize("arch, model_type, vit, llm", [
    ("blip2_vicuna_instruct", "vicuna7b", torch.float16, torch.float16),
    ("blip2_t5_instruct", "flant5xl", torch.float16, torch.bfloat16),
    ("blip2_opt", "pretrain_opt2.7b", torch.float16, torch.float16),
])
def test_lavis_defaults_on_cuda_fp32_on_cpu(arch, model_type, vit, llm):
    cfg = parsed(arch, model_type)
    assert PrecisionPolicy.resolve(cfg, "cuda") == PrecisionPolicy(vit=vit, llm=llm)
    assert PrecisionPolicy.resolve(cfg, "cuda:1") == PrecisionPolicy(vit=vit, llm=llm)
    assert PrecisionPolicy.resolve(cfg, "cpu") == PrecisionPolicy(torch.float32, torch.float32)
    assert PrecisionPolicy.resolve(cfg, "cpu", "bf16") == PrecisionPolicy(torch.bfloat16, torch.bfloat16)


def test_invalid_precision_is_a_config_error_naming_the_valid_values():
    with pytest.raises(ConfigError, match=r"precision must be one of fp32, fp16, bf16, got 'fp17'"):
        load_model("blip2_vicuna_instruct", "tiny", precision="fp17")


def dtypes_seen(model, samples):
    """Output dtypes of the ViT's first Linear, ln_vision, the Q-Former and the LLM's first projection."""
    seen = {}
    probes = {"vit": model.visual_encoder.blocks[0].mlp.fc1, "ln_vision": model.ln_vision, "qformer": model.Qformer,
              "llm": model.llm.get_input_embeddings()}
    probes["llm_linear"] = next(m for m in model.llm.modules() if isinstance(m, torch.nn.Linear))
    def record(key):
        def hook(module, args, out):
            seen.setdefault(key, out.dtype)
        return hook

    handles = [module.register_forward_hook(record(key)) for key, module in probes.items()]
    try:
        loss = model(samples)["loss"]
    finally:
        for handle in handles:
            handle.remove()
    assert torch.isfinite(loss)
    return seen


def images(batch=2):
    return torch.randn(batch, 3, 56, 56, generator=torch.Generator().manual_seed(0))


def test_a_callers_autocast_is_not_overridden_and_fp32_parts_stay_fp32():
    model = load_model("blip2_vicuna_instruct", "tiny")
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
        seen = dtypes_seen(model, {"image": images(), **SAMPLES})
    assert seen["vit"] == torch.bfloat16 and seen["llm_linear"] == torch.bfloat16
    assert seen["ln_vision"] == torch.float32 and seen["qformer"] == torch.float32


def test_named_precision_stores_frozen_parts_in_it_and_computes_in_it():
    model = load_model("blip2_t5_instruct", "tiny", precision="bf16")
    assert {p.dtype for p in model.llm.parameters()} == {torch.bfloat16}
    assert model.visual_encoder.blocks[0].attn.qkv.weight.dtype == torch.bfloat16
    assert model.visual_encoder.blocks[0].norm1.weight.dtype == torch.float32  # LAVIS casts Linear/Conv only
    trainable = {p.dtype for p in model.parameters() if p.requires_grad}
    assert trainable == {torch.float32}
    with torch.no_grad():
        seen = dtypes_seen(model, {"image": images(), **SAMPLES})
    assert seen["vit"] == seen["llm_linear"] == torch.bfloat16
    assert seen["ln_vision"] == seen["qformer"] == torch.float32
