"""The paper's instruction templates (Table 5) and zero-shot evaluation prompts (Appendix E), as data.

Templates are quoted exactly as published, `<Image>` marker included; it marks where the 32 query tokens go, and
since the models prepend them, rendering drops it. Placeholders name record fields: `{Question}`, `{Answer}`,
`{Statement}` and `{Text}` all take the record's `text_input`; `{OCR}` the first 30 OCR tokens joined by ", ";
`{Options}` the choices as "(a) x (b) y"; `{Context}` the context; `{History}` the caption and earlier turns.
A dataset config picks a template family by name, or gives its own list of strings.
"""

from __future__ import annotations

import random
import re
from string import Formatter
from typing import Sequence

from lavis_ib.common.registry import closest_match
from lavis_ib.common.text_format import join_ocr_tokens, render_choices

IMAGE_MARKER = "<Image>"
OCR_PREFIX = "OCR tokens: {OCR}. "

CAPTION = (
    "<Image>A short image caption:",
    "<Image>A short image description:",
    "<Image>A photo of",
    "<Image>An image that shows",
    "<Image>Write a short description for the image.",
    "<Image>Write a description for the photo.",
    "<Image>Provide a description of what is presented in the photo.",
    "<Image>Briefly describe the content of the image.",
    "<Image>Can you briefly explain what you see in the image?",
    "<Image>Could you use a few words to describe what you perceive in the photo?",
    "<Image>Please provide a short depiction of the picture.",
    "<Image>Using language, provide a short account of the image.",
    "<Image>Use a few words to illustrate what is happening in the picture.",
)

VQA = (
    "<Image>{Question}",
    "<Image>Question: {Question}",
    "<Image>{Question} A short answer to the question is",
    "<Image>Q: {Question} A:",
    "<Image>Question: {Question} Short answer:",
    "<Image>Given the image, answer the following question with no more than three words. {Question}",
    "<Image>Based on the image, respond to this question with a short answer: {Question}. Answer:",
    "<Image>Use the provided image to answer the question: {Question} Provide your answer as short as possible:",
    '<Image>What is the answer to the following question? "{Question}"',
    '<Image>The question "{Question}" can be answered using the image. A short answer is',
)

VQG = (
    "<Image>Given the image, generate a question whose answer is: {Answer}. Question:",
    "<Image>Based on the image, provide a question with the answer: {Answer}. Question:",
    '<Image>Given the visual representation, create a question for which the answer is "{Answer}".',
    "<Image>From the image provided, craft a question that leads to the reply: {Answer}. Question:",
    "<Image>Considering the picture, come up with a question where the answer is: {Answer}.",
    "<Image>Taking the image into account, generate an question that has the answer: {Answer}. Question:",
)

# Zero-shot evaluation prompts (the InstructBLIP paper's Appendix E).
SHORT_DESCRIPTION = ("<Image>A short image description:",)
SHORT_ANSWER = ("<Image>Question: {Question} Short answer:",)
TRUE_OR_FALSE = ('<Image>Based on the image, is this statement true or false? "{Statement}" Answer:',)
OPTIONS_SHORT_ANSWER = ("<Image>Question: {Question} Options: {Options}. Short answer:",)
OCR_SHORT_ANSWER = ("<Image>OCR tokens: {OCR}. Question: {Question} Short answer:",)
DIALOG = ("<Image>Dialog history: {History}\n Question: {Question} Short answer:",)
HATEFUL = ('<Image>This is an image with: "{Text}" written on it. Is it hateful? Answer:',)
CONTEXT_OPTIONS = ("<Image>Context: {Context} Question: {Question} Options: {Options}. Answer:",)
QUESTION_FOR_ANSWER = (VQG[0],)

FAMILIES: dict[str, tuple[str, ...]] = {
    "caption": CAPTION,
    "vqa": VQA,
    "vqg": VQG,
    "short_description": SHORT_DESCRIPTION,
    "short_answer": SHORT_ANSWER,
    "true_or_false": TRUE_OR_FALSE,
    "options_short_answer": OPTIONS_SHORT_ANSWER,
    "ocr_short_answer": OCR_SHORT_ANSWER,
    "dialog": DIALOG,
    "hateful": HATEFUL,
    "context_options": CONTEXT_OPTIONS,
    "question_for_answer": QUESTION_FOR_ANSWER,
}

# The zero-shot prompt family of each held-out dataset (Appendix E).
ZERO_SHOT: dict[str, str] = {
    "nocaps": "short_description",
    "flickr30k": "short_description",
    "gqa": "short_answer",
    "vizwiz": "short_answer",
    "ivqa": "short_answer",
    "msvd_qa": "short_answer",
    "msrvtt_qa": "short_answer",
    "vsr": "true_or_false",
    "iconqa": "options_short_answer",
    "textvqa": "ocr_short_answer",
    "visdial": "dialog",
    "hateful_memes": "hateful",
    "scienceqa": "context_options",
}

_DOUBLE_SPACES = re.compile(r" {2,}")  # an empty field (ScienceQA without hint) must not leave "Context:  Question"
PLACEHOLDERS = ("Question", "Answer", "Statement", "Text", "OCR", "Options", "Context", "History")


def resolve_templates(spec: str | Sequence[str] | None, source: str = "instruction") -> tuple[str, ...] | None:
    """A family name, or a list of template strings, as a checked tuple; None stays None (text used verbatim)."""
    if spec is None:
        return None
    if isinstance(spec, str):
        if spec not in FAMILIES:
            hint = closest_match(spec, FAMILIES)
            suggestion = f"; did you mean {hint!r}?" if hint else ""
            raise ValueError(f"{source}: unknown template family {spec!r}{suggestion} (known: {', '.join(FAMILIES)})")
        return FAMILIES[spec]
    templates = tuple(spec)
    if not templates:
        raise ValueError(f"{source}: an empty template list; give at least one template or null for verbatim text")
    for template in templates:
        for _, name, _, _ in Formatter().parse(template):
            if name is not None and name not in PLACEHOLDERS:
                hint = closest_match(name, PLACEHOLDERS)
                suggestion = f"; did you mean {{{hint}}}?" if hint else ""
                raise ValueError(
                    f"{source}: template {template!r} uses unknown placeholder {{{name}}}{suggestion} "
                    f"(known: {', '.join(PLACEHOLDERS)})"
                )
    return templates


def render_history(record: dict) -> str:
    """The dialog so far: the context (VisDial caption) then `Question: q Answer: a.` for each earlier turn."""
    parts = [record["context"].rstrip(".") + "."] if record.get("context") else []
    parts += [f"Question: {q} Answer: {a.rstrip('.')}." for q, a in record.get("history") or ()]
    return " ".join(parts)


def placeholder_values(record: dict) -> dict[str, str]:
    """What each placeholder renders to for `record`."""
    text = record.get("text_input", "")
    return {
        "Question": text,
        "Answer": text,
        "Statement": text,
        "Text": text,
        "OCR": join_ocr_tokens(record.get("ocr_tokens") or ()),
        "Options": render_choices(record.get("choices") or ()),
        "Context": record.get("context") or "",
        "History": render_history(record),
    }


def render(template: str, record: dict, ocr_prefix: bool = False) -> str:
    """`template` filled from `record`, `<Image>` dropped; `ocr_prefix` puts "OCR tokens: ... . " in front of a
    template that does not already show the OCR tokens."""
    body = template[len(IMAGE_MARKER) :] if template.startswith(IMAGE_MARKER) else template
    if ocr_prefix and "{OCR}" not in body:
        body = OCR_PREFIX + body
    return _DOUBLE_SPACES.sub(" ", body.format_map(placeholder_values(record)))


def render_verbatim(record: dict) -> str:
    """An already-instructional input (LLaVA): earlier turns, one per line, then the current `text_input`."""
    earlier = [f"Question: {q} Answer: {a}" for q, a in record.get("history") or ()]
    return "\n".join(earlier + [record.get("text_input", "")])


def example_rng(seed: int, epoch: int, index: int) -> random.Random:
    """The generator of example `index` in `epoch`: every per-example draw (template, answer) comes from it."""
    return random.Random((seed * 1_000_003 + epoch) * 1_000_000_007 + index)


def choose(templates: Sequence[str], seed: int, index: int, epoch: int = 0) -> str:
    """One template drawn uniformly for example `index`; the same (seed, epoch, index) always draws the same one."""
    return templates[example_rng(seed, epoch, index).randrange(len(templates))]


def instruction(
    record: dict, templates: Sequence[str] | None, seed: int = 0, index: int = 0, epoch: int = 0,
    ocr_prefix: bool = False,
) -> str:
    """The instruction text for `record`: a seeded uniform choice among `templates`, or the verbatim text."""
    if templates is None:
        return render_verbatim(record)
    return render(choose(templates, seed, index, epoch), record, ocr_prefix)
