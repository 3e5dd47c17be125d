"""Benchmark: our `score_candidates` (shared prefix, packed prefix trees) vs full-sequence scoring (LAVIS's method).

Same model, same inputs, one process. Cases: VisDial-like (1 image, ~300-token history prompt, 100 answers of 3-12
tokens) and MSVD-like (4 frames, ~20-token prompt, 1,850 answers of 1-3 tokens), each with the model's own small
vocabulary and with a 32K one (Vicuna's). The model is `bench/generate.py`'s random InstructBLIP-Vicuna, converted.

    .venv/bin/python bench/rank.py                       # --size cpu --device cpu
    .venv/bin/python bench/rank.py --size 7b --device cuda

Prints a table; asserts nothing. See bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import subprocess
import sys
import time

import torch

# bench/generate.py (this script's folder is on sys.path)
from generate import SIZES, build_hf, build_ours, status_kb, sync, write_json
from lavis_ib.models.text.batching import IGNORE, pad_rows

VICUNA_VOCAB = 32002
WORDS = ("the man is riding a red bike along road near river two dogs play in grass woman holds cup of tea "
         "there are three people sitting at table under tree it looks like sunny day with clouds sky blue car "
         "parked next to building children run toward beach").split()
ANSWER_STARTS = ("yes", "no", "i think", "yes it is", "no there", "it is", "i can not tell")


def visdial_case(tokenizer, rng: random.Random) -> dict:
    """A ~300-token dialog history + question, and 100 distinct answers of 3-12 tokens, many sharing a start."""
    rounds = []
    while count_tokens(tokenizer, " ".join(rounds)) < 290:
        rounds.append(f"Q: {sentence(rng, 6)}? A: {sentence(rng, 5)}.")
    prompt = "Dialog history: " + " ".join(rounds) + " Question: what is the man holding? Short answer:"
    answers = distinct(lambda: f"{rng.choice(ANSWER_STARTS)} {sentence(rng, rng.randint(1, 5))}"
                       if rng.random() < 0.5 else sentence(rng, rng.randint(1, 6)), 100, tokenizer, 3, 12)
    return dict(frames=1, prompt=prompt, candidates=answers)


def msvd_case(tokenizer, rng: random.Random) -> dict:
    """A ~20-token question on 4 frames and 1,850 distinct answers of 1-3 tokens (word pieces of the vocabulary)."""
    pieces = [t for t in tokenizer.get_vocab() if t.startswith("▁") and t[1:].isalpha()]
    tails = [t for t in tokenizer.get_vocab() if t.isalpha()]
    word = lambda: tokenizer.convert_tokens_to_string(  # noqa: E731
        [rng.choice(pieces)] + [rng.choice(tails) for _ in range(rng.randint(0, 2))]).strip()
    answers = distinct(word, 1850, tokenizer, 1, 3)
    return dict(frames=4, prompt="Question: what is the person in the video doing with the object? Short answer:",
                candidates=answers)


def sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def count_tokens(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def distinct(draw, count: int, tokenizer, low: int, high: int) -> list[str]:
    """`count` distinct strings from `draw()` whose token count (BOS dropped) is in [low, high]."""
    seen: dict[str, None] = {}
    while len(seen) < count:
        text = draw()
        if low <= count_tokens(tokenizer, text) <= high:
            seen.setdefault(text)
    return list(seen)


@torch.no_grad()
def full_sequence_scores(model, samples: dict, candidates: list[str], segment: int) -> torch.Tensor:
    """The reference (LAVIS's `_predict_class`): every candidate as a whole `[Q | prompt | candidate]` row, right
    padded, `segment` rows per LLM call, full-vocabulary log-softmax at every position; summed candidate log-probs."""
    image = samples["image"].to(model.device)
    visual = model.query_features(image, samples["prompt"])
    prompt_ids = model.text.ids(samples["prompt"], "left", None)[0]
    answers = [ids[1:] for ids in model.text.ids(candidates, "right", None)]
    sums = []
    for start in range(0, len(answers), segment):
        part = answers[start : start + segment]
        rows = pad_rows([prompt_ids + a for a in part], [[IGNORE] * len(prompt_ids) + a for a in part],
                        model.tokenizer.pad_token_id)
        ids, labels, mask = (rows[k].to(model.device) for k in ("input_ids", "labels", "attention_mask"))
        embeds, full_mask = model.with_visual_prefix(visual.expand(len(part), -1, -1), ids, mask)
        logprobs = model.run_llm(embeds, full_mask)[:, visual.shape[1] - 1 : -1].log_softmax(-1)
        picked = logprobs.gather(-1, labels.clamp(min=0)[..., None]).squeeze(-1)
        sums.append((picked * (labels != IGNORE)).sum(dim=1))
        del logprobs
    return torch.cat(sums)


def ours_scores(model, samples: dict, candidates: list[str]) -> torch.Tensor:
    return model.score_candidates(samples, candidates).sum[0]


def peak_memory_gb(fn, device: str) -> float:
    """Peak memory growth of one `fn()` call (GB): the CUDA allocator's peak, or the peak RSS growth on CPU
    (VmHWM reset to the current RSS first; run in a fresh process so earlier calls' freed memory does not hide it)."""
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**30
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    base = status_kb("VmRSS")
    fn()
    return (status_kb("VmHWM") - base) / 2**20


def peak_of(method: str, fn, case: str, vocab: str, args) -> float:
    """`peak_memory_gb` of one method: in this process on CUDA (the allocator's peak is exact), else measured by this
    script in a fresh process (`--peak`)."""
    if args.device == "cuda":
        return peak_memory_gb(fn, "cuda")
    command = [sys.executable, __file__, "--peak", method, "--cases", case, "--vocabs", vocab, "--size", args.size,
               "--device", args.device, "--threads", str(args.threads), "--ref-segment", str(args.ref_segment),
               "--max-candidates", str(args.max_candidates)]
    out = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in out.stdout.splitlines() if line.startswith("peak_gb=")]
    return float(lines[-1].split("=")[1]) if lines else float("nan")


def timed(fn, device: str):
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - start, out


def ranks(scores: torch.Tensor) -> list[int]:
    return torch.argsort(scores.float().cpu(), descending=True, stable=True).tolist()


def rank_agreement(ours: torch.Tensor, reference: torch.Tensor) -> str:
    """"yes", or where the two orders differ: how many positions, and how far apart the reference scores of the
    candidates placed there are (ties closer than the numerical noise may swap)."""
    ours, reference = ours.float().cpu(), reference.float().cpu()
    mine, theirs = ranks(ours), ranks(reference)
    differ = [i for i, (a, b) in enumerate(zip(mine, theirs)) if a != b]
    if not differ:
        return "yes"
    gap = max(abs(reference[mine[i]] - reference[theirs[i]]).item() for i in differ)
    return f"no: {len(differ)} positions, scores there within {gap:.1e}; top-1 {'same' if 0 not in differ else 'differs'}"


def methods(model, case: dict, args) -> dict:
    """The two scorers of one case as zero-argument callables: "ours" and "reference"."""
    size = model.cfg.image_size
    shape = (1, 3, case["frames"], size, size) if case["frames"] > 1 else (1, 3, size, size)
    samples = {"image": torch.randn(shape, generator=torch.Generator().manual_seed(0)), "prompt": [case["prompt"]]}
    return {"ours": lambda: ours_scores(model, samples, case["candidates"]),
            "reference": lambda: full_sequence_scores(model, samples, case["candidates"], args.ref_segment)}


def bench_case(model, name: str, vocab: str, args) -> dict:
    """Timings (alternating sides), score agreement, and each side's peak memory measured in a fresh process."""
    case = CASES[name](model.tokenizer, random.Random(0))
    if args.max_candidates:
        case["candidates"] = case["candidates"][: args.max_candidates]
    fns = methods(model, case, args)
    ours_out = fns["ours"]()  # warm-up
    t_ours, t_ref = [], []
    for rep in range(max(args.reps, args.ref_reps)):
        if rep < args.reps:
            t, ours_out = timed(fns["ours"], args.device)
            t_ours.append(t)
        if rep < args.ref_reps:
            t, ref_out = timed(fns["reference"], args.device)
            t_ref.append(t)
    prefix = len(model.text.ids([case["prompt"]], "left", None)[0]) + case["frames"] * model.cfg.num_query_token
    return dict(case=name, vocab=model.llm.config.vocab_size, ours=t_ours, ref=t_ref, prefix=prefix,
                candidates=len(case["candidates"]), same_ranks=rank_agreement(ours_out, ref_out),
                diff=(ours_out.float().cpu() - ref_out.float().cpu()).abs().max().item(),
                mem_ours=None if args.no_memory else peak_of("ours", fns["ours"], name, vocab, args),
                mem_ref=None if args.no_memory else peak_of("reference", first_segments(model, case, args), name,
                                                            vocab, args))


def first_segments(model, case: dict, args):
    """The reference on its first two segments only: its peak is one segment's LLM call (as `--peak` measures it)."""
    return methods(model, {**case, "candidates": case["candidates"][: 2 * args.ref_segment]}, args)["reference"]


def build_model(vocab: str, args):
    """Ours, converted from `bench/generate.py`'s random HF model of `--size`; `vocab="32k"` widens its vocabulary."""
    size = args.size
    if vocab == "32k" and SIZES[size]["llama"].get("vocab_size") != VICUNA_VOCAB:
        size = f"{args.size}-32k"
        SIZES[size] = {**SIZES[args.size], "llama": {**SIZES[args.size]["llama"], "vocab_size": VICUNA_VOCAB}}
    hf_model, processor = build_hf(size, args.device, torch.float16 if args.device == "cuda" else torch.float32)
    return build_ours(hf_model, processor, args.device)


def spread(times: list[float]) -> str:
    return f"{statistics.median(times):.3f} ({min(times):.3f}-{max(times):.3f})"


def print_table(rows: list[dict], args) -> None:
    threads = f", {torch.get_num_threads()} threads" if args.device == "cpu" else ""
    memory = "peak RSS growth" if args.device == "cpu" else "peak CUDA allocation"
    print(f"\n{args.size} model on {args.device}{threads}; seconds: median (min-max) of {args.reps} (ours) / "
          f"{args.ref_reps} (full sequence, {args.ref_segment} candidates per call); memory: {memory} of one call; "
          f"torch {torch.__version__}, {platform.machine()}\n")
    print("| case | vocab | prefix tokens | candidates | ours s | full-sequence s | ratio | ranks identical | "
          "max abs diff | ours GB | full-sequence GB | ours candidates/s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ours, ref = statistics.median(r["ours"]), statistics.median(r["ref"])
        print(f"| {r['case']} | {r['vocab']} | {r['prefix']} | {r['candidates']} | {spread(r['ours'])} | "
              f"{spread(r['ref'])} | {ref / ours:.1f}x | {r['same_ranks']} | {r['diff']:.1e} | "
              f"{gb(r['mem_ours'])} | {gb(r['mem_ref'])} | {r['candidates'] / ours:.0f} |")


def gb(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


CASES = {"visdial": visdial_case, "msvd": msvd_case}


def main(argv: list[str] | None = None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="cpu")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--reps", type=int, default=3, help="timed repetitions of ours")
    parser.add_argument("--ref-reps", type=int, default=1, help="timed repetitions of the reference (slow)")
    parser.add_argument("--ref-segment", type=int, default=50,
                        help="candidates per LLM call in the reference (LAVIS's n_segments, for memory)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads on CPU (1: steady on a shared machine)")
    parser.add_argument("--cases", default="visdial,msvd")
    parser.add_argument("--vocabs", default="model,32k", help="'model' (the tokenizer's size) and/or '32k'")
    parser.add_argument("--max-candidates", type=int, default=0, help="keep only the first N candidates of a case")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurements")
    parser.add_argument("--json", help="write the results here (after every case, so a killed run leaves them)")
    parser.add_argument("--peak", choices=["ours", "reference"], help=argparse.SUPPRESS)  # child: one measurement
    args = parser.parse_args(argv)
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    if args.peak:
        model = build_model(args.vocabs, args)
        case = CASES[args.cases](model.tokenizer, random.Random(0))
        if args.max_candidates:
            case["candidates"] = case["candidates"][: args.max_candidates]
        if args.peak == "reference":  # its peak is one segment's LLM call: two segments show it at a fraction of the time
            case["candidates"] = case["candidates"][: 2 * args.ref_segment]
        print(f"peak_gb={peak_memory_gb(methods(model, case, args)[args.peak], args.device)}")
        return
    rows = []
    for vocab in dict.fromkeys(args.vocabs.split(",")):
        start = time.perf_counter()
        model = build_model(vocab, args)
        print(f"built {args.size} (vocab {model.llm.config.vocab_size}) in {time.perf_counter() - start:.1f}s",
              flush=True)
        for name in args.cases.split(","):
            start = time.perf_counter()
            r = bench_case(model, name, vocab, args)
            rows.append(r)
            write_json(args.json, dict(cases=[summary(row) for row in rows], memory=memory_kind(args)))
            print(f"  {name}: ours {spread(r['ours'])}s, full sequence {spread(r['ref'])}s, ranks identical "
                  f"{r['same_ranks']}, max |diff| {r['diff']:.1e} ({time.perf_counter() - start:.0f}s)", flush=True)
    print_table(rows, args)
    return dict(cases=[summary(row) for row in rows])


def summary(row: dict) -> dict:
    """A case's row of the table as numbers (`--json`)."""
    ours, ref = statistics.median(row["ours"]), statistics.median(row["ref"])
    return {**row, "ours_s": ours, "ref_s": ref, "speedup": ref / ours, "candidates_per_s": row["candidates"] / ours,
            "ranks_identical": row["same_ranks"] == "yes"}


def memory_kind(args) -> str | None:
    return None if args.no_memory else "peak RSS growth" if args.device == "cpu" else "peak CUDA allocation"


if __name__ == "__main__":
    main()
