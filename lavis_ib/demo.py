"""`make demo`: the public API on the tiny InstructBLIP, then instruction tuning on the synthetic world and a
zero-shot evaluation of the result on its held-out tasks.

1. Inference: `load_model_and_preprocess` on the `tiny` model type (random weights) and `generate` / candidate
   scores for an instruction about a bundled image; an untrained ranking is shown as scores beside chance.
2. Training: build the synthetic world (5,000 scenes) and instruction-tune the tiny model on its held-in tasks with
   `torchrun --nproc_per_node=2 train.py --cfg-path projects/instructblip/train/demo.yaml` (ViT and LLM frozen and
   pre-trained by `tools/make_tiny_vit.py` / `tools/make_tiny_lm.py`), then print the validation curve.
3. Held-out: `evaluate.py --cfg-path projects/instructblip/eval/synthetic.yaml` with the best checkpoint.
Every accuracy is printed beside its chance level, held-out ones beside the goal (chance + 15 points) too; the last
line is the command that serves the trained model on a page (`python run_demo.py`).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from lavis_ib import load_dataset, load_model_and_preprocess, model_zoo, registry
from lavis_ib.common.dist import free_port
from lavis_ib.common.media import open_image
from lavis_ib.common.paths import assets_root
from lavis_ib.datasets import synthetic
from lavis_ib.datasets.sampling import balanced_mixture
from lavis_ib.runners.checkpoints import CheckpointStore

DEMO_IMAGE = assets_root / "images" / "demo.png"
TRAIN_CONFIG = "projects/instructblip/train/demo.yaml"  # relative to the repository (where `make demo` runs)
EVAL_CONFIG = "projects/instructblip/eval/synthetic.yaml"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="blip2_vicuna_instruct")
    parser.add_argument("--model-type", default="tiny")
    parser.add_argument("--image", default=str(DEMO_IMAGE))
    parser.add_argument("--prompt", default="What shape is next to the stop sign?")
    parser.add_argument("--images", type=int, default=5000, help="scenes in the synthetic world")
    parser.add_argument("--videos", type=int, default=200, help="clips in the synthetic world (held-out video QA)")
    parser.add_argument("--train-config", default=TRAIN_CONFIG, help="instruction tuning on the held-in tasks")
    parser.add_argument("--no-train", dest="train_config", action="store_const", const=None,
                        help="stop after building the world")
    parser.add_argument("--eval-config", default=EVAL_CONFIG, help="held-out evaluation of the trained model")
    parser.add_argument("--nproc", type=int, default=2, help="training processes (torchrun --nproc_per_node)")
    parser.add_argument("--train-options", nargs="*", default=[], metavar="KEY=VALUE",
                        help="more options for train.py, e.g. run.max_iters=500")
    parser.add_argument("--output", default="output/demo", help="where the training and evaluation jobs go")
    args = parser.parse_args(argv)
    for name in ("train_config", "eval_config"):
        path = getattr(args, name)
        if path is not None and not Path(path).is_file():
            parser.error(f"--{name.replace('_', '-')} {path} not found; run the demo from the repository root")

    torch.manual_seed(0)
    print(model_zoo, "\n")
    start = time.perf_counter()
    model, vis_processors, _ = load_model_and_preprocess(args.arch, args.model_type, is_eval=True)
    image = vis_processors["eval"](open_image(args.image)).unsqueeze(0)
    answer = model.generate({"image": image, "prompt": args.prompt}, max_length=12)[0]
    print(f"model     : {args.arch}/{args.model_type} ({sum(p.numel() for p in model.parameters()):,} parameters)")
    print(f"image     : {args.image} -> tensor {tuple(image.shape)}")
    print(f"prompt    : {args.prompt}")
    print(f"generated : {answer!r}")
    show_candidate_scores(model, image, args.prompt, ["a red circle", "a blue square", "a green triangle"])
    print(f"time      : {time.perf_counter() - start:.1f} s")
    if model.cfg.random_init:
        print("note      : random weights (tiny model type) - the text is noise until the model is trained")
    synthetic_world_demo(image.shape[-1], args)


def show_candidate_scores(model, image: torch.Tensor, prompt: str, choices: list[str]) -> None:
    """Candidate log-likelihoods on the image and on a blank one, with chance beside them.

    An untrained model's ranking follows the candidates' token counts, whatever the image; it is shown as scores,
    never as an answer, unless the model is trained and its ranking changes with the image.
    """
    scores = model.score_candidates({"image": image, "prompt": prompt}, choices).sum[0]
    blank = model.score_candidates({"image": torch.zeros_like(image), "prompt": prompt}, choices).sum[0]
    print("candidates: log-likelihood on this image | on a blank image")
    for choice, score, blank_score in zip(choices, scores.tolist(), blank.tolist()):
        print(f"  {choice:18s} {score:9.2f} | {blank_score:9.2f}")
    image_independent = torch.equal(scores.argsort(descending=True), blank.argsort(descending=True))
    if model.cfg.random_init or image_independent:
        print(f"answer    : none - the ranking {'does not depend on the image' if image_independent else 'is noise'} "
              f"(untrained weights); chance is 1/{len(choices)} ({100 / len(choices):.0f} %)")
    else:
        print(f"answer    : {choices[int(scores.argmax())]!r} (chance 1/{len(choices)})")


def synthetic_dataset(name: str, split: str, image_size: int):
    """A synthetic-world split with images resized for the model at hand."""
    builder = registry.get_builder_class(name)
    sizes = {"train": {"image_size": image_size}, "eval": {"image_size": image_size}}
    return load_dataset(name, builder.default_config(vis_processor=sizes), splits=[split])[split]


def synthetic_world_demo(image_size: int, args: argparse.Namespace) -> None:
    """Build the world in a temporary cache, show a balanced held-in batch, instruction-tune on the held-in tasks
    (`train.py` under torchrun), print the validation curve, then evaluate the best checkpoint zero-shot on the
    held-out tasks through `evaluate.py`'s code path, each number beside its chance level."""
    previous = os.environ.get("LAVIS_IB_CACHE")
    with tempfile.TemporaryDirectory() as cache:
        os.environ["LAVIS_IB_CACHE"] = cache
        try:
            start = time.perf_counter()
            reports = synthetic.build_world(cache, n_images=args.images, n_videos=args.videos)
            total = sum(r.written for split_reports in reports.values() for r in split_reports)
            print(f"\nsynthetic world: {args.images:,} scenes, {args.videos:,} clips, {total:,} records in "
                  f"{time.perf_counter() - start:.1f} s")
            held_in = {name: synthetic_dataset(name, "train", image_size) for name in synthetic.HELD_IN}
            mixture, sampler = balanced_mixture(held_in, seed=0)
            batch = mixture.collator([mixture[key] for key in itertools.islice(iter(sampler), 4)])
            for name, instruction, target in zip(batch["dataset"], batch["text_input"], batch["text_output"]):
                print(f"  {name:18s} {instruction!r} -> {target!r}")
            if args.train_config is None:
                return
            job = train_on_held_in(Path(args.train_config), Path(args.output), args.nproc, cache, args.train_options)
            print_validation_curve(job)
            best = CheckpointStore(job / "checkpoints").best()
            evaluate_held_out(Path(args.eval_config), Path(args.output), best / "model.safetensors", job.name)
            print_page_command(Path(args.output), best / "model.safetensors")
        finally:
            if previous is None:
                os.environ.pop("LAVIS_IB_CACHE", None)
            else:
                os.environ["LAVIS_IB_CACHE"] = previous


def train_on_held_in(config: Path, output: Path, nproc: int, cache: str, options: list[str]) -> Path:
    """`torchrun --nproc_per_node=<nproc> train.py --cfg-path <config>` on the world in `cache`; the job folder."""
    job_id = time.strftime("demo_%Y%m%d_%H%M%S")
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--master_addr=127.0.0.1",
               f"--master_port={free_port()}", "train.py", "--cfg-path", str(config),
               "--options", f"run.output_dir={output / 'train'}", f"run.job_id={job_id}", *options]
    print(f"\ninstruction tuning: torchrun --nproc_per_node={nproc} train.py --cfg-path {config}")
    start = time.perf_counter()
    env = {**os.environ, "LAVIS_IB_CACHE": cache, "OMP_NUM_THREADS": "1"}
    subprocess.run(command, env=env, check=True)
    print(f"trained in {time.perf_counter() - start:.0f} s")
    return output / "train" / job_id


def validation_curve(job: Path) -> list[dict]:
    """The validation events of a job's `log.txt`: step, colour / shape VQA accuracy and caption CIDEr."""
    curve = []
    for line in (job / "log.txt").read_text().splitlines():
        event = json.loads(line)
        if "val_agg_metrics" in event:
            curve.append({"step": event["step"],
                          "colour": event.get("val_synthetic_vqa/val/colour/exact_match"),
                          "shape": event.get("val_synthetic_vqa/val/shape/exact_match"),
                          "cider": event.get("val_synthetic_caption/val/CIDEr")})
    return curve


def print_validation_curve(job: Path) -> None:
    colour, shape = 100 / len(synthetic.COLOURS), 100 / len(synthetic.SHAPES)
    print(f"\nheld-in validation ({job / 'log.txt'}):")
    print(f"| step | VQA colour % (chance {colour:.1f}) | VQA shape % (chance {shape:.1f}) | caption CIDEr |")
    print("|---:|---:|---:|---:|")
    for point in validation_curve(job):
        print(f"| {point['step']} | {point['colour']:.1f} | {point['shape']:.1f} | {point['cider']:.1f} |")


GOAL_ABOVE_CHANCE = 15.0
"""The demo's zero-shot goal: every held-out row at least this many points above its chance level."""

HELD_OUT_CHANCE = {
    "synthetic_count": 100 / 3,  # 1, 2 or 3 shapes
    "synthetic_spatial": 100 / 2,  # true / false
    "synthetic_choice": 100 / len(synthetic.SHAPES),
    "synthetic_video_qa": 100 / len(synthetic.DIRECTIONS),
}
"""Accuracy of a uniform guess over each held-out task's answers."""


def evaluate_held_out(config: Path, output: Path, checkpoint: Path, job_id: str) -> None:
    """`evaluate.py --cfg-path <config>` with the trained weights, then its rows beside their chance levels. The
    evaluation job is named after the training job: each `make demo` evaluates its own weights (a shared job id
    would hold the predictions of an earlier run's checkpoint, which the evaluator refuses to mix)."""
    from lavis_ib.cli import run

    print(f"\nzero-shot held-out evaluation: python evaluate.py --cfg-path {config} "
          f"--options model.checkpoint={checkpoint}")
    run("evaluate", ["--cfg-path", str(config), "--options", f"model.checkpoint={checkpoint}",
                     f"run.output_dir={output / 'eval'}", f"run.job_id={job_id}"])
    rows = json.loads((output / "eval" / job_id / "results.json").read_text())["rows"]
    print(f"\n| held-out task | metric | trained tiny model | chance | goal (chance + {GOAL_ABOVE_CHANCE:.0f}) |")
    print("|---|---|---:|---:|---:|")
    met = 0
    for row in rows:
        chance = HELD_OUT_CHANCE[row["dataset"]]
        reached = row["ours"] >= chance + GOAL_ABOVE_CHANCE
        met += reached
        print(f"| {row['dataset']} | {row['metric']} | {row['ours']:.1f} | {chance:.1f} | "
              f"{chance + GOAL_ABOVE_CHANCE:.1f} {'met' if reached else 'missed'} |")
    print(f"zero-shot goal met on {met} of {len(rows)} held-out tasks")


def print_page_command(output: Path, checkpoint: Path) -> None:
    """The command that serves the trained model on a page: plain `python run_demo.py` when the run went where it
    looks (output/demo/train), else with the checkpoint named."""
    command = "python run_demo.py"
    if output.resolve() != Path("output/demo").resolve():
        command += f" --cfg-path projects/instructblip/demo_model.yaml --checkpoint {checkpoint}"
    print(f"\ntry the trained model on a page: {command}   (http://127.0.0.1:7860/; pip install -e .[demo])")


if __name__ == "__main__":
    main()
