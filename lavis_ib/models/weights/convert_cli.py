"""`lavis-ib-convert-weights` (or `python -m lavis_ib.models.weights.convert_cli`): rename a weight file between
LAVIS/lavis_ib and HF transformers key names.

Reads a LAVIS `.pth` (plain or `{"model": ...}`) or a `.safetensors` file and writes `.safetensors` (or `.pth`)
with the other side's names. Whole models with tokenizers and config go through `model.export_hf(dir)` instead.
An existing output is replaced only with `--overwrite`, the input never; the output is written to a temporary
file in its folder and renamed into place, so an interrupted run leaves any earlier output intact.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from lavis_ib.common.io import atomic_write_path
from lavis_ib.models.weights.loading import read_state_dict
from lavis_ib.models.weights.convert import ARCH_PROJ, hf_to_lavis_state_dict, lavis_to_hf_state_dict


def check_destination(parser: argparse.ArgumentParser, src: Path, dst: Path, overwrite: bool) -> None:
    """Exit with a usage error when `dst` is `src` (compared after resolving links and `..`) or exists unasked."""
    if dst.resolve() == src.resolve():
        parser.error(f"dst {str(dst)!r} is the input file {str(src)!r} (resolved: {src.resolve()}); the input is never "
                     f"overwritten: choose another output path")
    if dst.is_dir():
        parser.error(f"dst {str(dst)!r} is a directory; expected an output file path (.safetensors or .pth)")
    if dst.exists() and not overwrite:
        parser.error(f"dst {str(dst)!r} already exists; pass --overwrite to replace it")


def main(argv: list[str] | None = None) -> int:
    """The CLI: convert `src` to `dst` with the other side's names; exit status 0 (argparse exits 2 on bad usage)."""
    parser = argparse.ArgumentParser(prog="lavis-ib-convert-weights", description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("src", type=Path, help="input weights (.pth/.bin/.safetensors)")
    parser.add_argument("dst", type=Path, help="output weights (.safetensors or .pth); never the input file")
    parser.add_argument("--arch", required=True, choices=sorted(ARCH_PROJ))
    parser.add_argument("--to", required=True, choices=["hf", "lavis"], help="naming of the output")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing dst")
    args = parser.parse_args(argv)
    check_destination(parser, args.src, args.dst, args.overwrite)
    try:
        state = read_state_dict(args.src)
        state = lavis_to_hf_state_dict(state, args.arch) if args.to == "hf" else hf_to_lavis_state_dict(state, args.arch)
    except (FileNotFoundError, ValueError) as error:  # a bad input file, or keys no rule of --arch maps
        parser.exit(1, f"{parser.prog}: error: {error}\n")
    state = {k: v.contiguous().clone() for k, v in state.items()}
    with atomic_write_path(args.dst) as temporary:
        if args.dst.suffix == ".safetensors":
            save_file(state, str(temporary), metadata={"format": "pt"})
        else:
            torch.save({"model": state}, temporary)
    print(f"wrote {len(state)} tensors with {args.to} names to {args.dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
