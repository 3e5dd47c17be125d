"""Closed-set metrics: top-1 accuracy, ROC-AUC (HatefulMemes) and the Visual Dialog ranking metrics."""

from __future__ import annotations

import math
import operator
from typing import Sequence

from lavis_ib.common.registry import registry
from lavis_ib.metrics._checks import check_paired, check_samples, percent
from lavis_ib.metrics.undefined import UndefinedMetricError


@registry.register_metric("accuracy")
def accuracy(pred: list[int], gold: list[int]) -> dict:
    """Top-1 accuracy in percent: the share of samples whose predicted class index equals the gold one."""
    check_paired("pred", pred, "gold", gold, ["accuracy"])
    return {"accuracy": percent(sum(p == g for p, g in zip(pred, gold)), len(pred))}


def _doubled_average_ranks(scores: Sequence[float]) -> list[int]:
    """Twice each score's 1-based rank, ties sharing the mean of their ranks (doubling keeps it an integer)."""
    order = sorted(range(len(scores)), key=scores.__getitem__)
    doubled = [0] * len(scores)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and scores[order[end + 1]] == scores[order[start]]:
            end += 1
        for position in range(start, end + 1):
            doubled[order[position]] = (start + 1) + (end + 1)
        start = end + 1
    return doubled


@registry.register_metric("roc_auc")
def roc_auc(scores: list[float], labels: list[int]) -> dict:
    """Area under the ROC curve in percent, as the Mann-Whitney U of the positives' average ranks (equal to
    sklearn's `roc_auc_score`, ties counting one half). Higher scores mean "positive"; ±inf is allowed, NaN not.
    Labels of one class only leave it undefined (`UndefinedMetricError`)."""
    check_paired("scores", scores, "labels", labels, ["roc_auc"])
    values = []
    for index, score in enumerate(scores):
        try:
            value = float(score)
        except (TypeError, ValueError):
            raise ValueError(f"scores[{index}] is {score!r}: expected a number") from None
        if math.isnan(value):
            raise ValueError(f"scores[{index}] is NaN: expected a number")
        values.append(value)
    for index, label in enumerate(labels):
        if isinstance(label, str) or label not in (0, 1):
            raise ValueError(f"labels[{index}] is {label!r}: expected 0 or 1")
    positives = sum(1 for label in labels if label == 1)
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        raise UndefinedMetricError(
            f"labels are all {int(positives > 0)}: ROC-AUC needs at least one positive (1) and one negative (0)",
            ["roc_auc"],
        )
    doubled = _doubled_average_ranks(values)
    doubled_u = sum(rank for rank, label in zip(doubled, labels) if label == 1) - positives * (positives + 1)
    return {"roc_auc": percent(doubled_u, 2 * positives * negatives)}


@registry.register_metric("ranking_metrics")
def ranking_metrics(gt_ranks: list[int], ks: Sequence[int] = (1, 5, 10)) -> dict:
    """Visual Dialog metrics from each round's 1-based rank of the true answer: MRR and R@k in percent, and the
    mean rank (in ranks, not percent)."""
    check_samples("gt_ranks", gt_ranks, ["mrr", *(f"r@{k}" for k in ks), "mean_rank"])
    ranks = []
    for index, rank in enumerate(gt_ranks):
        try:
            value = operator.index(rank)
        except TypeError:
            raise ValueError(f"gt_ranks[{index}] is {rank!r}: expected an integer rank >= 1") from None
        if isinstance(rank, bool) or value < 1:
            raise ValueError(f"gt_ranks[{index}] is {rank!r}: expected an integer rank >= 1 (ranks are 1-based)")
        ranks.append(value)
    result = {"mrr": percent(sum(1.0 / rank for rank in ranks), len(ranks))}
    result.update({f"r@{k}": percent(sum(rank <= k for rank in ranks), len(ranks)) for k in ks})
    result["mean_rank"] = sum(ranks) / len(ranks)
    return result
