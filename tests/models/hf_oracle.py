"""Tiny random transformers InstructBLIP / BLIP-2 models saved in HF format: the oracle for fidelity tests."""

from __future__ import annotations

import torch
from transformers import (
    Blip2Config,
    Blip2ForConditionalGeneration,
    Blip2Processor,
    BlipImageProcessor,
    InstructBlipConfig,
    InstructBlipForConditionalGeneration,
    InstructBlipProcessor,
    InstructBlipVideoConfig,
    InstructBlipVideoForConditionalGeneration,
)

from lavis_ib.models.text.tokenizers import (
    load_opt_tokenizer,
    load_qformer_tokenizer,
    load_t5_tokenizer,
    load_vicuna_tokenizer,
    tiny_tokenizer_dir,
)

IMAGE_SIZE = 28
NUM_QUERIES = 4
VISION = dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4, image_size=IMAGE_SIZE,
              patch_size=14, layer_norm_eps=1e-6)
QFORMER = dict(hidden_size=24, num_hidden_layers=3, num_attention_heads=4, intermediate_size=40, vocab_size=1001,
               cross_attention_frequency=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
LLAMA = dict(model_type="llama", hidden_size=40, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, vocab_size=1002, max_position_embeddings=128, tie_word_embeddings=False,
             bos_token_id=2, eos_token_id=2, pad_token_id=1000)
T5 = dict(model_type="t5", d_model=40, d_kv=10, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=4,
          vocab_size=1101, feed_forward_proj="gated-gelu", dense_act_fn="gelu", decoder_start_token_id=0,
          pad_token_id=0, eos_token_id=1)
OPT = dict(model_type="opt", hidden_size=40, ffn_dim=64, num_hidden_layers=2, num_attention_heads=4,
           word_embed_proj_dim=40, vocab_size=1001, max_position_embeddings=128, pad_token_id=1, bos_token_id=2,
           eos_token_id=2, enable_bias=True)


def randomize(model: torch.nn.Module, seed: int = 0) -> None:
    """Give every tensor a distinctive random value (HF's ViT init is ~0); the ViT qkv key bias stays zero."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            if "layernorm" in name.lower() or "layer_norm" in name or name.endswith("LayerNorm.weight"):
                param.copy_((1.0 + 0.1 * noise) if name.endswith("weight") else 0.1 * noise)
            else:
                param.copy_(0.2 * noise)
            if name.endswith("self_attn.qkv.bias"):
                param[param.shape[0] // 3 : 2 * param.shape[0] // 3] = 0


def image_processor() -> BlipImageProcessor:
    return BlipImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
                              image_mean=[0.48145466, 0.4578275, 0.40821073],
                              image_std=[0.26862954, 0.26130258, 0.27577711])


def build(kind: str, directory) -> tuple[torch.nn.Module, object]:
    """Save a random HF model of `kind` (vicuna | t5 | opt | video) with its processor into `directory`."""
    qformer_tok = load_qformer_tokenizer(tiny_tokenizer_dir("bert"))
    if kind in ("vicuna", "video"):
        tokenizer, text = load_vicuna_tokenizer(tiny_tokenizer_dir("llama")), LLAMA
    elif kind == "t5":
        tokenizer, text = load_t5_tokenizer(tiny_tokenizer_dir("t5")), T5
    else:
        tokenizer, text = load_opt_tokenizer(tiny_tokenizer_dir("opt")), OPT
    if kind == "opt":
        processor = Blip2Processor(image_processor(), tokenizer, num_query_tokens=NUM_QUERIES)
    else:
        processor = InstructBlipProcessor(image_processor(), tokenizer, qformer_tok, num_query_tokens=NUM_QUERIES)
    image_token = tokenizer.convert_tokens_to_ids("<image>")
    text = {**text, "vocab_size": max(text["vocab_size"], len(tokenizer))}
    common = dict(vision_config=VISION, qformer_config=QFORMER, text_config=text, num_query_tokens=NUM_QUERIES,
                  image_token_index=image_token)
    if kind == "opt":
        model = Blip2ForConditionalGeneration(Blip2Config(**common))
    elif kind == "video":
        config = InstructBlipVideoConfig(**{**common, "video_token_index": image_token})
        model = InstructBlipVideoForConditionalGeneration(config)
    else:
        model = InstructBlipForConditionalGeneration(InstructBlipConfig(**common))
    randomize(model)
    model.eval()
    model.save_pretrained(directory)
    if kind != "video":
        processor.save_pretrained(directory)
    else:
        tokenizer.save_pretrained(directory)
        qformer_tok.save_pretrained(f"{directory}/qformer_tokenizer")
    return model, tokenizer
