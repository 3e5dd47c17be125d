"""Errors about the data a run is given (not the config): reported by the entry points as one line, exit 2."""

from __future__ import annotations


class EvalDataError(ValueError):
    """A record's ground truth is missing or malformed; the message names dataset, split, record and field."""
