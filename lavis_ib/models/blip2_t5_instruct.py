"""InstructBLIP with a Flan-T5 LLM — registered as `blip2_t5_instruct` (LAVIS's `Blip2T5Instruct`).

Encoder input `[Q | instruction]` (left truncation), decoder targets right-truncated with T5's `</s>`; Flan-T5's
`dense_act_fn` is overridden to exact GELU as LAVIS (and the HF port) do; bf16 on CUDA because fp16 T5 overflows.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from transformers import AutoModelForSeq2SeqLM

from lavis_ib.common.io import looks_like_hub_id
from lavis_ib.common.registry import registry
from lavis_ib.common.run_schema import Precision
from lavis_ib.models.blip2 import Blip2Base, Blip2Config
from lavis_ib.models.inference.candidate_scoring import chunk_token_budget, plan_chunks, token_logprobs
from lavis_ib.models.text.batching import IGNORE, T5TextBatcher
from lavis_ib.models.text.tokenizers import load_t5_tokenizer


@dataclass
class T5InstructConfig(Blip2Config):
    """`t5_model`: a Flan-T5 directory or hub id (LAVIS key)."""

    t5_model: Optional[str] = None
    llm_precision: Precision = "bf16"


@registry.register_model("blip2_t5_instruct")
class Blip2T5Instruct(Blip2Base):
    """InstructBLIP (Flan-T5-XL/XXL): instruction-aware Q-Former feeding a frozen encoder-decoder."""

    ConfigSchema = T5InstructConfig
    LLM_KEY = "t5_model"
    LLM_MODULE = "t5_model"
    PROJ_MODULE = "t5_proj"
    ANSWER_LENGTH_PENALTY = -1.0
    LAVIS_MAX_LENGTH_OFFSET = 0  # LAVIS passes max_new_tokens=max_length to T5
    LLM_AUTO_CLASS = AutoModelForSeq2SeqLM
    LLM_CONFIG_OVERRIDES = {"dense_act_fn": "gelu"}  # exact GELU, as LAVIS and the HF port run Flan-T5
    LORA_TARGETS = ("q", "v")
    PRETRAINED_MODEL_CONFIG_DICT = {
        "flant5xl": "models/blip2_t5_instruct/flant5xl.yaml",
        "flant5xxl": "models/blip2_t5_instruct/flant5xxl.yaml",
        "tiny": "models/blip2_t5_instruct/tiny.yaml",
    }

    def build_tokenizer(self):
        return load_t5_tokenizer(self.tokenizer_location, allow_download=looks_like_hub_id(self.tokenizer_location),
                                key=self.tokenizer_key)

    def build_text_batcher(self) -> T5TextBatcher:
        return T5TextBatcher(self.tokenizer, self.qformer_tokenizer, self.cfg)

    def encoder_inputs(self, visual: torch.Tensor, texts: Sequence[str] | dict):
        """`[Q | text]` encoder embeddings and mask; text (strings or their tokens) right-padded, left-truncated."""
        batch = texts if isinstance(texts, dict) else self.text.encoder_text(texts)
        ids, mask = batch["input_ids"].to(self.device), batch["attention_mask"].to(self.device)
        tokens = self.llm.get_input_embeddings()(ids)
        embeds = torch.cat([visual.to(tokens.dtype), tokens], dim=1)
        return embeds, torch.cat([mask.new_ones(visual.shape[:2]), mask], dim=1)

    def target_labels(self, texts: Sequence[str], max_length: int | None) -> torch.Tensor:
        """Decoder labels (T5 appends `</s>`), pads → IGNORE, right truncation."""
        return self.text.labels(texts, max_length).to(self.device)

    def decoder_logits(self, embeds, mask, labels, encoder_hidden: torch.Tensor | None = None) -> torch.Tensor:
        """The decoder's logits (its dtype) for teacher-forced `labels` (decoder inputs = labels shifted right); a
        precomputed `encoder_hidden` state skips the encoder."""
        decoder_ids = self.llm._shift_right(labels)
        inputs = {"encoder_outputs": (encoder_hidden,)} if encoder_hidden is not None else {"inputs_embeds": embeds}
        with self.llm_compute():
            return self.llm(**inputs, attention_mask=mask, decoder_input_ids=decoder_ids,
                            decoder_attention_mask=(labels != IGNORE).long(), use_cache=False).logits

    def decoder_logprobs(self, embeds, mask, labels, encoder_hidden: torch.Tensor | None = None) -> torch.Tensor:
        """fp32 log-softmax of `decoder_logits` at every decoder position."""
        return self.decoder_logits(embeds, mask, labels, encoder_hidden).float().log_softmax(-1)

    def forward(self, samples: dict) -> dict:
        """Mean cross-entropy of the targets given `[Q | instruction]`.

        The softmax (and the fp32 copy) covers the target positions only, not the pads of shorter targets; T5's
        forward has no `logits_to_keep`, so its LM head still runs at every decoder position.
        """
        image = self.input_image(samples)
        instructions = self.training_instructions(samples, image.shape[0])
        visual = self.query_features(image, instructions, samples.get("qformer_tokens"))
        tokens = samples.get("train_tokens") or self.text.training(instructions, samples.get("text_output"))
        embeds, mask = self.encoder_inputs(visual, tokens)
        labels = tokens["labels"].to(self.device)
        supervised = labels != IGNORE
        logits = self.decoder_logits(embeds, mask, labels)[supervised]
        return {"loss": F.cross_entropy(logits.float(), labels[supervised])}

    def generate_ids_from(self, visual: torch.Tensor, prompt_tokens: dict, gen_kwargs: dict) -> torch.Tensor:
        embeds, mask = self.encoder_inputs(visual, prompt_tokens)
        with self.llm_compute():
            return self.llm.generate(inputs_embeds=embeds, attention_mask=mask, synced_gpus=False, **gen_kwargs)

    def decode(self, ids: torch.Tensor) -> list[str]:
        """Decoded without stripping, as LAVIS's T5 model returns its text."""
        return self.tokenizer.batch_decode(ids, skip_special_tokens=True)

    def candidate_log_likelihood(self, visual: torch.Tensor, prompt: str, candidates: Sequence[str],
                                 n_segments: int = 1):
        """Sum of decoder log-probs of each candidate (with `</s>`, as LAVIS's T5 ranking) and its token count.

        The encoder and the decoder's start position run once per sample; the candidates then run on copies of that
        cache (cross-attention keys included), shortest first, in batches sized by `chunk_token_budget`.
        """
        embeds, mask = self.encoder_inputs(visual, [prompt])
        labels = self.target_labels(candidates, None)
        lengths = (labels != IGNORE).sum(dim=1)
        start = torch.full((1, 1), self.llm.config.decoder_start_token_id, device=self.device)
        with self.llm_compute():
            hidden = self.llm.get_encoder()(inputs_embeds=embeds, attention_mask=mask).last_hidden_state
            prefix = self.llm(encoder_outputs=(hidden,), attention_mask=mask, decoder_input_ids=start, use_cache=True)
        order = sorted(range(len(candidates)), key=lambda i: int(lengths[i]))
        budget = chunk_token_budget(self.llm.config.vocab_size)
        sums = torch.zeros(len(candidates), device=self.device)
        for chunk in plan_chunks(order, [int(lengths[i]) for i in order], budget, n_segments, padded=True):
            sums[chunk] = self.decoder_chunk_sums(prefix, hidden, mask, labels[chunk, : int(lengths[chunk].max())])
        return sums, lengths

    def decoder_chunk_sums(self, prefix, hidden: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor):
        """Summed log-probs of a batch of label rows, decoded after the start position held in `prefix`'s cache."""
        count = labels.shape[0]
        logits = prefix.logits.float().expand(count, -1, -1)  # the start position predicts every first token
        if labels.shape[1] > 1:
            cache = copy.deepcopy(prefix.past_key_values)
            cache.batch_repeat_interleave(count)
            inputs = self.llm._shift_right(labels)[:, 1:]  # each row's tokens but its last, pads for IGNORE
            decoder_mask = torch.cat([labels.new_ones(count, 1), (labels[:, :-1] != IGNORE).long()], dim=1)
            with self.llm_compute():
                rest = self.llm(encoder_outputs=(hidden.expand(count, -1, -1),), attention_mask=mask.expand(count, -1),
                                decoder_input_ids=inputs, decoder_attention_mask=decoder_mask, past_key_values=cache,
                                use_cache=True).logits
            logits = torch.cat([logits, rest.float()], dim=1)
        valid = labels != IGNORE
        picked = token_logprobs(logits.flatten(0, 1), valid.flatten().nonzero().squeeze(1), labels[valid])
        return torch.zeros(count, device=self.device).index_add_(0, valid.nonzero()[:, 0], picked)
