"""Benchmark: our `generate_token_ids` vs transformers' `InstructBlipForConditionalGeneration.generate`.

Same random weights, same pixel values and prompts, one process. A random HF InstructBLIP (Vicuna/LLaMA) is built
in memory; ours is built from its config and state dict in memory with `hf_interop.model_from_hf` (what
`hf_interop.load_hf_directory` does, minus the disk round trip). Cases: typical prompts and VisDial-length ones
(~300 tokens), greedy and beam search; the table gives the speed-up HF/ours and whether the token ids are equal.

    .venv/bin/python bench/generate.py                       # --size cpu --device cpu
    .venv/bin/python bench/generate.py --size 7b --device cuda

See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time

import numpy as np
import torch
from transformers import (
    BlipImageProcessor,
    CompileConfig,
    InstructBlipConfig,
    InstructBlipForConditionalGeneration,
    InstructBlipProcessor,
)

from lavis_ib.common.registry import registry
from lavis_ib.models.weights.hf_interop import model_from_hf
from lavis_ib.models.text.tokenizers import load_qformer_tokenizer, load_vicuna_tokenizer, tiny_tokenizer_dir

ARCH = "blip2_vicuna_instruct"
NUM_QUERIES = 32
NEW_TOKENS = 30
PROMPTS = [
    "What is shown?",
    "Describe the colours of every shape in this picture in detail.",
    "Where is it?",
    "Is there a red circle to the left of the blue square here?",
    "Write a short caption.",
    "How many objects can you count in the image, and what are they made of?",
    "Why?",
    "What is the person on the right holding in their hand?",
]
# VisDial-length prompts (the `DIALOG` template of `datasets/templates.py`): a caption and ten earlier turns, about 300
# tokens with the tiny LLaMA tokenizer (283-306 across the 8, so a batch carries left padding).
DIALOG_TURNS = [
    ("is the photo in color", "yes it is a color photo"), ("how many people are there", "i can see two people"),
    ("are they men or women", "one man and one woman, both adults"), ("what are they wearing", "dark jackets and jeans"),
    ("is it sunny outside", "no, it looks cloudy and a bit cold"), ("are there any animals", "a small brown dog"),
    ("what is the dog doing", "sitting on the ground next to the woman"), ("can you see buildings", "a few houses"),
    ("is there any text visible", "no, i can't see any writing"), ("are they smiling", "the woman is, the man is not"),
    ("is there a car", "yes, a red car parked on the street"), ("what time of day is it", "probably the afternoon"),
]
DIALOG_CAPTIONS = ["two people standing on a wet sidewalk next to a small brown dog on a long red leash",
                   "a man and a woman walk their dog down a quiet street lined with old brick houses"]
DIALOG_QUESTIONS = ["what colour is the dog", "is the leash long", "does the man have a hat", "are there trees",
                    "is the street wet", "is the woman holding anything", "how old is the dog", "are they talking"]
VISDIAL_PROMPTS = [
    "Dialog history: " + " ".join([DIALOG_CAPTIONS[i % 2] + "."] + [
        f"Question: {q} Answer: {a}." for q, a in (DIALOG_TURNS[(i + k) % len(DIALOG_TURNS)] for k in range(10))
    ]) + f"\n Question: {DIALOG_QUESTIONS[i]} Short answer:"
    for i in range(8)
]
SIZES = {
    "tiny": dict(  # seconds: gpu_check.py's CPU dry run (`--size cpu`), and for trying a script out
        vision=dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                    patch_size=14, image_size=56),
        qformer=dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128),
        llama=dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                   intermediate_size=256),
    ),
    "cpu": dict(
        vision=dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536,
                    patch_size=14, image_size=224),
        qformer=dict(hidden_size=384, num_hidden_layers=4, num_attention_heads=6, intermediate_size=1536),
        llama=dict(hidden_size=512, num_hidden_layers=8, num_attention_heads=8, num_key_value_heads=8,
                   intermediate_size=1376),
    ),
    "7b": dict(
        vision=dict(hidden_size=1408, num_hidden_layers=39, num_attention_heads=16, intermediate_size=6144,
                    patch_size=14, image_size=224),
        qformer=dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
        llama=dict(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32,
                   intermediate_size=11008, vocab_size=32002),
    ),
}


def build_hf(size: str, device: str, dtype: torch.dtype, seed: int = 0):
    """Random HF InstructBLIP of `size` on `device` plus its processor (tiny committed tokenizers, left padding)."""
    config, processor = hf_config(size)
    torch.manual_seed(seed)
    with torch.device(device):
        model = InstructBlipForConditionalGeneration._from_config(config, dtype=dtype)
    randomize(model, full=(size in ("cpu", "tiny")), seed=seed)
    return model.eval(), processor


def hf_config(size: str):
    """The `InstructBlipConfig` of `size` and its processor (tiny committed tokenizers, left padding)."""
    dims = SIZES[size]
    tokenizer = load_vicuna_tokenizer(tiny_tokenizer_dir("llama"))
    qformer_tok = load_qformer_tokenizer(tiny_tokenizer_dir("bert"))
    tokenizer.padding_side = "left"
    image_size = dims["vision"]["image_size"]
    image_processor = BlipImageProcessor(size={"height": image_size, "width": image_size},
                                         image_mean=[0.48145466, 0.4578275, 0.40821073],
                                         image_std=[0.26862954, 0.26130258, 0.27577711])
    # the processor adds the `<image>` placeholder token to the LLM tokenizer
    processor = InstructBlipProcessor(image_processor, tokenizer, qformer_tok, num_query_tokens=NUM_QUERIES)
    image_token = tokenizer.convert_tokens_to_ids("<image>")
    llama = dict(model_type="llama", max_position_embeddings=2048, tie_word_embeddings=False,
                 bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                 pad_token_id=tokenizer.pad_token_id, **dims["llama"])
    llama["vocab_size"] = max(llama.get("vocab_size", 0), len(tokenizer))
    config = InstructBlipConfig(
        vision_config=dict(layer_norm_eps=1e-6, **dims["vision"]),
        qformer_config=dict(vocab_size=len(qformer_tok), cross_attention_frequency=2, hidden_dropout_prob=0.0,
                            attention_probs_dropout_prob=0.0, **dims["qformer"]),
        text_config=llama, num_query_tokens=NUM_QUERIES, image_token_index=image_token,
    )
    return config, processor


@torch.no_grad()
def randomize(model: torch.nn.Module, full: bool, seed: int) -> None:
    """HF's vision init (std 1e-10) makes the ViT output trivially constant: redraw vision weights with std 0.02.

    `full` (small models): redraw every tensor (matrices std 0.05, norms 1 ± 0.1, biases std 0.05) so the LLM's
    next-token distribution is peaked and greedy/beam choices are not decided by near ties. The ViT qkv key-bias
    third stays zero (EVA has no key bias).
    """
    generator = torch.Generator(device="cpu").manual_seed(seed)
    for name, param in model.named_parameters():
        if not full and not name.startswith("vision_model."):
            continue
        noise = torch.randn(param.shape, generator=generator).to(param.device, param.dtype)
        lname = name.lower()
        if "norm" in lname:
            param.copy_(1.0 + 0.1 * noise if name.endswith("weight") else 0.05 * noise)
        elif name.startswith("vision_model.") and not full:
            param.copy_(0.02 * noise)
        else:
            param.copy_(0.05 * noise)
        if name.endswith("self_attn.qkv.bias"):
            param[param.shape[0] // 3 : 2 * param.shape[0] // 3] = 0


def build_ours(hf_model, processor, device: str):
    """Our model from the HF model's config and state dict, in memory (`hf_interop.model_from_hf`, the path
    `load_model(..., checkpoint=<HF dir>)` takes, minus the disk round trip of the weights)."""
    tokdir = tempfile.mkdtemp(prefix="bench_tok_")
    processor.save_pretrained(tokdir)  # LLM tokenizer at the top, Q-Former tokenizer in qformer_tokenizer/
    model = model_from_hf(registry.get_model_class(ARCH), registry.get_model_class(ARCH).config_with_options("tiny"),
                          hf_model.config, dict(hf_model.state_dict()),
                          tokenizer_dir=tokdir, source="bench/generate.py", device=device)
    model = model.to(device)
    model.apply_precision()  # fp32 on CPU; ViT Linear/Conv + LLM in fp16 on CUDA (our configured precisions)
    return model.eval()


def make_images(n: int, size: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]


def sync(device: str):
    if device == "cuda":
        torch.cuda.synchronize()


def run_ours(ours, pixel_values, prompts, num_beams, new_tokens=NEW_TOKENS):
    return ours.generate_token_ids({"image": pixel_values, "prompt": prompts}, num_beams=num_beams,
                                   max_length=new_tokens, min_length=new_tokens, repetition_penalty=1.0,
                                   length_penalty=1.0, length_semantics="new_tokens")


@torch.no_grad()
def run_ours_lever(ours, pixel_values, prompts, num_beams, lever: str, compile_backend: str,
                   new_tokens=NEW_TOKENS):
    """Ours with a decode-loop lever of transformers' `generate`: `static` (a preallocated `StaticCache`, no
    compilation) or `compile` (the static cache plus the decode step under `torch.compile`: inductor's
    "reduce-overhead" mode, i.e. CUDA graphs, on a GPU). The same steps as `generate_token_ids` (visual tokens,
    `[pads | Q | prompt]`, the LLM's `generate` under the LLM's autocast) with the lever's arguments added; our
    shared-prefix cache gives way to transformers' own cache, so beams prefill the prefix once per beam here."""
    visual = ours.query_features(pixel_values.to(ours.device), prompts)
    embeds, mask = ours.generation_inputs(visual, prompts)
    extra = dict(cache_implementation="static")
    if lever == "static":
        extra["disable_compile"] = True
    elif lever == "compile":
        config = CompileConfig() if compile_backend == "inductor" else CompileConfig(backend=compile_backend, mode=None)
        config._compile_all_devices = True  # transformers compiles only on accelerators unless told otherwise
        extra["compile_config"] = config
    else:
        raise ValueError(f"unknown lever {lever!r}; expected static or compile")
    with ours.llm_compute():
        out = ours.llm.generate(inputs_embeds=embeds, attention_mask=mask, eos_token_id=ours.eos_token_id,
                                pad_token_id=ours.tokenizer.pad_token_id, num_beams=num_beams,
                                max_new_tokens=new_tokens, min_new_tokens=new_tokens, repetition_penalty=1.0,
                                length_penalty=1.0, do_sample=False, **extra)
    return ours.clean_output_ids(out)


@torch.no_grad()
def run_hf(hf_model, ours, inputs, num_beams, new_tokens=NEW_TOKENS):
    out = hf_model.generate(**inputs, num_beams=num_beams, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                            do_sample=False, repetition_penalty=1.0, length_penalty=1.0,
                            eos_token_id=ours.eos_token_id, pad_token_id=ours.tokenizer.pad_token_id)
    out = out[:, inputs["input_ids"].shape[1] :]
    return ours.clean_output_ids(out)  # our Vicuna output fix (id 0 -> EOS), applied to both sides


def hf_batch(processor, ours, images, prompts, device, dtype):
    """HF inputs from its processor, except the Q-Former text: ours (LAVIS: left-truncated at `max_txt_len`, 128),
    so long prompts give both models the same instruction tokens; equal to the processor's for short prompts."""
    inputs = processor(images=images, text=prompts, padding=True, return_tensors="pt")
    inputs["qformer_input_ids"], inputs["qformer_attention_mask"] = ours.qformer_inputs(prompts)
    inputs = {k: v.to(device) for k, v in inputs.items()}
    inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
    return inputs


def timed(fn, device):
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - start, out


def bench_case(name, ours, hf_model, processor, images, prompts, num_beams, reps, device, dtype,
               new_tokens=NEW_TOKENS):
    inputs = hf_batch(processor, ours, images, prompts, device, dtype)
    pixel_values = inputs["pixel_values"].float()  # ours takes fp32 pixels (autocast on CUDA)
    ours_fn = lambda: run_ours(ours, pixel_values, prompts, num_beams, new_tokens)  # noqa: E731
    hf_fn = lambda: run_hf(hf_model, ours, inputs, num_beams, new_tokens)  # noqa: E731
    ours_out, hf_out = ours_fn(), hf_fn()  # warm-up
    t_ours, t_hf = [], []
    for _ in range(reps):  # alternate sides
        t, ours_out = timed(ours_fn, device)
        t_ours.append(t)
        t, hf_out = timed(hf_fn, device)
        t_hf.append(t)
    note = ""
    equal = ours_out.shape == hf_out.shape and torch.equal(ours_out.cpu(), hf_out.cpu())
    if not equal and len(prompts) > 1:
        # HF batched may differ from HF per-sample (padding changes the numerics): compare against single runs.
        singles = [run_hf(hf_model, ours, hf_batch(processor, ours, [img], [p], device, dtype), num_beams,
                          new_tokens)[0]
                   for img, p in zip(images, prompts)]
        rows = [ours_out[i][: len(s)].cpu().tolist() == s.cpu().tolist() for i, s in enumerate(singles)]
        hf_rows = [hf_out[i][: len(s)].cpu().tolist() == s.cpu().tolist() for i, s in enumerate(singles)]
        equal = all(rows)
        note = (f" (vs HF per-sample: {sum(rows)}/{len(rows)} rows equal; HF batched vs HF per-sample: "
                f"{sum(hf_rows)}/{len(hf_rows)})")
    tokens = len(prompts) * ours_out.shape[1]  # generated tokens per call (the best beam of each sample)
    return dict(case=name, batch=len(prompts), beams=num_beams, ours=statistics.median(t_ours),
                hf=statistics.median(t_hf), ours_min=min(t_ours), hf_min=min(t_hf), equal=equal, note=note,
                new_tokens=ours_out.shape[1], hf_new_tokens=hf_out.shape[1],
                ours_tokens_per_s=tokens / statistics.median(t_ours), hf_tokens_per_s=tokens / statistics.median(t_hf),
                speedup=statistics.median(t_hf) / statistics.median(t_ours), ids=ours_out.cpu())


def bench_lever(case: dict, lever: str, ours, processor, images, prompts, reps, device, dtype, compile_backend,
                new_tokens=NEW_TOKENS):
    """One decode-loop lever on one case: first call (compilation included) apart, then `reps` timed calls; the
    ratio to ours without the lever and whether the ids are still ours'."""
    pixel_values = hf_batch(processor, ours, images, prompts, device, dtype)["pixel_values"].float()
    fn = lambda: run_ours_lever(ours, pixel_values, prompts, case["beams"], lever, compile_backend,  # noqa: E731
                                new_tokens)
    first, out = timed(fn, device)
    times = []
    for _ in range(reps):
        t, out = timed(fn, device)
        times.append(t)
    seconds = statistics.median(times)
    return dict(case=case["case"], lever=lever, backend=compile_backend if lever == "compile" else None,
                first_call_s=first, seconds=seconds, min_s=min(times),
                tokens_per_s=len(prompts) * out.shape[1] / seconds, speedup_vs_ours=case["ours"] / seconds,
                ids_identical=out.shape == case["ids"].shape and torch.equal(out.cpu(), case["ids"]))


def status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def memory_gb(device: str) -> dict:
    """What is held now and the peak so far (GB): the CUDA allocator's, or the process's resident set (VmRSS/VmHWM)."""
    if device == "cuda":
        return dict(now=torch.cuda.memory_allocated() / 2**30, peak=torch.cuda.max_memory_allocated() / 2**30)
    return dict(now=status_kb("VmRSS") / 2**20, peak=status_kb("VmHWM") / 2**20)


def write_json(path: str | None, data: dict) -> None:
    """`data` as JSON at `path` (atomically: a reader, or a run killed meanwhile, sees the old or the new file)."""
    if not path:
        return
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, default=lambda value: None)  # tensors and other values: null
    os.replace(tmp, path)


def build_pair(size: str, device: str, dtype: torch.dtype):
    """HF's random model and ours from it, with the seconds and memory each build took (`build` of the report)."""
    sync(device)
    start, before = time.perf_counter(), memory_gb(device)
    hf_model, processor = build_hf(size, device, dtype)
    sync(device)
    hf_s, after_hf = time.perf_counter() - start, memory_gb(device)
    start = time.perf_counter()
    ours = build_ours(hf_model, processor, device)
    sync(device)
    ours_s, after_ours = time.perf_counter() - start, memory_gb(device)
    build = dict(size=size, device=device, hf_dtype=str(dtype), hf_build_s=hf_s, ours_build_s=ours_s,
                 hf_params_m=sum(p.numel() for p in hf_model.parameters()) / 1e6,
                 ours_params_m=sum(p.numel() for p in ours.parameters()) / 1e6,
                 hf_resident_gb=after_hf["now"] - before["now"], ours_resident_gb=after_ours["now"] - after_hf["now"],
                 peak_gb=after_ours["peak"], memory="CUDA allocator" if device == "cuda" else "process RSS",
                 llm_weight_bytes=sum(p.numel() * p.element_size() for p in ours.llm.parameters()))
    return hf_model, processor, ours, build


def parse_case(case: str) -> tuple[int, int, bool]:
    """`b8-beam5-visdial` → (batch 8, beams 5, VisDial prompts)."""
    batch, mode, *kind = case.split("-")
    return int(batch[1:]), 1 if mode == "greedy" else int(mode.removeprefix("beam")), kind == ["visdial"]


def main(argv: list[str] | None = None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="cpu")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch threads on CPU")
    parser.add_argument("--cases", default="b1-greedy,b1-beam5,b8-greedy,b8-beam5,b1-beam5-visdial,b8-beam5-visdial",
                        help="batch-mode[-visdial]: mode greedy or beamN; -visdial uses the ~300-token prompts; "
                             "'none': build only")
    parser.add_argument("--new-tokens", type=int, default=NEW_TOKENS, help="tokens generated per sample (min = max)")
    parser.add_argument("--levers", default="", help="decode-loop levers of ours: static,compile (none by default)")
    parser.add_argument("--lever-cases", default="b1-greedy,b8-beam5", help="the cases the levers run on")
    parser.add_argument("--compile-backend", default=None,
                        help="torch.compile backend of the compile lever (default: inductor on CUDA, eager on CPU)")
    parser.add_argument("--json", help="write the results here (after every case, so a killed run leaves them)")
    args = parser.parse_args(argv)
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    dtype = torch.float16 if args.device == "cuda" else torch.float32
    backend = args.compile_backend or ("inductor" if args.device == "cuda" else "eager")
    report = dict(build=None, cases=[], levers=[], new_tokens=args.new_tokens, reps=args.reps)

    hf_model, processor, ours, report["build"] = build_pair(args.size, args.device, dtype)
    build = report["build"]
    write_json(args.json, report)
    print(f"built HF + ours ({args.size}, {args.device}, HF {dtype}) in {build['hf_build_s']:.1f} + "
          f"{build['ours_build_s']:.1f}s; {build['hf_params_m']:.1f}M params; peak {build['peak_gb']:.2f} GB "
          f"({build['memory']})", flush=True)

    image_size = SIZES[args.size]["vision"]["image_size"]
    all_images = make_images(len(PROMPTS), image_size)
    cases = [] if args.cases == "none" else args.cases.split(",")
    results = {}
    for case in cases:
        n, beams, visdial = parse_case(case)
        prompts = (VISDIAL_PROMPTS if visdial else PROMPTS)[:n]
        lengths = ours.text.prompts(prompts)["attention_mask"].sum(dim=1)
        name = (f"batch {n}, {'greedy' if beams == 1 else f'beam {beams}'}, prompts "
                f"{lengths.min().item()}-{lengths.max().item()} tok" + (" (VisDial)" if visdial else ""))
        start = time.perf_counter()
        r = bench_case(name, ours, hf_model, processor, all_images[:n], prompts, beams, args.reps, args.device, dtype,
                       args.new_tokens)
        results[case] = r
        report["cases"].append({"key": case, **r})
        write_json(args.json, report)
        print(f"  {r['case']}: ours {r['ours']:.3f}s HF {r['hf']:.3f}s equal={r['equal']}{r['note']} "
              f"({time.perf_counter() - start:.1f}s)", flush=True)
    levers = [lever for lever in args.levers.split(",") if lever]
    for lever, case in [(lever, case) for lever in levers for case in args.lever_cases.split(",")]:
        if case in results:  # every case's static cache first, then compilation (the slow first calls)
            n, beams, visdial = parse_case(case)
            prompts = (VISDIAL_PROMPTS if visdial else PROMPTS)[:n]
            start = time.perf_counter()
            r = bench_lever(results[case], lever, ours, processor, all_images[:n], prompts, args.reps, args.device,
                            dtype, backend, args.new_tokens)
            report["levers"].append({"key": case, **r})
            write_json(args.json, report)
            print(f"  {r['case']}, {lever}: {r['seconds']:.3f}s (first call {r['first_call_s']:.1f}s), "
                  f"x{r['speedup_vs_ours']:.2f} vs ours, ids identical {r['ids_identical']} "
                  f"({time.perf_counter() - start:.1f}s)", flush=True)

    threads = f", {torch.get_num_threads()} threads" if args.device == "cpu" else ""
    print(f"\n{args.size} model on {args.device}{threads}; {args.new_tokens} new tokens (min = max), median of "
          f"{args.reps}; torch {torch.__version__}, {platform.machine()}\n")
    print("| case | ours s | HF s | speed-up HF/ours | (min: ours / HF s) | ours tokens/s | outputs equal |")
    print("|---|---|---|---|---|---|---|")
    for r in results.values():
        print(f"| {r['case']} | {r['ours']:.3f} | {r['hf']:.3f} | {r['speedup']:.2f} | "
              f"{r['ours_min']:.3f} / {r['hf_min']:.3f} | {r['ours_tokens_per_s']:.1f} | "
              f"{'yes' if r['equal'] else 'no'}{r['note']} |")
    if report["levers"]:
        print("\n| case | lever | s | first call s | tokens/s | vs ours | ids identical |")
        print("|---|---|---|---|---|---|---|")
        for r in report["levers"]:
            label = f"{r['lever']} ({r['backend']})" if r["backend"] else r["lever"]
            print(f"| {r['case']} | {label} | "
                  f"{r['seconds']:.3f} | {r['first_call_s']:.2f} | {r['tokens_per_s']:.1f} | "
                  f"{r['speedup_vs_ours']:.2f} | {'yes' if r['ids_identical'] else 'no'} |")
    return report


if __name__ == "__main__":
    main()
