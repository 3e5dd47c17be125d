"""Process trees on Linux (from /proc): what a launcher started, for stopping it whole and for tests that check
that nothing is left running (torchrun, its ranks and their DataLoader workers)."""

from __future__ import annotations

import os
import signal
from pathlib import Path


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants (from /proc), parents before children."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):  # the process ended meanwhile
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    tree = [pid]
    for member in tree:
        tree += sorted(children.get(member, []))
    return tree


def kill_tree(pid: int) -> None:
    """SIGKILL `pid` and every process it started (the whole tree is listed first: a killed parent's children would
    be re-parented and no longer found)."""
    for member in process_tree(pid):
        try:
            os.kill(member, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
