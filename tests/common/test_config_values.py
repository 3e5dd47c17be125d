"""Config values are checked against their declared types and allowed values, naming the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

import lavis_ib  # noqa: F401  (registers the architectures)
from lavis_ib.common.config import Config
from lavis_ib.common.run_schema import RunConfig
from lavis_ib.common.schema import ConfigError


def project(tmp_path: Path, model: str = "", run: str = "") -> Path:
    path = tmp_path / "project.yaml"
    path.write_text("model:\n  arch: blip2_vicuna_instruct\n  model_type: tiny\n" + model + "run:\n  seed: 1\n" + run)
    return path


BAD_VALUES = [
    ("model", "  vit_precision: fp17\n", r"'model.vit_precision' must be one of 'fp32', 'fp16', 'bf16', got 'fp17'"),
    ("model", "  llm_precision: half\n", r"'model.llm_precision' must be one of 'fp32', 'fp16', 'bf16', got 'half'"),
    ("model", "  max_txt_len: long\n", r"'model.max_txt_len' must be int, got 'long'"),
    ("model", "  max_txt_len: 0\n", r"model.max_txt_len must be a positive integer, got 0"),
    ("model", "  freeze_vit: 1\n", r"'model.freeze_vit' must be bool, got 1"),
    ("model", "  vit_model: eva2_clip_L\n", r"'model.vit_model' must be one of 'eva_clip_g', got 'eva2_clip_L'"),
    ("model", "  qformer: {num_layers: two}\n", r"'model.qformer.num_layers' must be int, got 'two'"),
    ("run", "  batch_size_trian: 4\n", r"unknown key 'run.batch_size_trian'; did you mean 'run.batch_size_train'"),
    ("run", "  batch_size_train: 0\n", r"run.batch_size_train must be ≥ 1, got 0"),
    ("run", "  precision: fp17\n", r"'run.precision' must be one of 'fp32', 'fp16', 'bf16' or null, got 'fp17'"),
    ("run", "  max_iters: lots\n", r"'run.max_iters' must be int or float or null, got 'lots'"),
    ("run", "  test_splits: test\n", r"'run.test_splits' must be list, got 'test'"),
]


@pytest.mark.parametrize("section, line, message", BAD_VALUES)
def test_bad_values_name_file_and_key(tmp_path, section, line, message):
    """Model and run sections alike: the error names the file, the dotted key and what was expected."""
    path = project(tmp_path, **{section: line})
    with pytest.raises(ConfigError, match=message) as info:
        Config(path)
    assert str(path) in str(info.value)


def test_bad_value_from_options_names_options(tmp_path):
    with pytest.raises(ConfigError, match=r"--options: 'model.vit_precision' must be one of"):
        Config(project(tmp_path), ["model.vit_precision=fp17"])


def test_valid_run_values_are_parsed_with_defaults(tmp_path):
    cfg = Config(project(tmp_path, run="  batch_size_train: 4\n  init_lr: 1\n  max_iters: 2.0e+4\n"))
    assert cfg.run.batch_size_train == 4
    assert cfg.run.init_lr == 1.0 and isinstance(cfg.run.init_lr, float)  # an int is widened to float
    assert cfg.run.max_iters == 20000.0
    assert cfg.run.weight_decay == RunConfig().weight_decay == 0.05
    assert cfg.run.runner == "runner_iter"


@pytest.mark.parametrize("key, value, remedy", [
    ("task", "vqa", "eval.task"), ("evaluate", "true", "python evaluate.py --cfg-path"),
    ("distributed", "true", "torchrun --nproc_per_node=N"), ("world_size", "8", "torchrun --nproc_per_node=N"),
    ("gpu", "0", "CUDA_VISIBLE_DEVICES"), ("use_dist_eval_sampler", "false", "each is scored once")])
def test_a_lavis_run_key_that_would_mean_nothing_is_refused_with_what_to_do(tmp_path, key, value, remedy):
    """LAVIS's YAMLs carry `run.task: vqa` and the like; nothing here reads them, so they are refused, not ignored."""
    path = project(tmp_path, run=f"  {key}: {value}\n")
    for options in ([], [f"run.{key}={value}"]):
        with pytest.raises(ConfigError) as info:
            Config(project(tmp_path) if options else path, options)
        where = "--options" if options else str(path)
        assert str(info.value).startswith(f"{where}: run.{key}: ") and remedy in str(info.value)
        assert str(info.value).endswith(f"delete run.{key}")


@pytest.mark.parametrize("key, value, remedy", [
    ("max_epoch", "3", "set run.max_iters instead"), ("iters_per_inner_epoch", "100", "run.save_freq count steps"),
    ("amp", "true", "set run.precision instead: fp16"), ("amp", "false", "set run.precision instead: fp16"),
    ("train_dataset_ratios", "{vqa: 2}", "set each dataset's sample_ratio instead")])
def test_a_lavis_run_key_replaced_by_ours_is_refused_when_any_config_is_read(tmp_path, key, value, remedy):
    """LAVIS's schedule and precision keys are refused when the config is read, evaluation configs too (they were
    refused only when training started), naming the key that replaces each."""
    with pytest.raises(ConfigError) as info:
        Config(project(tmp_path, run=f"  {key}: {value}\n"))
    message = str(info.value)
    assert message.startswith(f"{tmp_path}") and f": run.{key}: " in message and remedy in message
