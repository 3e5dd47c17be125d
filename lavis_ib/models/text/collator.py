"""The DataLoader `collate_fn` that joins a dataset batch to a model: aligned fields plus the model's tokens.

Dataset items carry the instruction already rendered by the templates (`text_input`). The collator names it
`instruction` — the one key every model method reads as final text, never re-formatted or given LAVIS's
context/history/caption prefixes — and tokenizes it (and the targets) in the worker process with the model's own
`TextBatcher`, so the main process only moves tensors to the device.
"""

from __future__ import annotations

from typing import Callable, Literal, Sequence

from lavis_ib.datasets.builders.dataset import collate

MODES = ("train", "generate", "score")


class ModelCollator:
    """`collate(samples)` + `instruction` + token tensors for `mode`: train (targets), generate (prompts) or score."""

    def __init__(self, text_batcher, mode: Literal["train", "generate", "score"] = "train",
                 base_collate: Callable[[Sequence], dict] = collate):
        if mode not in MODES:
            raise ValueError(f"collator mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.text_batcher, self.mode, self.base_collate = text_batcher, mode, base_collate

    def __call__(self, samples: Sequence) -> dict:
        batch = self.base_collate(samples)
        if "text_input" not in batch:  # every sample of an evaluation batch was unreadable: nothing to tokenize
            return batch
        instructions = list(batch["text_input"])
        batch["instruction"] = instructions
        qformer = self.text_batcher.qformer(instructions)
        if qformer is not None:
            batch["qformer_tokens"] = qformer
        if self.mode == "train":
            batch["train_tokens"] = self.text_batcher.training(instructions, batch.get("text_output"))
        elif self.mode == "generate":
            batch["prompt_tokens"] = self.text_batcher.prompts(instructions)
        return batch
