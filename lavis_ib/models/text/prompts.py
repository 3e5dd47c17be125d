"""Prompt assembly shared by every architecture: batch prompts, OCR-token filling, VQA templates, class prefixes.

These are pure string functions so that the rendered prompts can be tested on their own.
"""

from __future__ import annotations

from typing import Sequence

from lavis_ib.common.text_format import join_ocr_tokens, render_choices
from lavis_ib.models.text.inputs import check_texts


def batch_prompts(prompt: str | Sequence[str], batch_size: int | None, key: str = "prompt") -> list[str]:
    """A string replicated to the batch, or a per-sample list checked to have the batch's length (if known)."""
    if isinstance(prompt, str):
        return [prompt] * (batch_size or 1)
    return check_texts(key, prompt, batch_size if batch_size is not None else len(prompt))


def fill_ocr(prompts: list[str], ocr_tokens: Sequence[Sequence[str]] | None) -> list[str]:
    """Put each sample's OCR tokens into a prompt's `{}` placeholder (only when the prompt has one)."""
    if ocr_tokens is None or not prompts or "{}" not in prompts[0]:
        return prompts
    return [p.format(join_ocr_tokens(tokens)) for p, tokens in zip(prompts, ocr_tokens)]


def vqa_prompt(template: str, question: str, ocr_tokens: Sequence[str] | None, choices: Sequence[str] | None) -> str:
    """Fill a VQA template: one `{}` takes the question; two take (OCR tokens, question) or (question, choices)."""
    slots = template.count("{}")
    if slots == 2:
        if ocr_tokens is not None:
            return template.format(join_ocr_tokens(ocr_tokens), question)
        if choices is not None:
            return template.format(question, render_choices(choices))
        raise ValueError(
            f"prompt {template!r} has two '{{}}' placeholders but the sample has neither 'ocr_tokens' nor 'choices'"
        )
    return template.format(question) if slots == 1 else template


def with_class_prefixes(prompts: list[str], samples: dict) -> list[str]:
    """Add ScienceQA context, VisDial history and caption prefixes, per sample and only when non-empty."""
    out = []
    for i, prompt in enumerate(prompts):
        context = _field(samples, "context", i)
        history = _field(samples, "history", i)
        caption = _field(samples, "caption", i)
        if context:
            prompt = f"context: {context}. {prompt}"
        if history:
            prompt = f"dialog history: {history}\n{prompt}"
        if caption:
            prompt = f'This image has the caption "{caption}". {prompt}'
        out.append(prompt)
    return out


def _field(samples: dict, key: str, index: int) -> str:
    values = samples.get(key)
    return values[index] if values is not None else ""


def class_prompts(samples: dict, default_prompt: str, batch_size: int) -> list[str]:
    """The prompts `predict_class` / `score_candidates` condition on (LAVIS `_predict_class` steps 1–2)."""
    prompts = batch_prompts(samples.get("prompt", default_prompt or "{}"), batch_size)
    text_input = samples.get("text_input")
    if text_input is not None:
        if isinstance(text_input, str):
            text_input = [text_input] * batch_size
        prompts = [
            p.format(*t) if isinstance(t, (list, tuple)) else p.format(t) for p, t in zip(prompts, text_input)
        ]
    return with_class_prefixes(prompts, samples)


INSTRUCTION_KEY = "instruction"


def instructions_for(samples: dict, method: str, default_prompt: str, batch_size: int | None) -> list[str]:
    """The final instruction of each sample for `method` ("forward", "generate" or "score"): the one batch contract.

    `samples["instruction"]` (what dataset batches carry, rendered by the templates) is used verbatim by every
    method. Without it, LAVIS's API fields apply as LAVIS reads them: `forward` takes `text_input`; `generate` takes
    `prompt` (or the configured prompt) with OCR tokens filled into a `{}`; `score` formats `text_input` into
    `prompt` and adds the context / history / caption prefixes.
    """
    if INSTRUCTION_KEY in samples:
        return batch_prompts(samples[INSTRUCTION_KEY], batch_size, INSTRUCTION_KEY)
    if method == "forward":
        if "text_input" not in samples:
            raise KeyError("forward() needs 'instruction' (or LAVIS's 'text_input') in the samples")
        return batch_prompts(samples["text_input"], batch_size, "text_input")
    if method == "generate":
        return fill_ocr(batch_prompts(samples.get("prompt", default_prompt), batch_size), samples.get("ocr_tokens"))
    if method == "score":
        return class_prompts(samples, default_prompt, batch_size)
    raise ValueError(f"unknown method {method!r}; expected forward, generate or score")
