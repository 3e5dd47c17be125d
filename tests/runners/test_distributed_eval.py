"""Evaluation across processes and interruptions: two ranks (gloo) give exactly the predictions and metrics of one
process, each record predicted in the same batch — under two torchruns of one process each, as on two nodes
(`--nnodes=2`, c10d rendezvous), and under one `torchrun --nproc_per_node=2` after an interruption — and a run
killed with SIGKILL (even mid-line) and re-run with the same job id — on another number of processes — ends with
the same files as a run never interrupted. The runs go through `eval_driver.py` (evaluate.py recording each
prediction's batch-mates).

Batch size 2 divides neither the 9 GQA (generation) nor the 5 HatefulMemes (ranking) records' item shards on 2
ranks, so sharding items instead of whole batches would give rank 1 other batches than one process forms."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lavis_ib.common import dist
from lavis_ib.common.dist import free_port
from lavis_ib.runners.evaluator import pending_batches
from tests.runners.train_fixtures import finish, node_launches, start_nodes
from tests.tasks.fixtures import write_eval_fixture

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("eval_driver.py")
BATCH_SIZE = 2
DATASETS = {"gqa": 9, "scienceqa": 7, "hateful_memes": 5}  # generation, per-sample choices, verbalizers
DEADLINE_S = 240


def write_config(path: Path, data_root: Path, output_dir: Path, datasets: dict[str, int]) -> Path:
    lines = ["model: {arch: blip2_vicuna_instruct, model_type: tiny}", "datasets:"]
    lines += [f"  {name}: {{data_root: {data_root}}}" for name in datasets]
    lines.append(f"run: {{output_dir: {output_dir}, batch_size_eval: {BATCH_SIZE}, num_workers: 0, device: cpu}}")
    path.write_text("\n".join(lines) + "\n")
    return path


def environment() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    # one thread per process in every run, so floating-point reductions match between 1 and 2 processes
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), TOKENIZERS_PARALLELISM="false")
    return env


def evaluate_args(config: Path, job: str, *extra: str) -> list[str]:
    return ["--cfg-path", str(config), "--options", f"run.job_id={job}", *extra]


def evaluate_command(config: Path, job: str, nproc: int, *extra: str) -> list[str]:
    options = evaluate_args(config, job, *extra)
    if nproc == 1:
        return [sys.executable, str(DRIVER), *options]
    return [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", f"--master_port={free_port()}",
            str(DRIVER), *options]


def evaluate(config: Path, job: str, nproc: int = 1, *extra: str) -> subprocess.CompletedProcess:
    done = subprocess.run(evaluate_command(config, job, nproc, *extra), capture_output=True, text=True,
                          timeout=DEADLINE_S, env=environment(), cwd=ROOT)
    assert done.returncode == 0, done.stderr[-4000:]
    return done


def split_outputs(job_dir: Path) -> dict[str, dict]:
    """Per dataset: its predictions by id (asserting no id twice) and its metrics."""
    outputs = {}
    for metrics_file in sorted(job_dir.glob("*/*/metrics.json")):
        lines = (metrics_file.parent / "predictions.jsonl").read_text().splitlines()
        predictions = [json.loads(line) for line in lines]
        ids = [p["id"] for p in predictions]
        assert len(ids) == len(set(ids)), f"duplicated ids in {metrics_file.parent}"
        assert not (metrics_file.parent / "parts").exists()
        metrics = json.loads(metrics_file.read_text())
        outputs[metrics_file.parent.parent.name] = {"predictions": {p["id"]: p for p in predictions},
                                                    "metrics": metrics["metrics"], "num_scored": metrics["num_scored"]}
    return outputs


def assert_same_outputs(ours: dict, reference: dict) -> None:
    assert sorted(ours) == sorted(reference)
    for name in reference:
        got, want = ours[name], reference[name]
        assert sorted(got["predictions"], key=int) == sorted(want["predictions"], key=int) == [
            str(i) for i in range(DATASETS[name])]
        for record_id, expected in want["predictions"].items():
            actual = got["predictions"][record_id]
            assert actual["batch"] == expected["batch"], (name, record_id, "batch")  # the same batch-mates
            for key in ("prompt", "gt", "output", "answer", "pred"):
                assert actual.get(key) == expected.get(key), (name, record_id, key)
            for key in ("scores", "probs"):
                if key in expected:
                    assert actual[key] == pytest.approx(expected[key], abs=1e-4), (name, record_id, key)
        assert got["num_scored"] == want["num_scored"] == DATASETS[name]
        assert got["metrics"] == pytest.approx(want["metrics"], abs=1e-6), name


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("dist_eval")
    for name, count in DATASETS.items():
        write_eval_fixture(root / "data", name, n=count)
    config = write_config(root / "eval.yaml", root / "data", root / "out", DATASETS)
    evaluate(config, "one_rank")
    return {"root": root, "config": config, "reference": split_outputs(root / "out" / "one_rank")}


def test_item_shards_would_break_the_batches_here():
    """The premise of the two-rank tests: rank 1's item shard starts inside a batch of one process for the
    generation (GQA) and the ranking (HatefulMemes) set, so only whole-batch shards keep the batches."""
    for name in ("gqa", "hateful_memes"):
        assert dist.shard_indices(DATASETS[name], 1, 2)[0] % BATCH_SIZE != 0, name


@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_pending_batches_are_those_of_one_uninterrupted_process(world):
    """Batches are cut over the records in scope, not over those left: a resumed run (any world size) runs the
    batches of the uninterrupted one, a partly done batch whole; the ranks' batches together are those batches."""
    grid = [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]
    for done, expected in [(set(), grid), ({"0", "1", "2", "3"}, grid[1:]), ({"3", "4", "5"}, [grid[0]] + grid[2:]),
                           ({str(i) for i in range(10)}, [])]:
        pending = pending_batches(range(10), done, 3)
        assert pending == expected
        assert sum((dist.shard_batches(pending, rank, world) for rank in range(world)), []) == expected
    assert pending_batches(range(5), set(), 3) == [[0, 1, 2], [3, 4]]  # --limit 5: the first batches, cut short


def test_two_ranks_on_two_launchers_give_exactly_the_predictions_and_metrics_of_one(workspace, tmp_path):
    """One process under each of two torchruns that meet at a c10d rendezvous, the layout of two nodes."""
    texts = finish(start_nodes(node_launches(DRIVER, 2, *evaluate_args(workspace["config"], "two_ranks")),
                               environment(), tmp_path))
    assert sum("9 to evaluate on 2 rank(s)" in text for text in texts) == 1  # rank 0's log
    job_dir = workspace["root"] / "out" / "two_ranks"
    assert_same_outputs(split_outputs(job_dir), workspace["reference"])
    table = (job_dir / "results.md").read_text()
    assert all(f"| {name} |" in table for name in DATASETS)


def test_a_run_killed_mid_write_resumes_on_two_ranks_to_the_uninterrupted_result(workspace, tmp_path):
    """SIGKILL a one-process run once its first predictions are on disk, then cut the last line in half (a kill
    mid-write); the re-run, on 2 ranks, redoes the partial record, never counts it, shares out only what is left,
    and ends equal to the never-interrupted run."""
    config = write_config(tmp_path / "eval.yaml", workspace["root"] / "data", tmp_path / "out", DATASETS)
    part = tmp_path / "out" / "killed" / "gqa" / "testdev" / "parts" / "rank0.jsonl"
    process = subprocess.Popen(evaluate_command(config, "killed", 1), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env=environment(), cwd=ROOT)
    deadline = time.monotonic() + DEADLINE_S
    while not (part.is_file() and part.read_text().count("\n") >= 2):
        assert process.poll() is None, "the evaluation ended before it could be interrupted"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    lines = part.read_text().splitlines(keepends=True)
    assert 2 <= len(lines) < DATASETS["gqa"]
    kept = len(lines) - 1
    part.write_text("".join(lines[:kept]) + lines[kept][: len(lines[kept]) // 2])  # last line cut mid-write

    done = evaluate(config, "killed", 2)
    assert "dropping an incomplete last line" in done.stderr
    assert f"9 records in scope, {kept} done before, {9 - kept} to evaluate on 2 rank(s)" in done.stderr
    if kept % BATCH_SIZE:  # the cut line's batch runs whole again, its done record keeping its prediction
        assert "1 done records run again as batch-mates" in done.stderr
    assert_same_outputs(split_outputs(tmp_path / "out" / "killed"), workspace["reference"])
