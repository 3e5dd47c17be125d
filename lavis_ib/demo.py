"""`make demo`: load the `tiny` InstructBLIP through the public API and answer an instruction about a bundled image.

The tiny model has random weights (its config says `random_init: true`), so its words are noise; the demo shows the
whole inference path — config, processors, ViT, Q-Former, LLM, generation and candidate scoring — end to end, and
says so instead of presenting an untrained model's ranking as an answer.
It then builds the synthetic world, draws a balanced held-in batch and answers a held-out one. It will train the
tiny model on that world once the training issue lands.
"""

from __future__ import annotations

import argparse
import itertools
import os
import tempfile
import time
from pathlib import Path

import torch

from lavis_ib import load_dataset, load_model_and_preprocess, model_zoo, registry
from lavis_ib.common.media import open_image
from lavis_ib.common.paths import assets_root
from lavis_ib.datasets import synthetic
from lavis_ib.datasets.sampling import balanced_mixture

DEMO_IMAGE = assets_root / "images" / "demo.png"
EVAL_CONFIG = Path("projects/instructblip/eval/synthetic.yaml")  # relative to the repository (where `make demo` runs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="blip2_vicuna_instruct")
    parser.add_argument("--model-type", default="tiny")
    parser.add_argument("--image", default=str(DEMO_IMAGE))
    parser.add_argument("--prompt", default="What shape is next to the stop sign?")
    parser.add_argument("--eval-config", default=str(EVAL_CONFIG), help="held-out evaluation run at the end")
    parser.add_argument("--eval-output", default="output/demo", help="run.output_dir of that evaluation")
    args = parser.parse_args(argv)

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
    synthetic_world_demo(model, image.shape[-1], Path(args.eval_config), args.eval_output)


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


def synthetic_world_demo(model, image_size: int, eval_config: Path, eval_output: str) -> None:
    """Build the world in a temporary cache, show a balanced held-in batch, answer a held-out batch, then evaluate
    the held-out tasks zero-shot through `evaluate.py`'s code path, ending with the results table."""
    previous = os.environ.get("LAVIS_IB_CACHE")
    with tempfile.TemporaryDirectory() as cache:
        os.environ["LAVIS_IB_CACHE"] = cache
        try:
            start = time.perf_counter()
            reports = synthetic.build_world(cache)
            total = sum(r.written for split_reports in reports.values() for r in split_reports)
            print(f"\nsynthetic world: {total:,} records in {time.perf_counter() - start:.1f} s")
            held_in = {name: synthetic_dataset(name, "train", image_size) for name in synthetic.HELD_IN}
            mixture, sampler = balanced_mixture(held_in, seed=0)
            batch = mixture.collater([mixture[key] for key in itertools.islice(iter(sampler), 4)])
            for name, instruction, target in zip(batch["dataset"], batch["text_input"], batch["text_output"]):
                print(f"  {name:18s} {instruction!r} -> {target!r}")
            test = synthetic_dataset("synthetic_count", "test", image_size)
            batch = test.collater([test[i] for i in range(4)])
            answers = model.generate({"image": batch["image"], "prompt": batch["text_input"]}, max_length=5)
            for instruction, answer, truth in zip(batch["text_input"], answers, batch["text_output"]):
                print(f"  held-out {instruction!r}: generated {answer!r}, truth {truth!r}")
            evaluate_held_out(eval_config, eval_output)
        finally:
            if previous is None:
                os.environ.pop("LAVIS_IB_CACHE", None)
            else:
                os.environ["LAVIS_IB_CACHE"] = previous


def evaluate_held_out(config: Path, output_dir: str) -> None:
    """`evaluate.py --cfg-path <config>` on the world just built (the demo's cache), printing the results table."""
    if not config.is_file():
        print(f"\n(no held-out evaluation: {config} not found; run the demo from the repository root)")
        return
    from lavis_ib.cli import run

    print(f"\nzero-shot held-out evaluation: python evaluate.py --cfg-path {config}")
    run("evaluate", ["--cfg-path", str(config), "--options", f"run.output_dir={output_dir}"])


if __name__ == "__main__":
    main()
