"""Tests for `lavis_ib.common.registry` and `lavis_ib.common.paths.cache_root`."""

from __future__ import annotations

from pathlib import Path

import pytest

import lavis_ib  # noqa: F401  (registers the architectures)
from lavis_ib.common import paths
from lavis_ib.common.paths import cache_root
from lavis_ib.common.registry import Registry, registry


def test_register_get_list():
    reg = Registry("model")

    @reg.register("alpha_model")
    class Alpha:
        pass

    @reg.register("beta_model")
    class Beta:
        pass

    assert reg.get("alpha_model") is Alpha
    assert reg.get("beta_model") is Beta
    assert reg.list() == ["alpha_model", "beta_model"]
    assert reg.list("alpha*") == ["alpha_model"]
    assert "alpha_model" in reg and "gamma" not in reg
    assert len(reg) == 2
    assert list(reg) == ["alpha_model", "beta_model"]


def test_unknown_name_lists_known_and_suggests_close_match():
    reg = Registry("model")
    reg.register("alpha_model")(object)
    reg.register("beta_model")(object)
    with pytest.raises(KeyError) as info:
        reg.get("alpha_modle")
    message = str(info.value)
    assert "alpha_modle" in message
    assert "alpha_model" in message and "beta_model" in message
    assert "did you mean 'alpha_model'" in message


def test_unknown_name_without_close_match_has_no_hint():
    reg = Registry("model")
    reg.register("alpha_model")(object)
    with pytest.raises(KeyError) as info:
        reg.get("zzz")
    assert "did you mean" not in str(info.value)
    assert "alpha_model" in str(info.value)


def test_duplicate_registration_raises():
    reg = Registry("model")
    reg.register("alpha_model")(object)
    with pytest.raises(KeyError, match="already registered"):
        reg.register("alpha_model")(int)
    assert reg.get("alpha_model") is object


def test_global_registry_suggests_architecture():
    with pytest.raises(KeyError) as info:
        registry.get_model_class("blip2_vicuna_instrukt")
    assert "did you mean 'blip2_vicuna_instruct'" in str(info.value)


def test_global_registry_lists_architectures():
    models = registry.list_models()
    for arch in ("blip2_opt", "blip2_t5_instruct", "blip2_vicuna_instruct"):
        assert arch in models
    assert registry.get_model_class("blip2_opt").__name__ == "Blip2OPT"


def test_unknown_registry_kind_and_attribute():
    with pytest.raises(KeyError, match="did you mean 'model'"):
        registry["modle"]
    with pytest.raises(AttributeError):
        registry.get_nonsense_class


def test_cache_root_honours_env(monkeypatch, tmp_path):
    monkeypatch.setenv("LAVIS_IB_CACHE", str(tmp_path / "cache"))
    assert cache_root() == tmp_path / "cache"


def test_cache_root_default_under_user_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("LAVIS_IB_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    root = cache_root()
    assert root == tmp_path / ".cache" / "lavis_ib"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "lavis_ib"


def test_cache_root_never_inside_package(monkeypatch):
    monkeypatch.delenv("LAVIS_IB_CACHE", raising=False)
    root = cache_root().resolve()
    package = Path(paths.library_root).resolve()
    assert package not in root.parents and root != package


def test_an_unknown_model_type_names_the_architecture_not_the_class(tmp_path):
    """`evaluate.py` with `model_type: vicuna7x`: the message names `blip2_vicuna_instruct`, not
    'Blip2VicunaInstructs'."""
    import subprocess
    import sys

    config = tmp_path / "model.yaml"
    config.write_text("model:\n  arch: blip2_vicuna_instruct\n  model_type: vicuna7x\n")
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, str(root / "evaluate.py"), "--cfg-path", str(config)], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"evaluate: error: {config}: unknown model_type 'vicuna7x' of blip2_vicuna_instruct; known model_types of "
        "blip2_vicuna_instruct: tiny, vicuna13b, vicuna7b; did you mean 'vicuna7b'? (model.arch is "
        "'blip2_vicuna_instruct')")
    assert registry["model"].name_of(registry.get_model_class("blip2_opt")) == "blip2_opt"
