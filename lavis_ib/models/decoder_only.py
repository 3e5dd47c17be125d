"""The decoder-only LLM side (Vicuna/LLaMA, OPT): training layout, generation and candidate scoring.

Layouts (`Q` = visual tokens from the Q-Former):
- training: `[Q | instruction (BOS first) | target + EOS | pads]`, loss on target + EOS only (LAVIS §2.4);
- generation: `[pads | Q | prompt]` with left padding, so every sample's tokens keep their relative positions and a
  batched answer equals the single-sample one;
- scoring: `[Q | prompt | candidate | pads]`, log-probabilities summed over the candidate's tokens.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM

from lavis_ib.models.blip2 import Blip2Base
from lavis_ib.models.llm import build_language_model, grow_vocab
from lavis_ib.models.prompts import instructions_for
from lavis_ib.models.text_batching import IGNORE, DecoderOnlyTextBatcher, pad_rows


class DecoderOnlyBlip2(Blip2Base):
    """Shared logic of the causal-LM architectures; subclasses pick tokenizer conventions and EOS."""

    TARGET_SUFFIX = "</s>"  # appended to every training target

    def build_text_batcher(self) -> DecoderOnlyTextBatcher:
        return DecoderOnlyTextBatcher(self.tokenizer, self.qformer_tokenizer, self.cfg, self.TARGET_SUFFIX)

    def build_llm(self):
        llm = build_language_model(
            AutoModelForCausalLM, self.llm_location, self.LLM_KEY, self.cfg.llm_config, self.cfg.random_init,
            dtype=self.llm_dtype,
        )
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
        """Mean next-token cross-entropy over the supervised (target + EOS) tokens of the batch."""
        image = self.input_image(samples)
        instructions = self.training_instructions(samples, image.shape[0])
        visual = self.query_features(image, instructions, samples.get("qformer_tokens"))
        ids, labels, mask = self.training_tokens(samples, instructions)
        embeds, full_mask = self.with_visual_prefix(visual, ids, mask)
        labels = torch.cat([labels.new_full(visual.shape[:2], IGNORE), labels], dim=1)
        logits = self.run_llm(embeds, full_mask)
        loss = F.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=IGNORE)
        return {"loss": loss}

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
        embeds, mask = self.generation_inputs(visual, prompt_tokens)
        with self.llm_compute():
            out = self.llm.generate(
                inputs_embeds=embeds, attention_mask=mask, eos_token_id=self.eos_token_id,
                pad_token_id=self.tokenizer.pad_token_id, **gen_kwargs,
            )
        return self.clean_output_ids(out)

    # ----- scoring ---------------------------------------------------------------------------------------------
    def candidate_log_likelihood(self, visual: torch.Tensor, prompt: str, candidates: Sequence[str]):
        """Sum of log p(candidate tokens | Q, prompt) and token counts; candidates are tokenised alone, BOS dropped."""
        prompt_ids = self.text.ids([prompt], "left", None)[0]
        answers = [ids[1:] for ids in self.text.ids(candidates, "right", None)]
        tokens = pad_rows([prompt_ids + a for a in answers], [[IGNORE] * len(prompt_ids) + a for a in answers],
                          self.tokenizer.pad_token_id)
        ids, labels, mask = (tokens[k].to(self.device) for k in ("input_ids", "labels", "attention_mask"))
        embeds, full_mask = self.with_visual_prefix(visual.expand(len(answers), -1, -1), ids, mask)
        logprobs = self.run_llm(embeds, full_mask)[:, visual.shape[1] - 1 : -1].log_softmax(-1)
        return gather_label_logprobs(logprobs, labels)


def gather_label_logprobs(logprobs: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row: sum of `logprobs[t, labels[t]]` over supervised positions, and how many there are."""
    supervised = labels != IGNORE
    picked = logprobs.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (picked * supervised).sum(dim=1), supervised.sum(dim=1)
