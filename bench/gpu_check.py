"""The device check: every CUDA path of the project in one command, one table and `gpu_check.json`.

Seven parts, each run by the bench script that owns it (`generate.py`, `rank.py`, `train.py`, `distributed.py`,
`eval.py`) in a process of its own, with its own time budget: a part that fails or runs out of time is reported with
its error (and whatever it measured before) and the next part runs.

    1 load         InstructBLIP-Vicuna-7B dimensions, random fp16 weights built on the device: seconds, memory
    2 generate     ours vs transformers' InstructBLIP (batch 1 / 8, greedy / beam 5, 30 new tokens): tokens/s,
                   identical ids; then the decode-loop levers (static KV cache, torch.compile) on ours
    3 rank         candidate ranking (VisDial 100 options, MSVD 1,850; 32K vocabulary) vs full-sequence scoring
    4 train        training steps in bf16 (Q-Former trains, LLM frozen; with and without llm_grad_checkpoint) vs
                   transformers' InstructBLIP + AdamW: samples/s, MFU, peak memory
    5 distributed  torchrun (NCCL on GPUs): DDP, run.fsdp, a run killed and resumed, against the uninterrupted run
    6 quantized    the LLM in int8 / nf4 (`load_model(..., quantization=...)`; needs bitsandbytes and accelerate)
    7 eval         GQA-like short answers: our batched path with the feature cache vs transformers' InstructBLIP
                   called one sample at a time (what lmms-eval does)

    python3 bench/gpu_check.py --device cuda --size 7b --json $OUT/gpu_check.json    # the GPU session (≤ 8 min)
    .venv/bin/python bench/gpu_check.py --device cpu --size cpu                      # the dry run (tiny, ~40 s)

`--size cpu` runs every part on the scripts' `tiny` dimensions with the fewest repetitions and tokens: it checks
the plumbing, not the speed. See bench/README.md ("gpu_check.py").
"""

from __future__ import annotations

import os

# Before torch is imported: the parent process must never initialise CUDA, since it forks the parts
# (`torch.cuda.device_count()` then asks NVML instead of creating a CUDA context).
os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable  # noqa: E402

import torch  # noqa: E402

import distributed  # noqa: E402  (bench/: this script's folder is on sys.path)
import generate  # noqa: E402
import rank  # noqa: E402
import train  # noqa: E402
from generate import write_json  # noqa: E402
from lavis_ib.common.processes import kill_tree  # noqa: E402

eval_bench = importlib.import_module("eval")  # bench/eval.py (a module name that shadows the builtin)

# What each --size runs: `cpu` is the dry run (the scripts' tiny dimensions, the fewest steps and tokens), `7b` the
# GPU session's (InstructBLIP-Vicuna-7B dimensions).
SETTINGS = {
    "cpu": dict(script_size="tiny", gen_cases="b1-greedy,b2-beam2", new_tokens=3, reps=1, levers="static,compile",
                lever_cases="b1-greedy", rank_candidates=40, train_batch=2, train_steps=1, train_repeats=1,
                train_warmup=1, dist_steps=6, nproc=2, eval_images=2, eval_questions=4, eval_batch=4),
    "7b": dict(script_size="7b", gen_cases="b1-greedy,b1-beam5,b8-greedy,b8-beam5", new_tokens=30, reps=2,
               levers="static,compile", lever_cases="b1-greedy,b8-beam5", rank_candidates=0, train_batch=16,
               train_steps=3, train_repeats=2, train_warmup=1, dist_steps=20, nproc=None, eval_images=8,
               eval_questions=8, eval_batch=16),
}
TOTAL_BUDGET_S = {"cpu": 600, "7b": 470}  # the whole check: a part's budget is cut to what is left of it
HBM_BANDWIDTH = {"H200": 4.8e12, "H100": 3.35e12, "A100": 2.04e12}  # bytes/s: the decode bound at batch 1
TRAIN_SIDES = "0,1,7"  # bench/train.py's rows: HF + AdamW, ours, ours with llm_grad_checkpoint


class NotAvailable(Exception):
    """A part that cannot run here for a reason that is not a failure (the feature has not landed)."""


@dataclass(frozen=True)
class Part:
    number: int
    key: str
    title: str
    budget_s: dict  # per --size
    run: Callable  # (args, work: Path) -> dict, in the part's own process
    rows: Callable  # (result: dict, args) -> [(case, measured, goal, met | None)], in the parent


# ----- the parts (each runs in a process of its own) -----------------------------------------------------------
def script_args(args, work: Path, key: str, *extra: str) -> list[str]:
    return ["--size", SETTINGS[args.size]["script_size"], "--device", args.device, "--json", str(work / f"{key}.json"),
            *(["--threads", str(args.threads)] if args.device == "cpu" else []), *extra]


def run_machine(args, work: Path) -> dict:
    """What the parts run on: versions, the device, and (CUDA) a bf16 matmul and a copy to calibrate the peaks."""
    import transformers

    info = dict(python=platform.python_version(), torch=torch.__version__, transformers=transformers.__version__,
                cuda=torch.version.cuda, device=args.device, cpus=os.cpu_count(), threads=args.threads)
    write_json(str(work / "machine.json"), info)  # kept if what follows fails
    if args.device != "cuda":
        return info
    if not torch.cuda.is_available():
        raise RuntimeError("--device cuda: torch sees no CUDA device here")
    props = torch.cuda.get_device_properties(0)
    name = torch.cuda.get_device_name(0)
    info.update(gpus=torch.cuda.device_count(), gpu=name, memory_gb=props.total_memory / 2**30,
                capability=".".join(map(str, torch.cuda.get_device_capability(0))),
                peak_bf16_tflops=next((v for k, v in train.PEAK_TFLOPS.items() if k in name), None),
                hbm_bytes_per_s=next((v for k, v in HBM_BANDWIDTH.items() if k in name), None))
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ a
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(10):
        a @ a
    torch.cuda.synchronize()
    info["measured_bf16_tflops"] = 10 * 2 * 8192**3 / (time.perf_counter() - start) / 1e12
    src = torch.empty(2**30, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    dst.copy_(src)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(5):
        dst.copy_(src)
    torch.cuda.synchronize()
    info["measured_copy_bytes_per_s"] = 5 * 2 * src.numel() / (time.perf_counter() - start)  # read + write
    return info


def run_load(args, work: Path) -> dict:
    return generate.main(script_args(args, work, "load", "--cases", "none"))


def run_generate(args, work: Path) -> dict:
    s = SETTINGS[args.size]
    return generate.main(script_args(args, work, "generate", "--cases", s["gen_cases"], "--reps", str(s["reps"]),
                                     "--new-tokens", str(s["new_tokens"]), "--levers", s["levers"],
                                     "--lever-cases", s["lever_cases"]))


def run_rank(args, work: Path) -> dict:
    s = SETTINGS[args.size]
    extra = ["--cases", "visdial,msvd", "--vocabs", "model", "--reps", str(s["reps"])]
    extra += ["--max-candidates", str(s["rank_candidates"])] if s["rank_candidates"] else []
    extra += ["--no-memory"] if args.device == "cpu" else []  # on CPU each side's peak needs a fresh process
    return rank.main(script_args(args, work, "rank", *extra))


def run_train(args, work: Path) -> dict:
    s = SETTINGS[args.size]
    extra = ["--batch", str(s["train_batch"]), "--steps", str(s["train_steps"]), "--repeats", str(s["train_repeats"]),
             "--warmup", str(s["train_warmup"]), "--sides", TRAIN_SIDES]
    extra += ["--no-memory"] if args.device == "cpu" else []
    return train.main(script_args(args, work, "train", *extra))


def run_distributed(args, work: Path) -> dict:
    s = SETTINGS[args.size]
    nproc = args.nproc or s["nproc"]
    extra = ["--device", args.device, "--steps", str(s["dist_steps"]), "--json", str(work / "distributed.json"),
             "--workdir", str(work / "distributed"), "--launch-timeout", str(max(0.6 * args.part_budget, 10))]
    return distributed.main(extra + (["--nproc", str(nproc)] if nproc else []))


def save_random_llm(llm_config: dict, directory: Path, device: str) -> Path:
    """A random LLaMA of the part's dimensions, built in fp16 on `device` and saved by `save_pretrained`:
    quantization reads the LLM from its own directory, as a real Vicuna is."""
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device(device):
        llm = AutoModelForCausalLM.from_config(AutoConfig.for_model(**llm_config), dtype=torch.float16)
    llm.save_pretrained(directory)
    del llm
    return directory


def run_quantized(args, work: Path) -> dict:
    """The LLM loaded in int8 / nf4 through `load_model` (random weights of the part's dimensions, saved to a
    directory first): load seconds, memory and tokens/s of batch-1 greedy decoding."""
    from lavis_ib.common.registry import registry
    from lavis_ib.models import load_model
    from lavis_ib.models.weights.convert import model_cfg_from_hf_config

    config, _ = generate.hf_config(SETTINGS[args.size]["script_size"])
    _, cfg = model_cfg_from_hf_config(config)  # our config keys for the part's dimensions
    tiny = registry.get_model_class(generate.ARCH).default_config("tiny").model
    options = {k: v for k, v in cfg.items() if k in ("vision", "qformer", "num_query_token", "image_size")}
    llm_config = {k: v for k, v in cfg["llm_config"].items() if k in tiny.llm_config}
    options.update(random_init=False, load_pretrained=False,
                   llm_model=str(save_random_llm(llm_config, work / "random_llm", args.device)))
    rows, s = [], SETTINGS[args.size]
    for mode in ("int8", "nf4"):
        row = dict(mode=mode)
        try:
            if args.device == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
            model = load_model(generate.ARCH, "tiny", is_eval=True, device=args.device, options=options,
                               quantization=mode)
            row["load_s"] = time.perf_counter() - start
            row["memory_gb"] = generate.memory_gb(args.device)["now"]
            pixels = torch.randn(1, 3, model.cfg.image_size, model.cfg.image_size)
            generate.run_ours(model, pixels, generate.PROMPTS[:1], 1, s["new_tokens"])  # warm-up
            seconds, out = generate.timed(lambda: generate.run_ours(model, pixels, generate.PROMPTS[:1], 1,
                                                                    s["new_tokens"]), args.device)
            row.update(tokens_per_s=out.shape[1] / seconds, new_tokens=out.shape[1])
            model = None  # freed before the next mode loads
        except Exception as error:  # one mode failing leaves the other
            row["error"] = f"{type(error).__name__}: {error}"
        rows.append(row)
        write_json(str(work / "quantized.json"), dict(modes=rows))
    return dict(modes=rows)


def run_eval(args, work: Path) -> dict:
    s = SETTINGS[args.size]
    return eval_bench.main(script_args(args, work, "eval", "--images", str(s["eval_images"]), "--questions",
                                       str(s["eval_questions"]), "--batch", str(s["eval_batch"]), "--reps", "1",
                                       "--hf-single"))


# ----- the table's rows of each part (in the parent, from the part's result, partial ones included) ------------
def fmt(value, spec: str = ".2f", unit: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{unit}"


def machine_rows(r: dict, args) -> list:
    text = f"torch {r.get('torch')}, transformers {r.get('transformers')}, Python {r.get('python')}"
    if r.get("gpu"):
        text += (f"; {r['gpus']} × {r['gpu']} ({r['memory_gb']:.0f} GiB, sm {r['capability']}); bf16 matmul "
                 f"{fmt(r.get('measured_bf16_tflops'), '.0f')} TFLOP/s (peak {r.get('peak_bf16_tflops')}), copy "
                 f"{fmt(r.get('measured_copy_bytes_per_s', 0) / 1e12, '.2f')} TB/s")
    else:
        text += f"; CPU, {r.get('cpus')} cores, {r.get('threads')} torch thread(s)"
    return [("", text, "", None)]


def load_rows(r: dict, args) -> list:
    b = r.get("build") or {}
    if not b:
        return []
    return [("HF + ours", f"build {fmt(b['hf_build_s'], '.1f')} s (HF) + {fmt(b['ours_build_s'], '.1f')} s (ours, "
             f"from HF's state dict); {params(b['hf_params_m'])}; peak {fmt(b['peak_gb'])} GB, held HF "
             f"{fmt(b['hf_resident_gb'])} / ours {fmt(b['ours_resident_gb'])} GB ({b['memory']})", "", None)]


def params(millions: float) -> str:
    return f"{millions / 1e3:.2f} B params" if millions >= 1e3 else f"{millions:.1f} M params"


def generate_rows(r: dict, args) -> list:
    rows, machine = [], args.machine or {}
    bandwidth = machine.get("hbm_bytes_per_s")
    weights = (r.get("build") or {}).get("llm_weight_bytes")
    verdicts = args.size == "7b" and args.device == "cuda"
    for c in r.get("cases", []):
        text = (f"ours {c['ours_tokens_per_s']:.1f} tok/s, HF {c['hf_tokens_per_s']:.1f} tok/s: ×{c['speedup']:.2f}; "
                f"ids {'identical' if c['equal'] else 'differ'}{c['note']}")
        goal, met = "", None
        if c["key"] == "b1-greedy":
            goal = "≥ 150 tok/s, ≥ 60 % of bound, ids identical"
            if bandwidth and weights:
                bound = bandwidth / weights
                text += f"; bound {bound:.0f} tok/s → {c['ours_tokens_per_s'] / bound:.0%}"
            met = c["ours_tokens_per_s"] >= 150 and c["equal"] if verdicts else None
        elif c["key"] == "b8-beam5":
            goal, met = "≥ 1.4× HF, ids identical", (c["speedup"] >= 1.4 and c["equal"]) if verdicts else None
        rows.append((c["case"], text, goal, met))
    for lever in r.get("levers", []):
        backend = f" ({lever['backend']})" if lever["backend"] else ""
        rows.append((f"{lever['case']}: {lever['lever']}{backend}",
                     f"{lever['tokens_per_s']:.1f} tok/s, ×{lever['speedup_vs_ours']:.2f} vs ours; ids "
                     f"{'identical' if lever['ids_identical'] else 'differ'}; first call {lever['first_call_s']:.1f} s",
                     "", None))
    return rows


def rank_rows(r: dict, args) -> list:
    rows = []
    for c in r.get("cases", []):
        memory = "" if c.get("mem_ours") is None else f"; {c['mem_ours']:.2f} vs {c['mem_ref']:.2f} GB"
        rows.append((f"{c['case']}: {c['candidates']} candidates, vocab {c['vocab']}",
                     f"ours {c['ours_s']:.3f} s, full sequence {c['ref_s']:.3f} s: ×{c['speedup']:.1f}; ranks "
                     f"{'identical' if c['ranks_identical'] else c['same_ranks']}; {c['candidates_per_s']:.0f} "
                     f"candidates/s{memory}", "", None))
    return rows


def train_rows(r: dict, args) -> list:
    rows = []
    verdicts = args.size == "7b" and args.device == "cuda"
    for side in r.get("sides", []):
        text = (f"{fmt(side['samples_per_s'])} samples/s (×{fmt(side['vs_hf'])} HF); MFU "
                f"{fmt(side['mfu'] and side['mfu'] * 100, '.1f', ' %')} ({fmt(side['model_tflops'], '.1f')} TFLOP/s); "
                f"step memory {fmt(side['memory_gb'], '.1f', ' GB')}")
        goal, met = "", None
        if side["side"] == "ours (all levers)":
            goal = "MFU ≥ 35 %, ≥ 1.2× HF"
            met = (side["mfu"] or 0) >= 0.35 and (side["vs_hf"] or 0) >= 1.2 if verdicts else None
        rows.append((side["side"], text, goal, met))
    return rows


def distributed_rows(r: dict, args) -> list:
    rows = [(f"launch: {entry['runs']}", f"exit {entry['exit']}, {entry['seconds']:.1f} s", "", None)
            for entry in r.get("launches", [])]
    for name, c in r.get("comparisons", {}).items():
        exact = c["tolerance"] is None
        text = (f"{c['steps_compared']} steps; loss differs by ≤ {fmt(c['max_loss_diff'], '.2e')} (rel "
                f"{fmt(c['max_loss_rel'], '.1e')}), final weights by ≤ {fmt(c['max_weight_diff'], '.2e')}")
        goal = "exact" if exact else f"within {c['tolerance']:g} (rel)"
        if exact and not c["equal"]:
            text += f"; {'within' if c['within_noise'] else 'beyond'} the other comparisons' tolerance"
        rows.append((f"{name} ({r['nproc']} × {r['backend']})", text, goal, c["equal"]))
    return rows


def quantized_rows(r: dict, args) -> list:
    return [(m["mode"], m["error"] if "error" in m else f"load {m['load_s']:.1f} s, {m['memory_gb']:.2f} GB, "
             f"{m['tokens_per_s']:.1f} tok/s (batch 1, greedy)", "", None) for m in r.get("modes", [])]


def eval_rows(r: dict, args) -> list:
    if "on_s" not in r:
        return []
    text = (f"{r['questions']} questions on {r['images']} images, batch {r['batch']}: ours {r['on_per_s']:.1f} q/s "
            f"with the feature cache ({r['off_per_s']:.1f} without)")
    goal = "≥ 10× (GPU), ≥ 5× (CPU)"
    met = None
    if "hf_single_s" in r:
        text += (f"; HF one at a time {r['hf_single_per_s']:.1f} q/s: ×{r['ratio_vs_hf_single']:.2f} "
                 f"(×{r['ratio_off_vs_hf_single']:.2f} without the cache); answers equal {r['answers_equal_hf']}/"
                 f"{r['questions']}")
        if args.size == "7b" and args.device == "cuda":
            met = r["ratio_vs_hf_single"] >= 10
    return [("GQA-like, beam 5", text, goal, met)]


PARTS = [
    Part(0, "machine", "machine", {"cpu": 60, "7b": 30}, run_machine, machine_rows),
    Part(1, "load", "load (7B dims, random fp16)", {"cpu": 60, "7b": 45}, run_load, load_rows),
    Part(2, "generate", "generate + decode levers", {"cpu": 120, "7b": 105}, run_generate, generate_rows),
    Part(3, "rank", "candidate ranking", {"cpu": 60, "7b": 40}, run_rank, rank_rows),
    Part(4, "train", "training steps (bf16 on CUDA)", {"cpu": 60, "7b": 70}, run_train, train_rows),
    Part(5, "distributed", "torchrun DDP / FSDP2 / kill + resume", {"cpu": 150, "7b": 65}, run_distributed,
         distributed_rows),
    Part(6, "quantized", "int8 / nf4 LLM", {"cpu": 90, "7b": 60}, run_quantized, quantized_rows),
    Part(7, "eval", "short-answer eval vs one-at-a-time HF", {"cpu": 60, "7b": 55}, run_eval, eval_rows),
]
BY_KEY = {part.key: part for part in PARTS}


# ----- running a part in its own process -----------------------------------------------------------------------
def child_main(part: Part, args, work: Path, result_path: Path) -> None:
    """The part's process: run it, write `{status, result, error, traceback}`; the result of a failed part is
    what its script wrote to `<work>/<key>.json` before it failed."""
    outcome = dict(status="ok")
    try:
        failure = args.fail.get(part.key)
        if failure == "hang":
            time.sleep(10**6)
        if failure == "cudafork" and not args.child:  # what torch raises in a fork whose parent initialised CUDA
            raise RuntimeError("Cannot re-initialize CUDA in forked subprocess (forced by --fail)")
        if failure == "error":
            raise RuntimeError(f"forced failure of part {part.key} (--fail)")
        outcome["result"] = part.run(args, work)
    except NotAvailable as error:
        outcome.update(status="not available", error=str(error))
    except BaseException as error:  # noqa: BLE001 (SystemExit from argparse included): reported, the rest goes on
        outcome.update(status="failed", error=f"{type(error).__name__}: {error}",
                       traceback=traceback.format_exc().splitlines()[-12:])
    write_json(str(result_path), outcome)


def fork_entry(part_key: str, args, work: Path, result_path: Path) -> None:
    """The forked process: its output (the script's own lines and tables, warnings) to `<work>/<key>.log`."""
    with open(work / f"{part_key}.log", "w") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    child_main(BY_KEY[part_key], args, work, result_path)
    sys.stdout.flush()
    sys.stderr.flush()


def log_tail(path: Path, lines: int = 25) -> list[str]:
    """The last `lines` lines of a part's output (each cut at 300 characters), for the report."""
    if not path.exists():
        return []
    return [line[:300] for line in path.read_text(errors="replace").splitlines()[-lines:]]


def cuda_fork_problem(outcome: dict) -> bool:
    text = outcome.get("error", "") + "".join(outcome.get("traceback", []))
    return "forked subprocess" in text or "initialization error" in text


def run_isolated(part: Part, args, work: Path, budget: float) -> dict:
    """`part` in a forked process (imports shared, no CUDA in the parent) or, with `--isolation subprocess` or after a
    CUDA-in-fork error, in a fresh interpreter; killed with everything it started once `budget` seconds pass."""
    result_path = work / f"{part.key}.outcome.json"
    args.part_budget = budget
    start = time.perf_counter()
    isolation = args.isolation
    while True:
        result_path.unlink(missing_ok=True)
        if isolation == "fork":
            process = multiprocessing.get_context("fork").Process(target=fork_entry, args=(part.key, args, work,
                                                                                           result_path))
            process.start()
            process.join(budget)
            timed_out = process.is_alive()
            if timed_out:
                kill_tree(process.pid)
                process.join()
        else:
            command = [sys.executable, __file__, *args.argv, "--child", part.key, "--workdir", str(work),
                       "--part-budget", str(budget)]
            with open(work / f"{part.key}.log", "w") as log:
                process = subprocess.Popen(command, start_new_session=True, stdout=log, stderr=subprocess.STDOUT)
            try:
                process.wait(timeout=budget)
                timed_out = False
            except subprocess.TimeoutExpired:
                kill_tree(process.pid)
                process.wait()
                timed_out = True
        outcome = json.loads(result_path.read_text()) if result_path.exists() else None
        if isolation == "fork" and outcome and outcome["status"] == "failed" and cuda_fork_problem(outcome):
            print(f"[gpu_check] {part.key}: CUDA failed in the forked process; again in a fresh interpreter (and so "
                  "every later part)", flush=True)
            isolation, budget = "subprocess", max(budget - (time.perf_counter() - start), 5)
            args.isolation = isolation
            continue
        break
    if outcome is None:
        outcome = dict(status="timeout" if timed_out else "failed",
                       error=f"ran past its {budget:.0f} s budget and was killed" if timed_out else
                       f"its process ended (exit {process.exitcode if isolation == 'fork' else process.returncode}) "
                       "without a result")
    if "result" not in outcome:  # a failed or killed part: what its script wrote before
        partial = work / f"{part.key}.json"
        outcome["result"] = json.loads(partial.read_text()) if partial.exists() else {}
    outcome["seconds"] = time.perf_counter() - start
    outcome["isolation"] = isolation
    outcome["log_tail"] = log_tail(work / f"{part.key}.log")
    return outcome


# ----- the report ---------------------------------------------------------------------------------------------
def part_rows(part: Part, outcome: dict, args) -> list[dict]:
    try:
        rows = part.rows(outcome.get("result") or {}, args)
    except Exception as error:  # noqa: BLE001: a partial result the rows cannot read
        rows = [("", f"(result unreadable: {type(error).__name__}: {error})", "", None)]
    if outcome["status"] != "ok":
        rows.append(("error" if outcome["status"] != "not available" else "", outcome.get("error", ""), "", None))
    return [dict(case=case, measured=measured, goal=goal, met=met) for case, measured, goal, met in rows]


def print_table(report: dict) -> None:
    print(f"\ngpu_check --device {report['device']} --size {report['size']}: {report['total_s']:.0f} s in all\n")
    print("| # | part | status | s (budget) | case | measured | goal | met |")
    print("|---|---|---|---|---|---|---|---|")
    for key, entry in report["parts"].items():
        head = f"| {entry['number']} | {key} | {entry['status']} | {entry['seconds']:.0f} ({entry['budget_s']:.0f}) |"
        rows = entry["rows"] or [dict(case="", measured="", goal="", met=None)]
        for i, row in enumerate(rows):
            met = "" if row["met"] is None else ("yes" if row["met"] else "no")
            cells = head if i == 0 else "| | | | |"
            print(f"{cells} {row['case']} | {row['measured'].replace('|', '/')} | {row['goal']} | {met} |")


def parse_budgets(text: str) -> dict:
    budgets = {}
    for item in filter(None, text.split(",")):
        key, _, seconds = item.partition("=")
        if key not in BY_KEY or not seconds:
            raise SystemExit(f"--budget: expected key=seconds with key one of {', '.join(BY_KEY)}, got {item!r}")
        budgets[key] = float(seconds)
    return budgets


def parse_fail(text: str) -> dict:
    """`--fail generate,load:hang,eval:cudafork` → {"generate": "error", "load": "hang", "eval": "cudafork"} (test
    hooks: a part that raises, one that never ends, one whose fork cannot use CUDA)."""
    failures = {}
    for item in filter(None, text.split(",")):
        key, _, how = item.partition(":")
        if key not in BY_KEY or how not in ("", "hang", "cudafork"):
            raise SystemExit(f"--fail: expected key[:hang|:cudafork] with key one of {', '.join(BY_KEY)}, got {item!r}")
        failures[key] = how or "error"
    return failures


def selected(text: str) -> list[Part]:
    if text == "all":
        return PARTS
    wanted = set(filter(None, text.split(",")))
    unknown = wanted - {p.key for p in PARTS} - {str(p.number) for p in PARTS}
    if unknown:
        raise SystemExit(f"--parts: unknown {sorted(unknown)}; expected numbers 0-7 or {', '.join(BY_KEY)}")
    return [p for p in PARTS if p.key in wanted or str(p.number) in wanted]


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--size", choices=sorted(SETTINGS), default="cpu",
                        help="7b: InstructBLIP-Vicuna-7B dimensions; cpu: the dry run on tiny dimensions")
    parser.add_argument("--parts", default="all",
                        help="all, or a comma list of part numbers or keys (0 / machine: the versions and the device)")
    parser.add_argument("--json", default="gpu_check.json", help="the report (written after every part)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads on CPU (1: steady on a shared machine)")
    parser.add_argument("--nproc", type=int, default=None, help="part 5's processes (default: the GPUs; 2 on CPU)")
    parser.add_argument("--budget", default="", help="per-part seconds, e.g. generate=200,train=60")
    parser.add_argument("--total-budget", type=float, default=None, help="seconds for the whole check")
    parser.add_argument("--isolation", choices=["fork", "subprocess"], default="fork",
                        help="fork (default: the imports are shared) or a fresh interpreter per part")
    parser.add_argument("--workdir", help="the parts' files (default: a temporary folder)")
    parser.add_argument("--fail", default="", help=argparse.SUPPRESS)  # test hook: key[:hang],... fail those parts
    parser.add_argument("--child", help=argparse.SUPPRESS)  # one part, in this process (--isolation subprocess)
    parser.add_argument("--part-budget", type=float, default=0.0, help=argparse.SUPPRESS)  # the child's budget
    args = parser.parse_args(argv)
    args.argv = list(argv)
    args.fail, args.budgets = parse_fail(args.fail), parse_budgets(args.budget)
    args.machine = None
    work = Path(args.workdir or tempfile.mkdtemp(prefix="gpu_check_"))
    work.mkdir(parents=True, exist_ok=True)
    if args.child:  # one part in this interpreter, for a parent running with --isolation subprocess
        machine = work / "machine.outcome.json"
        args.machine = json.loads(machine.read_text()).get("result") if machine.exists() else None
        child_main(BY_KEY[args.child], args, work, work / f"{args.child}.outcome.json")
        return {}

    total = args.total_budget or TOTAL_BUDGET_S[args.size]
    started = time.perf_counter()
    report = dict(device=args.device, size=args.size, command=["bench/gpu_check.py", *argv], total_budget_s=total,
                  started=time.strftime("%Y-%m-%d %H:%M:%S"), parts={}, total_s=0.0)
    for part in selected(args.parts):
        left = total - (time.perf_counter() - started)
        budget = min(args.budgets.get(part.key, part.budget_s[args.size]), left)
        if left < 5:
            outcome = dict(status="skipped", error=f"the check's {total:.0f} s were spent", result={}, seconds=0.0)
        else:
            print(f"[gpu_check] part {part.number} {part.key} (budget {budget:.0f} s)", flush=True)
            outcome = run_isolated(part, args, work, budget)
        if part.key == "machine":
            args.machine = outcome.get("result") or {}
        entry = dict(number=part.number, title=part.title, budget_s=budget, **outcome)
        entry["rows"] = part_rows(part, entry, args)
        report["parts"][part.key] = entry
        report["total_s"] = time.perf_counter() - started
        write_json(args.json, report)
        print(f"[gpu_check] part {part.number} {part.key}: {entry['status']} in {entry['seconds']:.0f} s"
              + (f": {entry.get('error')}" if entry["status"] != "ok" else ""), flush=True)
    print_table(report)
    print(f"\nwritten: {args.json} (each part's output: {work}/<part>.log)")
    return report


if __name__ == "__main__":
    main()
