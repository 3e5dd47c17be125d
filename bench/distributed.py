"""Check: training under torchrun — DDP, `run.fsdp: true`, and a run SIGKILLed mid-way then resumed — against the
uninterrupted run and (world size 1) one process without a process group.

The tiny InstructBLIP-Vicuna on the synthetic world (`projects`' demo data, built here in a temporary cache), the
training runner as `train.py` runs it, under `torchrun --nproc_per_node=N`: NCCL on GPUs, gloo on CPU. Two launches:

1. `single` (world size 1 only: no process group, what `python train.py` does), `ddp`, `fsdp` and `killed` in turn,
   one runner after the other in each rank. Every rank joins the process group first, also at world size 1 (the
   runner then finds it and wraps DDP / shards the LLM as it would across GPUs: on a one-GPU machine this is the
   only way to run NCCL, DDP and FSDP2 at all). `killed` SIGKILLs every rank right after step `--kill-after`.
2. `resumed`: the killed job again with `run.resume=auto`, from its last periodic checkpoint.

Compared: the logged loss of every step and the final trainable weights, `ddp` vs `single` and `fsdp` vs `ddp`
(within a tolerance: bf16 on CUDA, fp32 on CPU) and `resumed` vs `ddp` (exact, bit for bit). Prints a table;
`--json` writes the numbers.

    .venv/bin/python bench/distributed.py                         # CPU: 2 gloo processes, 6 steps
    python3 bench/distributed.py --device cuda --steps 20         # one process per GPU

See bench/README.md (gpu_check).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from generate import write_json  # bench/generate.py (this script's folder is on sys.path)
from lavis_ib.common.processes import kill_tree

ROOT = Path(__file__).resolve().parents[1]
RUNS = ("single", "ddp", "fsdp", "killed")
TOLERANCE = {"cpu": 1e-5, "cuda": 2e-2}  # max |loss difference| / |loss|: fp32 on CPU, bf16 autocast on CUDA


# ----- the launches (this process) -------------------------------------------------------------------------------
def write_config(path: Path, output: Path, args) -> Path:
    """A project YAML: the tiny Vicuna model trained on synthetic VQA, checkpoints every `--save-freq` steps."""
    config = {
        "model": {"arch": "blip2_vicuna_instruct", "model_type": "tiny"},
        "datasets": {"synthetic_vqa": {}},
        "run": {"device": args.device, "num_workers": 0, "batch_size_train": args.batch, "batch_size_eval": 4,
                "max_iters": args.steps, "log_freq": 1, "save_freq": args.save_freq, "init_lr": 1e-3,
                "warmup_lr": 1e-5, "warmup_steps": 1, "tensorboard": False, "output_dir": str(output)},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def environment(cache: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    # one CPU thread per process: the same floating-point reductions in every run (and 2 cores are enough)
    env.update(OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", LAVIS_IB_CACHE=str(cache),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    return env


def launch(config: Path, cache: Path, runs: str, args, log: Path) -> dict:
    """One torchrun of this script's `--worker` over `runs`; its exit status, seconds and the output's tail."""
    from lavis_ib.common.dist import free_port

    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={args.nproc}",
               f"--master_port={free_port()}", __file__, "--worker", "--cfg-path", str(config), "--runs", runs,
               "--kill-after", str(args.kill_after), "--device", args.device]
    start = time.perf_counter()
    with log.open("w") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=environment(cache), cwd=ROOT,
                                   start_new_session=True)
        try:
            code = process.wait(timeout=args.launch_timeout)
        except subprocess.TimeoutExpired:
            kill_tree(process.pid)  # torchrun and its ranks
            process.wait()
            code = "timeout"
    tail = log.read_text(errors="replace").splitlines()[-15:]
    return dict(runs=runs, exit=code, seconds=time.perf_counter() - start, tail=tail)


def losses_of(job: Path) -> dict[int, float]:
    """`{step: train_loss}` from a job's JSON-lines log (a resumed run's later lines replace earlier ones)."""
    losses = {}
    for log in sorted(job.rglob("log.txt")):
        for line in log.read_text().splitlines():
            record = json.loads(line)
            if "train_loss" in record:
                losses[record["step"]] = record["train_loss"]
    return losses


def final_weights(job: Path, step: int) -> dict | None:
    from safetensors.torch import load_file

    files = [f for f in job.rglob("model.safetensors") if f.parent.name == f"step_{step}"]
    return load_file(files[0]) if files else None


def compare(a: Path, b: Path, steps: int, tolerance: float | None, noise: float) -> dict:
    """Losses of every step and final trainable weights of job `a` against job `b`: `equal` within `tolerance`
    (relative, on the losses) or, with None, bit for bit; `within_noise`: within `noise` (what GPU kernels that are
    not bitwise deterministic, e.g. atomics in an embedding's backward, can explain)."""
    la, lb = losses_of(a), losses_of(b)
    wa, wb = final_weights(a, steps), final_weights(b, steps)
    common = sorted(set(la) & set(lb))
    loss_diff = max((abs(la[s] - lb[s]) for s in common), default=None)
    loss_rel = max((abs(la[s] - lb[s]) / max(abs(lb[s]), 1e-12) for s in common), default=None)
    weights = None
    if wa is not None and wb is not None and wa.keys() == wb.keys():
        weights = max(((wa[k].float() - wb[k].float()).abs().max().item() for k in wa), default=0.0)
    complete = common == list(range(1, steps + 1)) and weights is not None
    if tolerance is None:
        ok = complete and all(la[s] == lb[s] for s in common) and weights == 0.0
    else:
        ok = complete and loss_rel <= tolerance
    return dict(steps_compared=len(common), max_loss_diff=loss_diff, max_loss_rel=loss_rel, max_weight_diff=weights,
                tolerance=tolerance, equal=ok, within_noise=complete and loss_rel <= noise, first_loss=lb.get(1),
                last_loss=lb.get(steps))


def run_check(args) -> dict:
    from lavis_ib.datasets import synthetic

    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_distributed_"))
    cache, output = work / "cache", work / "out"
    start = time.perf_counter()
    synthetic.build_world(cache, n_images=60, n_videos=4)
    config = write_config(work / "train.yaml", output, args)
    report = dict(device=args.device, nproc=args.nproc, steps=args.steps, kill_after=args.kill_after,
                  save_freq=args.save_freq, batch_per_rank=args.batch, world_s=time.perf_counter() - start,
                  backend="nccl" if args.device == "cuda" else "gloo", launches=[], comparisons={})
    runs = [run for run in RUNS if run != "single" or args.nproc == 1]
    tolerance = TOLERANCE[args.device]
    report["launches"].append(launch(config, cache, ",".join(runs), args, work / "launch1.log"))
    record(report, output, {"ddp vs single": ("ddp", "single", tolerance), "fsdp vs ddp": ("fsdp", "ddp", tolerance)},
           args)
    report["killed_checkpoints"] = sorted(p.parent.name for p in (output / "killed").rglob("model.safetensors"))
    report["launches"].append(launch(config, cache, "resumed", args, work / "launch2.log"))
    record(report, output, {"resumed vs ddp": ("killed", "ddp", None)}, args)
    return report


def record(report: dict, output: Path, pairs: dict, args) -> None:
    """Add the comparisons of `pairs` (name → job a, job b, tolerance) whose jobs exist, and every job's losses; write
    the report (so a check killed during the next launch keeps these)."""
    for name, (a, b, tolerance) in pairs.items():
        if (output / a).exists() and (output / b).exists():
            report["comparisons"][name] = compare(output / a, output / b, args.steps, tolerance,
                                                  TOLERANCE[args.device])
    if output.exists():
        report["losses"] = {job.name: sorted(losses_of(job).items()) for job in sorted(output.iterdir())}
    write_json(args.json, report)


def print_table(report: dict) -> None:
    saved = ", ".join(report.get("killed_checkpoints", []))
    print(f"\n{report['nproc']} process(es), {report['backend']}, {report['steps']} steps, killed after step "
          f"{report['kill_after']} (checkpoints of the killed job: {saved})\n")
    print("| launch | exit | s |\n|---|---|---|")
    for entry in report["launches"]:
        print(f"| {entry['runs']} | {entry['exit']} | {entry['seconds']:.1f} |")
    print("\n| comparison | steps | max loss diff (rel) | max weight diff | tolerance | equal |")
    print("|---|---|---|---|---|---|")
    for name, c in report["comparisons"].items():
        rel = f"{c['max_loss_diff']:.2e} ({c['max_loss_rel']:.1e})" if c["max_loss_diff"] is not None else "-"
        weights = f"{c['max_weight_diff']:.2e}" if c["max_weight_diff"] is not None else "-"
        print(f"| {name} | {c['steps_compared']} | {rel} | {weights} | {c['tolerance'] or 'exact'} | "
              f"{'yes' if c['equal'] else 'no'} |")


# ----- the ranks (under torchrun) ----------------------------------------------------------------------------------
def join_group(device_kind: str) -> None:
    """The process group of this torchrun, also at world size 1 (where `init_distributed` would make none), so the
    runner's DDP / FSDP2 paths run; the runner finds it and leaves it standing."""
    import torch
    import torch.distributed as torch_dist

    from lavis_ib.common import dist

    if torch_dist.is_initialized():
        return
    env = dist.parse_dist_env()
    device = dist.resolve_device(device_kind, env.local_rank, torch.cuda.device_count())
    backend = dist.choose_backend(device)
    if backend == "nccl":
        torch.cuda.set_device(device)
    torch_dist.init_process_group(backend=backend, rank=env.rank, world_size=env.world_size,
                                  device_id=device if backend == "nccl" else None)


def worker(args) -> None:
    import logging

    from lavis_ib.cli import load_runner
    from lavis_ib.common import dist

    logging.basicConfig(level=logging.INFO, format="%(asctime)s [%(levelname)s] %(message)s")
    for run in args.runs.split(","):
        if run != "single":
            join_group(args.device)
        job = "killed" if run == "resumed" else run
        options = [f"run.job_id={job}"] + (["run.fsdp=true"] if run == "fsdp" else []) + \
            (["run.resume=auto"] if run == "resumed" else [])
        runner = load_runner("train", ["--cfg-path", args.cfg_path, "--options", *options])
        if run == "killed":
            runner.step_hooks.append(lambda step, record: os.kill(os.getpid(), signal.SIGKILL)
                                     if step == args.kill_after else None)
        start = time.perf_counter()
        result = runner.train()
        if dist.get_rank() == 0:
            print(f"[distributed] {run}: {result['step']} steps in {time.perf_counter() - start:.1f}s", flush=True)
    dist.destroy()


def main(argv: list[str] | None = None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--nproc", type=int, default=None, help="processes (default: the GPUs; 2 on CPU)")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--kill-after", type=int, default=None, help="the killed run's last step (default: a save + 1)")
    parser.add_argument("--save-freq", type=int, default=None, help="checkpoint period (default: half the steps)")
    parser.add_argument("--batch", type=int, default=2, help="samples per rank and step")
    parser.add_argument("--launch-timeout", type=float, default=600, help="seconds for one torchrun")
    parser.add_argument("--workdir", help="keep the world, configs and jobs here (default: a temporary folder)")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # a rank under torchrun
    parser.add_argument("--cfg-path", help=argparse.SUPPRESS)
    parser.add_argument("--runs", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)
    if args.nproc is None:
        import torch

        args.nproc = max(torch.cuda.device_count(), 1) if args.device == "cuda" else 2
    args.save_freq = args.save_freq or max(args.steps // 2, 1)
    args.kill_after = args.kill_after or min(args.save_freq + 1, args.steps - 1)
    report = run_check(args)
    print_table(report)
    return report


if __name__ == "__main__":
    main()
