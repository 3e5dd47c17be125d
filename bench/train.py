"""Benchmark: our training step vs transformers' `InstructBlipForConditionalGeneration` trained with plain AdamW.

Same random weights (ours converted from the HF model in memory, as bench/generate.py does), same batches, ViT and
LLM frozen on both sides, one process, sides interleaved. Ours: `loss = model(batch)["loss"]`, backward, fused
AdamW over `model.optimizer_param_groups(0.05)`. HF: forward with labels, backward, `torch.optim.AdamW` with its
defaults. Each lever is also reverted alone in a variant of ours (full-vocabulary LM head, foreach / for-loop
AdamW, the ViT in autograd, the Q-Former's SDPA restricted to the math backend). Prints samples/s (median and
range over repeats), the ratio to HF, peak memory of the step and, on CUDA, model FLOPs utilisation.

    .venv/bin/python bench/train.py                                  # --size cpu --device cpu, batch 8
    .venv/bin/python bench/train.py --size 7b --device cuda --batch 16

See bench/README.md (the FLOP count behind MFU is `step_flops`).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

# bench/generate.py (this script's folder is on sys.path)
from generate import SIZES, build_hf, status_kb, sync, write_json
from lavis_ib.common.registry import registry
from lavis_ib.models.weights.hf_interop import model_from_hf
from lavis_ib.models.text.batching import IGNORE

ARCH = "blip2_vicuna_instruct"
NUM_QUERIES = 32
VICUNA_VOCAB = 32002  # Vicuna's 32000 + `[PAD]` + transformers' `<image>`
TRAIN_SIZES = {
    # CPU-sized: a few hundred wide, Vicuna's vocabulary (so the LM head weighs as it does in training), 112 px
    # images (64 patches), so the frozen ViT does not swamp the parts a training step adds.
    "cpu": dict(
        vision=dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=6, intermediate_size=1536,
                    patch_size=14, image_size=112),
        qformer=dict(hidden_size=384, num_hidden_layers=4, num_attention_heads=6, intermediate_size=1536),
        llama=dict(hidden_size=512, num_hidden_layers=6, num_attention_heads=8, num_key_value_heads=8,
                   intermediate_size=1376, vocab_size=VICUNA_VOCAB),
    ),
    "tiny": dict(  # seconds: for trying the script out
        vision=dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                    patch_size=14, image_size=56),
        qformer=dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128),
        llama=dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                   intermediate_size=256, vocab_size=VICUNA_VOCAB),
    ),
    "7b": SIZES["7b"],  # EVA ViT-g 1408 x 39 at 224 px, Q-Former 768 x 12, LLaMA-7B 4096 x 32, vocab 32002
}
PEAK_TFLOPS = {"H200": 989.4, "H100": 989.4, "A100": 312.0, "L40S": 362.1, "A10G": 125.0}  # dense bf16
WORDS = ("the man is riding a red bike along road near river two dogs play in grass woman holds cup of tea "
         "there are three people sitting at table under tree it looks like sunny day with clouds sky blue car "
         "parked next to building children run toward beach").split()
TEMPLATES = ["<Image> A short image caption:", "<Image> Write a short description for the image.",
             "Question: {} Short answer:", "Given the image, answer the following question with no more than three "
             "words. {}", "Based on the image, respond to this question with a short answer: {}. Answer:",
             "{} Answer the question in detail, describing what you see in the image."]


# ----- models --------------------------------------------------------------------------------------------------
def build_pair(size: str, device: str):
    """(HF model, ours) with the same random weights; HF's trainable parts fp32 (its frozen parts bf16 on CUDA)."""
    key = f"train-{size}"
    SIZES[key] = TRAIN_SIZES[size]
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    hf_model, processor = build_hf(key, device, dtype)
    tokdir = tempfile.mkdtemp(prefix="bench_tok_")
    processor.save_pretrained(tokdir)  # LLM tokenizer at the top, Q-Former tokenizer in qformer_tokenizer/
    lengths = {"max_txt_len": 128, "max_output_txt_len": 256}  # LAVIS's Vicuna lengths
    section = registry.get_model_class(ARCH).config_with_options("tiny", lengths)
    ours = model_from_hf(registry.get_model_class(ARCH), section, hf_model.config, dict(hf_model.state_dict()),
                         tokenizer_dir=tokdir, source="bench/train.py", device=device,
                         precision="bf16" if device == "cuda" else None, overridden=lengths)
    ours.apply_precision()
    return hf_for_training(hf_model), ours.train()


def hf_for_training(model):
    """Freeze HF's ViT (its `post_layernorm` is our trainable `ln_vision`) and LLM; trainable parts in fp32."""
    for param in model.parameters():
        param.requires_grad = False
    trainable = [model.qformer, model.language_projection, model.vision_model.post_layernorm]
    for module in trainable:
        module.float()
    model.query_tokens.data = model.query_tokens.data.float()
    for param in [model.query_tokens] + [p for m in trainable for p in m.parameters()]:
        param.requires_grad = True
    model.train()
    model.vision_model.eval()
    model.language_model.eval()
    return model


def trainable_count(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ----- batches -------------------------------------------------------------------------------------------------
def make_texts(rng: random.Random, batch: int) -> tuple[list[str], list[str]]:
    """InstructBLIP-like instructions and targets: short VQA answers, captions and a few long answers."""
    instructions, targets = [], []
    for _ in range(batch):
        template = rng.choice(TEMPLATES)
        instructions.append(template.format(" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 14))) + "?"))
        kind = rng.random()
        words = rng.randint(1, 3) if kind < 0.45 else rng.randint(8, 16) if kind < 0.85 else rng.randint(25, 45)
        targets.append(" ".join(rng.choice(WORDS) for _ in range(words)))
    return instructions, targets


def make_batches(ours, hf_model, count: int, batch: int, device: str, seed: int = 0) -> list[tuple[dict, dict]]:
    """`count` (ours, HF) batch pairs: the same pixels and the same tokens (ours pre-tokenized as its collator does,
    HF's rows are `<image>`×32 + our instruction + target tokens, labels on the target tokens)."""
    rng, generator = random.Random(seed), torch.Generator().manual_seed(seed)
    size = ours.cfg.image_size
    pairs = []
    for _ in range(count):
        instructions, targets = make_texts(rng, batch)
        image = torch.randn(batch, 3, size, size, generator=generator).to(device)
        qformer, tokens = ours.text.qformer(instructions), ours.text.training(instructions, targets)
        mine = {"image": image, "instruction": instructions, "text_output": targets,
                "qformer_tokens": {k: v.to(device) for k, v in qformer.items()},
                "train_tokens": {k: v.to(device) for k, v in tokens.items()}}
        image_ids = torch.full((batch, NUM_QUERIES), hf_model.config.image_token_index, dtype=torch.long)
        ids = torch.cat([image_ids, tokens["input_ids"]], dim=1)
        pixels = image.to(hf_model.vision_model.embeddings.patch_embedding.weight.dtype)
        theirs = {"pixel_values": pixels, "input_ids": ids,
                  "attention_mask": torch.cat([torch.ones_like(image_ids), tokens["attention_mask"]], dim=1),
                  "labels": torch.cat([torch.full_like(image_ids, IGNORE), tokens["labels"]], dim=1),
                  "qformer_input_ids": qformer["input_ids"], "qformer_attention_mask": qformer["attention_mask"]}
        pairs.append((mine, {k: v.to(device) for k, v in theirs.items()}))
    return pairs


def token_stats(pairs) -> dict:
    """Mean tokens per sample: LLM sequence (queries + text, pads excluded), supervised, Q-Former text, padded."""
    llm = [b["attention_mask"].sum(1).float() for _, b in pairs]
    return dict(llm=torch.cat(llm).mean().item(),
                padded=statistics.mean(b["attention_mask"].shape[1] for _, b in pairs),
                supervised=torch.cat([(b["labels"] != IGNORE).sum(1).float() for _, b in pairs]).mean().item(),
                qformer=torch.cat([b["qformer_attention_mask"].sum(1).float() for _, b in pairs]).mean().item(),
                llm_squared=torch.cat([x ** 2 for x in llm]).mean().item())


# ----- the steps -----------------------------------------------------------------------------------------------
def full_vocabulary_loss(model, samples: dict) -> torch.Tensor:
    """The lever reverted: LM head and log-softmax at every position, as `forward` computed the loss before."""
    image = model.input_image(samples)
    instructions = model.training_instructions(samples, image.shape[0])
    visual = model.query_features(image, instructions, samples["qformer_tokens"])
    ids, labels, mask = model.training_tokens(samples, instructions)
    embeds, full_mask = model.with_visual_prefix(visual, ids, mask)
    labels = torch.cat([labels.new_full(visual.shape[:2], IGNORE), labels], dim=1)
    logits = model.run_llm(embeds, full_mask)
    return F.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=IGNORE)


@contextlib.contextmanager
def vit_in_autograd(model):
    """The lever reverted: the frozen ViT's weights require grad (kept out of the optimizer), so autograd records
    the ViT and backward runs through it."""
    params = list(model.visual_encoder.parameters())
    for p in params:
        p.requires_grad = True
    try:
        yield
    finally:
        for p in params:
            p.requires_grad, p.grad = False, None


@contextlib.contextmanager
def llm_grad_checkpoint(model):
    """`model.llm_grad_checkpoint: true` for the duration: the frozen LLM's layers recompute their activations in
    backward (`set_llm_grad_checkpointing`), unwrapped again afterwards (the wrappers change no parameter name)."""
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import CheckpointWrapper

    model.set_llm_grad_checkpointing(True)
    try:
        yield
    finally:
        for parent in list(model.llm.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, CheckpointWrapper):
                    setattr(parent, name, child._checkpoint_wrapped_module)


@contextlib.contextmanager
def qformer_math_attention(model):
    """The lever reverted: the Q-Former's SDPA calls limited to the math backend (what an explicit softmax does)."""
    contexts = []

    def enter(module, inputs):
        contexts.append(sdpa_kernel([SDPBackend.MATH]))
        contexts[-1].__enter__()

    def leave(module, inputs, output):
        contexts.pop().__exit__(None, None, None)

    enter, leave = model.Qformer.register_forward_pre_hook(enter), model.Qformer.register_forward_hook(leave)
    try:
        yield
    finally:
        enter.remove()
        leave.remove()


def sides(hf_model, ours, device: str) -> dict:
    """Every side as `step(batch_pair) -> loss`: HF, ours, and ours with one lever reverted."""
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if device == "cuda" else contextlib.nullcontext
    hf_opt = torch.optim.AdamW([p for p in hf_model.parameters() if p.requires_grad], lr=1e-5, weight_decay=0.05)
    fused = torch.optim.AdamW(ours.optimizer_param_groups(0.05), lr=1e-5, fused=True)
    foreach = torch.optim.AdamW(ours.optimizer_param_groups(0.05), lr=1e-5, foreach=True)
    loop = torch.optim.AdamW(ours.optimizer_param_groups(0.05), lr=1e-5, foreach=False)

    def hf_step(pair):
        hf_opt.zero_grad(set_to_none=True)
        with autocast():
            loss = hf_model(**pair[1]).loss
        loss.backward()
        hf_opt.step()
        return loss

    def ours_step(pair, optimizer=fused, loss_fn=lambda b: ours(b)["loss"], context=contextlib.nullcontext):
        optimizer.zero_grad(set_to_none=True)
        with context():
            loss = loss_fn(pair[0])
            loss.backward()
        optimizer.step()
        return loss

    return {
        "HF + AdamW (default)": hf_step,
        "ours (all levers)": ours_step,
        "ours, full-vocabulary head": lambda p: ours_step(p, loss_fn=lambda b: full_vocabulary_loss(ours, b)),
        "ours, foreach AdamW": lambda p: ours_step(p, optimizer=foreach),
        "ours, for-loop AdamW": lambda p: ours_step(p, optimizer=loop),
        "ours, ViT in autograd": lambda p: ours_step(p, context=lambda: vit_in_autograd(ours)),
        "ours, Q-Former math attention": lambda p: ours_step(p, context=lambda: qformer_math_attention(ours)),
        "ours, llm_grad_checkpoint": lambda p: ours_step(p, context=lambda: llm_grad_checkpoint(ours)),
    }


def run_steps(step, pairs, count: int, device: str, offset: int = 0) -> float:
    """Seconds for `count` steps cycling through the batches."""
    sync(device)
    start = time.perf_counter()
    for i in range(count):
        step(pairs[(offset + i) % len(pairs)])
    sync(device)
    return time.perf_counter() - start


# ----- memory --------------------------------------------------------------------------------------------------
def peak_step_memory_gb(step, pairs, count: int, device: str) -> float:
    """Peak memory growth (GB) over the first `count` steps of a side (activations, gradients and the optimizer
    state it allocates): the CUDA allocator's peak, or on CPU the peak RSS growth (`VmHWM` reset first)."""
    if device == "cuda":
        gc.collect()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        run_steps(step, pairs, count, device)
        return (torch.cuda.max_memory_allocated() - base) / 2**30
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    base = status_kb("VmRSS")
    run_steps(step, pairs, count, device)
    return (status_kb("VmHWM") - base) / 2**20


def cpu_peak_in_child(name: str, args) -> float:
    """`peak_step_memory_gb` of one side, measured by this script in a fresh process (`--peak`) that keeps only
    the model that side trains."""
    command = [sys.executable, __file__, "--peak", name, "--size", args.size, "--device", "cpu", "--batch",
               str(args.batch), "--threads", str(args.threads), "--warmup", str(args.warmup)]
    out = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in out.stdout.splitlines() if line.startswith("peak_gb=")]
    if not lines:
        print(f"  peak of {name!r} failed: {out.stderr.strip().splitlines()[-1:]}", flush=True)
    return float(lines[-1].split("=")[1]) if lines else float("nan")


def memory_steps(args) -> int:
    """How many first steps of a side the peak-memory figure covers (its warm-up plus two)."""
    return args.warmup + 2


def child_peak(args) -> None:
    """`--peak NAME`: build, drop the model the side does not train, measure its first warm-up + 2 steps."""
    hf_model, ours = build_pair(args.size, "cpu")
    pairs = make_batches(ours, hf_model, 4, args.batch, "cpu")
    step = sides(hf_model, ours, "cpu")[args.peak]
    if args.peak.startswith("HF"):
        del ours
    else:
        del hf_model
    pairs = [(mine, theirs) if args.peak.startswith("HF") else (mine, None) for mine, theirs in pairs]
    print(f"peak_gb={peak_step_memory_gb(step, pairs, memory_steps(args), 'cpu')}")


# ----- FLOPs ---------------------------------------------------------------------------------------------------
def linear_weights(module) -> int:
    return sum(m.weight.numel() for m in module.modules() if isinstance(m, torch.nn.Linear))


def step_flops(ours, stats: dict, batch: int) -> float:
    """Model FLOPs of one training step (matmuls only; padding and the LM head's unused positions not counted).

    Per sample, with T_v image tokens, Q queries, t Q-Former text tokens, L LLM tokens (queries + text) and S
    supervised tokens: frozen ViT forward only, `2·W_vit·T_v + 4·depth·T_v²·d_v`; trainable Q-Former and
    projection `3 × forward` (forward, input and weight gradients: `6·W·tokens`); frozen LLM `2 × forward` (forward
    and input gradients, no weight gradients): `4·W_llm·L + 12·layers·L²·d` (attention scores counted unmasked,
    its backward twice its forward); LM head at supervised positions only, `4·d·V·S`.
    """
    vit, q, llm = ours.cfg.vision, ours.cfg.qformer, ours.llm.config
    t_v = (ours.cfg.image_size // vit.patch_size) ** 2 + 1
    vit_flops = 2 * linear_weights(ours.visual_encoder) * t_v + 4 * vit.depth * t_v**2 * vit.width
    vit_flops += 2 * ours.visual_encoder.patch_embed.proj.weight.numel() * (t_v - 1)
    queries, text = ours.cfg.num_query_token, stats["qformer"]
    h, cross_layers = q.hidden_size, len(range(0, q.num_layers, q.cross_attention_freq))
    qformer = q.num_layers * (2 * 4 * h * h * (queries + text) + 4 * (queries + text) ** 2 * h
                              + 2 * 2 * h * q.intermediate_size * (queries + text))
    qformer += cross_layers * (2 * 2 * h * h * queries + 2 * 2 * vit.width * h * t_v + 4 * queries * t_v * h)
    qformer += 2 * h * llm.hidden_size * queries  # the projection
    body = linear_weights(ours.llm) - ours.llm.get_output_embeddings().weight.numel()
    llm_flops = 4 * body * stats["llm"] + 12 * llm.num_hidden_layers * stats["llm_squared"] * llm.hidden_size
    head = 4 * llm.hidden_size * llm.vocab_size * stats["supervised"]
    return batch * (vit_flops + 3 * qformer + llm_flops + head)


def peak_flops(args) -> float | None:
    """The device's dense bf16 peak in FLOP/s: `--peak-tflops`, or looked up by the GPU's name."""
    if args.peak_tflops:
        return args.peak_tflops * 1e12
    if args.device != "cuda":
        return None
    name = torch.cuda.get_device_name()
    return next((tflops * 1e12 for key, tflops in PEAK_TFLOPS.items() if key in name), None)


# ----- main ----------------------------------------------------------------------------------------------------
def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def check_device(args, parser) -> None:
    if args.size == "7b" and args.device != "cuda":
        parser.error("--size 7b builds two InstructBLIP-Vicuna-7B models (~16 GB of bf16 weights each) and trains "
                     "them: it needs --device cuda")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device here")


def main(argv: list[str] | None = None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(TRAIN_SIZES), default="cpu")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per side in each repeat")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of all sides, interleaved")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per side first")
    parser.add_argument("--threads", type=int, default=2, help="torch threads on CPU")
    parser.add_argument("--sides", default="all", help="'all', or a comma list of indices into the table's rows")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurements")
    parser.add_argument("--peak-tflops", type=float, default=None, help="device peak (dense bf16) for MFU")
    parser.add_argument("--json", help="write the results here (after every repeat, so a killed run leaves them)")
    parser.add_argument("--peak", help=argparse.SUPPRESS)  # child: one side's CPU peak memory
    args = parser.parse_args(argv)
    check_device(args, parser)
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    if args.peak:
        return child_peak(args)

    start = time.perf_counter()
    hf_model, ours = build_pair(args.size, args.device)
    pairs = make_batches(ours, hf_model, 4, args.batch, args.device)
    stats = token_stats(pairs)
    print(f"built HF + ours ({args.size}, {args.device}) in {time.perf_counter() - start:.1f}s: "
          f"{sum(p.numel() for p in ours.parameters()) / 1e6:.1f}M parameters, {trainable_count(ours) / 1e6:.1f}M "
          f"trainable (HF {trainable_count(hf_model) / 1e6:.1f}M); per sample {stats['llm']:.0f} LLM tokens "
          f"({stats['supervised']:.1f} supervised, rows padded to {stats['padded']:.0f}), "
          f"{stats['qformer']:.0f} Q-Former text tokens", flush=True)
    with torch.no_grad(), (torch.autocast("cuda", dtype=torch.bfloat16) if args.device == "cuda"
                           else contextlib.nullcontext()):
        losses = (ours(pairs[0][0])["loss"].item(), full_vocabulary_loss(ours, pairs[0][0]).item(),
                  hf_model(**pairs[0][1]).loss.item())
    print(f"loss before training: ours {losses[0]:.6f}, ours full-vocabulary {losses[1]:.6f}, HF {losses[2]:.6f}",
          flush=True)

    steps = sides(hf_model, ours, args.device)
    names = list(steps) if args.sides == "all" else [list(steps)[int(i)] for i in args.sides.split(",")]
    flops = step_flops(ours, stats, args.batch)
    memory = {}
    report = dict(build_s=time.perf_counter() - start, losses_before=losses, tokens=stats, batch=args.batch)
    for name in names:  # warm-up (on CUDA two steps more, measuring the peak of these first steps)
        if args.device == "cuda" and not args.no_memory:
            memory[name] = peak_step_memory_gb(steps[name], pairs, memory_steps(args), "cuda")
        else:
            run_steps(steps[name], pairs, args.warmup, args.device)
    rates = {name: [] for name in names}
    for rep in range(args.repeats):
        for name in names if rep % 2 == 0 else names[::-1]:  # alternate the order, so load falls on all alike
            seconds = run_steps(steps[name], pairs, args.steps, args.device, offset=rep)
            rates[name].append(args.steps * args.batch / seconds)
        print(f"  repeat {rep + 1}: " + ", ".join(f"{n} {rates[n][-1]:.2f}" for n in names) + " samples/s", flush=True)
        write_json(args.json, {**report, "sides": table_rows(rates, memory, flops, args)})
    if args.device == "cpu" and not args.no_memory:
        memory = {name: cpu_peak_in_child(name, args) for name in names}
    report["sides"] = table_rows(rates, memory, flops, args)
    write_json(args.json, report)
    print_table(rates, memory, flops, args)
    return report


def table_rows(rates: dict, memory: dict, flops: float, args) -> list[dict]:
    """The table's rows as numbers (`--json`): samples/s (median, min, max), vs HF, memory, TFLOP/s, MFU."""
    peak = peak_flops(args)
    reference = statistics.median(rates["HF + AdamW (default)"]) if rates.get("HF + AdamW (default)") else None
    rows = []
    for name, values in rates.items():
        rate = statistics.median(values) if values else None
        achieved = flops / args.batch * rate if rate else None
        rows.append(dict(side=name, samples_per_s=rate, min=min(values, default=None), max=max(values, default=None),
                         vs_hf=rate / reference if rate and reference else None, memory_gb=memory.get(name),
                         model_tflops=achieved / 1e12 if achieved else None,
                         mfu=achieved / peak if achieved and peak else None, peak_tflops=peak / 1e12 if peak else None,
                         gflop_per_sample=flops / args.batch / 1e9))
    return rows


def print_table(rates: dict, memory: dict, flops: float, args) -> None:
    peak = peak_flops(args)
    reference = statistics.median(rates.get("HF + AdamW (default)", [float("nan")]))
    threads = f", {torch.get_num_threads()} threads" if args.device == "cpu" else f", {torch.cuda.get_device_name()}"
    kind = "peak RSS growth" if args.device == "cpu" else "peak CUDA allocation growth"
    print(f"\n{args.size} model on {args.device}{threads}; batch {args.batch}; samples/s: median (min-max) of "
          f"{args.repeats} x {args.steps} steps; memory: {kind} over the first {memory_steps(args)} steps; model"
          f" {flops / args.batch / 1e9:.1f} GFLOP per sample; torch {torch.__version__}, "
          f"{platform.machine()}\n")
    print("| side | samples/s | vs HF | step memory GB | model TFLOP/s | MFU |")
    print("|---|---|---|---|---|---|")
    for name, values in rates.items():
        rate = statistics.median(values)
        achieved = flops / args.batch * rate
        mfu = f"{achieved / peak:.1%}" if peak else "n/a"
        mem = f"{memory[name]:.2f}" if name in memory else "-"
        print(f"| {name} | {spread(values)} | {rate / reference:.2f} | {mem} | {achieved / 1e12:.3f} | {mfu} |")


if __name__ == "__main__":
    main()
