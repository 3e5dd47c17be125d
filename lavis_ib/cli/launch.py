"""torchrun for jobs that span nodes: `python -m lavis_ib.cli.launch <torchrun arguments> train.py --cfg-path ...`.

It runs torch's own launcher (`torch.distributed.run`, every torchrun flag as in torchrun) and changes two things:

- A rendezvous that does not complete within its `join_timeout` (`--rdzv-conf join_timeout=<s>`, torch's default
  600 s) — a node that never started, never came back after a failure, or was given another `--rdzv-endpoint` or
  `--rdzv-id` — ends with one line naming the rendezvous and the job's last checkpoint, and status 1, instead of
  torch's bare `RendezvousTimeoutError` traceback. No worker has started then, so only the launcher can say it.
- `TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1` unless set: torch's own switch that gives the workers of every rendezvous
  round a fresh store (rank 0 hosts it on a new port) instead of the agent's one store for all rounds. In that
  shared store the workers torchrun restarts (`--max-restarts`) find their predecessors' keys, so a restarted rank
  can connect to a dead peer's address or wait on it (pytorch/pytorch#135712; seen here with torch 2.14 on gloo:
  "Connection refused" with the static `--master_port` rendezvous, which always shares its store, and a hang with
  c10d). Restarts therefore want the c10d rendezvous (`--standalone` on one node) through this launcher.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from torch.distributed import run as torchrun
from torch.distributed.elastic.multiprocessing.errors import record
from torch.distributed.elastic.rendezvous import RendezvousTimeoutError
from torch.distributed.elastic.rendezvous.dynamic_rendezvous import RendezvousTimeout

from lavis_ib.cli import RUN_FAILED, USER_ERRORS


def join_timeout(rdzv_conf: str) -> float:
    """Seconds the rendezvous waits for `--nnodes` nodes: `join_timeout` of torchrun's `--rdzv-conf k=v,...`."""
    conf = dict(item.split("=", 1) for item in rdzv_conf.split(",") if "=" in item)
    return float(conf["join_timeout"]) if "join_timeout" in conf else RendezvousTimeout().join.total_seconds()


def last_checkpoint(script_args: list[str], evaluation: bool = False) -> str:
    """What a relaunch of the job the script's `--cfg-path`/`--options` describe would resume from, as a sentence:
    its last checkpoint, or for an evaluation (`evaluate.py`) the predictions it has written."""
    from lavis_ib.common.config import Config  # on this error path only: a launch that works needs neither
    from lavis_ib.runners.job_folder import CHECKPOINTS_DIR, checkpoint_store

    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--cfg-path")
    parser.add_argument("--options", nargs="+")
    args, _ = parser.parse_known_args(script_args)
    if args.cfg_path is None:
        return "The script has no --cfg-path, so there is no job folder to look for a checkpoint in."
    try:
        run = Config(args.cfg_path, args.options).run
    except USER_ERRORS as error:  # the rendezvous is the news; a config problem only adds to it
        return f"Its config {args.cfg_path} does not load ({error}), so its checkpoints are unknown."
    if run.job_id is None:
        return ("run.job_id is not set, so every launch starts a new job folder and none resumes; set run.job_id "
                "for a job that is relaunched or requeued.")
    job_dir = Path(run.output_dir) / str(run.job_id)
    if evaluation:
        return (f"Evaluation job {run.job_id} keeps the predictions it has written in {job_dir}; relaunching every "
                "node with the same run.job_id predicts only the records still missing.")
    latest = checkpoint_store(job_dir).latest()
    if latest is None:
        return f"Job {run.job_id} has no checkpoint yet ({job_dir / CHECKPOINTS_DIR} holds none)."
    return (f"The last checkpoint of job {run.job_id} is {latest}; relaunching every node with run.resume=auto "
            "(the default) resumes from it.")


def rendezvous_timeout_message(args: argparse.Namespace) -> str:
    """The error for a rendezvous that timed out: its endpoint, id, backend and timeout, then the last checkpoint."""
    return (f"launch: error: rendezvous {args.rdzv_id!r} at {args.rdzv_endpoint} ({args.rdzv_backend}) did not "
            f"complete within join_timeout={join_timeout(args.rdzv_conf):g} s: fewer nodes than --nnodes={args.nnodes} "
            "joined (a node that never started or did not come back, or one given another --rdzv-endpoint or "
            "--rdzv-id), so no worker started. "
            + last_checkpoint(args.training_script_args, Path(args.training_script).name == "evaluate.py"))


@record  # as torchrun's main: a failed rank's error file becomes the launcher's
def main(argv: list[str] | None = None) -> None:
    """torchrun's `main` with a fresh store per rendezvous round and a rendezvous timeout turned into
    `rendezvous_timeout_message` and status 1."""
    os.environ.setdefault("TORCH_DISABLE_SHARE_RDZV_TCP_STORE", "1")  # read by the c10d rendezvous of each round
    args = torchrun.parse_args(argv)
    try:
        torchrun.run(args)
    except RendezvousTimeoutError:
        print(rendezvous_timeout_message(args), file=sys.stderr)
        raise SystemExit(RUN_FAILED) from None


if __name__ == "__main__":
    main()
