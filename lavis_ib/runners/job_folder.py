"""What a training launch may do with its job folder: checked before anything is built, and nothing is deleted.

`run.resume` decides what happens when `<output_dir>/<job_id>/checkpoints` already holds checkpoints (a relaunch,
a SLURM requeue, the same command run twice):

- `auto` (the default): continue from `checkpoints/latest`, exactly;
- `restart`: start again from step 0 after moving the job folder's contents into `set_aside/<time>/`;
- `never`: refuse to start, naming the folder, its latest step and the two other choices.

Whatever a launch would otherwise write over (a restart's old run, the checkpoints after the one a run resumes
from) is moved aside, never deleted.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Optional

from lavis_ib.common.schema import ConfigError
from lavis_ib.runners.checkpoints import STEP_DIR, CheckpointStore

log = logging.getLogger(__name__)

SET_ASIDE_DIR = "set_aside"
CHECKPOINTS_DIR = "checkpoints"


def checkpoint_store(job_dir: Path, keep_last: int = 3) -> CheckpointStore:
    return CheckpointStore(job_dir / CHECKPOINTS_DIR, keep_last=keep_last)


def check_output_dir(output_dir: str, job_dir: Optional[Path], cfg_path: str) -> None:
    """`run.output_dir` (and the job folder, when its name is known) must be folders or not exist yet."""
    for path, what in ((Path(output_dir), "run.output_dir"), (job_dir, "the job folder <run.output_dir>/<job_id>")):
        if path is not None and path.exists() and not path.is_dir():
            raise ConfigError(f"{cfg_path}: {what} {path} is a file, not a folder; set run.output_dir to a folder "
                              "(it is created if missing)")


def check_resume_choice(resume: str, job_dir: Path, cfg_path: str) -> None:
    """With `run.resume: never`, refuse a job folder that holds checkpoints (before any process group opens)."""
    steps = checkpoint_store(job_dir).steps()
    if resume != "never" or not steps:
        return
    raise ConfigError(
        f"{cfg_path}: {job_dir / CHECKPOINTS_DIR} already holds {len(steps)} checkpoint(s), the latest at step "
        f"{steps[-1]}, and run.resume is 'never'; continue that run with run.resume=auto, or train again from step 0 "
        f"with run.resume=restart (its files are moved to {job_dir / SET_ASIDE_DIR}/<time>/ first, nothing is "
        "deleted), or choose another run.job_id")


def set_aside(job_dir: Path, names: list[str], reason: str) -> Optional[Path]:
    """Move the entries `names` of `job_dir` (paths relative to it) into `job_dir/set_aside/<time>/`, keeping their
    relative paths; return that folder (None when there was nothing to move). Rank 0 only."""
    present = [name for name in names if (job_dir / name).exists()]
    if not present:
        return None
    target = job_dir / SET_ASIDE_DIR / time.strftime("%Y%m%d-%H%M%S")
    suffix = 0
    while target.exists():  # two set-asides within a second
        suffix += 1
        target = target.with_name(f"{target.name.split('.')[0]}.{suffix}")
    for name in present:
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        os.replace(job_dir / name, destination)
    log.warning("%s: moved %s to %s (nothing was deleted)", reason, ", ".join(present), target)
    return target


def set_aside_for_restart(job_dir: Path) -> Optional[Path]:
    """`run.resume: restart`: everything an earlier run left in the job folder, except earlier set-asides."""
    if not job_dir.is_dir():
        return None
    names = sorted(p.name for p in job_dir.iterdir() if p.name != SET_ASIDE_DIR)
    return set_aside(job_dir, names, f"run.resume=restart in {job_dir}")


def set_aside_later_checkpoints(job_dir: Path, resumed: Path) -> Optional[Path]:
    """A run resumed from `resumed` (a step_<N> of its own store) would write over the store's later checkpoints:
    move those aside first."""
    store = checkpoint_store(job_dir)
    match = STEP_DIR.fullmatch(resumed.name)
    if match is None or resumed.resolve().parent != store.root.resolve():
        return None
    later = sorted((int(m.group(1)), p.name) for p in store.root.iterdir()
                   if (m := STEP_DIR.fullmatch(p.name)) and int(m.group(1)) > int(match.group(1)))
    names = [f"{CHECKPOINTS_DIR}/{name}" for _, name in later]
    return set_aside(job_dir, names, f"resuming from {resumed.name}, which is older than the job's later checkpoints")
