"""Zero-shot evaluation: `torchrun evaluate.py --cfg-path projects/instructblip/eval/<dataset>.yaml` (Vicuna-7B; another
LLM with `--options model.model_type=...`), or `eval/suite_<llm>.yaml` for all 13 held-out datasets."""

from lavis_ib.cli import run

if __name__ == "__main__":
    run("evaluate")
