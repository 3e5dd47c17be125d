"""Training checkpoints: exact round trips, `latest`/`best` pointers, pruning, RNG state, and a writer killed with
SIGKILL in the middle of a save leaving the previous checkpoint as `latest`."""

from __future__ import annotations

import json
import logging
import random
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch

from lavis_ib.common.io import FileFormatError
from lavis_ib.runners.checkpoints import CheckpointStore, load_checkpoint, rng_state, set_rng_state

REPO = Path(__file__).resolve().parents[2]


def model_state(seed=0):
    generator = torch.Generator().manual_seed(seed)
    base = torch.randn(4, 6, generator=generator)
    return {"query_tokens": torch.randn(1, 3, 8, generator=generator),
            "llm_proj.weight": base, "llm_proj.weight_t": base.t(),  # non-contiguous view of the same storage
            "tied.weight": base,  # the very same tensor under a second name
            "llm_proj.bias": torch.randn(6, generator=generator).to(torch.bfloat16),
            "step_count": torch.tensor(7)}


def train_state(step):
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.ones(3))], lr=1e-3)
    optimizer.param_groups[0]["params"][0].grad = torch.ones(3)
    optimizer.step()
    return {"step": step, "optimizer": optimizer.state_dict(), "scheduler": {"name": "constant_lr", "init_lr": 1e-5},
            "data": {"epoch": 0, "position": [3, 5]}, "rng": rng_state()}


def assert_identical(a, b, where="train_state"):
    """Same structure, container types, values; tensors bitwise equal with the same dtype."""
    assert type(a) is type(b), where
    if isinstance(a, dict):
        assert list(a) == list(b), where
        for key in a:
            assert_identical(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for index, (x, y) in enumerate(zip(a, b)):
            assert_identical(x, y, f"{where}[{index}]")
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b), where
    else:
        assert a == b, where


def test_round_trip_is_exact_and_loads_weights_only(tmp_path):
    store = CheckpointStore(tmp_path / "checkpoints")
    weights, state = model_state(), train_state(5)
    path = store.save(5, weights, state, metadata={"val/agg_metrics": 71.5})
    assert path == tmp_path / "checkpoints" / "step_5"
    assert sorted(p.name for p in path.iterdir()) == ["meta.json", "model.safetensors", "train_state.pt"]
    loaded_weights, loaded_state = store.load(path)
    assert set(loaded_weights) == set(weights)
    for name, tensor in weights.items():
        assert loaded_weights[name].dtype == tensor.dtype and torch.equal(loaded_weights[name], tensor), name
    assert loaded_weights["llm_proj.weight_t"].is_contiguous()
    assert_identical(loaded_state, state)
    assert torch.load(path / "train_state.pt", weights_only=True)["step"] == 5
    meta = json.loads((path / "meta.json").read_text())
    assert meta["step"] == 5 and meta["metadata"] == {"val/agg_metrics": 71.5} and "time" in meta
    assert (tmp_path / "checkpoints" / "latest").read_text() == "step_5\n"
    # the checkpoints root and the job folder load their latest checkpoint too
    assert torch.equal(load_checkpoint(tmp_path / "checkpoints")[0]["query_tokens"], weights["query_tokens"])
    assert load_checkpoint(tmp_path)[1]["step"] == 5


def test_a_train_state_that_weights_only_cannot_read_is_refused_when_saving(tmp_path):
    store = CheckpointStore(tmp_path)
    for bad, where in ((np.zeros(3), r"train_state\['data'\]\['x'\] is a numpy.ndarray"),
                       (defaultdict(int), r"collections.defaultdict"),
                       (np.int64(3), "numpy.int64")):
        with pytest.raises(TypeError, match=where):
            store.save(1, model_state(), {"data": {"x": bad}})
    assert list(tmp_path.iterdir()) == []  # nothing was written
    with pytest.raises(TypeError, match="not JSON serializable"):
        store.save(1, model_state(), {}, metadata={"when": object()})


def test_latest_best_and_pruning(tmp_path):
    store = CheckpointStore(tmp_path, keep_last=2)
    assert store.latest() is None and store.best() is None
    for step in (100, 200):
        store.save(step, model_state(step), {"step": step})
    store.mark_best(100)
    for step in (300, 400):
        store.save(step, model_state(step), {"step": step})
    assert store.steps() == [100, 300, 400]  # 200 pruned; 100 kept because it is the best
    assert store.latest() == tmp_path / "step_400" and store.best() == tmp_path / "step_100"
    assert store.load(None)[1] == {"step": 400}
    store.mark_best(400)  # the old best is no longer protected
    assert store.steps() == [300, 400]
    with pytest.raises(FileNotFoundError, match="step_200"):
        store.mark_best(200)
    store.save(400, model_state(9), {"step": 400, "again": True})  # re-saving a step replaces it
    assert store.load(store.latest())[1] == {"step": 400, "again": True}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best", "latest", "step_300", "step_400"]
    keep_all = CheckpointStore(tmp_path / "all", keep_last=0)
    for step in range(5):
        keep_all.save(step, model_state(), {})
    assert keep_all.steps() == [0, 1, 2, 3, 4]


def test_latest_falls_back_to_the_newest_complete_checkpoint(tmp_path, caplog):
    store = CheckpointStore(tmp_path, keep_last=0)
    for step in (1, 2, 3):
        store.save(step, model_state(), {"step": step})
    (tmp_path / "step_3" / "train_state.pt").unlink()  # incomplete
    (tmp_path / "latest").write_text("step_7\n")  # names a missing directory
    with caplog.at_level(logging.WARNING):
        assert store.latest() == tmp_path / "step_2"
    assert "names step_7" in caplog.text and "using " + str(tmp_path / "step_2") in caplog.text
    (tmp_path / "best").write_text("step_3\n")
    assert store.best() is None  # incomplete: no best, and no guessing


def test_missing_and_corrupt_files_are_errors_naming_the_path(tmp_path):
    store = CheckpointStore(tmp_path)
    path = store.save(1, model_state(), {"step": 1})
    (path / "train_state.pt").rename(path / "moved.pt")
    with pytest.raises(FileNotFoundError, match=rf"{path / 'train_state.pt'} is missing: expected"):
        load_checkpoint(path)
    (path / "moved.pt").write_bytes(b"PK\x03\x04 truncated")
    (path / "moved.pt").rename(path / "train_state.pt")
    with pytest.raises(FileFormatError, match=rf"{path / 'train_state.pt'}: cannot be read with torch.load"):
        load_checkpoint(path)
    (path / "model.safetensors").write_bytes((path / "model.safetensors").read_bytes()[:50])
    with pytest.raises(FileFormatError, match=rf"{path / 'model.safetensors'}: not a readable safetensors file"):
        load_checkpoint(path)
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(FileNotFoundError, match="elsewhere is not a checkpoint: expected a checkpoint directory"):
        load_checkpoint(tmp_path / "elsewhere")
    with pytest.raises(FileNotFoundError, match="checkpoint directory not found: .*nowhere"):
        load_checkpoint(tmp_path / "nowhere")


def draws():
    return (random.random(), float(np.random.rand()), float(np.random.randn()), torch.rand(3).tolist())


def test_rng_state_restores_every_generator_exactly_through_a_checkpoint(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    draws()
    np.random.randn()  # leaves a cached Gaussian in NumPy's state
    state = rng_state()
    expected = draws()
    CheckpointStore(tmp_path).save(0, {}, {"rng": state})
    draws()
    set_rng_state(load_checkpoint(tmp_path)[1]["rng"])
    assert draws() == expected
    with pytest.raises(KeyError, match="lacks numpy"):
        set_rng_state({"python": state["python"], "torch": state["torch"]})


KILLED_WRITER = """
import os, signal, sys, torch
from lavis_ib.runners.checkpoints import CheckpointStore
store = CheckpointStore(sys.argv[1])
store.save(1, {"w": torch.full((64,), 1.0)}, {"step": 1})
def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)
os.replace = die  # the rename that would publish step_2: the process dies with step 2 fully written aside
store.save(2, {"w": torch.full((64,), 2.0)}, {"step": 2})
print("not reached")
"""


def test_a_writer_killed_mid_save_leaves_latest_on_the_previous_checkpoint(tmp_path):
    root = tmp_path / "checkpoints"
    done = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(root)], capture_output=True, text=True,
                          timeout=120, cwd=REPO)
    assert done.returncode == -9, done.stderr[-2000:]
    assert "not reached" not in done.stdout
    leftovers = [p.name for p in root.iterdir() if p.name.startswith(".step_2.tmp-")]
    assert len(leftovers) == 1 and sorted((root / leftovers[0]).iterdir())  # the unfinished write is still there
    store = CheckpointStore(root)
    assert store.latest() == root / "step_1" and store.steps() == [1]
    weights, state = store.load(root)
    assert torch.equal(weights["w"], torch.full((64,), 1.0)) and state == {"step": 1}
    store.save(2, {"w": torch.full((64,), 3.0)}, {"step": 2})  # the next save removes the dead writer's files
    assert sorted(p.name for p in root.iterdir()) == ["latest", "step_1", "step_2"]
    assert store.load(root)[1] == {"step": 2}


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664)])
def test_checkpoint_files_get_the_umask_permissions_so_colleagues_can_read_them(tmp_path, umask, mode):
    """safetensors writes 0600; a shared cluster's other accounts must be able to read the weights."""
    import os

    previous = os.umask(umask)
    try:
        path = CheckpointStore(tmp_path / "checkpoints").save(3, model_state(), train_state(3))
    finally:
        os.umask(previous)
    modes = {p.name: p.stat().st_mode & 0o777 for p in path.iterdir()}
    assert modes == {"model.safetensors": mode, "train_state.pt": mode, "meta.json": mode}
