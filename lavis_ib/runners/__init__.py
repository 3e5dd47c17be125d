"""Runners: the evaluation loop (`Evaluator`, behind `evaluate.py`), its resumable prediction files and results
table; the training runner (`train.py`) registers under the registry kind `runner`."""

from lavis_ib.runners.evaluator import Evaluator

__all__ = ["Evaluator"]
