"""Instruction tuning: `torchrun --nproc_per_node=N train.py --cfg-path projects/instructblip/train/<llm>.yaml`."""

from lavis_ib.cli import run

if __name__ == "__main__":
    run("train")
