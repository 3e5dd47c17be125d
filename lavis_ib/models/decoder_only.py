"""The decoder-only LLM side (Vicuna/LLaMA, OPT): training layout, generation and candidate scoring.

Layouts (`Q` = visual tokens from the Q-Former):
- training: `[Q | instruction (BOS first) | target + EOS | pads]`, loss on target + EOS only (LAVIS §2.4);
- generation: `[pads | Q | prompt]` with left padding, so every sample's tokens keep their relative positions and a
  batched answer equals the single-sample one;
- scoring: `[Q | prompt]` once, then each candidate scored as if it followed alone (`[Q | prompt | candidate]`),
  log-probabilities summed over the candidate's tokens (`candidate_scoring` packs the candidates).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
import transformers
from transformers import AutoModelForCausalLM, DynamicCache

from lavis_ib.models.blip2 import Blip2Base
from lavis_ib.models.inference.generation_cache import expand_prefix_cache
from lavis_ib.models.inference.candidate_scoring import PackedCandidates, chunk_token_budget, trie_chunks
from lavis_ib.models.llm import grow_vocab
from lavis_ib.models.text.prompts import instructions_for
from lavis_ib.models.text.batching import IGNORE, DecoderOnlyTextBatcher


class DecoderOnlyBlip2(Blip2Base):
    """Shared logic of the causal-LM architectures; subclasses pick tokenizer conventions and EOS."""

    TARGET_SUFFIX = "</s>"  # appended to every training target
    LABEL_SHIFT = 1  # position t's logits predict token t + 1: the first label is never a target

    def build_text_batcher(self) -> DecoderOnlyTextBatcher:
        return DecoderOnlyTextBatcher(self.tokenizer, self.qformer_tokenizer, self.cfg, self.TARGET_SUFFIX)

    LLM_AUTO_CLASS = AutoModelForCausalLM

    def build_llm(self):
        llm = super().build_llm()
        grow_vocab(llm, len(self.tokenizer))
        return llm

    @property
    def eos_token_id(self) -> int:
        return self.tokenizer.eos_token_id

    def embed_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        return self.llm.get_input_embeddings()(ids)

    def run_llm(self, embeds: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """fp32 logits of the frozen LLM for the given input embeddings."""
        with self.llm_compute():
            logits = self.llm(inputs_embeds=embeds, attention_mask=mask, use_cache=False).logits
        return logits.float()

    def with_visual_prefix(self, visual, ids, mask):
        """`[Q | tokens]` embeddings and mask."""
        embeds = torch.cat([visual.to(self.llm.dtype), self.embed_tokens(ids)], dim=1)
        return embeds, torch.cat([mask.new_ones(visual.shape[:2]), mask], dim=1)

    # ----- training --------------------------------------------------------------------------------------------
    def training_tokens(self, samples: dict, instructions: list[str] | None = None):
        """Token ids, labels and mask of `[instruction | target + EOS]` rows (from the collator when it ran);
        `instructions` are the batch's, when the caller already resolved them."""
        tokens = samples.get("train_tokens")
        if tokens is None:
            if instructions is None:
                instructions = instructions_for(samples, "forward", self.cfg.prompt, None)
            tokens = self.text.training(instructions, samples.get("text_output"))
        return tuple(tokens[k].to(self.device) for k in ("input_ids", "labels", "attention_mask"))

    def forward(self, samples: dict) -> dict:
        """Mean next-token cross-entropy over the supervised (target + EOS) tokens of the batch.

        The LM head and the softmax run only at the positions whose next token is supervised (`logits_to_keep`
        mask): the loss is the full-vocabulary one over all positions with ignored labels, without the `[B, L, V]`
        logits of the visual prefix, the instruction and the pads (most of the sequence).
        """
        image = self.input_image(samples)
        instructions = self.training_instructions(samples, image.shape[0])
        visual = self.query_features(image, instructions, samples.get("qformer_tokens"))
        ids, labels, mask = self.training_tokens(samples, instructions)
        embeds, full_mask = self.with_visual_prefix(visual, ids, mask)
        labels = torch.cat([labels.new_full(visual.shape[:2], IGNORE), labels], dim=1)
        keep = torch.cat([labels[:, 1:] != IGNORE, labels.new_zeros(labels.shape[0], 1, dtype=torch.bool)], dim=1)
        logits = self.supervised_logits(embeds, full_mask, keep)
        return {"loss": F.cross_entropy(logits, labels[:, 1:][keep[:, :-1]])}

    def supervised_logits(self, embeds: torch.Tensor, mask: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """fp32 `[N, V]` logits of the frozen LLM at the N positions where the bool `[B, L]` mask `keep` is set
        (row-major order); transformers applies the mask before its LM head."""
        with self.llm_compute():
            logits = self.llm(inputs_embeds=embeds, attention_mask=mask, use_cache=False, logits_to_keep=keep).logits
        if logits.dim() != 2:
            raise RuntimeError(f"transformers {transformers.__version__} ignores a boolean logits_to_keep mask "
                               f"(got logits of shape {tuple(logits.shape)}); training needs a version that has it")
        return logits.float()

    # ----- generation ------------------------------------------------------------------------------------------
    def generation_inputs(self, visual: torch.Tensor, prompts: list[str] | dict):
        """`[pads | Q | prompt]` embeddings and mask for a left-padded batch of prompts (strings or their tokens)."""
        batch = self.text.prompts(prompts) if not isinstance(prompts, dict) else prompts
        ids, mask = batch["input_ids"].to(self.device), batch["attention_mask"].to(self.device)
        tokens = self.embed_tokens(ids)
        visual = visual.to(tokens.dtype)
        embeds, masks = [], []
        for b, pads in enumerate((mask == 0).sum(dim=1).tolist()):
            embeds.append(torch.cat([tokens[b, :pads], visual[b], tokens[b, pads:]]))
            masks.append(torch.cat([mask[b, :pads], mask.new_ones(visual.shape[1]), mask[b, pads:]]))
        return torch.stack(embeds), torch.stack(masks)

    def clean_output_ids(self, ids: torch.Tensor) -> torch.Tensor:
        return ids

    def generate_ids_from(self, visual: torch.Tensor, prompt_tokens: dict, gen_kwargs: dict) -> torch.Tensor:
        """New token ids for `[pads | Q | prompt]`, the prefix run once per sample (not once per beam or caption).

        `generate` expands its inputs ×max(beams, captions) before its prefill; here the prefix minus its last
        position runs at batch B and its KV cache is repeated to that size (in a preallocated buffer whose shared
        prefix beam search never reorders, `generation_cache`), so `generate`'s prefill only runs the last position
        (whose logits pick the first token), then decodes as before. The inputs and every generation argument are
        unchanged, so the length, penalty and stopping rules are too.
        """
        embeds, mask = self.generation_inputs(visual, prompt_tokens)
        copies = max(gen_kwargs.get("num_beams", 1), gen_kwargs.get("num_return_sequences", 1))
        with self.llm_compute():
            # one copy (greedy, one sample) has nothing to share: `generate`'s own prefill and cache, unchanged
            cache = None if copies == 1 else self.prefix_cache(
                embeds, mask, copies, embeds.shape[1] + gen_kwargs.get("max_new_tokens", 0))
            # synced_gpus=False: transformers turns it on for an FSDP-sharded LLM, which would make every rank call
            # generate equally often; validation gathers the LLM instead (runners/sharding.py)
            out = self.llm.generate(
                inputs_embeds=embeds, attention_mask=mask, past_key_values=cache, eos_token_id=self.eos_token_id,
                pad_token_id=self.tokenizer.pad_token_id, synced_gpus=False, **gen_kwargs,
            )
        return self.clean_output_ids(out)

    @torch.no_grad()
    def prefix_cache(self, embeds: torch.Tensor, mask: torch.Tensor, copies: int, capacity: int) -> DynamicCache:
        """KV cache of `embeds[:, :-1]`, computed at batch B with the positions and mask `generate` would use, then
        repeated `copies` times per sample, with room for `capacity` positions (`generation_cache`)."""
        positions = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 0)  # as `generate` derives them
        cache = DynamicCache(config=self.llm.config.get_text_config(decoder=True))
        prefix_mask = None if (mask == 1).all() else mask[:, :-1]  # `generate` drops an all-ones mask too
        self.llm(inputs_embeds=embeds[:, :-1], attention_mask=prefix_mask, position_ids=positions[:, :-1],
                 past_key_values=cache, use_cache=True, logits_to_keep=1)
        return expand_prefix_cache(cache, copies, capacity)

    # ----- scoring ---------------------------------------------------------------------------------------------
    def candidate_log_likelihood(self, visual: torch.Tensor, prompt: str, candidates: Sequence[str],
                                 n_segments: int = 1):
        """Sum of log p(candidate tokens | Q, prompt) and token counts; candidates are tokenised alone, BOS dropped.

        `[Q | prompt]` runs once; the candidates then run on its KV cache as prefix trees packed into one row per
        chunk (`candidate_scoring`), so the numbers are those of scoring each `[Q | prompt | candidate]` alone.
        """
        prompt_ids = self.text.ids([prompt], "left", None)[0]
        answers = [ids[1:] for ids in self.text.ids(candidates, "right", None)]
        embeds, _ = self.with_visual_prefix(visual, torch.tensor([prompt_ids], device=self.device),
                                            torch.ones(1, len(prompt_ids), dtype=torch.long, device=self.device))
        with self.llm_compute():
            prefix = self.llm(inputs_embeds=embeds, use_cache=True, logits_to_keep=1)
        sums = torch.zeros(len(answers), device=self.device)
        counts = torch.zeros(len(answers), dtype=torch.long, device=self.device)
        budget = chunk_token_budget(self.llm.config.get_text_config().vocab_size)
        for chunk in trie_chunks(answers, budget, n_segments):
            packed = PackedCandidates.build(answers, chunk)
            node_logits = self.packed_logits(packed, prefix.past_key_values, embeds.shape[1])
            sums[chunk], counts[chunk] = packed.log_likelihoods(prefix.logits[0, -1], node_logits, len(chunk))
        return sums, counts

    def packed_logits(self, packed: PackedCandidates, cache: DynamicCache, prefix_length: int) -> torch.Tensor:
        """`[N, V]` logits of a packed chunk's nodes on the prefix's cache, which is cropped back afterwards."""
        if packed.num_nodes == 0:
            return torch.empty(0, self.llm.config.get_text_config().vocab_size, device=self.device)
        embeds = self.embed_tokens(packed.tokens[None].to(self.device))
        mask = packed.attention_mask(prefix_length).to(self.device)
        with self.llm_compute():
            logits = self.llm(inputs_embeds=embeds, attention_mask=mask, use_cache=True, past_key_values=cache,
                              position_ids=packed.position_ids(prefix_length).to(self.device)).logits
        cache.crop(-packed.num_nodes)
        return logits[0]
