"""`run.fsdp: true` (2-process gloo): the frozen LLM sharded with FSDP2 trains exactly as the DDP run with the LLM
whole — the same losses and trainable weights — and validation, whose ranks run uneven numbers of forwards, works
with the LLM gathered."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from lavis_ib.runners.sharding import shard_frozen_llm
from tests.runners.train_fixtures import ROOT, build_small_world, train, train_losses, write_train_config

DRIVER = ROOT / "tests" / "runners" / "train_driver.py"
STEPS = 4


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_small_world(tmp_path_factory.mktemp("cache"))


def test_sharded_llm_trains_like_the_whole_one(world, tmp_path, monkeypatch):
    # val_limit 3 over 2 ranks: one rank validates more records (and generation steps) than the other
    config = write_train_config(tmp_path / "train.yaml", tmp_path / "out", max_iters=STEPS, save_freq=STEPS,
                                valid_splits=["val"], val_freq=2, val_limit=3, datasets=("synthetic_vqa",))
    whole = train(config, world, 2, "run.job_id=ddp")
    monkeypatch.setenv("DUMP_WEIGHTS_DIR", str(tmp_path / "ranks"))
    sharded = train(config, world, 2, "run.job_id=fsdp", "run.fsdp=true", script=DRIVER)
    assert "the frozen LLM is sharded across 2 ranks (2 blocks, FSDP2)" in sharded.stderr
    assert "the frozen LLM is sharded" not in whole.stderr

    reference = train_losses(tmp_path / "out" / "ddp")
    losses = train_losses(tmp_path / "out" / "fsdp")
    assert sorted(losses) == list(range(1, STEPS + 1))
    assert losses == pytest.approx(reference, abs=1e-6)
    expected = load_file(tmp_path / "out" / "ddp" / "checkpoints" / f"step_{STEPS}" / "model.safetensors")
    got = load_file(tmp_path / "out" / "fsdp" / "checkpoints" / f"step_{STEPS}" / "model.safetensors")
    assert got.keys() == expected.keys() and not any(k.startswith("llm_model.") for k in got)
    assert max((got[k] - expected[k]).abs().max().item() for k in got) <= 1e-6
    ranks = [load_file(tmp_path / "ranks" / f"rank{r}.safetensors") for r in range(2)]
    assert all(torch.equal(ranks[0][k], ranks[1][k]) for k in ranks[0])
    for job in ("ddp", "fsdp"):  # validated at steps 2 and 4, the same predictions
        assert (tmp_path / "out" / job / "validation" / "step_4" / "synthetic_vqa" / "val" / "metrics.json").is_file()
    for step in (2, 4):
        split = ("validation", f"step_{step}", "synthetic_vqa", "val", "predictions.jsonl")
        assert (tmp_path / "out" / "fsdp").joinpath(*split).read_text() == \
            (tmp_path / "out" / "ddp").joinpath(*split).read_text()


def test_an_llm_without_block_classes_is_refused_by_name():
    with pytest.raises(ValueError, match="Sequential lists no decoder block class in _no_split_modules"):
        shard_frozen_llm(nn.Sequential(nn.Linear(2, 2)))
