"""Issue 10 case 15: `load_model` / `load_model_and_preprocess` take config overrides from Python (`options={...}`,
nested or dotted, and keyword arguments), validated like `--options`."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from lavis_ib import load_model, load_model_and_preprocess
from lavis_ib.common.registry import registry
from lavis_ib.common.schema import ConfigError
from lavis_ib.models.base import nest_options

NAME = "blip2_vicuna_instruct"


def test_options_and_keywords_override_the_default_config():
    model = load_model(NAME, "tiny", options={"max_txt_len": 16, "qformer": {"num_layers": 1}, "vision.depth": 1},
                       prompt="Q: {} A:", max_txt_len=24)
    assert model.cfg.max_txt_len == 24  # the keyword wins over options
    assert model.cfg.prompt == "Q: {} A:"
    assert model.cfg.qformer.num_layers == 1 and model.cfg.qformer.hidden_size == 64  # nested: the rest kept
    assert model.cfg.vision.depth == 1 and len(model.visual_encoder.blocks) == 1
    assert load_model(NAME, "tiny").cfg.max_txt_len == 64  # the default YAML is untouched


def test_unknown_key_names_the_closest_key():
    with pytest.raises(ConfigError, match=r"^options: unknown key 'model.max_txt_lne'; did you mean 'model.max_txt_len'"):
        load_model(NAME, "tiny", options={"max_txt_lne": 64})
    with pytest.raises(ConfigError, match=r"unknown key 'model.qformer.num_layer'; did you mean 'model.qformer.num_layers'"):
        load_model(NAME, "tiny", qformer={"num_layer": 1})


def test_bad_value_type_is_an_error():
    with pytest.raises(ConfigError, match=r"^options: 'model.max_txt_len' must be int, got 'long'"):
        load_model(NAME, "tiny", max_txt_len="long")
    with pytest.raises(ConfigError, match=r"'model.llm_precision' must be one of"):
        load_model(NAME, "tiny", options={"llm_precision": "fp17"})


def test_selector_keys_are_arguments_not_options():
    with pytest.raises(ConfigError, match=r"'model.model_type' selects the config file .* load_model's model_type"):
        load_model(NAME, "tiny", options={"model_type": "vicuna7b"})


def test_nest_options_merges_dotted_and_nested_keys():
    assert nest_options({"a.b": 1, "a": {"c": 2}, "d": 3}) == {"a": {"b": 1, "c": 2}, "d": 3}
    with pytest.raises(ConfigError, match="both a plain value and nested keys"):
        nest_options({"a.b": 1, "a": 5})


def test_processors_follow_an_overridden_image_size():
    model, vis, _ = load_model_and_preprocess(NAME, "tiny", is_eval=True, image_size=28)
    assert model.cfg.image_size == 28
    from PIL import Image

    assert tuple(vis["eval"](Image.new("RGB", (64, 48))).shape) == (3, 28, 28)


def test_load_model_and_preprocess_reads_the_default_yaml_once(monkeypatch):
    """The model section and the processors come from one read of the model type's default YAML."""
    read = []
    load = OmegaConf.load
    monkeypatch.setattr(OmegaConf, "load",
                        lambda path, *a, **k: read.append(Path(path).resolve()) or load(path, *a, **k))
    model, vis, _ = load_model_and_preprocess(NAME, "tiny", is_eval=True, image_size=28)
    assert model.cfg.image_size == 28 and set(vis) == {"train", "eval"}
    assert read.count(registry.get_model_class(NAME).default_config_path("tiny").resolve()) == 1
