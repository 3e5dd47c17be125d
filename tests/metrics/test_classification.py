"""Accuracy, ROC-AUC (hand values and sklearn as the oracle) and the Visual Dialog ranking metrics."""

from __future__ import annotations

import random

import pytest

from lavis_ib.metrics import accuracy, ranking_metrics, roc_auc


def test_accuracy():
    assert accuracy([1, 2, 3, 4], [1, 2, 0, 0]) == {"accuracy": 50.0}
    assert accuracy([0], [0]) == {"accuracy": 100.0}


def test_roc_auc_hand_values():
    # Positives 0.35, 0.8 vs negatives 0.1, 0.4: 3 of 4 pairs ordered correctly.
    assert roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == {"roc_auc": 75.0}
    # Positives 0.5, 0.9 vs negatives 0.5, 0.2: pairs 0.5 (tie), 1, 1, 1 → 3.5 / 4.
    assert roc_auc([0.5, 0.5, 0.2, 0.9], [1, 0, 0, 1]) == {"roc_auc": 87.5}
    assert roc_auc([1.0, 1.0, 1.0], [0, 1, 1]) == {"roc_auc": 50.0}
    assert roc_auc([0.0, float("inf")], [0, 1]) == {"roc_auc": 100.0}


@pytest.mark.parametrize("seed", range(20))
def test_roc_auc_equals_sklearn_with_ties(seed):
    from sklearn.metrics import roc_auc_score

    rng = random.Random(seed)
    size = rng.randint(2, 300)
    labels = [rng.randint(0, 1) for _ in range(size)]
    labels[:2] = [0, 1]
    # Few distinct values so that ties (within and across the classes) are common.
    scores = [round(rng.random(), rng.choice([1, 2, 6])) for _ in range(size)]
    assert roc_auc(scores, labels)["roc_auc"] == pytest.approx(100 * roc_auc_score(labels, scores), abs=1e-9)


@pytest.mark.parametrize(
    "scores, labels, message",
    [
        ([], [], "scores is empty"),
        ([0.1, 0.2], [1], "scores has 2 items but labels has 1"),
        ([0.1, 0.2], [1, 1], "labels are all 1: ROC-AUC needs at least one positive"),
        ([0.1, 0.2], [0, 0], "labels are all 0"),
        ([0.1, 0.2], [0, 2], r"labels\[1\] is 2: expected 0 or 1"),
        ([0.1, 0.2], [0, "1"], r"labels\[1\] is '1': expected 0 or 1"),
        ([0.1, float("nan")], [0, 1], r"scores\[1\] is NaN"),
        ([0.1, "high"], [0, 1], r"scores\[1\] is 'high': expected a number"),
    ],
)
def test_roc_auc_bad_input(scores, labels, message):
    with pytest.raises(ValueError, match=message):
        roc_auc(scores, labels)


def test_ranking_metrics_hand_values():
    result = ranking_metrics([1, 2, 5, 10, 20])
    # MRR = (1 + 1/2 + 1/5 + 1/10 + 1/20) / 5 = 1.85 / 5; mean rank = 38 / 5.
    assert result == pytest.approx({"mrr": 37.0, "r@1": 20.0, "r@5": 60.0, "r@10": 80.0, "mean_rank": 7.6})


@pytest.mark.parametrize(
    "ranks, message",
    [([], "gt_ranks is empty"), ([1, 0], r"gt_ranks\[1\] is 0: expected an integer rank >= 1"),
     ([2.5], r"gt_ranks\[0\] is 2.5"), ([True], r"gt_ranks\[0\] is True")],
)
def test_ranking_metrics_bad_input(ranks, message):
    with pytest.raises(ValueError, match=message):
        ranking_metrics(ranks)


@pytest.mark.parametrize("pred, gold, message", [([], [], "pred is empty"), ([1], [1, 2], "pred has 1 items")])
def test_accuracy_bad_input(pred, gold, message):
    with pytest.raises(ValueError, match=message):
        accuracy(pred, gold)
