"""`train.py` with test instruments, run as a script (also under torchrun):

- `KILL_AFTER_STEP=k`: every rank SIGKILLs itself right after optimizer step k, before that step's bookkeeping —
  a crash that loses everything not yet checkpointed.
- `DUMP_WEIGHTS_DIR=d`: after the last step every rank writes its trainable weights to `d/rank<r>.safetensors`.
- `AWAIT_SIGNAL_AFTER_STEP=k` with `AWAIT_SIGNAL_DIR=d`: right after optimizer step k every rank creates `d/rank<r>`
  and waits until its stop handler has seen a signal, which the test sends from outside: the signal lands
  at a known step however slow the machine.
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
    kill_after = int(os.environ.get("KILL_AFTER_STEP", 0))
    dump = os.environ.get("DUMP_WEIGHTS_DIR")
    await_after = int(os.environ.get("AWAIT_SIGNAL_AFTER_STEP", 0))

    def instrument(step: int, record: dict) -> None:
        if step == kill_after:
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
    runner.train()


if __name__ == "__main__":
    main()
