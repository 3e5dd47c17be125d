"""One setup for both runners (`runners/setup.py`): the model's default YAML read once per run, one precision
decision for training and evaluation, and the config's `preprocess` section (project keys included) as the image
defaults the datasets get."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf

import lavis_ib.models
from lavis_ib.cli import load_runner
from lavis_ib.common.config import Config
from lavis_ib.common.registry import registry
from lavis_ib.common.precision import autocast, run_precision
from lavis_ib.common.schema import ConfigError
from lavis_ib.runners import evaluator as evaluator_module
from lavis_ib.runners import runner_iter, setup
from lavis_ib.runners.evaluator import Evaluator
from tests.runners.train_fixtures import write_train_config

CUDA = torch.device("cuda", 0)

# torch warns that CUDA is unavailable when an autocast names it (and disables it): the decision is what is tested
pytestmark = pytest.mark.filterwarnings("ignore:CUDA is not available or torch_xla is imported:UserWarning")


def test_a_training_run_with_validation_reads_the_model_default_config_once(cache, tmp_path, monkeypatch):
    """Trace of every YAML read: `Config` reads the model's default file, and building the model, its datasets'
    image defaults and the validation evaluator take the section it validated instead of reading it again."""
    read = []
    load = OmegaConf.load
    monkeypatch.setattr(OmegaConf, "load", lambda path, *a, **k: read.append(Path(path).resolve()) or load(path, *a, **k))
    path = write_train_config(tmp_path / "train.yaml", tmp_path / "out", datasets=("synthetic_vqa",), max_iters=1, warmup_steps=0,
                              save_freq=0, valid_splits=["val"], val_freq=1, val_limit=2)
    runner = load_runner("train", ["--cfg-path", str(path), "--options", "run.job_id=once"])
    model = runner.cfg.model_cfg
    default = registry.get_model_class(model.arch).default_config_path(model.model_type).resolve()
    summary = runner.train()
    assert summary["step"] == 1 and len(summary["history"]) == 1  # trained and validated
    assert read.count(default) == 1, [str(p) for p in read]

    read.clear()
    evaluator = Evaluator(Config(path, ["run.job_id=eval"]), limit=2)
    assert evaluator.evaluate()[0]["num_scored"] == 2
    assert read.count(default) == 1


@pytest.mark.parametrize("configured, cpu, cuda", [(None, "fp32", "bf16"), ("fp16", "fp16", "fp16"),
                                                   ("bf16", "bf16", "bf16"), ("fp32", "fp32", "fp32")])
def test_the_precision_table(monkeypatch, configured, cpu, cuda):
    """The precision table of docs/training.md: `run.precision` (null: bf16 on CUDA, fp32 on CPU), the one decision
    both runners make."""
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    assert run_precision(configured, torch.device("cpu")) == cpu
    assert run_precision(configured, CUDA) == cuda


def test_each_runner_decides_precision_once_and_builds_and_autocasts_in_it(cache, tmp_path, monkeypatch):
    """train.py (with validation) and evaluate.py each call `run_precision` once; the model is stored in what it
    returns and every forward pass, training and validation alike, autocasts to it. The decision is replaced by one
    that says bf16 (as on CUDA) to tell it from CPU's fp32 default; the run then really trains in bf16 on CPU."""
    decided, built, opened = [], [], []

    def decide(requested, device):
        decided.append((requested, str(device)))
        return "bf16"

    def record_autocast(precision, device):
        opened.append(precision)
        return autocast(precision, device)

    build = lavis_ib.models.model_from_section
    monkeypatch.setattr(lavis_ib.models, "model_from_section",
                        lambda *args, **kwargs: built.append(kwargs["precision"]) or build(*args, **kwargs))
    for module in (runner_iter, evaluator_module):
        monkeypatch.setattr(module, "run_precision", decide)
        monkeypatch.setattr(module, "autocast", record_autocast)
    path = write_train_config(tmp_path / "train.yaml", tmp_path / "out", datasets=("synthetic_vqa",), max_iters=1,
                              warmup_steps=0, save_freq=0, valid_splits=["val"], val_freq=1, val_limit=2)
    summary = load_runner("train", ["--cfg-path", str(path), "--options", "run.job_id=precision"]).train()
    assert summary["step"] == 1 and len(summary["history"]) == 1
    assert decided == [(None, "cpu")] and built == ["bf16"]
    assert opened[0] == "bf16" and set(opened) == {"bf16"} and len(opened) >= 2  # the train step, then validation
    decided.clear(), built.clear(), opened.clear()
    assert Evaluator(Config(path, ["run.job_id=eval"]), limit=2).evaluate()[0]["num_scored"] == 2
    assert decided == [(None, "cpu")] and built == ["bf16"] and set(opened) == {"bf16"} and opened


def test_a_project_preprocess_section_gives_the_datasets_their_image_defaults(tmp_path):
    """A project's `preprocess:` keys merge over the model's default section (they were dropped before) and reach
    the datasets' processors; the model's own input size still wins."""
    path = write_train_config(tmp_path / "train.yaml", tmp_path / "out")
    text = path.read_text() + "preprocess:\n  vis_processor:\n    eval: {mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25]}\n"
    path.write_text(text)
    cfg = Config(path)
    model = SimpleNamespace(cfg=SimpleNamespace(image_size=56))
    assert setup.preprocessing(cfg, model) == {"image_size": 56, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}
    assert cfg.preprocess_cfg.vis_processor.eval.name == "blip_image_eval"  # the model default's, kept
    builder = setup.dataset_builder(cfg, "synthetic_vqa", setup.preprocessing(cfg, model))
    assert builder.vis_processor_config()["eval"]["mean"] == [0.5, 0.5, 0.5]

    path.write_text(text.replace("eval: {mean", "eval: {name: blip_image_evl, mean"))
    with pytest.raises(ConfigError, match=rf"{path}: preprocess: .*'blip_image_evl'.*did you mean 'blip_image_eval'"):
        setup.check_preprocess(Config(path))
