"""The stop signals and DataLoader workers, in one process: a worker that another process sends SIGTERM/SIGUSR1 keeps
serving batches (the signal is its rank's to act on), and it still ends with its loader and on its own process's
exit. Under torchrun: test_train_resume.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

from lavis_ib.runners.stop_signals import STOP_SIGNALS, StopRequest, WorkerSafeLoader
from lavis_ib.common.processes import process_tree
from tests.runners.train_fixtures import ROOT, still_running


def send_from_another_process(pid: int, signals) -> None:
    """As torchrun or SLURM would: the sender is not the worker's parent."""
    code = f"import os\nfor signum in {[int(s) for s in signals]}: os.kill({pid}, signum)"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_workers_leave_the_stop_signals_to_their_rank_and_end_with_their_loader():
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    before = set(process_tree(os.getpid()))
    with StopRequest() as stop:
        batches = iter(WorkerSafeLoader(list(range(6)), batch_size=1, num_workers=1))
        first = next(batches)
        workers = [pid for pid in process_tree(os.getpid()) if pid not in before]
        assert len(workers) == 1 and signal.pthread_sigmask(signal.SIG_BLOCK, []) == mask
        send_from_another_process(workers[0], STOP_SIGNALS)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)  # the signals are delivered
        rest = [int(batch) for batch in batches]  # a killed worker would raise "DataLoader worker ... is killed"
        assert stop.signum == signal.SIGTERM
    assert [int(first), *rest] == list(range(6))
    del batches
    assert still_running(workers, within=10) == []


def test_a_process_that_exits_with_a_live_loader_still_ends_its_workers():
    """Python's exit sends its daemonic children SIGTERM and waits for them: the one SIGTERM a worker obeys."""
    code = textwrap.dedent("""
        from lavis_ib.runners.stop_signals import WorkerSafeLoader
        batches = iter(WorkerSafeLoader(list(range(100)), batch_size=1, num_workers=1))  # alive until the exit
        next(batches)
        raise SystemExit(3)
    """)
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 3, done.stderr[-2000:]
