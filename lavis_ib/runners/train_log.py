"""What a training run writes about itself (rank 0 only): `log.txt` and TensorBoard event files.

`log.txt` holds one JSON object per line: first `{"config": ...}` (the full resolved config, again at every resume),
then one line per event with LAVIS's `"{split}_{name}"` keys (`train_loss`, `train_lr`, `val_agg_metrics`, ...)
plus `step`, so `pandas.read_json(path, lines=True)` reads the whole run. TensorBoard gets the same numbers as
scalars `"{split}/{name}"` under `<job>/tensorboard/`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping

LOG_FILE = "log.txt"
TENSORBOARD_DIR = "tensorboard"


def _plain(value: Any) -> Any:
    """A JSON-safe copy of a logged value: tensors and numpy scalars as numbers, NaN/inf as strings."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class TrainLog:
    """Appends events to `<job>/log.txt` and TensorBoard; every method is a no-op when `enabled` is False (ranks
    other than 0), so callers need no rank checks."""

    def __init__(self, job_dir: Path, enabled: bool = True, tensorboard: bool = True):
        self.enabled = enabled
        self.path = Path(job_dir) / LOG_FILE
        self.writer = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package; only rank 0 loads it

            self.writer = SummaryWriter(log_dir=str(Path(job_dir) / TENSORBOARD_DIR))

    def write_line(self, record: Mapping[str, Any]) -> None:
        """Append one JSON object as a line, flushed at once (a killed run keeps everything logged before)."""
        if not self.enabled:
            return
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({k: _plain(v) for k, v in record.items()}, sort_keys=False) + "\n")

    def config(self, config: Mapping[str, Any], **context: Any) -> None:
        """The resolved config (and e.g. what the run resumes from) as the first line of this start."""
        self.write_line({"config": dict(config), **context})

    def event(self, split: str, step: int, values: Mapping[str, Any]) -> None:
        """`values` logged at `step` as `{split}_{name}` keys in log.txt and `{split}/{name}` scalars."""
        if not self.enabled:
            return
        self.write_line({"step": step, **{f"{split}_{name}": value for name, value in values.items()}})
        if self.writer is not None:
            for name, value in values.items():
                value = _plain(value)
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.writer.add_scalar(f"{split}/{name}", value, step)
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

