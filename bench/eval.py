"""Benchmark: GQA-style evaluation with the frozen-ViT feature cache vs without it (30 questions per image).

The model is the random InstructBLIP-Vicuna of `bench/generate.py` (ours, built from the HF model in memory). The
data path is evaluation's: GQA's builder and items (`media_key`), the model's collator and the VQA task's `predict`
(GQA decoding: beam 5, at most 10 tokens), over JPEGs written to a temporary data root. One process: every batch is
predicted with the cache off and on in turn. Prints seconds, the ratio and whether the predictions are identical;
asserts nothing.

    .venv/bin/python bench/eval.py                        # --size cpu --device cpu: 4 images x 30 questions
    .venv/bin/python bench/eval.py --size 7b --device cuda

See bench/README.md.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

from lavis_ib.common.registry import registry
from lavis_ib.datasets.records import write_jsonl
from generate import SIZES, build_hf, build_ours, hf_batch, sync, write_json

QUESTIONS = [
    "What color is the car?", "Is the sky cloudy?", "Who is wearing a hat?", "What is on the table?",
    "Are there both cups and plates in the picture?", "Which side is the tree on?", "What is the man holding?",
    "Is the fence made of wood or metal?", "What animal is on the grass?", "How large is the building?",
    "Is the woman to the left or to the right of the bicycle?", "What is the vehicle in front of the house?",
    "Do you see any chairs?", "What kind of furniture is it?", "Is the water calm?", "What is the boy doing?",
    "Which color is the shirt, white or blue?", "Are the trees tall?", "What is hanging on the wall?",
    "Is the lamp on?", "What material is the floor?", "Is there a dog or a cat?", "Where is the clock?",
    "What is the girl sitting on?", "Is the road wet?", "What fruit is in the bowl?", "Are the windows open?",
    "What is behind the fence?", "Is the train long?", "What color are the flowers?",
]
ANSWERS = ["red", "yes", "no", "man", "table", "left", "right", "wood", "dog", "large"]
IMAGE_SIZE = (500, 375)  # a typical GQA (Visual Genome) image


def write_gqa_like(root: Path, images: int, questions: int, seed: int = 0) -> None:
    """`images` random JPEGs and `questions` GQA records on each, shuffled (batches mix images, as in GQA)."""
    rng = np.random.default_rng(seed)
    (root / "gqa" / "images").mkdir(parents=True)
    for k in range(images):
        pixels = rng.integers(0, 256, (IMAGE_SIZE[1], IMAGE_SIZE[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "gqa" / "images" / f"n{k}.jpg", quality=90)
    records = [{"image": f"n{k}.jpg", "text_input": QUESTIONS[q % len(QUESTIONS)],
                "text_output": ANSWERS[(k + q) % len(ANSWERS)], "question_id": str(k * questions + q)}
               for k in range(images) for q in range(questions)]
    order = rng.permutation(len(records))
    write_jsonl([records[i] for i in order], root / "datasets" / "gqa" / "testdev.jsonl")


def gqa_split(root: Path, image_size: int):
    """The testdev split through GQA's own builder (eval processor at the model's size) and its VQA task."""
    builder = registry.get_builder_class("gqa")({"data_root": str(root)}, source="bench/eval.py",
                                                vis_defaults={"image_size": image_size})
    dataset = builder.build_split("testdev")
    task = registry.get_task_class(builder.config.eval.task)(builder.config.eval, "gqa", "testdev")
    return dataset, task


def paired_pass(model, dataset, task, batch_size: int, cache_size: int, device: str):
    """One pass over the split, each batch predicted with the cache off and on (alternating which goes first, so
    load from other processes hits both sides alike); the cache starts empty, as in a run. Returns the seconds per
    side, the data loading seconds (shared, in neither side), the answers per side and the cache's counts."""
    model.enable_feature_cache(cache_size)
    cache = model.feature_cache
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=0, collate_fn=model.collator(task.collate_mode))
    seconds, answers, loading = {"off": 0.0, "on": 0.0}, {"off": [], "on": []}, 0.0
    batches = iter(loader)
    for i in range(len(loader)):
        start = time.perf_counter()
        batch = next(batches)
        loading += time.perf_counter() - start
        for side in ("off", "on") if i % 2 == 0 else ("on", "off"):
            model.feature_cache = cache if side == "on" else None
            sync(device)
            start = time.perf_counter()
            with torch.no_grad():
                answers[side] += [p["answer"] for p in task.predict(model, batch)]
            sync(device)
            seconds[side] += time.perf_counter() - start
    model.enable_feature_cache(0)
    return seconds, loading, answers, str(cache)


def hf_inputs(processor, ours, item: dict, device: str, dtype: torch.dtype) -> dict:
    """HF InstructBLIP's inputs for one dataset item, as a harness builds them for one sample: the processor's
    tokens of the item's instruction (the same text ours is given) and the item's pixels (ours' eval processor)."""
    size = item["image"].shape[-1]
    inputs = hf_batch(processor, ours, [np.zeros((size, size, 3), dtype=np.uint8)], [item["text_input"]], device,
                      dtype)
    inputs["pixel_values"] = item["image"][None].to(device, dtype)
    return inputs


@torch.no_grad()
def hf_single_pass(hf_model, processor, ours, dataset, task, device: str, dtype: torch.dtype):
    """transformers' InstructBLIP called one sample at a time, what lmms-eval does, with the split's decoding
    (GQA: beam 5, at most 10 tokens): seconds in `generate` (inputs built beforehand) and the decoded answers."""
    decoding = task.decoding(ours)
    max_new, min_new = ours.new_token_bounds(decoding["max_length"], decoding["min_length"],
                                             decoding["length_semantics"])
    items = [dataset[i] for i in range(len(dataset))]
    inputs = [hf_inputs(processor, ours, item, device, dtype) for item in items]
    answers, seconds = [], 0.0
    for one in inputs:
        sync(device)
        start = time.perf_counter()
        out = hf_model.generate(**one, num_beams=decoding["num_beams"], max_new_tokens=max_new,
                                min_new_tokens=min_new, length_penalty=decoding["length_penalty"],
                                repetition_penalty=decoding["repetition_penalty"], do_sample=False,
                                eos_token_id=ours.eos_token_id, pad_token_id=ours.tokenizer.pad_token_id)
        sync(device)
        seconds += time.perf_counter() - start
        answers += ours.decode(ours.clean_output_ids(out[:, one["input_ids"].shape[1] :]))
    return seconds, answers


def main(argv: list[str] | None = None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="cpu")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--questions", type=int, default=30, help="questions per image")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--reps", type=int, default=2, help="timed passes (each times both sides)")
    parser.add_argument("--cache-size", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=2, help="torch threads on CPU")
    parser.add_argument("--hf-single", action="store_true",
                        help="also time transformers' InstructBLIP one sample at a time (a harness's way) on the split")
    parser.add_argument("--json", help="write the results here (after every pass, so a killed run leaves them)")
    args = parser.parse_args(argv)
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    dtype = torch.float16 if args.device == "cuda" else torch.float32

    t0 = time.perf_counter()
    hf_model, processor = build_hf(args.size, args.device, dtype)
    model = build_ours(hf_model, processor, args.device)
    if not args.hf_single:
        del hf_model
    image_size = SIZES[args.size]["vision"]["image_size"]
    root = Path(tempfile.mkdtemp(prefix="bench_eval_"))
    write_gqa_like(root, args.images, args.questions)
    dataset, task = gqa_split(root, image_size)
    print(f"built model ({args.size}, {args.device}) and {len(dataset)} questions on {args.images} images in "
          f"{time.perf_counter() - t0:.1f}s", flush=True)

    paired_pass(model, torch.utils.data.Subset(dataset, range(args.batch)), task, args.batch, 16, args.device)
    times, identical = {"off": [], "on": []}, True  # (the line above is a warm-up)
    report = dict(questions=len(dataset), images=args.images, batch=args.batch, passes=[])
    for rep in range(args.reps):
        seconds, loading, answers, counts = paired_pass(model, dataset, task, args.batch, args.cache_size, args.device)
        for side in times:
            times[side].append(seconds[side])
        identical &= answers["off"] == answers["on"]
        report["passes"].append(dict(off_s=seconds["off"], on_s=seconds["on"], loading_s=loading, cache=counts))
        report.update(identical=identical)
        write_json(args.json, report)
        print(f"  pass {rep + 1}: cache off {seconds['off']:.2f}s, on {seconds['on']:.2f}s "
              f"(x{seconds['off'] / seconds['on']:.2f}); data loading {loading:.2f}s; cache: {counts}", flush=True)

    off, on = statistics.median(times["off"]), statistics.median(times["on"])
    report.update(off_s=off, on_s=on, off_per_s=len(dataset) / off, on_per_s=len(dataset) / on, ratio_off_on=off / on)
    write_json(args.json, report)
    if args.hf_single:
        hf_s, hf_answers = hf_single_pass(hf_model, processor, model, dataset, task, args.device, dtype)
        same = sum(a == b for a, b in zip(hf_answers, answers["on"]))
        report.update(hf_single_s=hf_s, hf_single_per_s=len(dataset) / hf_s, ratio_vs_hf_single=hf_s / on,
                      ratio_off_vs_hf_single=hf_s / off, answers_equal_hf=same)
        write_json(args.json, report)
        print(f"  HF one sample at a time: {hf_s:.2f}s ({len(dataset) / hf_s:.1f} questions/s); ours with the cache "
              f"x{hf_s / on:.2f}, without x{hf_s / off:.2f}; answers equal {same}/{len(dataset)}", flush=True)
    threads = f", {torch.get_num_threads()} threads" if args.device == "cpu" else ""
    print(f"\n{args.size} model on {args.device}{threads}; {len(dataset)} questions ({args.questions} per image), "
          f"batch {args.batch}, median of {args.reps} passes; torch {torch.__version__}, {platform.machine()}\n")
    print("| cache off s | cache on s | ratio off/on | per pass: ratios | questions/s off / on | cache (last pass) "
          "| predictions identical |")
    print("|---|---|---|---|---|---|---|")
    ratios = ", ".join(f"{a / b:.2f}" for a, b in zip(times["off"], times["on"]))
    print(f"| {off:.2f} | {on:.2f} | {off / on:.2f} | {ratios} | {len(dataset) / off:.1f} / {len(dataset) / on:.1f} | "
          f"{counts} | {'yes' if identical else 'no'} |")
    return report

if __name__ == "__main__":
    main()
