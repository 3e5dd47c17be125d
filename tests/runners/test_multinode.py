"""Training beyond one launcher, with torch's own torchrun and c10d rendezvous (gloo on CPU), each run checked against
one uninterrupted `torchrun --nproc_per_node=2` run of the same config (`job`'s reference):

- two launchers of one process each (`--nnodes=2 --node_rank=R`, the layout of projects/instructblip/slurm/) train
  exactly as one launcher of two: the same logged losses, bitwise the same trainable weights on both nodes, also
  through a pre-emption: SIGTERM to every process of the job (as SLURM sends it) ends with a checkpoint and the
  relaunched job resumes from it bitwise (one two-launcher run, `two_nodes`, serves both tests);
- `--max-restarts=1`: a rank's worker SIGKILLed mid-run is restarted with its peer by torchrun, resumes from
  `checkpoints/latest` (run.resume=auto) and ends bitwise as the uninterrupted run;
- a rendezvous whose second node never starts ends within its join_timeout with one line naming the rendezvous and
  the job's last checkpoint (`python -m lavis_ib.cli.launch`), not a hang or a bare traceback;
- train.sbatch and eval.sbatch, run with stand-ins for srun and scontrol, start each node's launcher with the node
  count, node rank, rendezvous host and a config that loads, and requeue after USR1 only.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch.distributed import run as torchrun

from lavis_ib.cli import parse_args
from lavis_ib.cli.launch import join_timeout, last_checkpoint
from lavis_ib.common.config import Config
from lavis_ib.common.processes import process_tree
from tests.runners.train_fixtures import (DEADLINE_S, ROOT, await_marks, environment, finish, node_launches,
                                          start_nodes, train, train_args, train_losses, write_train_config)

DRIVER = ROOT / "tests" / "runners" / "train_driver.py"
STEPS, SAVE_AT = 4, 2  # a periodic checkpoint at step 2, the last at 4
SIGNAL_AFTER = 2  # the pre-emption signal lands after this step; the step after it is checkpointed


@pytest.fixture(scope="module")
def job(world, tmp_path_factory):
    """The config every run here trains, and its uninterrupted single-launcher run: `(config, reference job dir)`."""
    folder = tmp_path_factory.mktemp("multinode")
    config = write_train_config(folder / "train.yaml", folder / "out", max_iters=STEPS, save_freq=SAVE_AT,
                                datasets=("synthetic_vqa",))
    train(config, world, 2, "run.job_id=reference")
    return config, folder / "out" / "reference"


def final_weights(job_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(job_dir / "checkpoints" / f"step_{STEPS}" / "model.safetensors")


def assert_same_run(job_dir: Path, reference: Path) -> None:
    """`job_dir` ended with bitwise the reference's trainable weights and logged the same loss at every step."""
    expected, got = final_weights(reference), final_weights(job_dir)
    assert expected.keys() == got.keys() and len(expected) > 20
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    losses = train_losses(reference)
    assert sorted(losses) == list(range(1, STEPS + 1))
    assert train_losses(job_dir) == losses  # the same floats, a replayed step's included


def train_nodes(config: Path, world: Path, job_id: str, folder: Path, script: Path = ROOT / "train.py",
                expect: int = 0, **env: str) -> list[str]:
    """Train `job_id` under two launchers of one process each (as two nodes would) with `env` added; their outputs."""
    commands = node_launches(script, 2, *train_args(config, (f"run.job_id={job_id}",)))
    return finish(start_nodes(commands, {**environment(world), **env}, folder), expect)


@pytest.fixture(scope="module")
def two_nodes(world, job, tmp_path_factory):
    """One job under two launchers, pre-empted and relaunched: SLURM pre-empts by signalling every process of the
    job, here both torchruns and both ranks while the ranks hold after step 2; the relaunch, two launchers again,
    continues with run.resume=auto to the end, each rank dumping its final weights. What the tests look at:
    `{"job_dir", "dumps", "processes" (signalled), "stopped" (each launcher's exit status and output),
    "latest" (what checkpoints/latest named after the stop)}`."""
    config, reference = job
    folder = tmp_path_factory.mktemp("two_nodes")
    marks, job_dir = folder / "marks", reference.parent / "two_nodes"
    commands = node_launches(DRIVER, 2, *train_args(config, ("run.job_id=two_nodes",)))
    env = {**environment(world), "AWAIT_SIGNAL_AFTER_STEP": str(SIGNAL_AFTER), "AWAIT_SIGNAL_DIR": str(marks)}
    launchers = start_nodes(commands, env, folder)
    await_marks(marks, 2, launchers)
    processes = [pid for process, _ in launchers for pid in process_tree(process.pid)]
    for pid in processes:
        os.kill(pid, signal.SIGTERM)
    stopped = [(process.wait(timeout=DEADLINE_S), output.read_text()) for process, output in launchers]
    latest = (job_dir / "checkpoints" / "latest").read_text().strip()
    (folder / "resumed").mkdir()
    train_nodes(config, world, "two_nodes", folder / "resumed", script=DRIVER, DUMP_WEIGHTS_DIR=str(folder / "ranks"))
    return {"job_dir": job_dir, "dumps": folder / "ranks", "processes": processes, "stopped": stopped,
            "latest": latest}


def test_two_launchers_train_exactly_as_one_launcher_of_two(job, two_nodes):
    """Steps 1-3 ran straight on the two launchers (their step-2 checkpoint and losses are the reference's); after
    the relaunch both nodes' ranks hold bitwise the reference's final weights."""
    reference = job[1]
    straight = [load_file(folder / "checkpoints" / f"step_{SAVE_AT}" / "model.safetensors")
                for folder in (reference, two_nodes["job_dir"])]
    assert straight[0].keys() == straight[1].keys()
    assert all(torch.equal(straight[0][k], straight[1][k]) for k in straight[0])
    assert_same_run(two_nodes["job_dir"], reference)
    expected = final_weights(reference)
    for rank in (0, 1):  # each node's rank, not only rank 0 that saved them
        weights = load_file(two_nodes["dumps"] / f"rank{rank}.safetensors")
        assert all(torch.equal(weights[k], expected[k]) for k in expected)


def test_sigterm_to_every_process_of_two_launchers_checkpoints_and_resumes_exactly(job, two_nodes):
    """Each rank stops after step 3 with a checkpoint, each torchrun then exits 1 (it re-raises the signal it got),
    and the relaunched job resumed from step 3 (its end: `test_two_launchers_train_exactly_as_one_launcher_of_two`)."""
    assert len(two_nodes["processes"]) == 4, f"expected two torchruns and their ranks: {two_nodes['processes']}"
    assert [status for status, _ in two_nodes["stopped"]] == [1, 1]
    texts = [text for _, text in two_nodes["stopped"]]
    assert sum(text.count(f"stopped after step {SIGNAL_AFTER + 1} with a checkpoint") for text in texts) == 2, texts
    assert two_nodes["latest"] == f"step_{SIGNAL_AFTER + 1}"
    log = [line for line in (two_nodes["job_dir"] / "log.txt").read_text().splitlines() if '"train_loss"' in line]
    assert [json.loads(line)["step"] for line in log] == [1, 2, 3, 4]  # the relaunch logged step 4 only


def test_torchrun_restarts_a_killed_rank_and_the_run_resumes_exactly(world, job, tmp_path):
    """Rank 1 SIGKILLs itself after step 3, before its bookkeeping; torchrun (`--max-restarts=1`, c10d) stops rank 0,
    starts both again, and they resume from step 2's checkpoint. The restarted rank 0 starts 3 s late, so rank 1
    would find the dead rank 0's address in a store shared across attempts (what lavis_ib.cli.launch turns off)."""
    config, reference = job
    commands = node_launches(DRIVER, 1, *train_args(config, ("run.job_id=restarted",)), per_node=2,
                             torchrun=("--max-restarts=1",))
    env = {**environment(world), "KILL_AFTER_STEP": str(SAVE_AT + 1), "KILL_RANK": "1", "LATE_RESTART": "3"}
    [text] = finish(start_nodes(commands, env, tmp_path))
    job_dir = reference.parent / "restarted"
    assert "failed (exitcode: -9) local_rank: 1" in text, text[-4000:]
    assert text.count(f"resumed from {job_dir / 'checkpoints' / f'step_{SAVE_AT}'} at step {SAVE_AT}") == 1
    assert (job_dir / "log.txt").read_text().count('{"config"') == 2  # two attempts, one job folder
    assert_same_run(job_dir, reference)


# ---------------------------------------------------------------------------------------------------------------
# A node that never joins


def test_a_rendezvous_missing_a_node_ends_naming_it_and_the_last_checkpoint(world, job, tmp_path):
    """Only node 0 of 2 starts: after join_timeout=3 s its launcher exits 1 with one line naming the rendezvous and
    the job's last checkpoint; no worker ever started."""
    config, reference = job
    first, _ = node_launches(ROOT / "train.py", 2, *train_args(config, ("run.job_id=reference",)),
                             torchrun=("--rdzv_conf=join_timeout=3",))
    began = time.monotonic()
    [text] = finish(start_nodes([first], environment(world), tmp_path), expect=1, timeout=120)
    assert time.monotonic() - began > 3
    endpoint = next(arg.split("=", 1)[1] for arg in first if arg.startswith("--rdzv_endpoint="))
    assert (f"launch: error: rendezvous 'test_job' at {endpoint} (c10d) did not complete within join_timeout=3 s: "
            "fewer nodes than --nnodes=2 joined") in text, text[-4000:]
    assert f"The last checkpoint of job reference is {reference / 'checkpoints' / f'step_{STEPS}'};" in text
    assert "Traceback" not in text and "dataset " not in text  # no traceback, no worker's dataset table


def test_the_timeout_message_says_when_a_job_has_no_checkpoint(job):
    """The message's other endings (a job not started yet, a config without run.job_id, an evaluation) and the
    timeout it names (torch's 600 s default unless --rdzv_conf sets join_timeout)."""
    config, reference = job
    fresh = reference.parent / "fresh" / "checkpoints"
    assert last_checkpoint(["--cfg-path", str(config), "--options", "run.job_id=fresh"]) == \
        f"Job fresh has no checkpoint yet ({fresh} holds none)."
    assert last_checkpoint(["--cfg-path", str(config)]).startswith("run.job_id is not set, so every launch")
    assert [join_timeout(""), join_timeout("last_call_timeout=5,join_timeout=7")] == [600, 7]
    assert last_checkpoint(["--cfg-path", str(config), "--options", "run.job_id=scores"], evaluation=True) == (
        f"Evaluation job scores keeps the predictions it has written in {reference.parent / 'scores'}; relaunching "
        "every node with the same run.job_id predicts only the records still missing.")


# ---------------------------------------------------------------------------------------------------------------
# The SLURM scripts, with stand-ins for srun, scontrol and python

SLURM = ROOT / "projects" / "instructblip" / "slurm"
STAND_INS = {
    # one task per node, as `--ntasks-per-node=1` runs it; with HOLD, it then waits for a signal as srun does while
    # the launchers run, and ends 1 half a second after one (the launchers exit 1 after passing a signal on)
    "srun": """while [[ $1 == -* ]]; do shift; done  # srun's own options
for node in $(seq 0 $((SLURM_NNODES - 1))); do SLURM_NODEID=$node SLURM_PROCID=$node "$@" || exit; done
[[ -z ${HOLD:-} ]] && exit 0
sleep 60 & sleeper=$!
for sig in USR1 TERM; do trap "echo $sig > '$RECORD/srun_got'; kill \\$sleeper; sleep 0.5; exit 1" $sig; done
touch "$RECORD/srun_holding"
wait""",
    "scontrol": """case $1 in
    show) printf 'gpu07\\ngpu08\\n' ;;
    requeue) echo "requeue $2" >> "$RECORD/scontrol" ;;
esac""",
    "python": 'printf "%s\\n" "$@" > "$RECORD/node$SLURM_NODEID.args"',  # the node's launcher arguments
}


def run_sbatch(name: str, record: Path, **env: str) -> subprocess.Popen:
    """Start `bash <name>.sbatch` in the repository as SLURM would on a 2-node job 4242 of 8 GPUs per node."""
    stand_ins = record / "bin"
    stand_ins.mkdir(parents=True)
    for command, body in STAND_INS.items():
        (stand_ins / command).write_text(f"#!/bin/bash\n{body}\n")
        (stand_ins / command).chmod(0o755)
    slurm = {"SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": f"instructblip-{name}", "SLURM_JOB_NODELIST": "gpu[07-08]",
             "SLURM_NNODES": "2", "SLURM_GPUS_ON_NODE": "8"}
    base = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    return subprocess.Popen(["bash", str(SLURM / f"{name}.sbatch")], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            env={**base, **slurm, "PATH": f"{stand_ins}:{os.environ['PATH']}", "RECORD": str(record),
                                 **env})


@pytest.mark.parametrize("name, script, default_config, job_id", [
    ("train", "train.py", "projects/instructblip/train/vicuna7b.yaml", "instructblip_vicuna7b"),
    ("eval", "evaluate.py", "projects/instructblip/eval/suite_vicuna7b.yaml", "instructblip-eval-4242"),
])
def test_each_sbatch_starts_one_launcher_per_node_at_the_first_nodes_rendezvous(name, script, default_config, job_id,
                                                                                tmp_path):
    """The node's torchrun arguments, read back with torchrun's own parser, and its script's config, loaded with its
    options: the job id a requeue continues (the recipe's for training, the SLURM job's for evaluation)."""
    for path in (SLURM / f"{name}.sbatch", SLURM / "launch.sh"):
        assert subprocess.run(["bash", "-n", str(path)], capture_output=True).returncode == 0, path
    process = run_sbatch(name, tmp_path)
    assert process.wait(timeout=30) == 0, process.stdout.read()
    for node in (0, 1):
        tokens = (tmp_path / f"node{node}.args").read_text().splitlines()
        assert tokens[:2] == ["-m", "lavis_ib.cli.launch"]
        args = torchrun.parse_args(tokens[2:])
        assert (args.nnodes, args.nproc_per_node, args.node_rank, args.rdzv_backend, args.rdzv_endpoint,
                args.rdzv_id, args.rdzv_conf) == ("2", "8", node, "c10d", "gpu07:29500", "slurm-4242",
                                                  "join_timeout=900")
        assert "SIGUSR1" in args.signals_to_handle.split(",") and args.training_script == script
        parsed = parse_args("train" if name == "train" else "evaluate", args.training_script_args)
        assert parsed.cfg_path == default_config
        run = Config(parsed.cfg_path, parsed.options).run
        assert (run.job_id, run.resume) == (job_id, "auto")


@pytest.mark.parametrize("signum, status, requeued", [("USR1", 0, True), ("TERM", 1, False)])
def test_train_sbatch_passes_a_signal_on_and_requeues_after_usr1_only(signum, status, requeued, tmp_path):
    """USR1 (the time limit is near) and TERM (pre-emption, scancel) reach srun; the script waits until srun has
    ended, then requeues the job after USR1 and exits 0, or exits with srun's status after TERM."""
    process = run_sbatch("train", tmp_path, HOLD="1")
    deadline = time.monotonic() + 30
    while not (tmp_path / "srun_holding").exists():
        assert process.poll() is None and time.monotonic() < deadline, process.stdout.read()
        time.sleep(0.02)
    process.send_signal(getattr(signal, f"SIG{signum}"))
    assert process.wait(timeout=30) == status
    assert (tmp_path / "srun_got").read_text().strip() == signum
    assert (tmp_path / "scontrol").exists() == requeued
    if requeued:
        assert (tmp_path / "scontrol").read_text() == "requeue 4242\n"
