"""VQA accuracy (official, LAVIS and A-OKVQA variants), GQA exact match and iVQA accuracy on hand-computed values."""

from __future__ import annotations

import pytest

from lavis_ib.metrics import exact_match, ivqa_accuracy, normalize_answer, vqa_accuracy
from lavis_ib.metrics.vqa import _CONTRACTIONS, process_punctuation


def humans(matching: int, answer: str = "dog", other: str = "cat") -> list[str]:
    """Ten human answers, `matching` of them `answer`."""
    return [answer] * matching + [other] * (10 - matching)


# Leave-one-out by hand, m of 10 humans matching: the m matching humans see m-1 others, the 10-m see m, so the
# score is (m·min(1,(m-1)/3) + (10-m)·min(1,m/3)) / 10.
@pytest.mark.parametrize(
    "matching, expected",
    [(0, 0.0), (1, 30.0), (2, 60.0), (3, 90.0), (4, 100.0), (10, 100.0)],
)
def test_leave_one_out_by_number_of_matching_humans(matching, expected):
    assert vqa_accuracy(["dog"], [humans(matching)])["vqa_accuracy"] == pytest.approx(expected)


def test_dataset_score_is_the_mean_and_per_sample_scores_are_returned():
    result = vqa_accuracy(["dog", "dog"], [humans(3), humans(1)], per_sample=True)
    assert result["vqa_accuracy"] == pytest.approx(60.0)
    assert result["per_sample"] == pytest.approx([90.0, 30.0])


def test_prediction_and_answers_are_normalised_when_the_humans_disagree():
    # "Two dogs." → "two dogs" (period dropped, lower-cased) → "2 dogs" (number word), matching 3 humans.
    assert vqa_accuracy(["Two dogs."], [["2 dogs"] * 3 + ["dog"] * 7])["vqa_accuracy"] == pytest.approx(90.0)


def test_official_quirk_no_normalisation_when_all_humans_agree():
    assert vqa_accuracy(["Yes"], [["yes"] * 10])["vqa_accuracy"] == 0.0
    assert vqa_accuracy([" yes\n"], [["yes"] * 10])["vqa_accuracy"] == 100.0  # whitespace is always stripped
    # One differing human switches normalisation on: "Yes" and the nine "yes" then all match.
    assert vqa_accuracy(["Yes"], [["yes"] * 9 + ["no"]])["vqa_accuracy"] == 100.0


def test_lavis_variant_normalises_the_prediction_but_not_the_humans_digits():
    answers = [["two"] * 3 + ["three"] * 7]
    assert vqa_accuracy(["two"], answers)["vqa_accuracy"] == pytest.approx(90.0)
    assert vqa_accuracy(["two"], answers, variant="lavis")["vqa_accuracy"] == 0.0  # "2" never meets "two"
    assert vqa_accuracy(["Yes"], [["yes"] * 10], variant="lavis")["vqa_accuracy"] == 100.0


def test_aokvqa_variant_is_min_matches_over_three_on_raw_strings():
    assert vqa_accuracy(["dog"], [humans(2)], variant="aokvqa")["vqa_accuracy"] == pytest.approx(200 / 3)
    assert vqa_accuracy(["dog"], [humans(3)], variant="aokvqa")["vqa_accuracy"] == 100.0
    assert vqa_accuracy(["Dog"], [humans(3)], variant="aokvqa")["vqa_accuracy"] == 0.0


@pytest.mark.parametrize(
    "raw, normalised",
    [
        ("t-shirt", "t shirt"),  # a mark not touching a space becomes a space
        ("red, blue", "red blue"),  # a mark touching a space is deleted
        ("red,blue and 1,000", "redblue and 1000"),  # a digit,digit anywhere deletes every mark
        ("5.", "5"),  # the official period pattern also drops a period after a digit
        ("3.5", "3.5"),
        ("The dont", "don't"),
        ("none of an apple", "0 of apple"),
        ("Im somebody'd", "im somebodyd"),  # capitalised table keys never match; one entry maps the wrong way
        ("a." * 40, "a" * 32 + "a." * 8),  # at most 32 periods are removed (re.UNICODE passed as `count`)
    ],
)
def test_official_answer_normalisation(raw, normalised):
    assert normalize_answer(raw) == normalised


def test_contraction_table_matches_the_official_one():
    assert len(_CONTRACTIONS) == 118  # the official 120 entries less its 2 identity entries (let's, she's)
    assert _CONTRACTIONS["yall'll"] == _CONTRACTIONS["y'allll"] == "y'all'll"
    assert _CONTRACTIONS["'ows'at"] == _CONTRACTIONS["ow's'at"] == _CONTRACTIONS["'ow'sat"] == "'ow's'at"
    assert _CONTRACTIONS["twas"] == "'twas" and "shed" not in _CONTRACTIONS and "somebodyd" not in _CONTRACTIONS


def test_each_mark_is_judged_on_the_original_text():
    # "(" touches a space so it is deleted; ")" touches none so it becomes a (trailing) space.
    assert process_punctuation("a (b)") == "a b "
    assert normalize_answer("a (b)") == "b"


def test_exact_match_normalises_both_sides():
    preds, answers = ["Two", "the cat.", "dog"], ["2", "cat", "dogs"]
    assert exact_match(preds, answers)["exact_match"] == pytest.approx(200 / 3)
    assert exact_match(preds, answers, normalize=False)["exact_match"] == 0.0


def test_ivqa_accuracy_is_min_matches_over_two():
    answers = [["dog", "cat", "cat", "cow", "pig"]] * 4
    # 1 match → 50, 2 → 100, 0 → 0, "The dog." normalised → 1 match → 50; mean 50.
    assert ivqa_accuracy(["dog", "cat", "horse", "The dog."], answers)["ivqa_accuracy"] == pytest.approx(50.0)
    assert ivqa_accuracy(["cat"], [["cat"] * 5])["ivqa_accuracy"] == 100.0


@pytest.mark.parametrize("metric", [vqa_accuracy, ivqa_accuracy])
@pytest.mark.parametrize(
    "preds, answers, message",
    [
        ([], [], "preds is empty"),
        (["a"], [["a"], ["b"]], "preds has 1 items but answers has 2"),
        ([3], [["a"]], r"preds\[0\] is int"),
        (["a"], ["a"], r"answers\[0\] is str 'a': expected a list of str"),
        (["a"], [[]], r"answers\[0\] is empty"),
        (["a"], [["a", None]], r"answers\[0\]\[1\] is NoneType"),
    ],
)
def test_bad_input_names_the_argument(metric, preds, answers, message):
    with pytest.raises(ValueError, match=message):
        metric(preds, answers)


def test_bad_variant_and_bad_exact_match_input():
    with pytest.raises(ValueError, match="variant is 'coco'"):
        vqa_accuracy(["a"], [["a"]], variant="coco")
    with pytest.raises(ValueError, match=r"answers\[0\] is list"):
        exact_match(["a"], [["a"]])
    with pytest.raises(ValueError, match="preds has 2 items but answers has 1"):
        exact_match(["a", "b"], ["a"])


def test_aokvqa_accuracy_is_the_aokvqa_variant_under_its_own_name():
    from lavis_ib.metrics import aokvqa_accuracy

    humans = [["cab"] * 2 + ["taxi"] * 8, ["cab"] * 4 + ["car"] * 6]
    # min(1, raw matches / 3): 2/3 for the first question, 1 for the second
    assert aokvqa_accuracy(["cab", "cab"], humans) == {"aokvqa_accuracy": pytest.approx(100 * (2 / 3 + 1) / 2)}
    assert aokvqa_accuracy(["cab", "cab"], humans)["aokvqa_accuracy"] == vqa_accuracy(
        ["cab", "cab"], humans, variant="aokvqa")["vqa_accuracy"]
