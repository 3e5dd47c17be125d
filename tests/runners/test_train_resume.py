"""Exact resume: a run SIGKILLed after step k and resumed with `run.resume=auto` ends with bitwise the trainable
weights and the logged losses of the run that was never interrupted — in 2-process DDP (gloo) over a mixture of a
JSON-lines dataset and a webdataset shard set (each rank drawing from its own shards), which also checks that DDP
keeps every rank's trainable weights identical, and in one process as QLoRA (the committed tiny LLaMA in nf4
with LoRA adapters, which the checkpoints then carry beside the Q-Former).

Preemption with DataLoader workers (torchrun, 2 processes, `num_workers: 1`): SIGTERM to torchrun, or to every
process of the job as SLURM sends it, ends the step after the signal with a checkpoint, and resuming from it is
bitwise the uninterrupted run; no worker outlives its rank, also when the rank is SIGKILLed."""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lavis_ib.common.paths import assets_root
from lavis_ib.common.processes import process_tree
from lavis_ib.datasets.sampling import BalancedSampler
from lavis_ib.runners.checkpoints import load_checkpoint
from tests.runners.train_fixtures import (DEADLINE_S, ROOT, await_marks, build_small_world, caption_shards,
                                          start_training, still_running, train, train_losses, write_train_config)

DRIVER = ROOT / "tests" / "runners" / "train_driver.py"
STEPS, SAVE_AT = 6, 3


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_small_world(tmp_path_factory.mktemp("cache"))


QLORA = {"random_init": False, "load_pretrained": False, "llm_model": str(assets_root / "tiny_lm"),
         "quantization": "nf4", "lora": {"r": 4, "alpha": 8, "dropout": 0.1}}


def shard_draws(checkpoint: Path) -> list[tuple[list[str], int]]:
    """Per rank: the shards its sampler state names for the shard dataset (number 1), and how many of the samples
    it consumed came from that dataset (its stream recomputed from the state)."""
    ranks = load_checkpoint(checkpoint)[1]["ranks"]
    found = []
    for rank, state in enumerate(entry["sampler"] for entry in ranks):
        assert state["layouts"][0] is None  # synthetic_vqa: JSON lines
        stream = BalancedSampler(state["sizes"], state["probabilities"], state["seed"], rank, state["world_size"])
        drawn = [dataset for dataset, _, _ in itertools.islice(stream, state["position"])]
        found.append((state["layouts"][1]["shards"], drawn.count(1)))
    return found


@pytest.mark.parametrize("nproc, model", [(2, None), (1, QLORA)], ids=["2", "1-qlora"])
def test_a_killed_run_resumes_exactly(world, tmp_path, nproc, model, monkeypatch):
    """The 2-process run mixes synthetic_vqa (JSON lines) with synthetic_caption's train split as shards."""
    datasets = {"synthetic_vqa": {}, "synthetic_caption": caption_shards(world, tmp_path / "shards")} if nproc == 2 \
        else ("synthetic_vqa",)
    config = write_train_config(tmp_path / "train.yaml", tmp_path / "out", max_iters=STEPS, save_freq=SAVE_AT,
                                valid_splits=["val"], val_freq=SAVE_AT, val_limit=2, datasets=datasets,
                                model=model)
    monkeypatch.setenv("DUMP_WEIGHTS_DIR", str(tmp_path / "ranks"))
    straight_run = train(config, world, nproc, "run.job_id=straight", script=DRIVER)
    monkeypatch.delenv("DUMP_WEIGHTS_DIR")

    monkeypatch.setenv("KILL_AFTER_STEP", str(SAVE_AT + 1))
    killed = train(config, world, nproc, "run.job_id=killed", script=DRIVER, expect=-9 if nproc == 1 else 1)
    monkeypatch.delenv("KILL_AFTER_STEP")
    checkpoints = tmp_path / "out" / "killed" / "checkpoints"
    assert (checkpoints / "latest").read_text().strip() == f"step_{SAVE_AT}", killed.stderr[-2000:]
    assert not (checkpoints / f"step_{STEPS}").exists()
    train(config, world, nproc, "run.job_id=killed", "run.resume=auto")

    straight = load_file(tmp_path / "out" / "straight" / "checkpoints" / f"step_{STEPS}" / "model.safetensors")
    resumed = load_file(checkpoints / f"step_{STEPS}" / "model.safetensors")
    assert straight.keys() == resumed.keys() and len(straight) > 20
    assert sum(".lora_" in key for key in straight) == (8 if model else 0)
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    losses, resumed_losses = train_losses(tmp_path / "out" / "straight"), train_losses(tmp_path / "out" / "killed")
    assert sorted(losses) == list(range(1, STEPS + 1))
    assert resumed_losses == losses  # bitwise: the same floats at every step, the replayed one included
    ranks = [load_file(tmp_path / "ranks" / f"rank{r}.safetensors") for r in range(nproc)]
    assert all(torch.equal(ranks[0][k], other[k]) for other in ranks[1:] for k in ranks[0])
    assert all(torch.equal(ranks[0][k], straight[k]) for k in straight)
    if nproc == 2:  # the shard dataset took part: sized by its manifest, each rank drew from its own shards
        assert re.search(r"synthetic_caption +42 +[1-9]\d\.\d\d%", straight_run.stderr), straight_run.stderr[-4000:]
        names = [f"train-{n:06d}.tar" for n in range(11)]
        drawn = shard_draws(tmp_path / "out" / "straight" / "checkpoints" / f"step_{STEPS}")
        assert [shards for shards, _ in drawn] == [names[0::2], names[1::2]]
        assert all(count > 0 for _, count in drawn), drawn


# ---------------------------------------------------------------------------------------------------------------
# Preemption with DataLoader workers

SIGNAL_AFTER = 3  # the signal lands after this step; the step after it is the one checkpointed


@pytest.fixture(scope="module")
def with_workers(world, tmp_path_factory):
    """A 2-process config with one DataLoader worker per rank and no periodic checkpoint, and its job run straight
    through: `(config, straight job folder)`."""
    folder = tmp_path_factory.mktemp("workers")
    config = write_train_config(folder / "train.yaml", folder / "out", max_iters=STEPS, save_freq=50, num_workers=1,
                                datasets=("synthetic_vqa",))
    train(config, world, 2, "run.job_id=straight", script=DRIVER)
    return config, folder / "out" / "straight"


def start_paused(config: Path, world: Path, job: str, folder: Path) -> tuple[subprocess.Popen, list[int], Path]:
    """Start `job` under torchrun and wait until both ranks hold after step `SIGNAL_AFTER` for a signal: the
    launcher, its processes (torchrun first, then the ranks, then their workers) and the output file."""
    marks, output = folder / "marks", folder / "output.txt"
    launcher = start_training(config, world, 2, f"run.job_id={job}", script=DRIVER, output=output,
                              AWAIT_SIGNAL_AFTER_STEP=str(SIGNAL_AFTER), AWAIT_SIGNAL_DIR=str(marks))
    await_marks(marks, 2, [(launcher, output)])
    processes = process_tree(launcher.pid)
    assert len(processes) == 5, f"expected torchrun, 2 ranks and their 2 workers: {processes}"
    return launcher, processes, output


@pytest.mark.parametrize("target", ["torchrun", "every_process"])
def test_sigterm_with_dataloader_workers_checkpoints_and_resumes_exactly(world, with_workers, tmp_path, target):
    config, straight = with_workers
    job = f"sigterm_{target}"
    launcher, processes, output = start_paused(config, world, job, tmp_path)
    for pid in processes if target == "every_process" else processes[:1]:
        os.kill(pid, signal.SIGTERM)
    # torchrun forwards the signal to each rank's process group (workers included), waits for the ranks (which exit
    # 0) and then re-raises the signal it got as SignalException: its own status is 1
    assert launcher.wait(timeout=DEADLINE_S) == 1
    text = output.read_text()
    assert text.count(f"stopped after step {SIGNAL_AFTER + 1} with a checkpoint") == 2, text[-4000:]
    assert "DataLoader worker" not in text and "SignalException" in text
    assert still_running(processes, within=1) == []
    checkpoints = straight.parent / job / "checkpoints"
    assert sorted(p.name for p in checkpoints.glob("step_*")) == [f"step_{SIGNAL_AFTER + 1}"]

    train(config, world, 2, f"run.job_id={job}", "run.resume=auto")
    expected = load_file(straight / "checkpoints" / f"step_{STEPS}" / "model.safetensors")
    resumed = load_file(checkpoints / f"step_{STEPS}" / "model.safetensors")
    assert expected.keys() == resumed.keys() and len(expected) > 20
    assert all(torch.equal(expected[k], resumed[k]) for k in expected)
    assert train_losses(checkpoints.parent) == train_losses(straight)


def test_a_sigkilled_rank_leaves_no_dataloader_worker_behind(world, with_workers, tmp_path):
    """A worker drops a SIGTERM that is not its rank's, so torchrun's SIGTERM to a dead rank's group no longer ends
    it: it notices that its parent is gone (torch's workers check every 5 s) and exits."""
    launcher, processes, output = start_paused(with_workers[0], world, "sigkill", tmp_path)
    for rank in processes[1:3]:
        os.kill(rank, signal.SIGKILL)
    assert launcher.wait(timeout=DEADLINE_S) == 1
    assert still_running(processes[3:], within=15) == [], output.read_text()[-4000:]
