"""Benchmark: a training step with the frozen LLM in its precision, int8, nf4, and nf4 with LoRA adapters (QLoRA).

The tiny InstructBLIP-Vicuna's ViT and Q-Former in front of a random LLaMA saved to a temporary directory
(quantization reads the LLM from its own directory), one process, the same batches for every mode: samples/s
(median over steps after a warm-up) and the peak memory of the loaded model and its steps together, above what the
process held before the load (CPU: anonymous RSS, sampled during the steps; CUDA: peak allocated). The ratio column is against the unquantized row (fp32 on CPU, fp16 on CUDA) of the same run.

    .venv/bin/python bench/train_quantized.py                           # CPU: 0.5 B LLaMA, batch 4
    .venv/bin/python bench/train_quantized.py --size small --steps 3    # seconds
    python bench/train_quantized.py --device cuda --size 0.5b --batch 16
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
from pathlib import Path

import torch

from llm_loading import SIZES, AnonPeak, _anon_rss_bytes, save_random_llama  # bench/ is on sys.path
from lavis_ib import load_model

MODES = {"unquantized": {}, "int8": {"quantization": "int8"}, "nf4": {"quantization": "nf4"},
         "nf4 + LoRA": {"quantization": "nf4", "lora": {"r": 8, "alpha": 16, "dropout": 0.05}}}
PROMPTS = ["What colour is the circle?", "How many shapes are there?", "Describe the picture.", "Is it red?"]
TARGETS = ["red", "two", "a red circle left of a blue square", "yes"]


def batch(size: int) -> dict:
    return {"image": torch.randn(size, 3, 56, 56, generator=torch.Generator().manual_seed(0)),
            "text_input": [PROMPTS[i % 4] for i in range(size)], "text_output": [TARGETS[i % 4] for i in range(size)]}


def measure(mode: dict, llm: Path, args) -> dict:
    gc.collect()
    if args.device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    baseline = torch.cuda.memory_allocated() if args.device == "cuda" else _anon_rss_bytes()
    torch.manual_seed(0)
    model = load_model("blip2_vicuna_instruct", "tiny", device=args.device, options={
        "random_init": False, "load_pretrained": False, "llm_model": str(llm), **mode}).train()
    samples = batch(args.batch)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)

    def step():
        with torch.autocast(args.device, dtype=torch.bfloat16, enabled=args.device == "cuda"):
            loss = model(samples)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if args.device == "cuda":
            torch.cuda.synchronize()
        return loss.item()

    times, losses = [], []
    with AnonPeak() as anon:
        step()  # warm-up: optimizer state and kernels exist from here on
        for _ in range(args.steps):
            start = time.perf_counter()
            losses.append(step())
            times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() if args.device == "cuda" else anon.peak
    return {"samples_per_s": args.batch / statistics.median(times), "peak_mib": (peak - baseline) / 2**20,
            "trainable_m": trainable / 1e6, "losses": losses}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="0.5b")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="train_quantized_") as tmp:
        save_random_llama(Path(tmp), args.size)
        print(f"random LLaMA ({args.size}), batch {args.batch}, {args.steps} steps after a warm-up, {args.device}")
        print("| LLM | samples/s | × unquantized | peak MiB (model + steps) | trainable M | loss first → last |")
        print("|---|---:|---:|---:|---:|---|")
        plain = None
        for name, mode in MODES.items():
            r = measure(mode, Path(tmp), args)
            plain = plain or r["samples_per_s"]
            print(f"| {name} | {r['samples_per_s']:.2f} | {r['samples_per_s'] / plain:.2f} | {r['peak_mib']:.0f} | "
                  f"{r['trainable_m']:.2f} | {r['losses'][0]:.3f} → {r['losses'][-1]:.3f} |")
            gc.collect()


if __name__ == "__main__":
    main()
