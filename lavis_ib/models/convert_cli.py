"""`lavis-ib-convert-weights` (or `python -m lavis_ib.models.convert_cli`): rename a weight file between
LAVIS/lavis_ib and HF transformers key names.

Reads a LAVIS `.pth` (plain or `{"model": ...}`) or a `.safetensors` file and writes `.safetensors` (or `.pth`)
with the other side's names. Whole models with tokenizers and config go through `model.export_hf(dir)` instead.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from lavis_ib.models.checkpoint import read_state_dict
from lavis_ib.models.convert import ARCH_PROJ, hf_to_lavis_state_dict, lavis_to_hf_state_dict


def main(argv: list[str] | None = None) -> int:
    """The CLI: convert `src` to `dst` with the other side's names; exit status 0 (argparse exits 2 on bad usage)."""
    parser = argparse.ArgumentParser(prog="lavis-ib-convert-weights", description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("src", type=Path, help="input weights (.pth/.bin/.safetensors)")
    parser.add_argument("dst", type=Path, help="output weights (.safetensors or .pth)")
    parser.add_argument("--arch", required=True, choices=sorted(ARCH_PROJ))
    parser.add_argument("--to", required=True, choices=["hf", "lavis"], help="naming of the output")
    args = parser.parse_args(argv)
    state = read_state_dict(args.src)
    state = lavis_to_hf_state_dict(state, args.arch) if args.to == "hf" else hf_to_lavis_state_dict(state, args.arch)
    state = {k: v.contiguous().clone() for k, v in state.items()}
    args.dst.parent.mkdir(parents=True, exist_ok=True)
    if args.dst.suffix == ".safetensors":
        save_file(state, str(args.dst), metadata={"format": "pt"})
    else:
        torch.save({"model": state}, args.dst)
    print(f"wrote {len(state)} tensors with {args.to} names to {args.dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
