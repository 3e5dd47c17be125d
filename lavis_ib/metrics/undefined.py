"""Metrics without a value on the samples in scope: ROC-AUC of a single class, any metric of no sample at all.

Such a metric is not an error in the input but a fact about the scope (a `--limit 6` smoke run whose first records
are all hateful, a split whose every image was unreadable), so a metric function raises `UndefinedMetricError`
naming the keys it would have returned and why; `measure` turns that into `Undefined(reason)` values, which flow
through the tasks like numbers (group prefixes, merged dicts), and `split_undefined` writes them as `null` with the
reasons beside (`metrics.json`: `"metrics": {"roc_auc": null}, "undefined": {"roc_auc": "..."}`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence


class UndefinedMetricError(ValueError):
    """The metric has no value on these samples; `keys` are the names it would have returned."""

    def __init__(self, reason: str, keys: Sequence[str]):
        super().__init__(reason)
        self.reason, self.keys = reason, tuple(keys)


@dataclass(frozen=True)
class Undefined:
    """The value of a metric that is undefined on the samples in scope, with the reason."""

    reason: str


def measure(metric_fn: Callable[..., dict], *args, **kwargs) -> dict:
    """`metric_fn(*args, **kwargs)`, or each of its keys as `Undefined(reason)` where it has no value here."""
    try:
        return metric_fn(*args, **kwargs)
    except UndefinedMetricError as error:
        return {key: Undefined(error.reason) for key in error.keys}


def split_undefined(values: dict) -> tuple[dict, dict[str, str]]:
    """`(values with every Undefined as None, {key: reason} of those)`: what `metrics.json` records."""
    undefined = {key: value.reason for key, value in values.items() if isinstance(value, Undefined)}
    return {key: None if key in undefined else value for key, value in values.items()}, undefined
