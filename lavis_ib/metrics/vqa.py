"""Open-ended answer metrics: VQA accuracy (official GT-Vision-Lab scorer, LAVIS and A-OKVQA variants), GQA exact
match and iVQA accuracy, with the official VQA answer normalisation they share."""

from __future__ import annotations

import re
from typing import Literal, Sequence

from lavis_ib.common.registry import registry
from lavis_ib.metrics._checks import check_answer_lists, check_paired, check_strings, percent

# The characters `processPunctuation` removes or turns into spaces, in the official order.
_PUNCTUATION = ";/[]\"{}()=+\\_-><@`,?!"
_DIGIT_COMMA_DIGIT = re.compile(r"(\d)(,)(\d)")
# The official pattern is "(?!<=\d)(\.)(?!\d)": its "(?!<=" is a lookahead that never fires (a lookbehind was
# meant), so it removes every period not followed by a digit, "5." included.
_PERIOD = re.compile(r"\.(?!\d)")
# The official code passes `re.UNICODE` (32) where `Pattern.sub` takes `count`: at most 32 periods are removed.
_PERIOD_COUNT = int(re.UNICODE)

_NUMBERS = "zero one two three four five six seven eight nine ten".split()
_NUMBER_WORDS = {"none": "0", **{word: str(value) for value, word in enumerate(_NUMBERS)}}
_ARTICLES = frozenset(("a", "an", "the"))

# The contractions the official table restores; it maps each spelling with one apostrophe dropped to the full form.
_CONTRACTED = """
ain't aren't can't could've couldn't couldn't've didn't doesn't don't hadn't hadn't've hasn't haven't he'd he'd've
he's how'd how'll how's I'd've I'm I've isn't it'd it'd've it'll ma'am mightn't mightn't've might've mustn't must've
needn't not've o'clock oughtn't 'ow's'at shan't she'd've should've shouldn't shouldn't've somebody'd've somebody'll
somebody's someone'd someone'd've someone'll someone's something'd something'd've something'll that's there'd
there'd've there're there's they'd they'd've they'll they're they've 'twas wasn't we'd've we've weren't what'll
what're what's what've when's where'd where's where've who'd who'd've who'll who's who've why'll why're why's won't
would've wouldn't wouldn't've y'all y'all'll y'all'd've you'd you'd've you'll you're you've
""".split()


def _apostrophe_drops(word: str) -> list[str]:
    """`word` with one of its apostrophes removed, once per apostrophe ("y'all'll" → "yall'll", "y'allll")."""
    return [word[:i] + word[i + 1 :] for i, char in enumerate(word) if char == "'"]


_CONTRACTIONS = {short: full for full in _CONTRACTED for short in _apostrophe_drops(full)}
# Quirks of the official table kept for fidelity: one entry maps the wrong way; the capitalised spellings ("Im",
# "Ive", ...) never match because words are lower-cased first. Its identity entries (let's, she's) are omitted.
_CONTRACTIONS["somebody'd"] = "somebodyd"


def _strip_whitespace(text: str) -> str:
    """Tabs and newlines to spaces, then trim: the official first step for answers and predictions."""
    return text.replace("\n", " ").replace("\t", " ").strip()


def process_punctuation(text: str) -> str:
    """The official `processPunctuation`: each mark is deleted if it touches a space in `text` (or `text` holds a
    digit,digit) and becomes a space otherwise; then periods not followed by a digit go."""
    delete_all = _DIGIT_COMMA_DIGIT.search(text) is not None
    out = text
    for mark in _PUNCTUATION:
        touches_space = mark + " " in text or " " + mark in text
        out = out.replace(mark, "" if delete_all or touches_space else " ")
    return _PERIOD.sub("", out, count=_PERIOD_COUNT)


def process_digit_article(text: str) -> str:
    """The official `processDigitArticle`: lower-case, number words to digits, articles dropped, contractions
    restored, words re-joined by single spaces."""
    words = [_NUMBER_WORDS.get(word, word) for word in text.lower().split()]
    return " ".join(_CONTRACTIONS.get(word, word) for word in words if word not in _ARTICLES)


def normalize_answer(text: str) -> str:
    """An answer as the official VQA scorer compares it: whitespace, punctuation, then digits/articles."""
    return process_digit_article(process_punctuation(_strip_whitespace(text)))


def _leave_one_out(pred: str, humans: Sequence[str]) -> float:
    """Mean over each human left out of min(1, #other humans giving `pred` / 3) (the official "10 choose 9")."""
    matches = sum(answer == pred for answer in humans)
    return sum(min(1.0, (matches - (answer == pred)) / 3) for answer in humans) / len(humans)


def _official_score(pred: str, humans: Sequence[str]) -> float:
    """GT-Vision-Lab `vqaEval.py`: normalise answers and prediction only when the humans disagree."""
    humans = [_strip_whitespace(answer) for answer in humans]
    pred = _strip_whitespace(pred)
    if len(set(humans)) > 1:
        humans = [normalize_answer(answer) for answer in humans]
        pred = normalize_answer(pred)
    return _leave_one_out(pred, humans)


def _lavis_score(pred: str, humans: Sequence[str]) -> float:
    """LAVIS's copy: the prediction is always fully normalised; the humans get punctuation processing only (no
    whitespace strip, no digits/articles), and only when they disagree."""
    pred = normalize_answer(pred)
    if len(set(humans)) > 1:
        humans = [process_punctuation(answer) for answer in humans]
    return _leave_one_out(pred, list(humans))


def _aokvqa_score(pred: str, humans: Sequence[str]) -> float:
    """A-OKVQA direct answer (allenai `eval_predictions.py`, LAVIS `AOKVQATask`): raw strings, no leave-one-out."""
    return min(1.0, sum(answer == pred for answer in humans) / 3)


def _preparer(normalize: bool):
    """The text transform applied to both sides before an exact comparison."""
    return normalize_answer if normalize else str


_VARIANTS = {"official": _official_score, "lavis": _lavis_score, "aokvqa": _aokvqa_score}


@registry.register_metric("vqa_accuracy")
def vqa_accuracy(
    preds: list[str],
    answers: list[list[str]],
    variant: Literal["official", "lavis", "aokvqa"] = "official",
    per_sample: bool = False,
) -> dict:
    """VQA accuracy in percent (VQAv2, OK-VQA, TextVQA, VizWiz; A-OKVQA direct answer: `variant="aokvqa"`).

    "official" equals GT-Vision-Lab `vqaEval.py`, quirks included: normalisation only when the humans disagree;
    each human (by position) left out in turn, min(1, #other humans matching / 3), averaged. Its reported overall
    is this value rounded to 2 decimals. "lavis" is LAVIS's copy: the prediction always fully normalised, the
    humans only punctuation-processed (when they disagree, and not whitespace-stripped), so prediction "two" vs
    humans ["two"] * 3 + ["three"] * 7 gives 90 officially, 0 in LAVIS. "aokvqa" is A-OKVQA direct answer as
    LAVIS and allenai's `eval_predictions.py` score it: min(1, #raw exact matches / 3), no leave-one-out or
    normalisation. `per_sample=True` adds each question's score (percent) under "per_sample".
    """
    check_paired("preds", preds, "answers", answers, ["vqa_accuracy"])
    check_strings("preds", preds)
    check_answer_lists("answers", answers)
    if variant not in _VARIANTS:
        raise ValueError(f"variant is {variant!r}: expected one of {sorted(_VARIANTS)}")
    scores = [_VARIANTS[variant](pred, humans) for pred, humans in zip(preds, answers)]
    result = {"vqa_accuracy": percent(sum(scores), len(scores))}
    if per_sample:
        result["per_sample"] = [100.0 * score for score in scores]
    return result


@registry.register_metric("exact_match")
def exact_match(preds: list[str], answers: list[str], normalize: bool = True) -> dict:
    """GQA top-1 accuracy in percent: prediction equals the answer after both get the official VQA normalisation
    (`normalize=False`: raw). Upstream LAVIS normalises only the prediction; that differs only on unnormal answers."""
    check_paired("preds", preds, "answers", answers, ["exact_match"])
    check_strings("preds", preds)
    check_strings("answers", answers)
    prepare = _preparer(normalize)
    hits = sum(prepare(pred) == prepare(answer) for pred, answer in zip(preds, answers))
    return {"exact_match": percent(hits, len(preds))}


@registry.register_metric("ivqa_accuracy")
def ivqa_accuracy(preds: list[str], answers: list[list[str]], normalize: bool = True) -> dict:
    """iVQA accuracy in percent: min(#annotators giving the prediction / 2, 1) per question (Just Ask), comparing
    after the official VQA normalisation of both sides (`normalize=False`: raw strings)."""
    check_paired("preds", preds, "answers", answers, ["ivqa_accuracy"])
    check_strings("preds", preds)
    check_answer_lists("answers", answers)
    prepare = _preparer(normalize)
    scores = [min(sum(prepare(a) == prepare(pred) for a in humans) / 2, 1.0) for pred, humans in zip(preds, answers)]
    return {"ivqa_accuracy": percent(sum(scores), len(scores))}


@registry.register_metric("aokvqa_accuracy")
def aokvqa_accuracy(preds: list[str], answers: list[list[str]]) -> dict:
    """A-OKVQA direct-answer accuracy in percent: `vqa_accuracy(..., variant="aokvqa")` under its own name, so a
    config selects it by metric name alone."""
    check_paired("preds", preds, "answers", answers, ["aokvqa_accuracy"])
    return {"aokvqa_accuracy": vqa_accuracy(preds, answers, variant="aokvqa")["vqa_accuracy"]}
