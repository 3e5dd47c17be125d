"""Runners: the evaluation loop (`Evaluator`, behind `evaluate.py`), its resumable prediction files and results
table, and the iteration-based training runner (`RunnerIter`, registered as `runner_iter`, behind `train.py`)."""

from lavis_ib.runners.evaluator import Evaluator
from lavis_ib.runners.runner_iter import RunnerIter, TrainingDiverged

__all__ = ["Evaluator", "RunnerIter", "TrainingDiverged"]
