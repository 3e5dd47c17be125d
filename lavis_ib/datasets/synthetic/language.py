"""The synthetic world's general language: text about its scenes and clips that a real LLM would know before any
instruction tuning, written for the tiny LM's pre-training (`tools/make_tiny_lm.py`).

Four kinds of passage, each a context (captions, as the Q-Former's query tokens will stand for them), a question or
statement, and its answer: how many things a caption names (digits), whether a left/right statement about two of
them holds (`true` / `false`), where a shape seen in successive frames goes (`left` / `right` / `up` / `down`), and
which of some offered options fits. The phrasings are this module's own: none is a held-out task's instruction
template or question (`tests/test_tiny_lm_corpus.py` checks the corpus), so what the held-out tasks ask has to be
understood from the language, as InstructBLIP's held-out tasks are understood from Vicuna's.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from lavis_ib.common.media import uniform_indices
from lavis_ib.common.text_format import render_choices
from lavis_ib.datasets import synthetic

QUESTION_FORMATS = ("{q}", "Q: {q} A:", "Question: {q} Answer:", "{q} Answer:", "{q} The answer is")
"""How a question is put; the held-out tasks' `Short answer:` prompts are left to the held-in tasks' templates."""

COUNT_QUESTIONS = (
    "How many things are in the picture?", "How many objects can you see?", "Count the shapes in the image.",
    "What is the number of objects?", "How many items does the image show?", "How many shapes can be seen?",
    "Count the things.", "How many figures are drawn?",
)
STATEMENTS = {
    "left": ("the {a} is left of the {b}", "the {a} is on the left side of the {b}", "the {a} is further left than the {b}",
             "the {a} lies to the left of the {b}", "the {a} sits to the left of the {b}",
             "the {a} comes before the {b} from the left"),
    "right": ("the {a} is right of the {b}", "the {a} is on the right side of the {b}",
              "the {a} is further right than the {b}", "the {a} lies to the right of the {b}",
              "the {a} sits to the right of the {b}", "the {a} comes after the {b} from the left"),
}
TRUE_FALSE_FORMATS = ("True or false: {s}.", "{S}. True or false?", "Is this true or false: {s}?",
                      "Statement: {S}. Answer true or false.", "{S}. Is that true or false? Answer:",
                      'Is the statement "{S}." true or false?', '"{S}." True or false? Answer:',
                      'Someone says: "{S}." True or false?')
MOTION_QUESTIONS = ("Where does the {t} go?", "Which way is the {t} moving?", "In what direction is the {t} going?",
                    "Where is the {t} heading?", "The {t} moves to which side?")
CHOICE_FORMATS = ("{q} Choose one: {o}.", "{q} Pick from {o}.", "{q} The choices are {o}.", "Choices: {o}. {q}",
                  "{q} Is it {l}?")
SHAPE_QUESTIONS = ("What shape is the {c} thing?", "Which of the shapes is {c}?", "Which one is {c}?",
                   "What is the {c} object?")
COLOUR_QUESTIONS = ("What colour is the {s}?", "Which colour does the {s} have?", "The {s} is which colour?")
FRAMES = (2, 3, 4, 4, 5, 8)
"""How many frames a motion passage shows (sampled as the video processors sample them)."""


@dataclass(frozen=True)
class Passage:
    """One piece of general text: the kind, the context it reads, the question or statement, the answer."""

    kind: str
    context: str
    text: str
    answer: str


def cased(question: str, rng: random.Random) -> str:
    """The question as written or lower-cased (as the datasets' question processor writes them), at random."""
    return question.lower() if rng.random() < 0.5 else question


def counting(scene: synthetic.Scene, rng: random.Random) -> Passage:
    """How many things the scene's caption names."""
    question = rng.choice(QUESTION_FORMATS).format(q=cased(rng.choice(COUNT_QUESTIONS), rng))
    return Passage("count", synthetic.caption(scene), question, str(len(scene.things)))


def position(scene: synthetic.Scene, rng: random.Random) -> Passage:
    """A left/right statement about two of the scene's things (either order, either relation) and whether it holds."""
    a, b = rng.sample(scene.things, 2)
    relation = rng.choice(tuple(STATEMENTS))
    holds = (a.x < b.x) == (relation == "left")
    statement = rng.choice(STATEMENTS[relation]).format(a=f"{a.colour} {a.shape}", b=f"{b.colour} {b.shape}")
    text = rng.choice(TRUE_FALSE_FORMATS).format(s=statement, S=statement[0].upper() + statement[1:])
    return Passage("position", synthetic.caption(scene), text, "true" if holds else "false")


def motion(clip: synthetic.Clip, rng: random.Random) -> Passage:
    """Captions of some of a clip's frames, in order, and the way its shape goes."""
    frames = uniform_indices(clip.frames, rng.choice(FRAMES))
    scenes = [synthetic.Scene(clip.id, "", "train", [synthetic.clip_thing(clip, t)]) for t in frames]
    question = cased(rng.choice(MOTION_QUESTIONS).format(t=f"{clip.colour} {clip.shape}"), rng)
    return Passage("motion", " ".join(synthetic.caption(s) for s in scenes), rng.choice(QUESTION_FORMATS).format(
        q=question), clip.direction)


def choice(scene: synthetic.Scene, rng: random.Random) -> Passage:
    """A question about one thing with the options it is chosen from (shapes or colours, shuffled)."""
    thing = rng.choice(scene.things)
    if rng.random() < 0.5:
        question = rng.choice(SHAPE_QUESTIONS).format(c=thing.colour)
        answer, pool = thing.shape, list(synthetic.SHAPES)
    else:
        question = rng.choice(COLOUR_QUESTIONS).format(s=thing.shape)
        answer, pool = thing.colour, list(synthetic.COLOURS)
    question = cased(question, rng)
    options = [answer] + rng.sample([p for p in pool if p != answer], min(len(pool) - 1, rng.choice((1, 2, 3))))
    rng.shuffle(options)
    listed = ", ".join(options[:-1]) + " or " + options[-1]
    text = rng.choice(CHOICE_FORMATS).format(q=question, o=rng.choice((render_choices(options), listed)), l=listed)
    text = rng.choice(QUESTION_FORMATS).format(q=text)
    return Passage("choice", synthetic.caption(scene), text, answer)


def passages(scenes: list[synthetic.Scene], seed: int) -> list[Passage]:
    """One passage of each kind per scene (a position one where it has two things or more, a motion one about a
    fresh clip), seeded."""
    rng = random.Random(seed)
    out = []
    for index, scene in enumerate(scenes):
        scene = replace(scene, word=None) if rng.random() < 0.5 else scene
        out += [counting(scene, rng), choice(scene, rng), motion(synthetic.random_clip(rng, index), rng)]
        if len(scene.things) > 1:
            out.append(position(scene, rng))
    return out
