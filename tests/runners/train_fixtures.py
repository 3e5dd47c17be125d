"""A small synthetic world and tiny-model training configs for the training-runner tests, plus the commands that
run `train.py` in one process, under torchrun (gloo on CPU), or under one torchrun per "node" of a multi-node job
on this machine."""

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
from lavis_ib.datasets.records import read_jsonl, write_shards

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


def caption_shards(world: Path, folder: Path) -> dict:
    """synthetic_caption's train records (42) written as 11 webdataset shards of ≤ 4 under `folder`, and the config
    block that trains on them (rank 0 of 2 reads 6 shards, 22 records; rank 1 5 shards, 20). Its val split stays JSON
    lines and is not validated (`eval: null`)."""
    write_shards(read_jsonl(world / "datasets/synthetic_caption/train.jsonl"), folder / "train", per_shard=4)
    return {"build_info": {"annotations": {"train": {"storage": str(folder / "train-*.tar")}}}, "eval": None}


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


def node_launches(script: Path, nodes: int, *args: str, per_node: int = 1,
                  torchrun: tuple[str, ...] = ()) -> list[list[str]]:
    """The command of each node of a `nodes`-node job on this machine, as `projects/instructblip/slurm/launch.sh`
    starts them on a cluster: one `python -m lavis_ib.cli.launch` (torchrun) per node with `--nnodes=N
    --node_rank=R --nproc_per_node=<per_node>` and the flags `torchrun`, meeting at one c10d rendezvous on a free
    local port."""
    shared = [f"--nnodes={nodes}", f"--nproc_per_node={per_node}", "--rdzv_backend=c10d",
              f"--rdzv_endpoint=127.0.0.1:{free_port()}", "--rdzv_id=test_job", *torchrun]
    return [[sys.executable, "-m", "lavis_ib.cli.launch", *shared, f"--node_rank={rank}", str(script), *args]
            for rank in range(nodes)]


def train_args(config: Path, options: tuple[str, ...]) -> list[str]:
    """`train.py`'s arguments: the config and its `--options`."""
    return ["--cfg-path", str(config), *(["--options", *options] if options else [])]


def train_command(config: Path, nproc: int, options: tuple[str, ...], script: Path = ROOT / "train.py") -> list[str]:
    return launch(script, nproc, *train_args(config, options))


def train(config: Path, cache: Path, nproc: int = 1, *options: str, script: Path = ROOT / "train.py",
          expect: int = 0) -> subprocess.CompletedProcess:
    """Run training to completion and check its exit status."""
    done = subprocess.run(train_command(config, nproc, options, script), capture_output=True, text=True,
                          timeout=DEADLINE_S, env=environment(cache), cwd=ROOT)
    assert done.returncode == expect, done.stderr[-4000:]
    return done


def start(command: list[str], env: dict, output: Path) -> subprocess.Popen:
    """Start `command` in the background in the repository, its stdout and stderr going to the file `output`."""
    with output.open("w") as sink:
        return subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=ROOT)


def start_training(config: Path, cache: Path, nproc: int, *options: str, script: Path, output: Path,
                   **env: str) -> subprocess.Popen:
    """Start training in the background with `env` added, its stdout and stderr going to the file `output`."""
    return start(train_command(config, nproc, options, script), {**environment(cache), **env}, output)


Launcher = tuple[subprocess.Popen, Path]  # a started launcher and the file its output goes to


def start_nodes(commands: list[list[str]], env: dict, folder: Path) -> list[Launcher]:
    """Start the launchers of one multi-node job at once (`node_launches`), node R's output in `folder/nodeR.txt`."""
    return [(start(command, env, folder / f"node{rank}.txt"), folder / f"node{rank}.txt")
            for rank, command in enumerate(commands)]


def finish(launchers: list[Launcher], expect: int = 0, timeout: float = DEADLINE_S) -> list[str]:
    """Wait for every launcher, check that each exits with status `expect`, and return their outputs."""
    deadline = time.monotonic() + timeout
    for process, output in launchers:
        status = process.wait(timeout=max(deadline - time.monotonic(), 1))
        assert status == expect, f"{output.name} exited with {status}: {output.read_text()[-4000:]}"
    return [output.read_text() for _, output in launchers]


def await_marks(marks: Path, count: int, launchers: list[Launcher]) -> None:
    """Wait until `count` ranks hold at train_driver's `AWAIT_SIGNAL_AFTER_STEP` (their marks in `marks`), failing
    with a launcher's output if it ends first or `DEADLINE_S` passes."""
    deadline = time.monotonic() + DEADLINE_S
    while len(list(marks.glob("rank*"))) < count:
        for process, output in launchers:
            assert process.poll() is None and time.monotonic() < deadline, output.read_text()[-4000:]
        time.sleep(0.05)


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
