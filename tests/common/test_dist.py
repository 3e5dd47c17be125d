"""Tests for `lavis_ib.common.dist`: single-process behaviour, launcher env parsing, sharding, and a 2-rank gloo run."""

from __future__ import annotations

import json
import math
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


@pytest.mark.parametrize("bad", ["", "  ", ".", "..", "a/b", "a\\b"])
def test_job_id_rejects_names_that_are_not_one_directory(no_launcher, bad):
    with pytest.raises(ValueError, match="directory name"):
        D.job_id(bad)


def test_job_id_accepts_a_yaml_number_as_text(no_launcher):
    assert D.job_id(20240101) == "20240101"


def test_gather_rejects_a_non_list(no_launcher):
    with pytest.raises(TypeError, match="list"):
        D.gather_objects((1, 2))


# ---------------------------------------------------------------------------------------------------------------
# gather_by_id merging (single process: one rank's list)


def test_gather_by_id_sorts_and_drops_identical_duplicates(no_launcher):
    records = [{"id": 5, "p": "b"}, {"id": 2, "p": "a"}, {"id": 5, "p": "b"}, {"id": 10, "p": "c"}]
    assert D.gather_by_id(records) == [{"id": 2, "p": "a"}, {"id": 5, "p": "b"}, {"id": 10, "p": "c"}]


def test_gather_by_id_orders_mixed_ids_and_treats_nan_as_equal(no_launcher):
    records = [{"qid": "b", "s": math.nan}, {"qid": 3, "s": 1.0}, {"qid": "b", "s": math.nan}, {"qid": "a", "s": 0}]
    merged = D.gather_by_id(records, key="qid")
    assert [r["qid"] for r in merged] == [3, "a", "b"]


def test_gather_by_id_conflict_names_the_id_and_ranks(no_launcher):
    with pytest.raises(ValueError, match=r"id 7 has different results on rank 0 .*'yes'.* and rank 0 .*'no'"):
        D.gather_by_id([{"id": 7, "answer": "yes"}, {"id": 7, "answer": "no"}])


def test_gather_by_id_missing_key(no_launcher):
    with pytest.raises(KeyError, match="question_id"):
        D.gather_by_id([{"id": 1}], key="question_id")


# ---------------------------------------------------------------------------------------------------------------
# Launcher environment (pure functions, no group)


def test_torchrun_env():
    env = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "MASTER_ADDR": "10.0.0.2", "MASTER_PORT": "1234"}
    assert D.parse_dist_env(env) == D.DistEnv(3, 4, 1, "10.0.0.2", 1234, "torchrun")


def test_torchrun_env_defaults_and_precedence_over_slurm():
    env = {"RANK": "1", "WORLD_SIZE": "2", "SLURM_PROCID": "0", "SLURM_NTASKS": "8", "SLURM_LOCALID": "0"}
    assert D.parse_dist_env(env) == D.DistEnv(1, 2, 1, "127.0.0.1", 29500, "torchrun")


def test_slurm_env_takes_master_from_the_first_node():
    env = {"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1", "SLURM_NODELIST": "gpu[07-09,12],cpu01"}
    assert D.parse_dist_env(env) == D.DistEnv(5, 8, 1, "gpu07", 29500, "slurm")
    assert D.parse_dist_env({**env, "MASTER_ADDR": "head", "MASTER_PORT": "4000"}).master_addr == "head"
    assert D.parse_dist_env({**env, "MASTER_PORT": "4000"}).master_port == 4000


def srun_tasks(hosts: tuple[str, ...], per_node: int, job_nodelist: str, job_tasks: int, **step: str) -> list[dict]:
    """The environment `srun --ntasks-per-node=<per_node>` gives each of its tasks on `hosts` (node by node), in a
    job allocated `job_nodelist` with `job_tasks` tasks: the variables a rank reads and those around them it must
    not be misled by (the job's node list and task count, the "4(x2)"-style task counts per node); `step` overrides."""
    nodes, tasks = len(hosts), len(hosts) * per_node
    shared = {"SLURM_JOB_ID": "4242", "SLURM_JOB_NODELIST": job_nodelist, "SLURM_NODELIST": job_nodelist,
              "SLURM_NTASKS": str(job_tasks), "SLURM_NPROCS": str(job_tasks), "SLURM_NNODES": str(nodes),
              "SLURM_NTASKS_PER_NODE": str(per_node), "SLURM_TASKS_PER_NODE": f"{per_node}(x{nodes})",
              "SLURM_STEP_ID": "0", "SLURM_STEP_NUM_NODES": str(nodes), "SLURM_STEP_NUM_TASKS": str(tasks),
              "SLURM_STEP_TASKS_PER_NODE": f"{per_node}(x{nodes})", "SLURM_GPUS_ON_NODE": str(per_node), **step}
    return [{**shared, "SLURM_PROCID": str(node * per_node + local), "SLURM_LOCALID": str(local),
             "SLURM_NODEID": str(node), "SLURMD_NODENAME": host}
            for node, host in enumerate(hosts) for local in range(per_node)]


def test_every_task_of_a_two_node_four_gpu_srun_finds_its_place():
    """`srun --nodes=2 --ntasks-per-node=4 python train.py` on gpu07 and gpu08: global rank, world size 8, the GPU
    of its node (local rank) and rank 0's host, for each of the 8 tasks."""
    tasks = srun_tasks(("gpu07", "gpu08"), 4, "gpu[07-08]", 8, SLURM_STEP_NODELIST="gpu[07-08]")
    layouts = [D.parse_dist_env(env) for env in tasks]
    assert layouts == [D.DistEnv(rank, 8, rank % 4, "gpu07", 29500, "slurm") for rank in range(8)]
    assert [D.parse_dist_env({**env, "SLURM_STEP_NUM_TASKS": ""}) for env in tasks] == layouts  # SLURM_NTASKS


def test_an_srun_on_some_of_the_jobs_nodes_meets_on_its_own_first_node():
    """A 3-node job of 12 tasks whose srun runs 2 tasks on each of gpu08 and gpu09: world size 4 (the step's, not
    the job's 12) and rank 0 on gpu08 (the step's first node, not the job's gpu07), else every rank would wait."""
    tasks = srun_tasks(("gpu08", "gpu09"), 2, "gpu[07-09]", 12, SLURM_STEP_NODELIST="gpu[08-09]")
    expected = [D.DistEnv(rank, 4, rank % 2, "gpu08", 29500, "slurm") for rank in range(4)]
    assert [D.parse_dist_env(env) for env in tasks] == expected


def test_torchrun_started_by_srun_wins_over_the_slurm_task():
    """train.sbatch's layout: srun starts one torchrun per node (SLURM sees 2 tasks), each starts 4 workers; every
    worker takes rank, world size 8, local rank and the rendezvous host from torchrun, not from its SLURM task."""
    launchers = srun_tasks(("gpu07", "gpu08"), 1, "gpu[07-08]", 2, SLURM_STEP_NODELIST="gpu[07-08]")
    workers = [{**launcher, "RANK": str(node * 4 + local), "WORLD_SIZE": "8", "LOCAL_RANK": str(local),
                "LOCAL_WORLD_SIZE": "4", "GROUP_RANK": str(node), "MASTER_ADDR": "gpu07", "MASTER_PORT": "29400"}
               for node, launcher in enumerate(launchers) for local in range(4)]
    assert [D.parse_dist_env(env) for env in workers] == [
        D.DistEnv(rank, 8, rank % 4, "gpu07", 29400, "torchrun") for rank in range(8)]


@pytest.mark.parametrize(("nodelist", "host"), [("node01", "node01"), ("a1,b2", "a1"), ("n[003-010]", "n003"),
                                                ("rack[2,5]-gpu", "rack2-gpu"), ("x[1-2],y[3-4]", "x1")])
def test_first_host(nodelist, host):
    assert D.first_host(nodelist) == host


def test_no_launcher_env_is_none():
    assert D.parse_dist_env({"PATH": "/bin", "SLURM_JOB_ID": "12"}) is None


@pytest.mark.parametrize(("env", "message"), [
    ({"RANK": "x", "WORLD_SIZE": "2"}, "RANK='x' is not an integer"),
    ({"RANK": "2", "WORLD_SIZE": "2"}, "rank 2, local rank 2 of world size 2"),
    ({"SLURM_PROCID": "0", "SLURM_LOCALID": "0"}, "SLURM_NTASKS is required"),
])
def test_bad_launcher_env_is_a_clear_error(env, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        D.parse_dist_env(env)


@pytest.mark.parametrize(("requested", "local_rank", "count", "device", "backend"), [
    ("cpu", 1, 4, torch.device("cpu"), "gloo"),
    (None, 0, 0, torch.device("cpu"), "gloo"),
    (None, 2, 4, torch.device("cuda", 2), "nccl"),
    ("cuda", 1, 2, torch.device("cuda", 1), "nccl"),
    ("cuda:0", 3, 4, torch.device("cuda", 3), "nccl"),  # each rank its own GPU, whatever index the config named
])
def test_device_and_backend_choice(requested, local_rank, count, device, backend):
    assert D.resolve_device(requested, local_rank, count) == device
    assert D.choose_backend(device) == backend


def test_cuda_without_a_gpu_for_the_rank_is_a_clear_error():
    with pytest.raises(ValueError, match="local rank 2 has no GPU"):
        D.resolve_device("cuda", 2, 2)


# ---------------------------------------------------------------------------------------------------------------
# Sharding


@pytest.mark.parametrize("n", [0, 1, 7, 10])
@pytest.mark.parametrize("world", [1, 2, 3])
def test_shards_cover_every_index_exactly_once_without_padding(n, world):
    shards = [list(D.shard_indices(n, rank, world)) for rank in range(world)]
    assert sum(shards, []) == list(range(n))  # in order, each once, nothing added
    sizes = [len(s) for s in shards]
    assert max(sizes) - min(sizes) <= 1 and sum(sizes) == n


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
