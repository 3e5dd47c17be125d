"""Metrics are registered under the registry kind `metric`, so a config can name them."""

from __future__ import annotations

import pytest

import lavis_ib.metrics as metrics
from lavis_ib.common.registry import registry

NAMES = ["accuracy", "aokvqa_accuracy", "caption_metrics", "exact_match", "ivqa_accuracy", "ranking_metrics", "roc_auc", "vqa_accuracy"]


def test_every_metric_is_registered_under_its_function_name():
    assert registry.list_metrics() == NAMES
    for name in NAMES:
        assert registry["metric"].get(name) is getattr(metrics, name)


def test_unknown_metric_names_the_closest_one():
    with pytest.raises(KeyError, match="did you mean 'vqa_accuracy'"):
        registry.get_metric_class("vqa_acuracy")
