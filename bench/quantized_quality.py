"""Benchmark: what quantizing the frozen LLM costs in accuracy, on the model `make demo` trained.

The best checkpoint of a demo training job is evaluated with the LLM in fp32, int8 and nf4 (`model.quantization`,
same Q-Former weights): held-in VQA accuracy on synthetic_vqa's val split, then the zero-shot held-out table of
`projects/instructblip/eval/synthetic.yaml`, through `evaluate.py`'s code path. Goal (issue 19): every int8 number
within 1 point of fp32, every nf4 number within 3.

    .venv/bin/python bench/quantized_quality.py                       # the newest output/demo/train/demo_* job
    .venv/bin/python bench/quantized_quality.py --checkpoint output/demo/train/<job>/checkpoints/step_<N>/model.safetensors
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
HELD_OUT = ROOT / "projects" / "instructblip" / "eval" / "synthetic.yaml"
QUANTIZATIONS = ("fp32", "int8", "nf4")
GOAL = {"int8": 1.0, "nf4": 3.0}


def newest_demo_checkpoint() -> Path:
    jobs = sorted((ROOT / "output" / "demo" / "train").glob("demo_*"))
    if not jobs:
        raise SystemExit("no output/demo/train/demo_* job: run `make demo` first, or pass --checkpoint")
    from lavis_ib.runners.checkpoints import CheckpointStore

    return CheckpointStore(jobs[-1] / "checkpoints").best() / "model.safetensors"


def evaluate(config: Path, options: list[str], out: Path, job: str, limit: int | None) -> list[dict]:
    from lavis_ib.cli import run

    run("evaluate", ["--cfg-path", str(config), *(["--limit", str(limit)] if limit else []),
                     "--options", f"run.output_dir={out}", f"run.job_id={job}", *options])
    return json.loads((out / job / "results.json").read_text())["rows"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--llm-model", default=None, help="the frozen LLM directory the checkpoint was trained on")
    parser.add_argument("--images", type=int, default=5000, help="scenes in the synthetic world (make demo's)")
    parser.add_argument("--held-in-limit", type=int, default=200, help="val records (make demo validates on 200)")
    parser.add_argument("--held-out-limit", type=int, default=None, help="records per held-out split (default all)")
    args = parser.parse_args()
    checkpoint = args.checkpoint or newest_demo_checkpoint()
    from lavis_ib.datasets import synthetic

    with tempfile.TemporaryDirectory(prefix="quantized_quality_") as tmp:
        tmp = Path(tmp)
        os.environ["LAVIS_IB_CACHE"] = str(tmp / "cache")
        synthetic.build_world(tmp / "cache", n_images=args.images)
        held_in = tmp / "held_in.yaml"
        held_in.write_text(yaml.safe_dump({"include": str(ROOT / "projects" / "instructblip" / "demo_model.yaml"),
                                           "datasets": {"synthetic_vqa": {}},
                                           "run": {"test_splits": ["val"], "batch_size_eval": 32}}))
        table = {}
        for name in QUANTIZATIONS:
            options = [f"model.checkpoint={checkpoint}"] + ([] if name == "fp32" else [f"model.quantization={name}"])
            options += [f"model.llm_model={args.llm_model}"] if args.llm_model else []
            rows = evaluate(held_in, options, tmp / "out", f"held_in_{name}", args.held_in_limit)
            rows += evaluate(HELD_OUT, options, tmp / "out", f"held_out_{name}", args.held_out_limit)
            table[name] = {row["dataset"]: row["ours"] for row in rows}
    print(f"\ncheckpoint: {checkpoint}")
    print("| task | " + " | ".join(QUANTIZATIONS) + " | int8 − fp32 | nf4 − fp32 |")
    print("|---|" + "---:|" * (len(QUANTIZATIONS) + 2))
    for task in table["fp32"]:
        values = [table[name][task] for name in QUANTIZATIONS]
        deltas = [table[name][task] - table["fp32"][task] for name in ("int8", "nf4")]
        marks = ["" if abs(d) <= GOAL[name] else " ✗" for d, name in zip(deltas, ("int8", "nf4"))]
        print(f"| {task} | " + " | ".join(f"{v:.1f}" for v in values) + " | "
              + " | ".join(f"{d:+.1f}{m}" for d, m in zip(deltas, marks)) + " |")


if __name__ == "__main__":
    main()
