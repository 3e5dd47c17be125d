"""Bad input reaches the user as one line and exit status 2, never as a traceback: every error class the library
raises for bad input derives from `UserError` (which the entry points catch), and each case a new user met runs
here through the real command."""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import shutil
import subprocess
from pathlib import Path

import pytest

import lavis_ib
from lavis_ib.common.errors import UserError
from lavis_ib.datasets.records import manifest_path, write_shards
from tests.runners.train_fixtures import ROOT, build_small_world, environment, launch, write_train_config

NOT_USER_ERRORS = {
    "lavis_ib.runners.runner_iter.TrainingDiverged": "a run that failed (exit 1, with the last good checkpoint)",
    "lavis_ib.metrics.undefined.UndefinedMetricError": "caught by the tasks: the metric is reported as null",
    "lavis_ib.common.remote.IncompleteRead": "one failed try of a remote read: tried again, then a RemoteReadError",
    "lavis_ib.common.remote.PipeCommandError": "one failed try of a pipe: read: tried again, then a RemoteReadError",
}
"""Error classes of the library that are not about bad input, each with why."""


def library_error_classes() -> dict[str, type]:
    """Every exception class defined in a lavis_ib module, by qualified name (each module imported)."""
    found = {}
    for module_info in pkgutil.walk_packages(lavis_ib.__path__, "lavis_ib."):
        if module_info.name.endswith("__main__"):
            continue
        module = importlib.import_module(module_info.name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, BaseException) and obj.__module__ == module.__name__:
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return found


def test_every_library_error_class_is_a_user_error_or_says_why_not():
    classes = library_error_classes()
    assert len(classes) >= 15  # the walk found the library's errors (ConfigError, FileFormatError, ...)
    unlisted = sorted(name for name, cls in classes.items()
                      if not issubclass(cls, UserError) and name not in NOT_USER_ERRORS)
    assert not unlisted, f"not UserError subclasses (derive from UserError or list in NOT_USER_ERRORS): {unlisted}"
    assert set(NOT_USER_ERRORS) <= set(classes)  # no stale entries


def test_a_user_error_keeps_its_builtin_type_and_prints_its_message_unquoted():
    from lavis_ib.common.io import WeightMismatchError
    from lavis_ib.common.media import MediaError

    error = WeightMismatchError("model.safetensors: missing 'a'")
    assert isinstance(error, KeyError) and str(error) == "model.safetensors: missing 'a'"
    assert isinstance(MediaError("x.png: truncated"), OSError)


# ---------------------------------------------------------------------------------------------------------------
# The real commands


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_small_world(tmp_path_factory.mktemp("cache"))


def command(script: str, config: Path, cache: Path, *options: str, extra: tuple[str, ...] = ()):
    args = ["--cfg-path", str(config), *extra, *(["--options", *options] if options else [])]
    return subprocess.run(launch(ROOT / script, 1, *args), capture_output=True, text=True, timeout=300,
                          env=environment(cache), cwd=config.parent)


def eval_config(tmp_path: Path) -> Path:
    path = tmp_path / "eval.yaml"
    path.write_text(json.dumps({
        "model": {"arch": "blip2_vicuna_instruct", "model_type": "tiny"},
        "datasets": {"synthetic_count": {}},
        "run": {"device": "cpu", "num_workers": 0, "batch_size_eval": 4, "output_dir": str(tmp_path / "out")},
    }))
    return path


def one_line_error(done: subprocess.CompletedProcess, mode: str) -> str:
    """The error line of a refused command (exit 2, no traceback)."""
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    (line,) = [line for line in done.stderr.splitlines() if line.startswith(f"{mode}: error: ")]
    return line


@pytest.fixture
def in_process(world, monkeypatch, capsys):
    """`in_process(mode, config, *options, extra=())`: the error line of `train.py` / `evaluate.py`'s function run
    in this process (what the scripts call), for the variants of a case whose script run is tested once."""
    from lavis_ib.cli import run

    monkeypatch.setenv("LAVIS_IB_CACHE", str(world))

    def refused(mode: str, config: Path, *options: str, extra: tuple[str, ...] = ()) -> str:
        with pytest.raises(SystemExit) as stop:
            run(mode, ["--cfg-path", str(config), *extra, *(["--options", *options] if options else [])])
        assert stop.value.code == 2
        lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith(f"{mode}: error: ")]
        assert len(lines) == 1
        return lines[0]

    return refused


def test_an_output_dir_that_is_a_file_names_the_key_and_path(world, tmp_path, in_process):
    occupied = tmp_path / "results"
    occupied.write_text("not a folder")
    expected = f"run.output_dir {occupied} is a file, not a folder"
    train = write_train_config(tmp_path / "train.yaml", occupied)
    assert expected in one_line_error(command("train.py", train, world), "train")
    assert expected in in_process("evaluate", eval_config(tmp_path), f"run.output_dir={occupied}")
    assert occupied.read_text() == "not a folder"


def write_not_a_checkpoint(weights: Path, kind: str) -> Path:
    if kind == "empty":
        weights.write_bytes(b"")
    elif kind == "truncated":
        import torch
        from safetensors.torch import save_file

        save_file({"query_tokens": torch.zeros(1, 32, 64)}, str(weights))
        weights.write_bytes(weights.read_bytes()[:60])
    else:
        weights.write_text("these are my notes, not weights\n")
    return weights


def test_a_model_checkpoint_that_is_not_one_is_one_line(world, tmp_path, in_process):
    config = eval_config(tmp_path)
    empty = write_not_a_checkpoint(tmp_path / "empty.safetensors", "empty")
    done = command("evaluate.py", config, world, f"model.checkpoint={empty}", extra=("--limit", "2"))
    assert str(empty) in one_line_error(done, "evaluate")
    assert not (tmp_path / "out").exists()  # the failed start left no job folder
    for kind in ("truncated", "text"):
        weights = write_not_a_checkpoint(tmp_path / f"{kind}.safetensors", kind)
        assert str(weights) in in_process("evaluate", config, f"model.checkpoint={weights}", extra=("--limit", "2"))


def test_a_tokenizer_folder_without_its_files_is_one_line(world, tmp_path):
    empty = tmp_path / "tokenizer"
    empty.mkdir()
    done = command("evaluate.py", eval_config(tmp_path), world, f"model.llm_tokenizer={empty}", extra=("--limit", "2"))
    line = one_line_error(done, "evaluate")
    assert "model.llm_tokenizer" in line and str(empty) in line


def test_a_wrong_media_root_is_one_line(world, tmp_path):
    config = write_train_config(tmp_path / "train.yaml", tmp_path / "out", datasets=("synthetic_vqa",))
    done = command("train.py", config, world, "datasets.synthetic_vqa.build_info.images.storage=nowhere")
    line = one_line_error(done, "train")
    assert "nowhere" in line and "synthetic_vqa" in line


def test_shards_without_a_manifest_are_one_line(world, tmp_path, in_process):
    records = [json.loads(line) for line in
               (world / "datasets" / "synthetic_vqa" / "train.jsonl").read_text().splitlines()]
    write_shards(records, tmp_path / "shards" / "train", per_shard=20)
    manifest_path(tmp_path / "shards" / "train").unlink()
    config = write_train_config(tmp_path / "train.yaml", tmp_path / "out", datasets=("synthetic_vqa",))
    line = in_process("train", config,
                      f"datasets.synthetic_vqa.build_info.annotations.train.storage={tmp_path / 'shards'}/train-*.tar")
    assert "manifest" in line


def test_a_corrupt_image_under_strict_is_one_line_even_from_a_dataloader_worker(world, tmp_path):
    media = tmp_path / "media"
    shutil.copytree(world / "synthetic", media)
    for image in media.rglob("*.png"):
        image.write_bytes(b"\x89PNG broken")
    config = write_train_config(tmp_path / "train.yaml", tmp_path / "out", datasets=("synthetic_vqa",),
                                num_workers=1)
    done = command("train.py", config, world, f"datasets.synthetic_vqa.build_info.images.storage={media}",
                   "datasets.synthetic_vqa.strict=true")
    line = one_line_error(done, "train")
    assert "synthetic_vqa record" in line and str(media) in line and "DataLoader worker" not in line
