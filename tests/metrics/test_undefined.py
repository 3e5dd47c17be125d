"""Metrics without a value on the samples given: each raises `UndefinedMetricError` naming the keys it would have
returned (a `ValueError`, so callers catching bad input still catch it), and `measure` / `split_undefined` turn it
into `null` with the reason. Malformed input stays a plain `ValueError`."""

from __future__ import annotations

import pytest

import lavis_ib.metrics.caption as caption_module
from lavis_ib.metrics import (Undefined, UndefinedMetricError, accuracy, aokvqa_accuracy, caption_metrics,
                              exact_match, ivqa_accuracy, measure, ranking_metrics, roc_auc, split_undefined,
                              vqa_accuracy)

CAPTION_KEYS = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr")


@pytest.mark.parametrize("metric, args, keys, reason", [
    (accuracy, ([], []), ("accuracy",), "pred is empty"),
    (roc_auc, ([], []), ("roc_auc",), "scores is empty"),
    (roc_auc, ([0.9, 0.2, 0.4], [1, 1, 1]), ("roc_auc",), "labels are all 1: ROC-AUC needs at least one positive"),
    (roc_auc, ([0.9, 0.2], [0, 0]), ("roc_auc",), "labels are all 0"),
    (vqa_accuracy, ([], []), ("vqa_accuracy",), "preds is empty"),
    (aokvqa_accuracy, ([], []), ("aokvqa_accuracy",), "preds is empty"),
    (exact_match, ([], []), ("exact_match",), "preds is empty"),
    (ivqa_accuracy, ([], []), ("ivqa_accuracy",), "preds is empty"),
    (ranking_metrics, ([],), ("mrr", "r@1", "r@5", "r@10", "mean_rank"), "gt_ranks is empty"),
], ids=lambda value: getattr(value, "__name__", None))
def test_undefined_case_names_its_keys_and_reason(metric, args, keys, reason):
    with pytest.raises(UndefinedMetricError) as error:
        metric(*args)
    assert error.value.keys == keys and error.value.reason.startswith(reason)
    assert isinstance(error.value, ValueError)
    assert measure(metric, *args) == {key: Undefined(error.value.reason) for key in keys}


def test_ranking_metrics_undefined_keys_follow_ks():
    with pytest.raises(UndefinedMetricError) as error:
        ranking_metrics([], ks=[2])
    assert error.value.keys == ("mrr", "r@2", "mean_rank")


@pytest.mark.parametrize("meteor, keys", [(True, CAPTION_KEYS), (False, tuple(k for k in CAPTION_KEYS
                                                                            if k != "METEOR"))])
def test_captions_of_an_empty_set_are_undefined_without_any_java_call(monkeypatch, meteor, keys):
    monkeypatch.setattr(caption_module.shutil, "which", lambda name: None)  # a Java call would raise RuntimeError
    with pytest.raises(UndefinedMetricError, match="preds is empty") as error:
        caption_metrics({}, {}, meteor=meteor)
    assert error.value.keys == keys
    assert split_undefined(measure(caption_metrics, {}, {}, meteor=meteor)) == (
        {key: None for key in keys}, {key: "preds is empty: expected at least one sample" for key in keys})


@pytest.mark.parametrize("metric, args", [
    (accuracy, ([1], [1, 0])),
    (roc_auc, ([0.1, 0.2], [0, 2])),
    (exact_match, (["a"], ["a", "b"])),
    (ranking_metrics, ([0],)),
])
def test_malformed_input_is_not_undefined(metric, args):
    with pytest.raises(ValueError) as error:
        measure(metric, *args)
    assert not isinstance(error.value, UndefinedMetricError)


def test_measure_passes_defined_values_through_and_split_undefined_keeps_key_order():
    assert measure(roc_auc, [0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == {"roc_auc": 75.0}
    values = {"accuracy": 50.0, "roc_auc": Undefined("labels are all 1"), "num_unmapped": 0,
              "in-domain/CIDEr": Undefined("preds is empty")}
    metrics, undefined = split_undefined(values)
    assert metrics == {"accuracy": 50.0, "roc_auc": None, "num_unmapped": 0, "in-domain/CIDEr": None}
    assert list(metrics) == list(values)
    assert undefined == {"roc_auc": "labels are all 1", "in-domain/CIDEr": "preds is empty"}
    assert split_undefined({"accuracy": 1.0}) == ({"accuracy": 1.0}, {})
