"""Exact resume: a run SIGKILLed after step k and resumed with `run.resume=auto` ends with bitwise the trainable
weights and the logged losses of the run that was never interrupted — in one process and in 2-process DDP (gloo).
The 2-process run also checks that DDP keeps every rank's trainable weights identical."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from tests.runners.train_fixtures import ROOT, build_small_world, train, train_losses, write_train_config

DRIVER = ROOT / "tests" / "runners" / "train_driver.py"
STEPS, SAVE_AT = 6, 3


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_small_world(tmp_path_factory.mktemp("cache"))


@pytest.mark.parametrize("nproc", [1, 2])
def test_a_killed_run_resumes_exactly(world, tmp_path, nproc, monkeypatch):
    config = write_train_config(tmp_path / "train.yaml", tmp_path / "out", max_iters=STEPS, save_freq=SAVE_AT,
                                valid_splits=["val"], val_freq=SAVE_AT, val_limit=2, datasets=("synthetic_vqa",))
    monkeypatch.setenv("DUMP_WEIGHTS_DIR", str(tmp_path / "ranks"))
    train(config, world, nproc, "run.job_id=straight", script=DRIVER)
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
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    losses, resumed_losses = train_losses(tmp_path / "out" / "straight"), train_losses(tmp_path / "out" / "killed")
    assert sorted(losses) == list(range(1, STEPS + 1))
    assert resumed_losses == losses  # bitwise: the same floats at every step, the replayed one included
    ranks = [load_file(tmp_path / "ranks" / f"rank{r}.safetensors") for r in range(nproc)]
    assert all(torch.equal(ranks[0][k], other[k]) for other in ranks[1:] for k in ranks[0])
    assert all(torch.equal(ranks[0][k], straight[k]) for k in straight)
