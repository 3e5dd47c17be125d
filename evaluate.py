"""Zero-shot evaluation: `torchrun evaluate.py --cfg-path projects/instructblip/eval/<dataset>/<llm>.yaml`."""

from lavis_ib.cli import run

if __name__ == "__main__":
    run("evaluate")
