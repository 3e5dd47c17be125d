"""Instruction and target strings → the padded token tensors each architecture consumes, in one place.

A `TextBatcher` holds only the model's tokenizers and text-length settings, so it pickles into DataLoader workers:
the collator (`models.collator`) tokenizes there, and the model uses the same object for raw strings from API
callers, so both paths give identical ids. Rows are assembled unpadded and padded once.

Layouts (LAVIS §2.4–2.8): Q-Former text right-padded, left-truncated at `max_txt_len`; decoder-only training rows
`[instruction (BOS first) | target + suffix (its BOS dropped)]` right-padded, labels only on the target; decoder-only
prompts left-padded for generation; T5 encoder text right-padded and left-truncated, T5 labels right-truncated.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch.nn.utils.rnn import pad_sequence

from lavis_ib.models.text.tokenizers import encode

IGNORE = -100


def pad_rows(rows: Sequence[Sequence[int]], labels: Sequence[Sequence[int]] | None, pad_id: int) -> dict:
    """Right-pad id rows (with `pad_id`) and their labels (with IGNORE) into `input_ids`/`attention_mask`/`labels`."""
    tensors = [torch.tensor(r, dtype=torch.long) for r in rows]
    out = {
        "input_ids": pad_sequence(tensors, batch_first=True, padding_value=pad_id),
        "attention_mask": pad_sequence([torch.ones_like(t) for t in tensors], batch_first=True, padding_value=0),
    }
    if labels is not None:
        label_tensors = [torch.tensor(r, dtype=torch.long) for r in labels]
        out["labels"] = pad_sequence(label_tensors, batch_first=True, padding_value=IGNORE)
    return out


class TextBatcher:
    """The Q-Former side, shared by every architecture; subclasses add the LLM's training and prompt layouts."""

    def __init__(self, tokenizer, qformer_tokenizer, cfg):
        self.tokenizer, self.qformer_tokenizer, self.cfg = tokenizer, qformer_tokenizer, cfg

    @property
    def max_txt_len(self) -> int:
        return self.cfg.max_txt_len

    @property
    def max_output_txt_len(self) -> int:
        return self.cfg.max_output_txt_len

    def qformer(self, texts: Sequence[str]) -> dict | None:
        """BERT ids/mask of the instructions (None for a Q-Former without text input, e.g. BLIP-2 OPT)."""
        if self.qformer_tokenizer is None:
            return None
        batch = encode(self.qformer_tokenizer, list(texts), padding_side="right", truncation_side="left",
                       max_length=self.max_txt_len)
        return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}

    def training(self, instructions: Sequence[str], targets: Sequence[str] | None) -> dict:
        raise NotImplementedError

    def prompts(self, prompts: Sequence[str]) -> dict:
        raise NotImplementedError


class DecoderOnlyTextBatcher(TextBatcher):
    """Vicuna / OPT: one row per sample holding instruction and target; left-padded prompts for generation."""

    def __init__(self, tokenizer, qformer_tokenizer, cfg, target_suffix: str):
        super().__init__(tokenizer, qformer_tokenizer, cfg)
        self.target_suffix = target_suffix

    def ids(self, texts: Sequence[str], truncation_side: str, max_length: int | None) -> list[list[int]]:
        return encode(self.tokenizer, list(texts), padding_side="right", truncation_side=truncation_side,
                      max_length=max_length, padding=False)["input_ids"]

    def training(self, instructions: Sequence[str], targets: Sequence[str] | None) -> dict:
        """`[instruction | target + suffix]` rows, labels on the target only (the target's own BOS is dropped)."""
        prompts = self.ids(instructions, "left", self.max_txt_len)
        answers = [ids[1:] for ids in self.ids([t + self.target_suffix for t in targets], "right",
                                               self.max_output_txt_len)]
        rows = [p + a for p, a in zip(prompts, answers)]
        labels = [[IGNORE] * len(p) + a for p, a in zip(prompts, answers)]
        return pad_rows(rows, labels, self.tokenizer.pad_token_id)

    def prompts(self, prompts: Sequence[str]) -> dict:
        """Left-padded prompt ids (never truncated), so the visual tokens can sit right before each prompt."""
        batch = encode(self.tokenizer, list(prompts), padding_side="left", truncation_side="left")
        return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}


class OPTTextBatcher(DecoderOnlyTextBatcher):
    """BLIP-2 OPT: the instruction layout when targets are given, else LAVIS's captioning layout."""

    def __init__(self, tokenizer, qformer_tokenizer, cfg):
        super().__init__(tokenizer, qformer_tokenizer, cfg, target_suffix="\n")

    def training(self, instructions: Sequence[str], targets: Sequence[str] | None) -> dict:
        """Without targets: `text_input + "\\n"` (right-truncated at `max_txt_len`), the `prompt` prefix (BOS
        included) masked only when there is a prompt, as in LAVIS: with an empty prompt BOS stays supervised."""
        if targets is not None:
            return super().training(instructions, targets)
        rows = self.ids([t + "\n" for t in instructions], "right", self.max_txt_len)
        prompt_length = len(self.ids([self.cfg.prompt], "right", None)[0]) if self.cfg.prompt else 0
        labels = [[IGNORE] * min(prompt_length, len(r)) + r[prompt_length:] for r in rows]
        return pad_rows(rows, labels, self.tokenizer.pad_token_id)


class T5TextBatcher(TextBatcher):
    """Flan-T5: encoder text and decoder labels are separate sequences, each padded once."""

    def encoder_text(self, texts: Sequence[str]) -> dict:
        """Encoder ids/mask: right padding, left truncation at `max_txt_len` (LAVIS)."""
        batch = encode(self.tokenizer, list(texts), padding_side="right", truncation_side="left",
                       max_length=self.max_txt_len)
        return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}

    def labels(self, texts: Sequence[str], max_length: int | None) -> torch.Tensor:
        """Decoder labels (T5 appends `</s>`), pads → IGNORE, right truncation."""
        batch = encode(self.tokenizer, list(texts), padding_side="right", truncation_side="right",
                       max_length=max_length)
        return batch["input_ids"].masked_fill(batch["attention_mask"] == 0, IGNORE)

    def training(self, instructions: Sequence[str], targets: Sequence[str] | None) -> dict:
        if targets is None:
            raise ValueError("blip2_t5_instruct training needs 'text_output' targets")
        return {**self.encoder_text(instructions), "labels": self.labels(targets, self.max_output_txt_len)}

    def prompts(self, prompts: Sequence[str]) -> dict:
        return self.encoder_text(prompts)
