"""BLIP caption and question text processors: the exact LAVIS normalisation (lowercase, punctuation, word limit)."""

from __future__ import annotations

import re

from lavis_ib.common.registry import registry
from lavis_ib.processors.base import BaseProcessor

PUNCTUATION = re.compile(r"[.!\"()*#:;~]")
"""The characters LAVIS removes (questions) or blanks out (captions); `?`, `,` and `'` are kept."""

_WHITESPACE_RUN = re.compile(r"\s{2,}")


def truncate_words(text: str, max_words: int) -> str:
    """The first `max_words` space-separated words of `text` (unchanged when it has no more)."""
    words = text.split(" ")
    return " ".join(words[:max_words]) if len(words) > max_words else text


@registry.register_processor("blip_caption")
class BlipCaptionProcessor(BaseProcessor):
    """Caption cleaning: lowercase, punctuation → space, whitespace runs collapsed, stripped, truncated, prompted."""

    def __init__(self, prompt: str = "", max_words: int = 50):
        self.prompt = prompt
        self.max_words = max_words

    def pre_caption(self, caption: str) -> str:
        """The cleaned caption, without the prompt."""
        caption = PUNCTUATION.sub(" ", caption.lower())
        caption = _WHITESPACE_RUN.sub(" ", caption).rstrip("\n").strip(" ")
        return truncate_words(caption, self.max_words)

    def __call__(self, caption: str) -> str:
        """`prompt` followed by the cleaned caption."""
        return self.prompt + self.pre_caption(caption)

    def __repr__(self) -> str:
        return f"BlipCaptionProcessor(prompt={self.prompt!r}, max_words={self.max_words})"


@registry.register_processor("blip_question")
class BlipQuestionProcessor(BaseProcessor):
    """Question cleaning: lowercase, punctuation deleted (`?` kept), trailing spaces removed, truncated."""

    def __init__(self, max_words: int = 50):
        self.max_words = max_words

    def __call__(self, question: str) -> str:
        """The cleaned question."""
        question = PUNCTUATION.sub("", question.lower()).rstrip(" ")
        return truncate_words(question, self.max_words)

    def __repr__(self) -> str:
        return f"BlipQuestionProcessor(max_words={self.max_words})"
