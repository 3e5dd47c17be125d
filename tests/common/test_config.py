"""Tests for `lavis_ib.common.config.Config`: layering, overrides, validation errors and the shipped YAMLs."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

import lavis_ib  # noqa: F401  (registers the architectures)
from lavis_ib.common.config import Config, parse_options
from lavis_ib.common.paths import configs_root
from lavis_ib.common.registry import registry
from lavis_ib.common.schema import ConfigError

SHIPPED_MODEL_YAMLS = sorted((configs_root / "models").glob("**/*.yaml"))


def write_yaml(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def vicuna_project(tmp_path) -> Path:
    return write_yaml(
        tmp_path / "project.yaml",
        """
model:
  arch: blip2_vicuna_instruct
  model_type: tiny
  max_txt_len: 40
  prompt: "project prompt"
run:
  job_id: captioning
  batch_size_train: 4
  lr_sched: linear_warmup_cosine_lr
""",
    )


# ----- (a) layering and accessors ---------------------------------------------------------------------------
def test_merges_default_project_and_options(vicuna_project):
    cfg = Config(vicuna_project, ["model.max_txt_len=50", "run.batch_size_train=8"])
    model = cfg.model_cfg
    assert model.arch == "blip2_vicuna_instruct" and model.model_type == "tiny"
    # from the tiny default YAML
    assert model.image_size == 56
    assert model.num_query_token == 8
    assert model.vision.width == 64
    # project overrides the default, options override the project
    assert model.prompt == "project prompt"
    assert model.max_txt_len == 50
    assert cfg.run_cfg.batch_size_train == 8
    assert cfg.run_cfg.job_id == "captioning"
    assert len(cfg.datasets_cfg) == 0


def test_options_alternating_key_value_form(vicuna_project):
    cfg = Config(vicuna_project, ["model.max_txt_len", "51", "run.batch_size_train", "9"])
    assert cfg.model_cfg.max_txt_len == 51
    assert cfg.run_cfg.batch_size_train == 9


def test_options_nested_key(vicuna_project):
    cfg = Config(vicuna_project, ["model.qformer.num_layers=4"])
    assert cfg.model_cfg.qformer.num_layers == 4
    assert cfg.model_cfg.qformer.hidden_size == 64  # untouched siblings keep the default


def test_parse_options_errors():
    with pytest.raises(ConfigError, match="--options"):
        parse_options(["model.max_txt_len", "5", "run.x"])
    with pytest.raises(ConfigError, match="--options"):
        parse_options(["a=1", "b"])
    assert OmegaConf.to_container(parse_options(None)) == {}


def test_to_dict_and_pretty_print(vicuna_project):
    cfg = Config(vicuna_project)
    as_dict = cfg.to_dict()
    assert isinstance(as_dict, dict)
    assert as_dict["model"]["arch"] == "blip2_vicuna_instruct"
    assert as_dict["run"]["batch_size_train"] == 4
    # interpolations (e.g. ${assets:...}) are resolved to real paths
    assert Path(as_dict["model"]["llm_tokenizer"]).is_dir()
    text = cfg.pretty_print()
    assert "== model ==" in text and "== run ==" in text
    assert "blip2_vicuna_instruct" in text
    assert str(vicuna_project) in repr(cfg)


# ----- (b) --options model.model_type really selects the default file ----------------------------------------
@pytest.fixture
def opt_project(tmp_path) -> Path:
    return write_yaml(tmp_path / "opt.yaml", "model:\n  arch: blip2_opt\n  model_type: tiny\n")


def test_model_type_from_project(opt_project):
    cfg = Config(opt_project)
    assert cfg.model_cfg.image_size == 56
    assert cfg.model_cfg.get("opt_model") is None
    assert cfg.model_cfg.random_init is True


def test_options_model_type_changes_default_file(opt_project):
    cfg = Config(opt_project, ["model.model_type=pretrain_opt2.7b"])
    assert cfg.model_cfg.model_type == "pretrain_opt2.7b"
    assert cfg.model_cfg.image_size == 224
    assert cfg.model_cfg.opt_model == "facebook/opt-2.7b"
    assert cfg.model_cfg.num_query_token == 32
    assert "vision" not in cfg.model_cfg or cfg.model_cfg.vision.get("width", 1408) == 1408


# ----- (c) typos and unknown names ---------------------------------------------------------------------------
def test_typo_in_project_names_file_key_and_fix(tmp_path):
    path = write_yaml(tmp_path / "typo.yaml", "model:\n  arch: blip2_opt\n  model_type: tiny\n  imge_size: 224\n")
    with pytest.raises(ConfigError) as info:
        Config(path)
    message = str(info.value)
    assert str(path) in message
    assert "model.imge_size" in message
    assert "image_size" in message.replace("imge_size", "")


def test_typo_in_nested_key(tmp_path):
    path = write_yaml(
        tmp_path / "nested.yaml", "model:\n  arch: blip2_opt\n  model_type: tiny\n  vision:\n    widht: 32\n"
    )
    with pytest.raises(ConfigError) as info:
        Config(path)
    message = str(info.value)
    assert str(path) in message
    assert "model.vision.widht" in message
    assert "model.vision.width" in message


def test_typo_in_options(opt_project):
    with pytest.raises(ConfigError) as info:
        Config(opt_project, ["model.max_txt_lne=3"])
    message = str(info.value)
    assert "--options" in message
    assert "model.max_txt_lne" in message and "max_txt_len" in message.replace("max_txt_lne", "")


def test_unknown_top_level_section(tmp_path):
    path = write_yaml(tmp_path / "top.yaml", "model:\n  arch: blip2_opt\n  model_type: tiny\nrunn:\n  x: 1\n")
    with pytest.raises(ConfigError) as info:
        Config(path)
    assert "runn" in str(info.value) and "run" in str(info.value).replace("runn", "")


def test_unknown_top_level_section_in_options(opt_project):
    with pytest.raises(ConfigError, match="--options"):
        Config(opt_project, ["modle.arch=blip2_opt"])


def test_unknown_arch(tmp_path):
    path = write_yaml(tmp_path / "arch.yaml", "model:\n  arch: blip2_optt\n  model_type: tiny\n")
    with pytest.raises(KeyError) as info:
        Config(path)
    assert "did you mean 'blip2_opt'" in str(info.value)


def test_unknown_model_type(tmp_path):
    path = write_yaml(tmp_path / "type.yaml", "model:\n  arch: blip2_opt\n  model_type: pretrain_opt9b\n")
    with pytest.raises(KeyError) as info:
        Config(path)
    message = str(info.value)
    for model_type in registry.get_model_class("blip2_opt").model_types():
        assert model_type in message


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        Config(tmp_path / "nope.yaml")


# ----- (d) required keys -------------------------------------------------------------------------------------
def test_missing_arch(tmp_path):
    path = write_yaml(tmp_path / "noarch.yaml", "model:\n  model_type: tiny\n")
    with pytest.raises(ConfigError, match="model.arch"):
        Config(path)


def test_missing_model_section(tmp_path):
    path = write_yaml(tmp_path / "nomodel.yaml", "run:\n  job_id: captioning\n")
    with pytest.raises(ConfigError, match="model"):
        Config(path)


def test_missing_model_type(tmp_path):
    path = write_yaml(tmp_path / "notype.yaml", "model:\n  arch: blip2_opt\n")
    with pytest.raises(ConfigError, match="model.model_type"):
        Config(path)


# ----- (e) every shipped model YAML validates against its schema ---------------------------------------------
def test_shipped_yamls_found():
    archs = {p.parent.name for p in SHIPPED_MODEL_YAMLS}
    assert {"blip2_opt", "blip2_t5_instruct", "blip2_vicuna_instruct"} <= archs
    assert len(SHIPPED_MODEL_YAMLS) >= 9


@pytest.mark.parametrize("path", SHIPPED_MODEL_YAMLS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_model_yaml_validates(path):
    cfg = OmegaConf.load(path)
    arch = cfg.model.arch
    model_cls = registry.get_model_class(arch)
    parsed = model_cls.parse_config(cfg.model, source=str(path))
    assert parsed.arch == arch == path.parent.name
    assert parsed.model_type == path.stem
    # the YAML is reachable through its model type, and Config loads it too
    assert model_cls.default_config_path(parsed.model_type).resolve() == path.resolve()


@pytest.mark.parametrize("path", SHIPPED_MODEL_YAMLS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_model_yaml_through_config(path, tmp_path):
    project = write_yaml(tmp_path / "p.yaml", f"model:\n  arch: {path.parent.name}\n  model_type: {path.stem}\n")
    cfg = Config(project)
    assert cfg.model_cfg.model_type == path.stem
