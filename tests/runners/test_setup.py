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
from lavis_ib.common.precision import autocast
from lavis_ib.common.schema import ConfigError
from lavis_ib.runners import setup
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
    default = runner.cfg.model_default_path.resolve()
    summary = runner.train()
    assert summary["step"] == 1 and len(summary["history"]) == 1  # trained and validated
    assert read.count(default) == 1, [str(p) for p in read]

    read.clear()
    evaluator = Evaluator(Config(path, ["run.job_id=eval"]), limit=2)
    assert evaluator.evaluate()[0]["num_scored"] == 2
    assert read.count(default) == 1


@pytest.fixture
def built(monkeypatch):
    """`setup.build_model` with the model construction replaced by a recorder of the precision it is asked for."""
    asked = []

    def record(section, source, is_eval=False, device="cpu", precision=None, overridden=()):
        asked.append((is_eval, device, precision))
        return SimpleNamespace(enable_feature_cache=lambda size: None)

    monkeypatch.setattr(lavis_ib.models, "model_from_section", record)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    return asked


@pytest.mark.parametrize("configured, cpu, cuda", [(None, "fp32", "bf16"), ("fp16", "fp16", "fp16"),
                                                   ("bf16", "bf16", "bf16"), ("fp32", "fp32", "fp32")])
def test_training_and_evaluation_take_the_same_precision_for_a_device(built, tmp_path, configured, cpu, cuda):
    """The precision table of docs/training.md: `run.precision` (null: bf16 on CUDA, fp32 on CPU) stores the frozen
    parts and autocasts the forward alike in train.py, its validation and evaluate.py."""
    path = write_train_config(tmp_path / "train.yaml", tmp_path / "out", precision=configured)
    cfg = Config(path)
    for device, expected in ((torch.device("cpu"), cpu), (CUDA, cuda)):
        for is_eval in (False, True):
            setup.build_model(cfg, device, is_eval=is_eval)
        assert built[-2:] == [(False, str(device), expected), (True, str(device), expected)]
        evaluation = Evaluator.autocast(SimpleNamespace(run=cfg.run, info=SimpleNamespace(device=device)))
        training = autocast(expected, device)
        assert type(evaluation) is type(training)
        if expected != "fp32":
            assert evaluation.fast_dtype == training.fast_dtype == getattr(torch, {"fp16": "float16",
                                                                                   "bf16": "bfloat16"}[expected])


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
