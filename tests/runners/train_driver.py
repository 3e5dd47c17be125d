"""`train.py` with test instruments, run as a script (also under torchrun):

- `KILL_AFTER_STEP=k`: every rank (only rank `KILL_RANK=r` when that is set) SIGKILLs itself right after
  optimizer step k, before that step's bookkeeping — a crash that loses everything not yet checkpointed.
- `DUMP_WEIGHTS_DIR=d`: after the last step every rank writes its trainable weights to `d/rank<r>.safetensors`.
- `AWAIT_SIGNAL_AFTER_STEP=k` with `AWAIT_SIGNAL_DIR=d`: right after optimizer step k every rank creates `d/rank<r>`
  and waits until its stop handler has seen a signal, which the test sends from outside: the signal lands
  at a known step however slow the machine.

- `LATE_RESTART=s`: in an attempt torchrun restarted, rank 0 joins the process group `s` seconds after the others,
  the case in which a store shared across attempts hands them the previous rank 0's address.

The kill and the wait act in torchrun's first attempt only (`TORCHELASTIC_RESTART_COUNT` unset or 0), so the
workers torchrun restarts after them (`--max-restarts`) run on undisturbed.
"""

import logging
import os
import signal
import sys
import time
from pathlib import Path

from safetensors.torch import save_file

from lavis_ib.cli import load_runner
from lavis_ib.common import dist


def main() -> None:
    logging.basicConfig(level=logging.INFO)  # as train.py (cli.run) does
    runner = load_runner("train", sys.argv[1:])
    first_attempt = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", 0)) == 0
    kill_after = int(os.environ.get("KILL_AFTER_STEP", 0)) if first_attempt else 0
    kill_rank = os.environ.get("KILL_RANK")
    dump = os.environ.get("DUMP_WEIGHTS_DIR")
    await_after = int(os.environ.get("AWAIT_SIGNAL_AFTER_STEP", 0)) if first_attempt else 0

    def instrument(step: int, record: dict) -> None:
        if step == kill_after and kill_rank in (None, str(dist.get_rank())):
            os.kill(os.getpid(), signal.SIGKILL)
        if step == await_after:
            mark = Path(os.environ["AWAIT_SIGNAL_DIR"]) / f"rank{dist.get_rank()}"
            mark.parent.mkdir(parents=True, exist_ok=True)
            mark.touch()
            deadline = time.monotonic() + 120
            while runner.stop.signum is None:
                if time.monotonic() > deadline:
                    raise SystemExit(f"no stop signal within 120 s of step {step}")
                time.sleep(0.02)
        if dump and step == runner.max_iters:
            Path(dump).mkdir(parents=True, exist_ok=True)
            weights = {k: v.contiguous().clone() for k, v in runner.state.model.trainable_state_dict().items()}
            save_file(weights, str(Path(dump) / f"rank{dist.get_rank()}.safetensors"))

    runner.step_hooks.append(instrument)
    if not first_attempt and os.environ.get("RANK") == "0":
        time.sleep(float(os.environ.get("LATE_RESTART", 0)))
    runner.train()


if __name__ == "__main__":
    main()
