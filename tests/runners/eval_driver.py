"""`evaluate.py` with a test instrument, run as a script (also under torchrun): every prediction also records
`batch`, the ids of the records it was predicted with, so a test can compare batch composition across runs."""

import sys

from lavis_ib.cli import run
from lavis_ib.tasks.base import EvalTask

predict = EvalTask.predict


def predict_recording_batches(self, model, batch):
    rows = predict(self, model, batch)
    for row in rows:
        row["batch"] = [str(i) for i in batch["instance_id"]]
    return rows


if __name__ == "__main__":
    EvalTask.predict = predict_recording_batches
    run("evaluate", sys.argv[1:])
