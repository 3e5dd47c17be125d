"""Tests for the BLIP caption and question processors: exact LAVIS strings."""

from __future__ import annotations

import pytest

from lavis_ib.common.registry import registry
from lavis_ib.processors import load_processor

SIXTY_WORDS = " ".join(f"w{i}" for i in range(60))
FIRST_FIFTY = " ".join(f"w{i}" for i in range(50))


@pytest.mark.parametrize(
    ("caption", "expected"),
    [
        ("A man, riding a HORSE!", "a man, riding a horse"),
        ('He said: "hi"  (twice)...', "he said hi twice"),
        ("  leading and trailing\n", "leading and trailing"),
        ("what's up? #tag ~x", "what's up? tag x"),
        ("a\t\tb   c", "a b c"),
        ("tab\tkept", "tab\tkept"),
        ("*;*", ""),
        (SIXTY_WORDS, FIRST_FIFTY),
        (FIRST_FIFTY + ".", FIRST_FIFTY),
    ],
    ids=["comma", "quotes-colon-parens", "edges", "question-hash", "tabs", "one-tab", "all-punct", "60w", "50w"],
)
def test_blip_caption_exact_strings(caption: str, expected: str) -> None:
    """Lowercase, `.!"()*#:;~` → space, ≥2 whitespace → one space, strip, first 50 words."""
    assert load_processor("blip_caption")(caption) == expected


def test_blip_caption_prompt_and_max_words() -> None:
    """The prompt is prepended verbatim; max_words counts caption words only."""
    processor = load_processor("blip_caption", {"prompt": "a picture of ", "max_words": 3})
    assert processor("One two THREE four.") == "a picture of one two three"
    assert processor.pre_caption("One two") == "one two"


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("What is the MAN holding?", "what is the man holding?"),
        ("Is it a dog. ", "is it a dog"),
        ("How  many (cars)?", "how  many cars?"),
        ('Say "hi": now!', "say hi now"),
        ("  leading spaces kept?", "  leading spaces kept?"),
        ("why?\n", "why?\n"),
        (SIXTY_WORDS + "?", FIRST_FIFTY),
    ],
    ids=["case", "trailing-dot-space", "no-collapse", "quotes", "leading", "newline-kept", "60w"],
)
def test_blip_question_exact_strings(question: str, expected: str) -> None:
    """Lowercase, `.!"()*#:;~` deleted (`?` kept), trailing spaces stripped, no collapsing, first 50 words."""
    assert load_processor("blip_question")(question) == expected


def test_blip_question_max_words() -> None:
    """max_words truncates on single spaces."""
    assert load_processor("blip_question", {"max_words": 2})("Where is it?") == "where is"


def test_text_config_defaults_and_validation() -> None:
    """Declared keys/defaults; a prompt key on blip_question is rejected (it only exists for captions)."""
    assert registry.get_processor_class("blip_caption").config_defaults() == {"prompt": "", "max_words": 50}
    assert registry.get_processor_class("blip_question").config_defaults() == {"max_words": 50}
    with pytest.raises(ValueError, match="prompt"):
        load_processor("blip_question", {"prompt": "q: "})
    with pytest.raises(ValueError, match="max_words"):
        load_processor("blip_caption", {"max_word": 10})
