"""How OCR tokens and answer choices are written into prompt text, shared by the dataset templates and the models.

Pure string functions with no heavy imports, so the data layer can use them without importing the model package.
"""

from __future__ import annotations

from string import ascii_lowercase
from typing import Sequence

MAX_OCR_TOKENS = 30


def join_ocr_tokens(tokens: Sequence[str]) -> str:
    """The first 30 OCR tokens, comma-separated (LAVIS/TextCaps convention)."""
    return ", ".join(tokens[:MAX_OCR_TOKENS])


def render_choices(choices: Sequence[str]) -> str:
    """`(a) first (b) second ...` — the multiple-choice rendering of LAVIS's `predict_answers`."""
    return " ".join(f"({ascii_lowercase[i]}) {c}" for i, c in enumerate(choices))
