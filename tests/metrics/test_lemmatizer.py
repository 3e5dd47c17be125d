"""The OK-VQA lemmatiser: LAVIS's noun/verb rule, one spaCy load per process, clear errors without spaCy.

spaCy models cannot be downloaded here, so a stand-in `spacy` module supplies the tags."""

from __future__ import annotations

import sys
import types

import pytest

from lavis_ib.metrics import lemmatize
from lavis_ib.metrics.lemmatizer import spacy_pipeline

# word → (part of speech, lemma), what en_core_web_sm would tag
TAGS = {"dogs": ("NOUN", "dog"), "running": ("VERB", "run"), "is": ("AUX", "be"), "red": ("ADJ", "red")}


class FakeNlp:
    """Whitespace tokenisation with the `TAGS` table, through spaCy's `pipe` interface."""

    def pipe(self, texts):
        for text in texts:
            yield [types.SimpleNamespace(text=w, pos_=TAGS[w][0], lemma_=TAGS[w][1]) for w in text.split()]


@pytest.fixture
def fresh_cache():
    spacy_pipeline.cache_clear()
    yield
    spacy_pipeline.cache_clear()


def test_nouns_and_verbs_become_lemmas_and_spacy_loads_once(monkeypatch, fresh_cache):
    loads = []
    fake = types.ModuleType("spacy")
    fake.load = lambda name: loads.append(name) or FakeNlp()
    monkeypatch.setitem(sys.modules, "spacy", fake)
    assert lemmatize(["dogs running", "is red"]) == ["dog run", "is red"]
    assert lemmatize(["dogs"]) == ["dog"]
    assert loads == ["en_core_web_sm"]


def test_missing_spacy_is_a_clear_error(monkeypatch, fresh_cache):
    monkeypatch.setitem(sys.modules, "spacy", None)  # makes `import spacy` raise ImportError
    with pytest.raises(RuntimeError, match="needs spaCy .*pip install spacy"):
        lemmatize(["dogs"])


def test_missing_model_is_a_clear_error_and_not_cached(monkeypatch, fresh_cache):
    fake = types.ModuleType("spacy")

    def load(name):
        raise OSError(f"[E050] Can't find model '{name}'")

    fake.load = load
    monkeypatch.setitem(sys.modules, "spacy", fake)
    with pytest.raises(RuntimeError, match="python -m spacy download en_core_web_sm"):
        lemmatize(["dogs"])
    fake.load = lambda name: FakeNlp()  # installed afterwards: the next call succeeds
    assert lemmatize(["dogs"]) == ["dog"]
