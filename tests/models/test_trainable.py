"""What trains, declared once: `requires_grad` decides the optimizer groups, checkpoint saving and loading.

Also the LLM activation-checkpointing switch: same gradients, activations recomputed in backward.
"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from lavis_ib.common.registry import registry
from lavis_ib.models.trainable import vit_layer_id

ARCH = "blip2_vicuna_instruct"


def tiny(**overrides):
    torch.manual_seed(0)
    model_cls = registry.get_model_class(ARCH)
    cfg = model_cls.default_config("tiny").model
    cfg.update(overrides)
    return model_cls.from_config(cfg)


def group_of(groups, param):
    return next(g for g in groups if any(p is param for p in g["params"]))


def test_frozen_vit_groups_follow_lavis_decay_rule():
    model = tiny()
    groups = model.optimizer_param_groups(weight_decay=0.05, lr_layer_decay=0.9)
    assert sorted(g["name"] for g in groups) == ["decay", "no_decay"]
    names = {id(p): n for n, p in model.named_parameters()}
    grouped = {names[id(p)]: g for g in groups for p in g["params"]}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert set(grouped) == trainable  # nothing frozen is optimised, nothing trainable is missed
    assert not any(n.startswith(("visual_encoder.", "llm_model.")) for n in grouped)
    assert grouped["query_tokens"]["weight_decay"] == 0.05  # 3-D: decayed, as in LAVIS
    assert grouped["llm_proj.bias"]["weight_decay"] == 0.0
    assert grouped["ln_vision.weight"]["weight_decay"] == 0.0
    assert grouped["Qformer.bert.encoder.layer.0.attention.self.query.weight"]["weight_decay"] == 0.05
    assert model.no_weight_decay() == {n for n, g in grouped.items() if g["weight_decay"] == 0.0}


def test_unfrozen_vit_gets_layerwise_lr_scales():
    model = tiny(freeze_vit=False)
    depth = model.cfg.vision.depth  # 2 in the tiny config
    groups = model.optimizer_param_groups(weight_decay=0.05, lr_layer_decay=0.5)
    vit = model.visual_encoder
    assert group_of(groups, vit.pos_embed)["lr_scale"] == 0.5 ** (depth + 1)  # layer 0
    assert group_of(groups, vit.blocks[0].attn.qkv.weight)["lr_scale"] == 0.5 ** depth  # layer 1
    assert group_of(groups, vit.blocks[1].mlp.fc1.weight)["lr_scale"] == 0.5 ** (depth - 1)  # layer 2
    assert group_of(groups, vit.blocks[1].norm1.weight)["name"] == "vit_layer_2_no_decay"
    assert group_of(groups, model.query_tokens)["lr_scale"] == 1.0
    assert [vit_layer_id(n, 39) for n in ("cls_token", "patch_embed.proj.weight", "blocks.38.attn.proj.bias",
                                         "norm.weight")] == [0, 0, 39, 39]


def test_checkpoint_save_and_load_agree_on_what_trains(tmp_path):
    """Unfreezing the ViT makes its weights part of the checkpoint and required when loading it."""
    model = tiny(freeze_vit=False)
    state = model.trainable_state_dict()
    assert set(state) == model.trainable_names()
    assert any(k.startswith("visual_encoder.") for k in state)
    assert not any(k.startswith("llm_model.") for k in state)
    path = tmp_path / "trainable.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    fresh = tiny(freeze_vit=False)
    with torch.no_grad():
        fresh.visual_encoder.pos_embed.zero_()
    fresh.load_checkpoint(path)
    assert torch.equal(fresh.visual_encoder.pos_embed, model.visual_encoder.pos_embed)

    lacking = {k: v for k, v in state.items() if k != "visual_encoder.blocks.0.attn.qkv.weight"}
    save_file({k: v.contiguous() for k, v in lacking.items()}, str(path))
    with pytest.raises(KeyError, match="visual_encoder"):
        tiny(freeze_vit=False).load_checkpoint(path)
    tiny().load_checkpoint(path)  # the frozen-ViT model does not need the ViT weights


def test_llm_grad_checkpointing_gives_same_gradients_and_recomputes():
    samples = {"image": torch.randn(2, 3, 56, 56, generator=torch.Generator().manual_seed(1)),
               "text_input": ["What is it?", "Colour?"], "text_output": ["a ball", "red"]}
    grads, calls = {}, {}
    for enabled in (False, True):
        model = tiny(llm_grad_checkpoint=enabled).train()
        assert model.llm.training is False  # the frozen LLM stays in eval mode
        layer = model.llm.model.layers[0]
        layer = getattr(layer, "_checkpoint_wrapped_module", layer)
        count = [0]
        layer.register_forward_pre_hook(lambda *_: count.__setitem__(0, count[0] + 1))  # recompute may stop early
        model(samples)["loss"].backward()
        grads[enabled], calls[enabled] = model.query_tokens.grad.clone(), count[0]
        assert set(model.state_dict()) == set(tiny().state_dict())  # names unchanged by the wrapper
    assert calls == {False: 1, True: 2}
    assert torch.allclose(grads[True], grads[False], atol=1e-6)
