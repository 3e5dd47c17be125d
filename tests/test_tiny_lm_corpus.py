"""The tiny LM's pre-training corpus (`tools/make_tiny_lm.py`) knows the words of every held-out answer but none of
the held-out tasks' instructions: no held-out question or statement, and no fragment of a template only the held-out
tasks use. Zero-shot transfer in `make demo` has to come from the world's general language."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from string import Formatter

import pytest

from lavis_ib.common.registry import registry
from lavis_ib.datasets import synthetic

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tool():
    sys.path.insert(0, str(REPO_ROOT / "tools"))
    try:
        yield importlib.import_module("make_tiny_lm")
    finally:
        sys.path.remove(str(REPO_ROOT / "tools"))


@pytest.fixture(scope="module")
def corpus(tool):
    """The corpus as the tool's settings make it: (instruction, target) of every row, and all its text lower-cased."""
    examples = tool.corpus_examples(tool.Settings())
    return examples, "\n".join(f"{e.context} {e.instruction} {e.target}" for e in examples).lower()


@pytest.fixture(scope="module")
def held_out(tool):
    """The held-out tasks' records on fresh scenes and clips: their questions and every answer they can have."""
    scenes = tool.draw_scenes(400, 123)
    clips = [synthetic.Clip(i, "", shape, colour, direction) for i, (shape, colour, direction) in enumerate(
        (s, c, d) for s in synthetic.SHAPES for c in synthetic.COLOURS for d in synthetic.DIRECTIONS)]
    return {name: tool.converted(name, scenes, "test", clips) for name in synthetic.HELD_OUT}


def test_every_held_out_answer_is_an_answer_in_the_corpus(corpus, held_out):
    examples, _ = corpus
    targets = {e.target for e in examples}
    answers = {name: {r["text_output"] for r in records} | {c for r in records for c in r.get("choices", ())}
               for name, records in held_out.items()}
    assert answers["synthetic_count"] == {"1", "2", "3"} and answers["synthetic_spatial"] == {"true", "false"}
    assert answers["synthetic_video_qa"] == set(synthetic.DIRECTIONS)
    for name, words in answers.items():
        assert words <= targets, f"{name}: {sorted(words - targets)} never answered in the corpus"


def test_no_held_out_question_or_statement_is_in_the_corpus(corpus, held_out):
    _, text = corpus
    questions = {r["text_input"].lower() for records in held_out.values() for r in records}
    assert len(questions) > 100  # every question kind, every statement of 400 scenes, every clip's question
    assert [q for q in questions if q in text] == []


def test_no_fragment_of_a_held_out_only_template_is_in_the_corpus(corpus):
    _, text = corpus

    def fragments(name: str, split: str) -> set[str]:
        make_item = registry.get_builder_class(name)().item_maker(split)
        return {literal.strip().lower() for template in make_item.templates
                for literal, *_ in Formatter().parse(template.removeprefix("<Image>")) if literal.strip()}

    held_in = set().union(*(fragments(name, "train") for name in synthetic.HELD_IN))
    held_out_only = set().union(*(fragments(name, "test") for name in synthetic.HELD_OUT)) - held_in
    assert {"based on the image, is this statement true or false? \"", "options:"} <= held_out_only
    assert [fragment for fragment in held_out_only if len(fragment) >= 8 and fragment in text] == []
