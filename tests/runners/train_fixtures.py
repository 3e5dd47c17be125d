"""A small synthetic world and tiny-model training configs for the training-runner tests, plus the commands that
run `train.py` in one process or under torchrun (gloo on CPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Mapping

import yaml

from lavis_ib.common.dist import free_port
from lavis_ib.datasets import synthetic

ROOT = Path(__file__).resolve().parents[2]
DEADLINE_S = 300
RUN_DEFAULTS = {
    "device": "cpu", "num_workers": 0, "batch_size_train": 2, "batch_size_eval": 4, "max_iters": 6,
    "log_freq": 1, "save_freq": 3, "init_lr": 1e-3, "warmup_lr": 1e-5, "warmup_steps": 1, "tensorboard": False,
}


def build_small_world(cache: Path) -> Path:
    """60 scenes (42 train / 6 val per held-in task), written where the default synthetic configs read."""
    synthetic.build_world(cache, n_images=60, n_videos=4)
    return cache


def write_train_config(path: Path, output_dir: Path, datasets=("synthetic_vqa", "synthetic_caption"),
                       model: dict | None = None, **run) -> Path:
    """A project YAML training the tiny Vicuna model on `datasets` (names, or `{name: config block}`) with
    `RUN_DEFAULTS` overridden by `run`."""
    config = {
        "model": {"arch": "blip2_vicuna_instruct", "model_type": "tiny", **(model or {})},
        "datasets": dict(datasets) if isinstance(datasets, Mapping) else {name: {} for name in datasets},
        "run": {**RUN_DEFAULTS, "output_dir": str(output_dir), **run},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def environment(cache: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    # one thread per process, so floating-point reductions are the same in every run
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), TOKENIZERS_PARALLELISM="false", LAVIS_IB_CACHE=str(cache))
    return env


def launch(script: Path, nproc: int, *args: str) -> list[str]:
    """`python script args` for one process, `torchrun --nproc_per_node=N script args` otherwise."""
    if nproc == 1:
        return [sys.executable, str(script), *args]
    return [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", f"--master_port={free_port()}",
            str(script), *args]


def train_command(config: Path, nproc: int, options: tuple[str, ...], script: Path = ROOT / "train.py") -> list[str]:
    return launch(script, nproc, "--cfg-path", str(config), *(["--options", *options] if options else []))


def train(config: Path, cache: Path, nproc: int = 1, *options: str, script: Path = ROOT / "train.py",
          expect: int = 0) -> subprocess.CompletedProcess:
    """Run training to completion and check its exit status."""
    done = subprocess.run(train_command(config, nproc, options, script), capture_output=True, text=True,
                          timeout=DEADLINE_S, env=environment(cache), cwd=ROOT)
    assert done.returncode == expect, done.stderr[-4000:]
    return done


def start_training(config: Path, cache: Path, nproc: int, *options: str, script: Path, output: Path,
                   **env: str) -> subprocess.Popen:
    """Start training in the background with `env` added, its stdout and stderr going to the file `output`."""
    with output.open("w") as sink:
        return subprocess.Popen(train_command(config, nproc, options, script), stdout=sink, stderr=subprocess.STDOUT,
                                env={**environment(cache), **env}, cwd=ROOT)


def still_running(pids: list[int], within: float = 0) -> list[int]:
    """Those of `pids` still running (neither gone nor a zombie waiting to be reaped) after up to `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        alive = [pid for pid in pids if _state(pid) not in (None, "Z", "X")]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.05)


def _state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def train_losses(job_dir: Path) -> dict[int, float]:
    """`{step: train_loss}` from a job's log.txt (a resumed run's later lines replace earlier ones of a step)."""
    losses = {}
    for line in (job_dir / "log.txt").read_text().splitlines():
        record = json.loads(line)
        if "train_loss" in record:
            losses[record["step"]] = record["train_loss"]
    return losses
