"""The frozen LLM is built in its storage dtype: fp16 checkpoints load as fp16 within ~one copy of host memory, the
skeleton can be built without weights, vocabulary growth keeps the dtype, and `load_model(precision=...)` is checked."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

from lavis_ib import load_model
from lavis_ib.common.schema import ConfigError
from lavis_ib.models.llm import build_language_model, grow_vocab

BENCH = Path(__file__).resolve().parents[2] / "bench" / "llm_loading.py"
TINY_LLAMA = dict(model_type="llama", hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  vocab_size=100, max_position_embeddings=64, tie_word_embeddings=False)


def bench_module():
    """bench/llm_loading.py, whose child-process measurement this test shares (one instrument, not two)."""
    spec = importlib.util.spec_from_file_location("llm_loading_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def saved_fp16_llama(tmp_path_factory):
    """(bench module, directory, safetensors bytes) of a ~45 M-parameter random LLaMA saved in fp16."""
    bench = bench_module()
    directory = tmp_path_factory.mktemp("llama_fp16")
    return bench, directory, bench.save_random_llama(directory, "small")


def test_fp16_checkpoint_loads_as_fp16_within_two_copies(saved_fp16_llama):
    """Peak RSS above the post-import RSS stays ≤ 2× the fp16 file (≈1.1× measured; the old fp32-then-cast load
    took ≈3.1× of this model, see bench/llm_loading.py)."""
    bench, directory, file_bytes = saved_fp16_llama
    result = bench.peak_rss_of_loading(directory, "after")
    assert result["dtypes"] == ["torch.float16"]
    assert result["parameters"] * 2 == pytest.approx(file_bytes, rel=0.01)
    assert result["peak_delta_bytes"] <= 2.0 * file_bytes, result


def test_meta_build_has_dtype_and_shapes_but_no_storage(tmp_path):
    LlamaForCausalLM(LlamaConfig(**{k: v for k, v in TINY_LLAMA.items() if k != "model_type"})).save_pretrained(tmp_path)
    skeleton = build_language_model(AutoModelForCausalLM, str(tmp_path), "llm_model", None, False,
                                    dtype=torch.bfloat16, meta=True)
    loaded = build_language_model(AutoModelForCausalLM, str(tmp_path), "llm_model", None, False, dtype=torch.bfloat16)
    assert {p.device.type for p in skeleton.parameters()} == {"meta"}
    assert {p.dtype for p in skeleton.parameters()} == {p.dtype for p in loaded.parameters()} == {torch.bfloat16}
    shapes = {name: p.shape for name, p in loaded.named_parameters()}
    assert {name: p.shape for name, p in skeleton.named_parameters()} == shapes


def test_grow_vocab_keeps_fp16_and_appends_the_mean_row():
    llm = build_language_model(AutoModelForCausalLM, None, "llm_model", TINY_LLAMA, True, dtype=torch.float16)
    before = llm.get_input_embeddings().weight.detach().clone()
    grow_vocab(llm, 103)
    for module in (llm.get_input_embeddings(), llm.get_output_embeddings()):
        assert module.weight.dtype == torch.float16 and module.weight.shape[0] == 103
    weight = llm.get_input_embeddings().weight
    assert torch.equal(weight[:100], before)
    expected = before.float().mean(dim=0).half()
    assert all(torch.equal(weight[row], expected) for row in (100, 101, 102))


def test_untied_config_builds_an_untied_t5_head():
    """transformers 5's T5Config forces tying; `tie_word_embeddings: false` still gets its own lm_head (Flan-T5)."""
    from transformers import AutoModelForSeq2SeqLM

    t5 = dict(model_type="t5", d_model=16, d_kv=4, d_ff=32, num_layers=1, num_heads=4, vocab_size=50,
              feed_forward_proj="gated-gelu")
    untied = build_language_model(AutoModelForSeq2SeqLM, None, "t5_model", {**t5, "tie_word_embeddings": False}, True)
    tied = build_language_model(AutoModelForSeq2SeqLM, None, "t5_model", t5, True)
    assert untied.lm_head.weight is not untied.shared.weight
    assert torch.equal(untied.lm_head.weight, untied.shared.weight)  # a copy: the random draw is unchanged
    assert untied.encoder.embed_tokens.weight is untied.shared.weight
    assert "lm_head.weight" not in untied.all_tied_weights_keys
    assert tied.lm_head.weight is tied.shared.weight


@pytest.mark.parametrize("name", ["blip2_vicuna_instruct", "blip2_t5_instruct", "blip2_opt"])
def test_load_model_precision_sets_the_llm_dtype(name):
    model = load_model(name, "tiny", is_eval=True, precision="bf16")
    assert model.llm_dtype == torch.bfloat16
    assert {p.dtype for p in model.llm.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in model.Qformer.parameters()} == {torch.float32}


def test_invalid_precision_is_a_config_error_naming_the_valid_values():
    with pytest.raises(ConfigError, match=r"fp32, fp16, bf16.*'fp17'"):
        load_model("blip2_vicuna_instruct", "tiny", precision="fp17")
