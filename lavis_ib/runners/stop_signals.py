"""Stop signals: SIGTERM/SIGUSR1 (cluster preemption, a time limit) stop a training run at a step's end with a
checkpoint, also when the data comes from DataLoader worker processes.

A signal often reaches the workers too: torchrun forwards it to each rank's process group, which holds the rank's
workers, and SLURM signals every process of the job. A worker used to die of it (torch's C handler re-raises a
SIGTERM that does not come from its parent) and its rank's SIGCHLD handler then raised `RuntimeError: DataLoader
worker (pid N) is killed by signal: Terminated` before the step could finish, so no checkpoint was written. Here a
worker leaves the stop signals to its rank, which records them (`StopRequest`), saves, and shuts its workers down as
it returns. The one SIGTERM a worker obeys is its rank's own: Python's exit terminates daemonic children with it
(when an error keeps the loader alive), and torch's workers exit quietly on it. Workers still end with their rank
otherwise: torch's workers poll their parent and exit within 5 s of its death, and a SIGKILL (torchrun's last resort
after its shutdown timeout) reaches the whole process group.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import Iterator, Optional

from torch.utils.data import DataLoader

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
"""Cluster preemption: finish the current step, write a checkpoint, exit cleanly."""


class StopRequest:
    """Records SIGTERM/SIGUSR1 so the loop can stop after the current step; restores the old handlers."""

    def __init__(self):
        self.signum: Optional[int] = None
        self.previous = {}

    def __enter__(self):
        for signum in STOP_SIGNALS:
            self.previous[signum] = signal.signal(signum, self.handle)
        return self

    def handle(self, signum, frame) -> None:
        self.signum = signum

    def __exit__(self, *exc) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


def leave_stop_signals_to_the_rank(worker_id: int) -> None:
    """`worker_init_fn`: the stop signals stay blocked in the worker (it was started with them blocked) and a thread
    takes each one: SIGTERM from the worker's parent ends it as torch's own handler would, anything else is dropped.
    (Ignoring them outright would make the worker deaf to its rank too, and Python's exit then waits on it forever.)"""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    threading.Thread(target=_obey_only_the_parent, name="stop-signals", daemon=True).start()


def _obey_only_the_parent() -> None:
    while True:
        info = signal.sigwaitinfo(STOP_SIGNALS)
        if info.si_signo == signal.SIGTERM and info.si_pid == os.getppid():
            os._exit(0)


@contextlib.contextmanager
def stop_signals_blocked() -> Iterator[None]:
    """Holds the stop signals back from this thread; one that arrives meanwhile is delivered on exit."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class WorkerSafeLoader(DataLoader):
    """A DataLoader whose workers leave the stop signals to their rank: they keep serving batches until it has
    finished the step and saved. Workers are started with the signals blocked (a fork inherits the mask), so one sent
    while a worker starts up is not fatal either."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, worker_init_fn=leave_stop_signals_to_the_rank, **kwargs)

    def __iter__(self):
        with stop_signals_blocked():
            return super().__iter__()
