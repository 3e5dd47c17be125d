"""HF directories in and out beyond the tied fidelity fixtures: an untied Flan-T5-style head, export leaving the live
model untouched, and directories saved with `save_pretrained` but no tokenizer."""

from __future__ import annotations

import shutil
import warnings

import pytest
import torch
from torch import nn
from transformers import InstructBlipForConditionalGeneration

from lavis_ib import load_model
from lavis_ib.models.weights.hf_interop import with_checkpoint_tying
from lavis_ib.models.text.tokenizers import TokenizerError, load_vicuna_tokenizer, tiny_tokenizer_dir
from tests.models import hf_oracle

ARCH = {"vicuna": "blip2_vicuna_instruct", "t5": "blip2_t5_instruct", "opt": "blip2_opt"}
ATOL = 1e-4


def images(count: int = 2) -> torch.Tensor:
    size = hf_oracle.IMAGE_SIZE
    return torch.randn(count, 3, size, size, generator=torch.Generator().manual_seed(3))


@pytest.fixture(scope="module")
def untied_t5(tmp_path_factory):
    """(HF InstructBLIP-T5 whose lm_head differs from `shared`, as in Flan-T5, saved; directory)."""
    directory = tmp_path_factory.mktemp("untied_t5")
    hf_model, _ = hf_oracle.build("t5", directory)
    head = hf_model.language_model.lm_head
    head.weight = nn.Parameter(0.2 * torch.randn(head.weight.shape, generator=torch.Generator().manual_seed(7)))
    hf_model.all_tied_weights_keys.pop("language_model.lm_head.weight")
    hf_model.save_pretrained(directory)
    return hf_model, directory


def test_untied_t5_head_is_kept_and_logits_match_transformers(untied_t5):
    hf_model, directory = untied_t5
    ours = load_model("blip2_t5_instruct", "tiny", is_eval=True, checkpoint=str(directory))
    reloaded = InstructBlipForConditionalGeneration.from_pretrained(directory).eval()
    assert ours.llm.lm_head.weight is not ours.llm.shared.weight
    assert torch.equal(ours.llm.lm_head.weight, hf_model.language_model.lm_head.weight)
    assert torch.equal(ours.llm.shared.weight, hf_model.language_model.shared.weight)
    prompt, pixels = "What is shown?", images(1)
    q_ids, q_mask = ours.qformer_inputs([prompt])
    ids = torch.tensor([[reloaded.config.image_token_index] * hf_oracle.NUM_QUERIES + ours.tokenizer(prompt)["input_ids"]])
    decoder = torch.tensor([[0, 5, 17, 42]])
    inputs = dict(pixel_values=pixels, input_ids=ids, attention_mask=torch.ones_like(ids), qformer_input_ids=q_ids,
                  qformer_attention_mask=q_mask, decoder_input_ids=decoder)
    with torch.no_grad():
        expected, again = hf_model(**inputs).logits, reloaded(**inputs).logits
        embeds, mask = ours.encoder_inputs(ours.query_features(pixels, [prompt]), [prompt])
        got = ours.llm(inputs_embeds=embeds, attention_mask=mask, decoder_input_ids=decoder).logits
    assert (again - expected).abs().max().item() <= ATOL
    assert (got - expected).abs().max().item() <= ATOL


def test_checkpoint_tying_is_decided_by_the_values():
    """Equal tied aliases keep the config; a differing lm_head unties it; any other differing alias is an error."""
    t5 = {**hf_oracle.T5, "vocab_size": 20}
    shared = torch.randn(20, 40)
    names = ["t5_model.shared.weight", "t5_model.encoder.embed_tokens.weight", "t5_model.decoder.embed_tokens.weight",
             "t5_model.lm_head.weight"]
    tied = dict.fromkeys(names, shared)
    assert with_checkpoint_tying("blip2_t5_instruct", t5, tied, "ckpt") is t5
    untied = with_checkpoint_tying("blip2_t5_instruct", t5, {**tied, names[3]: shared + 1}, "ckpt")
    assert untied == {**t5, "tie_word_embeddings": False}
    with pytest.raises(ValueError, match=r"ckpt: \['t5_model.encoder.embed_tokens.weight'\] differ"):
        with_checkpoint_tying("blip2_t5_instruct", t5, {**tied, names[1]: shared + 1}, "ckpt")


@pytest.mark.parametrize("kind", sorted(ARCH))
def test_export_leaves_the_live_tokenizer_alone(kind, tmp_path):
    """Export adds `<image>` only to copies: the model keeps its vocabulary and a prompt naming `<image>` still works."""
    model = load_model(ARCH[kind], "tiny", is_eval=True)
    length, vocab = len(model.tokenizer), model.tokenizer.get_vocab()
    sample = {"image": torch.randn(1, 3, model.cfg.image_size, model.cfg.image_size,
                                   generator=torch.Generator().manual_seed(0)), "prompt": "Is there an <image> here?"}
    before = model.generate_token_ids(sample, num_beams=1, max_length=4)
    model.export_hf(tmp_path)
    assert len(model.tokenizer) == length and model.tokenizer.get_vocab() == vocab
    assert "<image>" not in model.tokenizer.get_vocab()
    assert torch.equal(model.generate_token_ids(sample, num_beams=1, max_length=4), before)
    assert (tmp_path / "tokenizer_config.json").is_file()


@pytest.fixture(scope="module")
def vicuna_dirs(tmp_path_factory):
    """(full HF directory with processor, the same model saved with only config.json + model.safetensors)."""
    full = tmp_path_factory.mktemp("vicuna_full")
    hf_oracle.build("vicuna", full)
    bare = tmp_path_factory.mktemp("vicuna_bare")
    for name in ("config.json", "model.safetensors"):
        shutil.copy(full / name, bare / name)
    return full, bare


def fallback_warnings(caught) -> list[str]:
    return [str(w.message) for w in caught if "holds no tokenizer files" in str(w.message)]


def test_directory_without_tokenizers_uses_the_model_types_tokenizers(vicuna_dirs):
    full, bare = vicuna_dirs
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ours = load_model("blip2_vicuna_instruct", "tiny", is_eval=True, checkpoint=str(bare))
    messages = fallback_warnings(caught)
    assert len(messages) == 2
    assert str(bare) in messages[0] and f"llm_tokenizer: {tiny_tokenizer_dir('llama')}" in messages[0]
    assert f"qformer_tokenizer: {tiny_tokenizer_dir('bert')}" in messages[1]
    reference = load_model("blip2_vicuna_instruct", "tiny", is_eval=True, checkpoint=str(full))
    tiny = load_vicuna_tokenizer(tiny_tokenizer_dir("llama"))
    text = "Describe the colours of every shape."
    assert ours.tokenizer(text)["input_ids"] == tiny(text)["input_ids"]
    assert ours.qformer_tokenizer(text)["input_ids"] == reference.qformer_tokenizer(text)["input_ids"]
    sample = {"image": images(1), "prompt": text}
    assert torch.equal(ours.generate_token_ids(sample, num_beams=2, max_length=5),
                       reference.generate_token_ids(sample, num_beams=2, max_length=5))


def test_directory_with_its_own_tokenizers_gives_no_fallback_warning(vicuna_dirs):
    full, _ = vicuna_dirs
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_model("blip2_vicuna_instruct", "tiny", is_eval=True, checkpoint=str(full))
    assert fallback_warnings(caught) == []


def test_broken_tokenizer_files_are_not_replaced_by_the_configured_ones(vicuna_dirs, tmp_path):
    """A directory with incomplete tokenizer files is an error naming it (issue 10 case 4), not a 2-token tokenizer
    and not a silent fallback to the configured one."""
    _, bare = vicuna_dirs
    for name in ("config.json", "model.safetensors"):
        shutil.copy(bare / name, tmp_path / name)
    (tmp_path / "tokenizer_config.json").write_text("{}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(TokenizerError) as info:
            load_model("blip2_vicuna_instruct", "tiny", is_eval=True, checkpoint=str(tmp_path))
    assert str(info.value).startswith(f"model.llm_tokenizer: the Vicuna tokenizer in {tmp_path} "
                                      f"has 0 regular tokens (2 in all)")
    assert not any("llm_tokenizer" in message for message in fallback_warnings(caught))
