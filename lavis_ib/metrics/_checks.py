"""Argument checks shared by the metrics: each failure is a `ValueError` naming the argument and what was expected
(no sample at all: `UndefinedMetricError`, a metric without a value rather than malformed input)."""

from __future__ import annotations

from typing import Mapping, Sequence

from lavis_ib.metrics.undefined import UndefinedMetricError


def _labelled(values):
    """(index or id, item) pairs of a sequence or a mapping, so messages name the offending item."""
    return values.items() if isinstance(values, Mapping) else enumerate(values)


def check_samples(name: str, values: Sequence, keys: Sequence[str]) -> None:
    """At least one sample: a metric of none, whose `keys` are undefined, raises `UndefinedMetricError`."""
    if len(values) == 0:
        raise UndefinedMetricError(f"{name} is empty: expected at least one sample", keys)


def check_paired(left_name: str, left: Sequence, right_name: str, right: Sequence, keys: Sequence[str]) -> None:
    """Both sequences non-empty (`check_samples`) and of one length, since every per-sample metric pairs them item
    by item."""
    check_samples(left_name, left, keys)
    if len(left) != len(right):
        raise ValueError(
            f"{left_name} has {len(left)} items but {right_name} has {len(right)}: expected one per sample"
        )


def check_strings(name: str, values: Sequence) -> None:
    """Every item is a `str` (a prediction or a single reference answer)."""
    for index, value in _labelled(values):
        if not isinstance(value, str):
            raise ValueError(f"{name}[{index!r}] is {type(value).__name__} {value!r}: expected a str")


def check_answer_lists(name: str, values: Sequence) -> None:
    """Every item is a non-empty list (or tuple) of `str`: the reference answers of one sample."""
    for index, value in _labelled(values):
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise ValueError(f"{name}[{index!r}] is {type(value).__name__} {value!r}: expected a list of str")
        if not value:
            raise ValueError(f"{name}[{index!r}] is empty: expected at least one reference answer")
        check_strings(f"{name}[{index!r}]", value)


def percent(numerator: float, denominator: int) -> float:
    """`100 * numerator / denominator`, the paper's reporting unit."""
    return 100.0 * numerator / denominator
