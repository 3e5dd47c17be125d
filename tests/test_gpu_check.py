"""`bench/gpu_check.py`, the one-command device check, in its CPU dry run (`--device cpu --size cpu`, tiny dimensions):
every part reports a status and its numbers in the table and in gpu_check.json, and a part that fails or hangs is
reported with its error while the others still run; a part whose forked process cannot use CUDA runs again in a
fresh interpreter (`--isolation subprocess`)."""

from __future__ import annotations

import importlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "gpu_check.py"
PARTS = ["load", "generate", "rank", "train", "distributed", "quantized", "eval"]


def gpu_check(tmp_path: Path, *args: str, timeout: int = 400) -> tuple[dict, str]:
    """Run the check (one torch thread per process, as on the shared test machine); its report and stdout."""
    report = tmp_path / "gpu_check.json"
    (tmp_path / "tmp").mkdir()  # the scripts' temporary folders (tokenizers, images) end up under pytest's
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp_path / "tmp")}
    done = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--size", "cpu", "--json", str(report),
                           "--workdir", str(tmp_path / "work"), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(report.read_text()), done.stdout


def number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def table_row(stdout: str, number_: int, key: str) -> str:
    return next(line for line in stdout.splitlines() if line.startswith(f"| {number_} | {key} |"))


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    return gpu_check(tmp_path_factory.mktemp("dry_run"))


def test_the_dry_run_reports_every_part_with_its_numbers(dry_run):
    report, stdout = dry_run
    parts = report["parts"]
    assert list(parts) == ["machine", *PARTS]
    assert {key: parts[key]["status"] for key in parts} == {key: "ok" for key in parts}
    for key, entry in parts.items():
        assert number(entry["budget_s"]) and entry["seconds"] >= 0 and entry["rows"], key
        assert entry["status"] in table_row(stdout, entry["number"], key)

    build = parts["load"]["result"]["build"]
    assert all(number(build[k]) for k in ("hf_build_s", "ours_build_s", "hf_params_m", "peak_gb"))

    generated = parts["generate"]["result"]
    assert [c["key"] for c in generated["cases"]] == ["b1-greedy", "b2-beam2"]
    assert all(number(c["ours_tokens_per_s"]) and number(c["hf_tokens_per_s"]) and c["equal"] is True
               for c in generated["cases"])
    assert [(lever["key"], lever["lever"]) for lever in generated["levers"]] == [("b1-greedy", "static"),
                                                                                ("b1-greedy", "compile")]
    assert all(number(lever["speedup_vs_ours"]) and lever["ids_identical"] is True for lever in generated["levers"])

    ranked = parts["rank"]["result"]["cases"]
    assert [c["case"] for c in ranked] == ["visdial", "msvd"]
    assert all(number(c["speedup"]) and c["ranks_identical"] is True and c["candidates"] == 40 for c in ranked)

    sides = parts["train"]["result"]["sides"]
    assert [s["side"] for s in sides] == ["HF + AdamW (default)", "ours (all levers)", "ours, llm_grad_checkpoint"]
    assert all(number(s["samples_per_s"]) and number(s["vs_hf"]) and number(s["gflop_per_sample"]) for s in sides)

    distributed = parts["distributed"]["result"]
    assert (distributed["nproc"], distributed["backend"]) == (2, "gloo")
    assert [launch["exit"] for launch in distributed["launches"]] == [1, 0]  # the killed launch, then the resume
    comparisons = distributed["comparisons"]
    assert set(comparisons) == {"fsdp vs ddp", "resumed vs ddp"}
    assert all(c["equal"] is True and c["steps_compared"] == 6 for c in comparisons.values())
    assert comparisons["resumed vs ddp"]["max_weight_diff"] == 0.0

    quantized = parts["quantized"]["result"]["modes"]
    assert [m["mode"] for m in quantized] == ["int8", "nf4"] and not any("error" in m for m in quantized)
    assert all(number(m["tokens_per_s"]) and number(m["load_s"]) for m in quantized)

    evaluated = parts["eval"]["result"]
    assert evaluated["questions"] == 8 and evaluated["identical"] is True
    assert all(number(evaluated[k]) for k in ("on_per_s", "off_per_s", "hf_single_per_s", "ratio_vs_hf_single"))
    assert "HF one at a time" in table_row(stdout, 7, "eval")


def test_a_failing_or_hanging_part_is_reported_and_the_others_still_run(tmp_path):
    report, stdout = gpu_check(tmp_path, "--parts", "load,quantized,eval", "--fail", "load,quantized:hang",
                               "--budget", "quantized=3")
    parts = report["parts"]
    assert [(key, parts[key]["status"]) for key in parts] == [("load", "failed"), ("quantized", "timeout"),
                                                              ("eval", "ok")]
    assert "forced failure of part load" in parts["load"]["error"] and parts["load"]["traceback"]
    assert "ran past its 3 s budget and was killed" in parts["quantized"]["error"]
    assert 3 <= parts["quantized"]["seconds"] < 30
    assert number(parts["eval"]["result"]["ratio_vs_hf_single"])
    assert "forced failure" in table_row(stdout, 1, "load") and "| timeout |" in table_row(stdout, 6, "quantized")


def test_a_part_whose_fork_cannot_use_cuda_runs_again_in_a_fresh_interpreter(tmp_path):
    """The fallback to `--isolation subprocess` (one interpreter per part) when CUDA fails in a forked process."""
    report, stdout = gpu_check(tmp_path, "--parts", "quantized", "--fail", "quantized:cudafork",
                               "--budget", "quantized=150")  # a fresh interpreter imports everything again
    entry = report["parts"]["quantized"]
    assert (entry["status"], entry["isolation"]) == ("ok", "subprocess")
    assert [m["mode"] for m in entry["result"]["modes"]] == ["int8", "nf4"]
    assert "CUDA failed in the forked process; again in a fresh interpreter" in stdout


@pytest.fixture
def bench_modules(monkeypatch):
    """bench/ importable for the test; its modules (`generate`, `train`, ...) forgotten afterwards."""
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    yield
    for name, module in list(sys.modules.items()):
        if Path(getattr(module, "__file__", None) or "/").parent == ROOT / "bench":
            del sys.modules[name]


def test_the_quantized_part_loads_the_llm_in_int8_and_nf4_through_load_model(bench_modules, tmp_path):
    """Part 6 in-process: a random LLM of the check's size saved, then loaded through
    `load_model(..., quantization=...)` in int8 and nf4, and decoded."""
    gpu_check = importlib.import_module("gpu_check")
    result = gpu_check.run_quantized(SimpleNamespace(size="cpu", device="cpu"), tmp_path)
    assert [m["mode"] for m in result["modes"]] == ["int8", "nf4"]
    assert all(number(m["tokens_per_s"]) and m["new_tokens"] == 3 for m in result["modes"]), result
    assert (tmp_path / "random_llm" / "config.json").is_file()
    rows = gpu_check.quantized_rows(result, None)
    assert [row[0] for row in rows] == ["int8", "nf4"] and all("tok/s" in row[1] for row in rows)
