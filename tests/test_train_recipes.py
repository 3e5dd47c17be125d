"""The training recipes in `projects/instructblip/train/` load through `Config` and hold the paper's numbers (§2.4,
§2.6): global batch per LLM on 16 GPUs, the 60K-step schedule, the 13 held-in datasets and the OK-VQA↑ / A-OKVQA↓
sampling adjustment, whose shares `docs/training.md` tabulates."""

from __future__ import annotations

import math
import re
from functools import lru_cache
from pathlib import Path

import pytest

from lavis_ib.common.config import Config
from lavis_ib.datasets.builders.schema import DatasetConfig
from lavis_ib.datasets.sampling import balanced_ratios

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ROOT / "projects" / "instructblip" / "train"
GPUS = 16  # the paper's 16 × A100-40GB

# LLM recipe → (arch, global batch of the paper)
PAPER_BATCH = {
    "vicuna7b": ("blip2_vicuna_instruct", 128),
    "vicuna13b": ("blip2_vicuna_instruct", 64),
    "flant5xl": ("blip2_t5_instruct", 192),
    "flant5xxl": ("blip2_t5_instruct", 64),
}
RECIPES = [*PAPER_BATCH, "scienceqa_finetune"]

# Training-set sizes of the held-in datasets (paper_and_datasets §3.1; OCR-VQA "~801K"; LLaVA in conversations)
HELD_IN_SIZES = {
    "coco_caption": 566_747, "capfilt14m": 13_873_136, "textcaps": 109_765, "vqav2": 443_757, "okvqa": 9_009,
    "aokvqa": 17_056, "ocrvqa": 801_000, "vqav2_qg": 443_757, "okvqa_qg": 9_009, "aokvqa_qg": 17_056,
    "llava150k_conversation": 56_681, "llava150k_reasoning": 76_643, "llava150k_detail": 23_240,
}
VALIDATED = {"coco_caption", "textcaps", "vqav2", "okvqa", "aokvqa"}  # a val split and an eval: protocol


@lru_cache(maxsize=None)
def recipe(name: str) -> Config:
    return Config(TRAIN / f"{name}.yaml")


def multipliers(cfg: Config) -> dict[str, float]:
    """Each dataset's `sample_ratio` after merging (the schema's default where no file sets it)."""
    default = DatasetConfig.sample_ratio
    return {name: float(block.get("sample_ratio", default)) for name, block in cfg.datasets_cfg.items()}


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_loads_with_a_frozen_vit_at_224_px(name):
    cfg = recipe(name)
    assert cfg.run.runner == "runner_iter" and cfg.run.resume == "auto"
    assert cfg.model_cfg.freeze_vit is True and cfg.model_cfg.image_size == 224
    assert cfg.run.train_splits == ["train"] and cfg.run.valid_splits == ["val"]
    assert cfg.run.save_freq > 0 and cfg.run.val_freq % cfg.run.save_freq == 0  # every validated step is saved


@pytest.mark.parametrize("name", PAPER_BATCH)
def test_global_batch_on_16_gpus_is_the_papers(name):
    arch, batch = PAPER_BATCH[name]
    cfg = recipe(name)
    assert (cfg.model_cfg.arch, cfg.model_cfg.model_type) == (arch, name)
    assert cfg.run.batch_size_train * cfg.run.accum_grad_iters * GPUS == batch


@pytest.mark.parametrize("name", PAPER_BATCH)
def test_schedule_and_optimizer_are_the_papers(name):
    run = recipe(name).run
    assert run.max_iters == 60_000 and run.val_freq == 3_000
    assert run.lr_sched == "linear_warmup_cosine_lr"
    assert (run.warmup_lr, run.warmup_steps, run.init_lr, run.min_lr) == (1e-8, 1000, 1e-5, 0.0)
    assert (run.beta1, run.beta2, run.weight_decay) == (0.9, 0.999, 0.05)
    assert run.val_limit is not None and run.val_limit <= 1000  # validation stays cheap: 20 of them in a run


@pytest.mark.parametrize("name", PAPER_BATCH)
def test_instruction_tuning_mixes_exactly_the_13_held_in_training_sets(name):
    cfg = recipe(name)
    assert set(cfg.datasets_cfg) == set(HELD_IN_SIZES)
    for dataset, block in cfg.datasets_cfg.items():
        assert block.role == "held_in" and "train" in block.build_info.annotations, dataset
    validated = {n for n, b in cfg.datasets_cfg.items() if "val" in b.build_info.annotations and b.get("eval")}
    assert validated == VALIDATED


def test_recipes_start_from_blip2_stage_checkpoints_not_instructblip_weights():
    urls = {name: recipe(name).model_cfg.pretrained for name in PAPER_BATCH}
    base = "https://storage.googleapis.com/sfr-vision-language-research/LAVIS/models/BLIP2/"
    assert urls["flant5xl"] == base + "blip2_pretrained_flant5xl.pth"
    assert urls["flant5xxl"] == base + "blip2_pretrained_flant5xxl.pth"
    assert urls["vicuna7b"] == base + "blip2_pretrained_vicuna7b.pth"  # the authors' stage 2 (LAVIS#344)
    assert "InstructBLIP" not in urls["vicuna13b"]  # no 13B stage-2 checkpoint was published: the user's own
    assert len({recipe(name).run.job_id for name in RECIPES}) == len(RECIPES)  # resume: auto never mixes two runs


def test_sampling_raises_okvqa_and_lowers_aokvqa_relative_to_pure_sqrt():
    for name in PAPER_BATCH:
        assert multipliers(recipe(name)) == multipliers(recipe("vicuna7b")), f"{name}: another mixture"
    sqrt = balanced_ratios(HELD_IN_SIZES)
    ours = balanced_ratios(HELD_IN_SIZES, multipliers(recipe("vicuna7b")))
    assert ours["okvqa"] == pytest.approx(2 * sqrt["okvqa"], rel=0.01)
    assert ours["aokvqa"] == pytest.approx(sqrt["aokvqa"] / 2, rel=0.01)
    assert ours["okvqa"] > 2.5 * ours["aokvqa"]  # OK-VQA, half A-OKVQA's size, is drawn ~3× as often
    others = set(HELD_IN_SIZES) - {"okvqa", "aokvqa"}
    assert all(ours[n] == pytest.approx(sqrt[n], rel=0.01) for n in others)  # the rest of the mixture unchanged
    assert ours["capfilt14m"] == pytest.approx(0.455, abs=0.001)


def test_docs_sampling_table_matches_the_configured_multipliers():
    """docs/training.md's table (dataset | size | sqrt share | multiplier | share) is what the config produces."""
    text = (ROOT / "docs" / "training.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(\w+)` \| ([\d,]+) \| ([\d.]+)% \| ([\d.]+) \| ([\d.]+)% \|", text, re.MULTILINE)
    assert {row[0] for row in rows} == set(HELD_IN_SIZES)
    configured = multipliers(recipe("vicuna7b"))
    sqrt = balanced_ratios(HELD_IN_SIZES)
    ours = balanced_ratios(HELD_IN_SIZES, configured)
    for name, size, base, multiplier, share in rows:
        assert int(size.replace(",", "")) == HELD_IN_SIZES[name]
        assert float(multiplier) == configured[name]
        assert math.isclose(float(base), 100 * sqrt[name], abs_tol=0.006), name
        assert math.isclose(float(share), 100 * ours[name], abs_tol=0.006), name


def test_scienceqa_finetune_is_a_short_single_dataset_run_from_instructblip():
    cfg = recipe("scienceqa_finetune")
    assert list(cfg.datasets_cfg) == ["scienceqa"]
    block = cfg.datasets_cfg.scienceqa
    assert block.build_info.annotations.train.storage == "datasets/scienceqa/train.jsonl"
    assert "val" in block.build_info.annotations and block.instruction.train == "context_options"
    assert "/InstructBLIP/instruct_blip_vicuna7b" in cfg.model_cfg.pretrained  # fine-tunes the released model
    run = cfg.run
    assert run.max_iters == 1000 and run.warmup_steps < run.max_iters and run.max_iters % run.val_freq == 0
    assert run.best_metric == "scienceqa/val" and run.val_limit is None  # the whole val split picks the checkpoint
    assert run.batch_size_train * run.accum_grad_iters * 8 == 64  # as documented: 8 GPUs


def test_options_override_a_recipe_and_are_validated():
    cfg = Config(TRAIN / "vicuna7b.yaml", ["run.batch_size_train=4", "run.accum_grad_iters=2"])
    assert cfg.run.batch_size_train * cfg.run.accum_grad_iters * GPUS == 128  # same global batch, half the memory
    with pytest.raises(Exception, match="accum_grad_iters"):
        Config(TRAIN / "vicuna7b.yaml", ["run.accum_grad_iters=0"])


def test_scienceqa_lora_is_the_finetune_with_adapters_and_the_same_global_batch():
    lora, full = recipe("scienceqa_lora"), recipe("scienceqa_finetune")
    assert lora.model_cfg.lora.r == 16 and list(lora.model_cfg.lora.target_modules) == ["q_proj", "k_proj", "v_proj",
                                                                                        "o_proj"]
    assert lora.model_cfg.pretrained == full.model_cfg.pretrained and lora.model_cfg.get("quantization") is None
    assert lora.run.batch_size_train * lora.run.accum_grad_iters * 1 == 64  # one GPU, as documented
    assert lora.run.job_id != full.run.job_id and lora.datasets_cfg == full.datasets_cfg
    nf4 = Config(TRAIN / "scienceqa_lora.yaml", ["model.quantization=nf4"])
    assert nf4.model_cfg.quantization == "nf4" and nf4.model_cfg.quantization_compute_dtype == "bf16"
