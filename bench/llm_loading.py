"""Benchmark: peak host memory of loading a frozen LLM, the old way (fp32, then cast) vs ours (straight into fp16).

A random LLaMA is saved in fp16 with `save_pretrained` to a temporary directory; each load runs in a fresh
interpreter, which reports its peak RSS (`VmHWM`) above the RSS it had after its imports, once every weight has
been read (weights that stay views of the safetensors mmap are resident only when touched).

    .venv/bin/python bench/llm_loading.py                 # ~0.5 B parameters, ~1 GB of fp16 safetensors on disk
    .venv/bin/python bench/llm_loading.py --size small    # ~45 M parameters (what the unit test loads)

See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = {
    # 32000 × 1024 embeddings (untied) + 26 layers of 4·1024² attention and 3·1024·4096 MLP weights: ~502 M.
    "0.5b": dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=26, num_attention_heads=16,
                 num_key_value_heads=16, vocab_size=32000),
    # 32000 × 512 embeddings (untied) + 4 layers of 4·512² and 3·512·1376: ~45 M.
    "small": dict(hidden_size=512, intermediate_size=1376, num_hidden_layers=4, num_attention_heads=8,
                  num_key_value_heads=8, vocab_size=32000),
}
MODES = {
    "before": "from_pretrained(dtype=torch.float32), then .to(torch.float16) (the old models/llm.py)",
    "after": "lavis_ib.models.llm.build_language_model(..., dtype=torch.float16)",
}


def save_random_llama(directory: Path, size: str) -> int:
    """Save a random LLaMA of `SIZES[size]` in fp16 to `directory`; returns its safetensors bytes on disk."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(**SIZES[size], max_position_embeddings=256, tie_word_embeddings=False)
    model = LlamaForCausalLM._from_config(config, dtype=torch.float16)
    model.save_pretrained(directory)
    return sum(p.stat().st_size for p in Path(directory).glob("*.safetensors"))


def peak_rss_of_loading(directory: Path, mode: str) -> dict:
    """Load `directory` in a child interpreter the `mode` way; its peak RSS above its post-import RSS (bytes)."""
    result = subprocess.run([sys.executable, __file__, "--child", mode, str(directory)], capture_output=True,
                            text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"loading {directory} ({mode}) failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _peak_rss_bytes() -> int:
    """This process's peak RSS: Linux's `VmHWM`, which starts afresh at exec, unlike `ru_maxrss`, which a child
    inherits from the parent it was forked from (so a large parent would hide the child's own peak)."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)


def _child(mode: str, directory: str) -> None:
    """Import everything a load needs, note the peak RSS so far, load, and print the figures as one JSON line."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    if mode == "after":
        from lavis_ib.models.llm import build_language_model
    AutoModelForCausalLM._model_mapping[type(AutoConfig.from_pretrained(directory))]  # imports the model code
    baseline = _peak_rss_bytes()
    start = time.perf_counter()
    if mode == "before":
        model = AutoModelForCausalLM.from_pretrained(directory, attn_implementation="sdpa", dtype=torch.float32)
        model = model.to(torch.float16)
    else:
        model = build_language_model(AutoModelForCausalLM, directory, "llm_model", None, False, dtype=torch.float16)
    seconds = time.perf_counter() - start
    params = list(model.parameters())
    with torch.no_grad():  # read every weight once: tensors still backed by the file's mmap count from here on
        for param in params:
            param.sum()
    print(json.dumps({
        "mode": mode, "baseline_bytes": baseline, "peak_delta_bytes": _peak_rss_bytes() - baseline,
        "seconds": seconds, "parameters": sum(p.numel() for p in params),
        "dtypes": sorted({str(p.dtype) for p in params}),
    }))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="0.5b")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return
    with tempfile.TemporaryDirectory(prefix="llm_loading_") as tmp:
        file_bytes = save_random_llama(Path(tmp), args.size)
        print(f"random LLaMA ({args.size}) saved in fp16: {file_bytes / 2**20:.0f} MiB of safetensors")
        print(f"{'mode':<7} {'params':>8} {'dtypes':<16} {'peak RSS Δ MiB':>14} {'× fp16 size':>11} {'s':>6}  how")
        for mode, how in MODES.items():
            r = peak_rss_of_loading(Path(tmp), mode)
            print(f"{mode:<7} {r['parameters'] / 1e6:>7.0f}M {','.join(r['dtypes']):<16} "
                  f"{r['peak_delta_bytes'] / 2**20:>14.0f} {r['peak_delta_bytes'] / file_bytes:>11.2f} "
                  f"{r['seconds']:>6.1f}  {how}")


if __name__ == "__main__":
    main()
