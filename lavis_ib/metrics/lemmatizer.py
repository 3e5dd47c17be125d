"""The OK-VQA answer lemmatiser (LAVIS's `apply_lemmatizer`): spaCy `en_core_web_sm`, loaded once on first use."""

from __future__ import annotations

import functools

SPACY_MODEL = "en_core_web_sm"


@functools.lru_cache(maxsize=1)
def spacy_pipeline():
    """The spaCy pipeline, loaded on the first call and cached; a failed load is not cached, so a later call
    after installing the model succeeds."""
    try:
        import spacy
    except ImportError as error:
        raise RuntimeError(
            f"the answer lemmatiser needs spaCy and its {SPACY_MODEL!r} model: "
            f"pip install spacy && python -m spacy download {SPACY_MODEL} (or turn apply_lemmatizer off)"
        ) from error
    try:
        return spacy.load(SPACY_MODEL)
    except OSError as error:
        raise RuntimeError(
            f"spaCy is installed but its {SPACY_MODEL!r} model is not: python -m spacy download {SPACY_MODEL} "
            "(or turn apply_lemmatizer off)"
        ) from error


def lemmatize(answers: list[str]) -> list[str]:
    """Each answer with its nouns and verbs replaced by their lemmas and its tokens joined by spaces, as LAVIS
    post-processes OK-VQA answers ("dogs running" → "dog run")."""
    nlp = spacy_pipeline()
    return [
        " ".join(token.lemma_ if token.pos_ in ("NOUN", "VERB") else token.text for token in doc)
        for doc in nlp.pipe(answers)
    ]
