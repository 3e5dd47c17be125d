"""`model.quantization`: bitsandbytes int8 / nf4 / fp4 through transformers, on the frozen LLM only; quality bounded
against the same weights unquantized; Flan-T5's `wo` stays fp32 (HF#24884); bad settings fail before any load."""

from __future__ import annotations

import bitsandbytes as bnb
import pytest
import torch
from torch import nn

from lavis_ib import load_model
from lavis_ib.common.extras import MissingExtraError
from lavis_ib.common.schema import ConfigError
from lavis_ib.runners.runner_iter import check_llm_training
from tests.models.big_llm import ANSWERS, DEMO_WEIGHTS, PROMPTS, VICUNA, images, llm_logits, load_vicuna, save_tiny_t5

QUANTIZED = {"int8": bnb.nn.Linear8bitLt, "nf4": bnb.nn.Linear4bit, "fp4": bnb.nn.Linear4bit}
TEXT = torch.tensor([[1, 37, 112, 9, 250, 61, 400, 17, 88, 5, 301, 44]])


@pytest.fixture(scope="module")
def fp32():
    return load_vicuna()


@pytest.fixture(scope="module", params=["int8", "nf4"])
def quantized(request, fp32):
    model = load_vicuna(quantization=request.param)
    return request.param, model


def linear_types(module: nn.Module) -> set[type]:
    return {type(m) for m in module.modules() if isinstance(m, nn.Linear)}


def test_only_the_llm_is_quantized_and_the_trainable_parts_are_identical(fp32, quantized):
    name, model = quantized
    decoder = model.llm.model.layers
    assert linear_types(decoder) == {QUANTIZED[name]}
    assert type(model.llm.lm_head) is nn.Linear  # transformers keeps the head unquantized
    for part in (model.visual_encoder, model.Qformer, model.proj):
        assert linear_types(part) == {nn.Linear} and all(p.dtype == torch.float32 for p in part.parameters())
    ours, reference = model.trainable_state_dict(), fp32.trainable_state_dict()
    assert ours.keys() == reference.keys()  # no quantization state leaks into checkpoints
    assert all(torch.equal(ours[k], reference[k]) for k in ours)
    assert model.llm.config.quantization_config is not None and getattr(fp32.llm.config, "quantization_config",
                                                                          None) is None


def test_quantized_logits_stay_close_to_the_unquantized_weights(fp32, quantized):
    """Bounds from the committed tiny LLaMA (64 wide, so a 4-bit block of 64 is a whole row): int8's worst logit
    error measured 3 % of the largest logit and every next-token choice kept; nf4 22 % and 9 of 12 kept."""
    name, model = quantized
    reference, ours = llm_logits(fp32, TEXT), llm_logits(model, TEXT)
    error = (ours - reference).abs().max() / reference.abs().max()
    agree = (ours.argmax(-1) == reference.argmax(-1)).float().mean()
    assert error < {"int8": 0.06, "nf4": 0.35}[name], error
    assert agree >= {"int8": 0.9, "nf4": 0.5}[name], agree
    assert error > 0  # really quantized


def test_generate_and_ranking_work_unchanged_on_a_quantized_model(fp32, quantized):
    name, model = quantized
    samples = {"image": images(), "prompt": PROMPTS}
    reference = fp32.score_candidates(samples, ANSWERS).stacked()
    scores = model.score_candidates(samples, ANSWERS).stacked()
    assert scores.shape == (2, 3) and torch.isfinite(scores).all()
    assert (scores - reference).abs().max() < {"int8": 1.0, "nf4": 8.0}[name]
    answers = model.generate(samples, max_length=6, num_beams=2)
    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)


def test_a_checkpoint_trained_unquantized_loads_into_a_quantized_model(fp32, tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "model.safetensors"
    save_file(fp32.trainable_state_dict(), str(path))
    torch.manual_seed(5)  # other random Q-Former weights: the checkpoint must replace them all
    model = load_model(VICUNA, "tiny", is_eval=True, checkpoint=str(path),
                       options={**DEMO_WEIGHTS, "quantization": "nf4"})
    assert torch.equal(model.query_tokens, fp32.query_tokens)


def test_flan_t5_int8_keeps_wo_in_fp32_and_answers_like_fp32(tmp_path):
    """HF#24884: int8 Flan-T5 gave garbage when `wo` was quantized; transformers keeps `wo` fp32 and so do we."""
    directory = save_tiny_t5(tmp_path / "t5")
    options = {"random_init": False, "load_pretrained": False, "t5_model": str(directory)}
    torch.manual_seed(0)
    reference = load_model("blip2_t5_instruct", "tiny", is_eval=True, options=options)
    torch.manual_seed(0)
    model = load_model("blip2_t5_instruct", "tiny", is_eval=True, options={**options, "quantization": "int8"})
    wo = [m for n, m in model.llm.named_modules() if n.endswith(".wo")]
    assert wo and all(type(m) is nn.Linear and m.weight.dtype == torch.float32 for m in wo)
    assert any(isinstance(m, bnb.nn.Linear8bitLt) for m in model.llm.modules())
    samples = {"image": images(), "prompt": PROMPTS}
    ours, fp = (m.score_candidates(samples, ANSWERS).stacked() for m in (model, reference))
    assert torch.isfinite(ours).all() and (ours - fp).abs().max() < 0.15 * fp.abs().max()  # measured 7 %
    assert torch.equal(ours.argsort(), fp.argsort())


def test_unknown_quantization_name_is_a_config_error_naming_the_key():
    with pytest.raises(ConfigError, match=r"model.quantization.*one of 'int8', 'nf4', 'fp4'"):
        load_vicuna(quantization="int4")


def test_a_random_init_llm_cannot_be_quantized():
    with pytest.raises(ConfigError, match=r"model.quantization: nf4 .*own directory \(model.llm_model\)"):
        load_model(VICUNA, "tiny", options={"quantization": "nf4"})


def test_missing_bitsandbytes_names_the_extra(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "bitsandbytes" else
                        real(name, *a))
    with pytest.raises(MissingExtraError, match=r"pip install -e \.\[quant\]"):
        load_vicuna(quantization="int8")


@pytest.mark.parametrize("key", ["quantization", "lora"])
def test_fsdp_refuses_a_quantized_or_adapted_llm_before_anything_starts(key):
    from types import SimpleNamespace

    run = SimpleNamespace(fsdp=True)
    with pytest.raises(ConfigError, match=rf"train.yaml: run.fsdp .*model.{key} is set"):
        check_llm_training(run, {key: "nf4" if key == "quantization" else {"r": 4}}, "train.yaml")
    check_llm_training(SimpleNamespace(fsdp=False), {key: "nf4" if key == "quantization" else {"r": 4}}, "t.yaml")


def test_export_of_a_quantized_model_is_refused_with_what_to_do(quantized, tmp_path):
    name, model = quantized
    with pytest.raises(ConfigError, match=rf"quantized \(model.quantization: {name}\); load the same checkpoint "
                                          r"without model.quantization"):
        model.export_hf(tmp_path / "hf")
    assert not (tmp_path / "hf" / "model.safetensors").exists()


def test_training_through_a_quantized_llm_moves_the_q_former_only(quantized):
    """The paper's recipe in a quarter of the memory: gradients reach the Q-Former through the 4/8-bit LLM."""
    name, _ = quantized
    model = load_vicuna(is_eval=False, quantization=name).train()
    frozen = {k: v.clone() for k, v in model.llm.state_dict().items()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    samples = {"image": images(4), "text_input": PROMPTS * 2, "text_output": ["red", "two", "red", "two"]}
    losses = []
    for _ in range(6):
        loss = model(samples)["loss"]
        optimizer.zero_grad()
        loss.backward()
        assert model.query_tokens.grad.abs().sum() > 0
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses
    after = model.llm.state_dict()
    assert all(torch.equal(frozen[k], after[k]) for k in frozen)


def test_training_keeps_4bit_weights_in_the_layout_an_eval_pass_would_repack():
    """bitsandbytes repacks a 4-bit weight for its AVX512-BF16 CPU kernel on the first eval-mode no-grad forward and
    keeps it so in training; after `keep_4bit_weights_unpacked` (what the runner does for training) the weight and
    the training forward are bitwise those of a layer that never ran in eval mode."""
    from bitsandbytes.functional import has_avx512bf16

    from lavis_ib.models.quantization import keep_4bit_weights_unpacked

    torch.manual_seed(0)
    weight, x = torch.randn(32, 64), torch.randn(3, 64)
    untouched, kept, repacked = (bnb.nn.Linear4bit(64, 32, bias=False, compute_dtype=torch.float32, quant_type="nf4")
                                 for _ in range(3))
    for module in (untouched, kept, repacked):
        module.weight = bnb.nn.Params4bit(weight.clone(), requires_grad=False, quant_type="nf4")._quantize("cpu")
    assert keep_4bit_weights_unpacked(nn.Sequential(kept, nn.Linear(2, 2))) == 1
    reference = untouched(x)
    for module in (kept, repacked):
        with torch.no_grad():
            module.eval()(x)
        module.train()
    assert not getattr(kept.weight.quant_state, "packing_format_for_cpu", False)
    assert torch.equal(kept.weight.data, untouched.weight.data) and torch.equal(kept(x), reference)
    assert getattr(repacked.weight.quant_state, "packing_format_for_cpu", False) == has_avx512bf16()
