"""`Config` composition: `include:` between project YAMLs, and `model.arch` inferred from `model.model_type`."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import lavis_ib  # noqa: F401  (registers the architectures)
from lavis_ib.common.config import Config
from lavis_ib.common.schema import ConfigError

MODEL = "model:\n  arch: blip2_vicuna_instruct\n  model_type: tiny\n"


def write_yaml(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# ----- include -----------------------------------------------------------------------------------------------
def test_include_one_level(tmp_path):
    write_yaml(tmp_path / "base.yaml", MODEL + "run:\n  job_id: captioning\n  batch_size_eval: 3\n")
    top = write_yaml(tmp_path / "top.yaml", "include: base.yaml\nrun:\n  batch_size_eval: 5\n")
    cfg = Config(top)
    assert cfg.model_cfg.arch == "blip2_vicuna_instruct" and cfg.model_cfg.image_size == 56  # tiny default
    assert cfg.run_cfg.job_id == "captioning"
    assert cfg.run_cfg.batch_size_eval == 5 and cfg.run.batch_size_eval == 5  # the including file wins
    assert cfg.sources == [str(tmp_path / "base.yaml"), str(top)]


def test_include_nested(tmp_path):
    write_yaml(tmp_path / "a.yaml", MODEL + "run:\n  job_id: vqa\n  num_workers: 1\n")
    write_yaml(tmp_path / "b.yaml", "include: a.yaml\nrun:\n  num_workers: 2\n  seed: 7\n")
    top = write_yaml(tmp_path / "c.yaml", "include: [b.yaml]\nrun:\n  seed: 8\n")
    cfg = Config(top)
    assert (cfg.run.job_id, cfg.run.num_workers, cfg.run.seed) == ("vqa", 2, 8)


def test_include_list_order_and_precedence(tmp_path):
    write_yaml(tmp_path / "first.yaml", MODEL + "run:\n  job_id: first\n  seed: 1\n  num_workers: 1\n")
    write_yaml(tmp_path / "second.yaml", "model:\n  max_txt_len: 77\nrun:\n  job_id: second\n  seed: 2\n")
    top = write_yaml(tmp_path / "top.yaml", "include:\n  - first.yaml\n  - second.yaml\nrun:\n  seed: 3\n")
    cfg = Config(top)
    assert cfg.run.job_id == "second"  # later include wins over earlier
    assert cfg.run.seed == 3  # own content wins over all includes
    assert cfg.run.num_workers == 1  # untouched keys of earlier includes survive
    assert cfg.model_cfg.max_txt_len == 77
    # --options still wins over everything
    assert Config(top, ["run.seed=4"]).run.seed == 4


def test_include_relative_to_the_including_file(tmp_path, monkeypatch):
    write_yaml(tmp_path / "shared" / "model.yaml", MODEL)
    write_yaml(tmp_path / "eval" / "common" / "run.yaml", "include: ../../shared/model.yaml\nrun:\n  job_id: gqa\n")
    write_yaml(tmp_path / "eval" / "gqa" / "vicuna.yaml", "include: ../common/run.yaml\n")
    monkeypatch.chdir(tmp_path)  # a relative cfg path: includes resolve against each file's folder, not the cwd
    cfg = Config("eval/gqa/vicuna.yaml")
    assert cfg.run.job_id == "gqa" and cfg.model_cfg.arch == "blip2_vicuna_instruct"
    assert cfg.sources == ["shared/model.yaml", "eval/common/run.yaml", "eval/gqa/vicuna.yaml"]


def test_include_absolute_path(tmp_path):
    base = write_yaml(tmp_path / "elsewhere" / "base.yaml", MODEL)
    top = write_yaml(tmp_path / "top.yaml", f"include: {base}\n")
    assert Config(top).model_cfg.model_type == "tiny"


def test_include_missing_file_names_path_and_includer(tmp_path):
    top = write_yaml(tmp_path / "top.yaml", MODEL + "include: [nope.yaml]\n")
    with pytest.raises(FileNotFoundError) as info:
        Config(top)
    message = str(info.value)
    assert str(tmp_path / "nope.yaml") in message and f"included by {top}" in message


def test_include_cycle(tmp_path):
    a = write_yaml(tmp_path / "a.yaml", MODEL + "include: b.yaml\n")
    write_yaml(tmp_path / "b.yaml", "include: sub/../a.yaml\n")
    with pytest.raises(ConfigError, match="include cycle") as info:
        Config(a)
    message = str(info.value)
    assert f"{a} -> {tmp_path / 'b.yaml'} -> {a}" in message


def test_include_self_cycle(tmp_path):
    a = write_yaml(tmp_path / "a.yaml", MODEL + "include: a.yaml\n")
    with pytest.raises(ConfigError, match="include cycle"):
        Config(a)


def test_include_non_string_entry(tmp_path):
    top = write_yaml(tmp_path / "top.yaml", MODEL + "include: [base.yaml, 3]\n")
    write_yaml(tmp_path / "base.yaml", "run:\n  job_id: x\n")
    with pytest.raises(ConfigError) as info:
        Config(top)
    assert str(top) in str(info.value) and "'include[1]'" in str(info.value)
    mapping = write_yaml(tmp_path / "mapping.yaml", MODEL + "include: {path: base.yaml}\n")
    with pytest.raises(ConfigError, match="'include' must be a path"):
        Config(mapping)


def test_include_not_allowed_in_options(tmp_path):
    top = write_yaml(tmp_path / "top.yaml", MODEL)
    with pytest.raises(ConfigError, match="--options"):
        Config(top, ["include=other.yaml"])


@pytest.mark.parametrize("section, text, key", [
    ("model", "model:\n  max_txt_lne: 3\n", "model.max_txt_lne"),
    ("run", "run:\n  batch_size_trian: 3\n", "run.batch_size_trian"),
    ("datasets", "datasets:\n  vqav2:\n    sample_ratoi: 2.0\n", "datasets.vqav2.sample_ratoi"),
    ("top", "runn:\n  job_id: x\n", "runn"),
])
def test_error_in_included_file_names_that_file(tmp_path, section, text, key):
    included = write_yaml(tmp_path / "inc" / "bad.yaml", text)
    top = write_yaml(tmp_path / "top.yaml", MODEL + "include: inc/bad.yaml\nrun:\n  job_id: x\n")
    with pytest.raises(ConfigError) as info:
        Config(top)
    message = str(info.value)
    assert message.startswith(f"{included}: unknown key '{key}'")


def test_bad_value_in_included_file_names_that_file(tmp_path):
    included = write_yaml(tmp_path / "base.yaml", MODEL + "  max_txt_len: long\n")
    top = write_yaml(tmp_path / "top.yaml", "include: base.yaml\nmodel:\n  max_txt_len: 5\n")
    with pytest.raises(ConfigError, match=f"^{included}: 'model.max_txt_len' must be int"):
        Config(top)


def test_include_absent_from_merged_config(tmp_path):
    write_yaml(tmp_path / "base.yaml", MODEL + "datasets:\n  vqav2:\n    sample_ratio: 2.0\n")
    top = write_yaml(tmp_path / "top.yaml", "include: base.yaml\nrun:\n  job_id: vqa\n")
    cfg = Config(top)
    assert "include" not in cfg.to_dict()
    assert set(cfg.to_dict()) <= {"model", "datasets", "run", "preprocess"}
    assert cfg.datasets_cfg.vqav2.sample_ratio == 2.0 and cfg.datasets_cfg.vqav2.instruction.train == "vqa"


def test_included_datasets_are_merged(tmp_path):
    write_yaml(tmp_path / "suite.yaml", MODEL + "datasets:\n  vqav2:\n    sample_ratio: 2.0\n  gqa: {}\n")
    top = write_yaml(tmp_path / "top.yaml", "include: suite.yaml\ndatasets:\n  vqav2:\n    sample_ratio: 3.0\n")
    cfg = Config(top)
    assert set(cfg.datasets_cfg) == {"vqav2", "gqa"}
    assert cfg.datasets_cfg.vqav2.sample_ratio == 3.0


def test_interpolation_across_included_files(tmp_path):
    write_yaml(tmp_path / "base.yaml", MODEL + "run:\n  job_id: x\n  batch_size_train: 6\n")
    top = write_yaml(tmp_path / "top.yaml", "include: base.yaml\nrun:\n  batch_size_eval: ${run.batch_size_train}\n")
    assert Config(top).run.batch_size_eval == 6


def test_missing_model_section_across_includes(tmp_path):
    write_yaml(tmp_path / "base.yaml", "run:\n  job_id: x\n")
    top = write_yaml(tmp_path / "top.yaml", "include: base.yaml\n")
    with pytest.raises(ConfigError, match="missing required section 'model'"):
        Config(top)


# ----- model.arch from model.model_type ----------------------------------------------------------------------
@pytest.mark.parametrize("model_type, arch", [
    ("vicuna7b", "blip2_vicuna_instruct"),
    ("flant5xl", "blip2_t5_instruct"),
    ("pretrain_opt2.7b", "blip2_opt"),
])
def test_arch_inferred_from_model_type(tmp_path, model_type, arch):
    path = write_yaml(tmp_path / "p.yaml", f"model:\n  model_type: {model_type}\n")
    cfg = Config(path)
    assert cfg.model_cfg.arch == arch and cfg.to_dict()["model"]["arch"] == arch
    assert cfg.model_cfg.model_type == model_type


def test_arch_inferred_through_include(tmp_path):
    write_yaml(tmp_path / "suite.yaml", "run:\n  job_id: vqa\n")
    top = write_yaml(tmp_path / "suite_vicuna7b.yaml", "include: suite.yaml\nmodel: {model_type: vicuna7b}\n")
    assert Config(top).model_cfg.arch == "blip2_vicuna_instruct"


def test_ambiguous_model_type(tmp_path):
    path = write_yaml(tmp_path / "p.yaml", "model:\n  model_type: tiny\n")
    with pytest.raises(ConfigError) as info:
        Config(path)
    message = str(info.value)
    assert str(path) in message and "ambiguous" in message and "model.arch" in message
    for arch in ("blip2_opt", "blip2_t5_instruct", "blip2_vicuna_instruct"):
        assert arch in message


def test_unknown_model_type_without_arch(tmp_path):
    path = write_yaml(tmp_path / "p.yaml", "model:\n  model_type: vicuna7\n")
    with pytest.raises(ConfigError) as info:
        Config(path)
    message = str(info.value)
    assert str(path) in message and "'vicuna7'" in message
    assert "did you mean 'vicuna7b' (model.arch blip2_vicuna_instruct)" in message
    assert "blip2_t5_instruct: flant5xl, flant5xxl, tiny" in message  # known model types per arch


def test_options_model_type_switches_arch(tmp_path, caplog):
    path = write_yaml(tmp_path / "gqa.yaml", "model:\n  arch: blip2_vicuna_instruct\n  model_type: vicuna7b\n"
                                             "run:\n  job_id: vqa\n")
    with caplog.at_level(logging.INFO, logger="lavis_ib.common.config"):
        cfg = Config(path, ["model.model_type=flant5xl"])
    assert cfg.model_cfg.arch == "blip2_t5_instruct" and cfg.model_cfg.model_type == "flant5xl"
    assert cfg.to_dict()["model"]["arch"] == "blip2_t5_instruct"
    assert "model.model_type=flant5xl selects model.arch=blip2_t5_instruct" in caplog.text


def test_options_model_type_keeps_arch_that_has_it(tmp_path):
    path = write_yaml(tmp_path / "p.yaml", "model:\n  arch: blip2_t5_instruct\n  model_type: flant5xl\n")
    cfg = Config(path, ["model.model_type=tiny"])  # every arch has tiny: the files' arch is kept
    assert cfg.model_cfg.arch == "blip2_t5_instruct" and cfg.model_cfg.model_type == "tiny"
    cfg = Config(path, ["model.model_type=flant5xxl"])
    assert cfg.model_cfg.arch == "blip2_t5_instruct"


def test_explicit_arch_kept(tmp_path):
    path = write_yaml(tmp_path / "p.yaml", "model:\n  arch: blip2_opt\n  model_type: tiny\n")
    assert Config(path).model_cfg.arch == "blip2_opt"
    no_arch = write_yaml(tmp_path / "q.yaml", "model:\n  model_type: tiny\n")
    assert Config(no_arch, ["model.arch=blip2_t5_instruct"]).model_cfg.arch == "blip2_t5_instruct"


def test_explicit_wrong_arch_in_file_hints_the_right_one(tmp_path):
    path = write_yaml(tmp_path / "p.yaml", "model:\n  arch: blip2_vicuna_instruct\n  model_type: flant5xl\n")
    with pytest.raises(KeyError) as info:
        Config(path)
    message = info.value.args[0]
    assert str(path) in message
    for model_type in ("tiny", "vicuna13b", "vicuna7b"):  # today's error: the arch's known types
        assert model_type in message
    assert "model_type 'flant5xl' belongs to arch 'blip2_t5_instruct'" in message


def test_explicit_wrong_arch_in_options_is_not_switched(tmp_path):
    path = write_yaml(tmp_path / "p.yaml", "model:\n  model_type: vicuna7b\n")
    with pytest.raises(KeyError) as info:
        Config(path, ["model.arch=blip2_opt"])
    message = info.value.args[0]
    assert "model.arch from --options" in message
    assert "belongs to arch 'blip2_vicuna_instruct'" in message
    with pytest.raises(KeyError, match="belongs to arch 'blip2_t5_instruct'"):
        Config(path, ["model.arch=blip2_opt", "model.model_type=flant5xl"])


def test_explicit_arch_unknown_type_hints_other_arch(tmp_path):
    path = write_yaml(tmp_path / "p.yaml", "model:\n  arch: blip2_opt\n  model_type: flant5x\n")
    with pytest.raises(KeyError, match="did you mean 'flant5xl' of arch 'blip2_t5_instruct'"):
        Config(path)
