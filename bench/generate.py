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
import platform
import statistics
import tempfile
import time

import numpy as np
import torch
from transformers import (
    BlipImageProcessor,
    InstructBlipConfig,
    InstructBlipForConditionalGeneration,
    InstructBlipProcessor,
)

from lavis_ib.common.registry import registry
from lavis_ib.models.hf_interop import model_from_hf
from lavis_ib.models.tokenizers import load_qformer_tokenizer, load_vicuna_tokenizer, tiny_tokenizer_dir

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
    torch.manual_seed(seed)
    with torch.device(device):
        model = InstructBlipForConditionalGeneration._from_config(config, dtype=dtype)
    randomize(model, full=(size == "cpu"), seed=seed)
    return model.eval(), processor


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
    model = model_from_hf(registry.get_model_class(ARCH), "tiny", hf_model.config, dict(hf_model.state_dict()),
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


def run_ours(ours, pixel_values, prompts, num_beams):
    return ours.generate_token_ids({"image": pixel_values, "prompt": prompts}, num_beams=num_beams,
                                   max_length=NEW_TOKENS, min_length=NEW_TOKENS, repetition_penalty=1.0,
                                   length_penalty=1.0, length_semantics="new_tokens")


@torch.no_grad()
def run_hf(hf_model, ours, inputs, num_beams):
    out = hf_model.generate(**inputs, num_beams=num_beams, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
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


def bench_case(name, ours, hf_model, processor, images, prompts, num_beams, reps, device, dtype):
    inputs = hf_batch(processor, ours, images, prompts, device, dtype)
    pixel_values = inputs["pixel_values"].float()  # ours takes fp32 pixels (autocast on CUDA)
    ours_fn = lambda: run_ours(ours, pixel_values, prompts, num_beams)  # noqa: E731
    hf_fn = lambda: run_hf(hf_model, ours, inputs, num_beams)  # noqa: E731
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
        singles = [run_hf(hf_model, ours, hf_batch(processor, ours, [img], [p], device, dtype), num_beams)[0]
                   for img, p in zip(images, prompts)]
        rows = [ours_out[i][: len(s)].cpu().tolist() == s.cpu().tolist() for i, s in enumerate(singles)]
        hf_rows = [hf_out[i][: len(s)].cpu().tolist() == s.cpu().tolist() for i, s in enumerate(singles)]
        equal = all(rows)
        note = (f" (vs HF per-sample: {sum(rows)}/{len(rows)} rows equal; HF batched vs HF per-sample: "
                f"{sum(hf_rows)}/{len(hf_rows)})")
    new_tokens = ours_out.shape[1]
    return dict(case=name, ours=statistics.median(t_ours), hf=statistics.median(t_hf), ours_min=min(t_ours),
                hf_min=min(t_hf), equal=equal, note=note,
                new_tokens=new_tokens, hf_new_tokens=hf_out.shape[1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="cpu")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch threads on CPU")
    parser.add_argument("--cases", default="b1-greedy,b1-beam5,b8-greedy,b8-beam5,b1-beam5-visdial,b8-beam5-visdial",
                        help="batch-mode[-visdial]: mode greedy or beamN; -visdial uses the ~300-token prompts")
    args = parser.parse_args()
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    dtype = torch.float16 if args.device == "cuda" else torch.float32

    t0 = time.perf_counter()
    hf_model, processor = build_hf(args.size, args.device, dtype)
    ours = build_ours(hf_model, processor, args.device)
    print(f"built HF + ours ({args.size}, {args.device}, HF {dtype}) in {time.perf_counter() - t0:.1f}s; "
          f"{sum(p.numel() for p in hf_model.parameters()) / 1e6:.1f}M params", flush=True)

    image_size = SIZES[args.size]["vision"]["image_size"]
    all_images = make_images(len(PROMPTS), image_size)
    results = []
    for case in args.cases.split(","):
        batch, mode, *kind = case.split("-")
        n = int(batch[1:])
        beams = 1 if mode == "greedy" else int(mode.removeprefix("beam"))
        prompts = (VISDIAL_PROMPTS if kind == ["visdial"] else PROMPTS)[:n]
        lengths = ours.text.prompts(prompts)["attention_mask"].sum(dim=1)
        name = (f"batch {n}, {'greedy' if beams == 1 else f'beam {beams}'}, prompts "
                f"{lengths.min().item()}-{lengths.max().item()} tok" + (" (VisDial)" if kind else ""))
        start = time.perf_counter()
        r = bench_case(name, ours, hf_model, processor, all_images[:n], prompts, beams, args.reps, args.device, dtype)
        results.append(r)
        print(f"  {r['case']}: ours {r['ours']:.3f}s HF {r['hf']:.3f}s equal={r['equal']}{r['note']} "
              f"({time.perf_counter() - start:.1f}s)", flush=True)

    threads = f", {torch.get_num_threads()} threads" if args.device == "cpu" else ""
    print(f"\n{args.size} model on {args.device}{threads}; {NEW_TOKENS} new tokens (min = max), median of "
          f"{args.reps}; torch {torch.__version__}, {platform.machine()}\n")
    print("| case | ours s | HF s | speed-up HF/ours | (min: ours / HF s) | outputs equal |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['case']} | {r['ours']:.3f} | {r['hf']:.3f} | {r['hf'] / r['ours']:.2f} | "
              f"{r['ours_min']:.3f} / {r['hf_min']:.3f} | "
              f"{'yes' if r['equal'] else 'no'}{r['note']} |")


if __name__ == "__main__":
    main()
