"""Benchmark: peak host memory of loading a frozen LLM, the old way (fp32, then cast) vs ours (straight into fp16),
and ours quantized by bitsandbytes as it loads (`model.quantization: int8 / nf4`).

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
import os
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
    "int8": "the same with model.quantization: int8 (bitsandbytes LLM.int8 through BitsAndBytesConfig)",
    "nf4": "the same with model.quantization: nf4 (4-bit NormalFloat, fp16 compute)",
    "int8+mmap": "int8 with MALLOC_MMAP_THRESHOLD_=1048576 (glibc returns each freed quantization temporary)",
}
MODE_ENV = {"int8+mmap": {"MALLOC_MMAP_THRESHOLD_": "1048576"}}
GOALS = {"int8": 0.6, "nf4": 0.4, "int8+mmap": 0.6}  # issue 19: peak RSS above baseline at most this × the fp16 file


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
                            text=True, check=False, env={**os.environ, **MODE_ENV.get(mode, {})})
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


def _anon_rss_bytes() -> int:
    """Anonymous resident memory (`RssAnon`): what the process owns, without the safetensors file's mmapped pages,
    which are page cache the kernel reclaims under pressure (they never cause an out-of-memory)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    return 0


class AnonPeak:
    """The peak of `RssAnon` while a block runs, sampled every millisecond by a thread (Linux has no anonymous
    high-water mark of its own)."""

    def __enter__(self):
        import threading

        self.peak, self.done = _anon_rss_bytes(), threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self):
        while not self.done.wait(0.001):
            self.peak = max(self.peak, _anon_rss_bytes())

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join()
        self.peak = max(self.peak, _anon_rss_bytes())


def _child(mode: str, directory: str) -> None:
    """Import everything a load needs, note the peak RSS so far, load, and print the figures as one JSON line."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    if mode != "before":
        from lavis_ib.models.llm import build_language_model
        from lavis_ib.models.quantization import bitsandbytes_config
    if mode in GOALS:
        from types import SimpleNamespace

        import bitsandbytes  # noqa: F401  (imported before the baseline, as the package itself would be)

        settings = SimpleNamespace(quantization=mode.split("+")[0], quantization_compute_dtype=None, quantization_double_quant=False)
        load = {"quantization_config": bitsandbytes_config(settings, torch.float16), "device_map": {"": "cpu"}}
    AutoModelForCausalLM._model_mapping[type(AutoConfig.from_pretrained(directory))]  # imports the model code
    baseline, anon_baseline = _peak_rss_bytes(), _anon_rss_bytes()
    start = time.perf_counter()
    with AnonPeak() as anon:
        if mode == "before":
            model = AutoModelForCausalLM.from_pretrained(directory, attn_implementation="sdpa", dtype=torch.float32)
            model = model.to(torch.float16)
        else:
            model = build_language_model(AutoModelForCausalLM, directory, "llm_model", None, False,
                                         dtype=torch.float16, load_options=load if mode in GOALS else None)
        seconds = time.perf_counter() - start
        params = list(model.parameters())
        with torch.no_grad():  # read every weight once: tensors still backed by the file's mmap count from here on
            for param in params:
                param.sum()
    print(json.dumps({
        "mode": mode, "baseline_bytes": baseline, "peak_delta_bytes": _peak_rss_bytes() - baseline,
        "anon_peak_delta_bytes": anon.peak - anon_baseline, "anon_held_delta_bytes": _anon_rss_bytes() - anon_baseline,
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
        print("peak RSS: VmHWM, file pages of the mmap included; anonymous: RssAnon (what the process owns), its peak "
              "during the load and what the loaded model holds; × the fp16 file's size")
        print(f"{'mode':<7} {'dtypes':<14} {'peak RSS Δ':>11} {'anon peak Δ':>12} {'anon held Δ':>12} {'goal':>6} "
              f"{'s':>6}  how")
        for mode, how in MODES.items():
            r = peak_rss_of_loading(Path(tmp), mode)
            ratio = {key: r[f"{key}_bytes"] / file_bytes for key in ("peak_delta", "anon_peak_delta", "anon_held_delta")}
            goal = GOALS.get(mode)
            judged = "" if goal is None else f"≤{goal:.1f}{'' if ratio['anon_peak_delta'] <= goal else '✗'}"
            print(f"{mode:<7} {','.join(d.removeprefix('torch.') for d in r['dtypes']):<14} {ratio['peak_delta']:>10.2f}× {ratio['anon_peak_delta']:>11.2f}× "
                  f"{ratio['anon_held_delta']:>11.2f}× {judged:>6} {r['seconds']:>6.1f}  {how}")


if __name__ == "__main__":
    main()
