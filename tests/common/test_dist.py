"""Tests for `lavis_ib.common.dist`: single-process behaviour, launcher env parsing, sharding, and a 2-rank gloo run."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from lavis_ib.common import dist as D
from lavis_ib.common.run_schema import RunConfig

LAUNCH_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "SLURM_PROCID", "SLURM_NTASKS",
               "SLURM_STEP_NUM_TASKS", "SLURM_LOCALID", "SLURM_STEP_NODELIST", "SLURM_NODELIST", "SLURM_JOB_NODELIST")
SPAWN_DEADLINE_S = 90


@pytest.fixture
def no_launcher(monkeypatch):
    """A plain `python` run: no torchrun or SLURM variables in the environment."""
    for name in LAUNCH_VARS:
        monkeypatch.delenv(name, raising=False)


# ---------------------------------------------------------------------------------------------------------------
# Single process


@pytest.mark.parametrize("run_cfg", [None, {"device": "cpu"}, RunConfig(device="cpu")])
def test_single_process_needs_no_group_and_helpers_work(no_launcher, run_cfg):
    info = D.init_distributed(run_cfg)
    assert (info.rank, info.world_size, info.local_rank, info.distributed, info.backend) == (0, 1, 0, False, None)
    assert info.is_main
    assert not torch.distributed.is_initialized()
    assert (D.get_rank(), D.get_world_size(), D.is_main_process()) == (0, 1, True)
    assert D.barrier() is None  # LAVIS's dist.barrier() raises here
    assert D.broadcast_object({"a": [1, 2]}) == {"a": [1, 2]}
    assert D.job_id("my_run") == "my_run"
    assert re.fullmatch(r"\d{14}", D.job_id())
    local = [3, 1, 2]
    gathered = D.gather_objects(local)
    assert gathered == [3, 1, 2] and gathered is not local
    assert D.gather_objects(local, dst=0) == [3, 1, 2]


def test_world_size_one_from_a_launcher_creates_no_group(no_launcher, monkeypatch):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("LOCAL_RANK", "0")
    info = D.init_distributed({"device": "cpu"})
    assert (info.distributed, info.world_size, info.device) == (False, 1, torch.device("cpu"))
    assert not torch.distributed.is_initialized()
    with D.distributed_run({"device": "cpu"}) as ctx_info:
        assert ctx_info == info


def test_shard_sizes_for_seven_over_three():
    assert [D.shard_indices(7, r, 3) for r in range(3)] == [range(0, 3), range(3, 5), range(5, 7)]


@pytest.mark.parametrize(("n", "rank", "world"), [(-1, 0, 1), (5, 2, 2), (5, 0, 0), (5, -1, 2)])
def test_bad_shard_arguments(n, rank, world):
    with pytest.raises(ValueError, match="cannot shard"):
        D.shard_indices(n, rank, world)


# ---------------------------------------------------------------------------------------------------------------
# Two ranks over gloo


def _two_rank_worker(rank: int, port: int, out_dir: str) -> None:
    """One rank of the 2-process run: exercises every collective helper and writes what it saw to rank<N>.json."""
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    for name in ("SLURM_PROCID", "SLURM_NTASKS"):
        os.environ.pop(name, None)
    seen: dict = {}
    with D.distributed_run({"device": "cpu"}) as info:
        seen["info"] = [info.rank, info.world_size, info.local_rank, info.distributed, info.backend, str(info.device)]
        seen["idempotent"] = D.init_distributed({"device": "cpu"}) == info
        seen["helpers"] = [D.get_rank(), D.get_world_size(), D.is_main_process()]
        shard = list(D.shard_indices(7, D.get_rank(), D.get_world_size()))
        seen["shard"] = shard
        seen["gather_dst0"] = D.gather_objects(shard, dst=0)
        seen["gather_all"] = D.gather_objects(shard)
        # overlapping results (3 on both ranks, identical) collapse; rank 1 lists its ids in reverse
        records = [{"id": i, "pred": str(i * i)} for i in (range(0, 4) if rank == 0 else range(6, 2, -1))]
        seen["by_id"] = D.gather_by_id(records)
        seen["by_id_dst0"] = D.gather_by_id(records, dst=0)
        clash = [{"id": 3, "pred": f"rank{rank}"}]
        try:
            D.gather_by_id(clash)
            seen["clash"] = None
        except ValueError as error:
            seen["clash"] = str(error)
        # rank 1's own candidates differ (a different explicit id, a clock that would read another minute)
        seen["job_explicit"] = D.job_id("run_A" if rank == 0 else "run_B")
        seen["job_clock"] = D.job_id(None if rank == 0 else "19990101000000")
        seen["bcast0"] = D.broadcast_object({"from": rank, "xs": [rank] * 3}, src=0)
        seen["bcast1"] = D.broadcast_object(("rank", rank), src=1)
        D.barrier()
    seen["after"] = [torch.distributed.is_initialized(), D.get_world_size()]
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps(seen))


@pytest.fixture(scope="module")
def two_rank_results(tmp_path_factory):
    """What each of two spawned gloo ranks saw, as {rank: dict}; fails if the run hangs past the deadline."""
    out_dir = tmp_path_factory.mktemp("dist")
    context = mp.spawn(_two_rank_worker, args=(D.free_port(), str(out_dir)), nprocs=2, join=False)
    deadline = time.monotonic() + SPAWN_DEADLINE_S
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"2-rank gloo run did not finish within {SPAWN_DEADLINE_S} s")
    return {rank: json.loads((out_dir / f"rank{rank}.json").read_text()) for rank in (0, 1)}


def test_two_ranks_form_a_gloo_group_and_shut_down(two_rank_results):
    for rank, seen in two_rank_results.items():
        assert seen["info"] == [rank, 2, rank, True, "gloo", "cpu"]
        assert seen["idempotent"] is True
        assert seen["helpers"] == [rank, 2, rank == 0]
        assert seen["after"] == [False, 1]


def test_two_ranks_gather_seven_items_exactly_once(two_rank_results):
    r0, r1 = two_rank_results[0], two_rank_results[1]
    assert (r0["shard"], r1["shard"]) == ([0, 1, 2, 3], [4, 5, 6])
    assert r0["gather_dst0"] == list(range(7)) and r1["gather_dst0"] is None
    assert r0["gather_all"] == r1["gather_all"] == list(range(7))


def test_two_ranks_merge_results_by_id(two_rank_results):
    expected = [{"id": i, "pred": str(i * i)} for i in range(7)]
    assert two_rank_results[0]["by_id"] == two_rank_results[1]["by_id"] == expected
    assert two_rank_results[0]["by_id_dst0"] == expected and two_rank_results[1]["by_id_dst0"] is None
    for seen in two_rank_results.values():
        assert "id 3 has different results on rank 0" in seen["clash"] and "and rank 1" in seen["clash"]


def test_two_ranks_share_rank_zeros_job_id_and_broadcasts(two_rank_results):
    r0, r1 = two_rank_results[0], two_rank_results[1]
    assert r0["job_explicit"] == r1["job_explicit"] == "run_A"
    assert r0["job_clock"] == r1["job_clock"] and re.fullmatch(r"\d{14}", r0["job_clock"])
    assert r1["job_clock"] != "19990101000000"
    assert r0["bcast0"] == r1["bcast0"] == {"from": 0, "xs": [0, 0, 0]}
    assert r0["bcast1"] == r1["bcast1"] == ["rank", 1]


@pytest.mark.parametrize(("n", "batch_size"), [(0, 3), (1, 8), (5, 8), (9, 2), (10, 3), (17, 17), (200, 8)])
def test_every_world_size_forms_the_batches_of_one_process(n, batch_size):
    """Whole batches are sharded, not items: the batches of every world size are those of one process, each rank's
    a contiguous run of them (the last batch possibly short), nothing padded or repeated."""
    batches = D.batch_ranges(n, batch_size)
    assert [list(b) for b in batches] == [list(range(s, min(s + batch_size, n))) for s in range(0, n, batch_size)]
    for world in (1, 2, 3, 4, 7):
        shards = [D.shard_batches(batches, rank, world) for rank in range(world)]
        assert sum(shards, []) == batches  # the same batch sets, in order, each once
        sizes = [len(shard) for shard in shards]
        assert max(sizes) - min(sizes) <= 1
        for shard in shards:
            items = [i for batch in shard for i in batch]
            start = items[0] if items else 0
            assert items == list(range(start, start + len(items)))  # contiguous


def test_a_second_rank_starts_on_a_batch_boundary():
    """200 records in batches of 8 on 2 ranks: rank 1 starts at record 104 (batch 13), not at 100 as an item shard
    would, whose batches would hold other neighbours than one process's."""
    batches = D.batch_ranges(200, 8)
    assert [D.shard_batches(batches, r, 2)[0] for r in range(2)] == [range(0, 8), range(104, 112)]
    assert D.shard_indices(200, 1, 2)[0] == 100  # the item shard


@pytest.mark.parametrize(("n", "batch_size"), [(-1, 2), (5, 0)])
def test_bad_batch_arguments(n, batch_size):
    with pytest.raises(ValueError, match="cannot cut"):
        D.batch_ranges(n, batch_size)
