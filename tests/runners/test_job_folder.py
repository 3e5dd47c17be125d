"""A launch in a job folder that already holds checkpoints never writes over them: `run.resume` auto (the default)
continues, `restart` moves the old run aside, `never` refuses; resuming from an older checkpoint sets the later
ones aside; damaged checkpoints and changed schedules are one-line errors that say how to go on."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from lavis_ib.cli import load_runner, run
from lavis_ib.runners.checkpoints import CheckpointStore
from tests.runners.train_fixtures import environment, launch, write_train_config


def config(tmp_path: Path, **run) -> Path:
    settings = {"max_iters": 2, "save_freq": 1, "keep_last": 0, "job_id": "job", **run}
    return write_train_config(tmp_path / "train.yaml", tmp_path / "out", datasets=("synthetic_vqa",), **settings)


def train_in_process(path: Path, *options: str) -> dict:
    return load_runner("train", ["--cfg-path", str(path), *(["--options", *options] if options else [])]).train()


def train_command(path: Path, cache: Path, *options: str) -> subprocess.CompletedProcess:
    """`python train.py --cfg-path path --options ...`, the command a user runs."""
    command = launch(Path(__file__).resolve().parents[2] / "train.py", 1, "--cfg-path", str(path),
                     *(["--options", *options] if options else []))
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=environment(cache))


def fingerprints(folder: Path) -> dict[str, str]:
    """sha256 of every file under `folder`, by relative path."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_same_command_again_continues_the_job_and_rewrites_nothing(cache, tmp_path):
    """A config without run.resume, launched twice with the same job_id (a requeue): the default `auto` resumes."""
    path = config(tmp_path)
    first = train_command(path, cache)
    assert first.returncode == 0, first.stderr[-3000:]
    checkpoints = tmp_path / "out" / "job" / "checkpoints"
    before = fingerprints(checkpoints)
    again = train_command(path, cache)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"resumed from {checkpoints / 'step_2'} at step 2" in again.stderr
    assert "nothing to train" in again.stderr and "run.resume_schedule=extend" in again.stderr
    assert fingerprints(checkpoints) == before  # step_1, step_2 and latest untouched, byte for byte


def test_resume_never_refuses_a_folder_with_checkpoints_before_building_anything(cache, tmp_path):
    path = config(tmp_path)
    train_in_process(path)
    checkpoints = tmp_path / "out" / "job" / "checkpoints"
    before = fingerprints(tmp_path / "out" / "job")
    refused = train_command(path, cache, "run.resume=never")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    message = refused.stderr.strip().splitlines()[-1]
    assert message.startswith(f"train: error: {path}: {checkpoints} already holds 2 checkpoint(s), the latest at "
                              "step 2")
    assert "run.resume=auto" in message and "run.resume=restart" in message and "nothing is deleted" in message
    assert "weights are random" not in refused.stderr  # refused before the model was built
    assert fingerprints(tmp_path / "out" / "job") == before


def test_restart_moves_the_earlier_run_aside_and_trains_from_step_0(cache, tmp_path):
    path = config(tmp_path)
    train_in_process(path)
    job = tmp_path / "out" / "job"
    before = fingerprints(job)
    summary = train_in_process(path, "run.resume=restart", "run.max_iters=3")
    assert summary["step"] == 3
    (aside,) = (job / "set_aside").iterdir()
    assert fingerprints(aside) == before  # checkpoints and log.txt, byte for byte
    assert CheckpointStore(job / "checkpoints").steps() == [1, 2, 3]
    log_steps = [json.loads(line).get("step") for line in (job / "log.txt").read_text().splitlines()]
    assert [s for s in log_steps if s is not None][:1] == [1]  # a fresh log, starting at step 1


def test_resuming_an_older_checkpoint_sets_the_later_ones_aside(cache, tmp_path):
    path = config(tmp_path, max_iters=4)
    train_in_process(path)
    checkpoints = tmp_path / "out" / "job" / "checkpoints"
    later = {name: fingerprints(checkpoints / name) for name in ("step_3", "step_4")}
    summary = train_in_process(path, f"run.resume_ckpt_path={checkpoints / 'step_2'}")
    assert summary["step"] == 4
    (aside,) = (tmp_path / "out" / "job" / "set_aside").iterdir()
    assert {name: fingerprints(aside / "checkpoints" / name) for name in later} == later


def test_a_truncated_latest_checkpoint_names_the_earlier_one_and_how_to_continue(cache, tmp_path):
    path = config(tmp_path, max_iters=3)
    train_in_process(path)
    checkpoints = tmp_path / "out" / "job" / "checkpoints"
    weights = checkpoints / "step_3" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    extended = ("run.max_iters=4", "run.resume_schedule=extend")
    failed = train_command(path, cache, *extended)
    assert failed.returncode == 2 and "Traceback" not in failed.stderr
    message = failed.stderr.strip().splitlines()[-1]
    assert f"cannot resume from {checkpoints / 'step_3'}: {weights}: not a readable safetensors file" in message
    hint = f"run.resume_ckpt_path={checkpoints / 'step_2'}"
    assert hint in message
    summary = train_in_process(path, *extended, hint)  # the way on the message gives
    assert summary["step"] == 4
    (aside,) = (tmp_path / "out" / "job" / "set_aside").iterdir()
    assert (aside / "checkpoints" / "step_3" / "model.safetensors").stat().st_size == 100  # kept, not deleted


def test_a_changed_schedule_is_one_line_and_extend_trains_longer(cache, tmp_path):
    path = config(tmp_path, max_iters=2)
    train_in_process(path)
    refused = train_command(path, cache, "run.max_iters=4")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    message = refused.stderr.strip().splitlines()[-1]
    assert "max_iters (run.max_iters): checkpoint 2, this run 4" in message
    assert "run.resume_schedule=extend" in message and "run.resume=restart" in message
    summary = train_in_process(path, "run.max_iters=4", "run.resume_schedule=extend")
    assert summary["step"] == 4
    assert CheckpointStore(tmp_path / "out" / "job" / "checkpoints").steps() == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="init_lr"):  # extend lets max_iters change, nothing else
        train_in_process(path, "run.max_iters=6", "run.resume_schedule=extend", "run.init_lr=0.5")


def test_extend_must_go_beyond_the_checkpoint(cache, tmp_path):
    path = config(tmp_path, max_iters=2)
    train_in_process(path)
    with pytest.raises(ValueError, match=r"run.max_iters=2 must exceed the step of .*step_2 \(2\)"):
        train_in_process(path, "run.resume_schedule=extend")


@pytest.mark.parametrize("option, expected", [
    ("run.lr_sched=cosine", "run.lr_sched: unknown lr_scheduler 'cosine'"),
    ("run.best_metric=synthetic_vqa/tset", "run.best_metric 'synthetic_vqa/tset' is not a validated split"),
    ("datasets.synthetic_vqa.sample_ratio=-1", "datasets.synthetic_vqa: dataset config: sample_ratio must be ≥ 0"),
])
def test_a_bad_value_is_refused_before_anything_is_built_or_written(cache, tmp_path, option, expected, capsys):
    path = config(tmp_path, valid_splits=["val"])
    if option.startswith("run.lr_sched"):  # the command itself once; the function it runs for the others
        done = train_command(path, cache, option)
        assert done.returncode == 2, done.stderr[-3000:]
        stderr = done.stderr
    else:
        with pytest.raises(SystemExit) as stop:
            run("train", ["--cfg-path", str(path), "--options", option])
        assert stop.value.code == 2
        stderr = capsys.readouterr().err
    assert "Traceback" not in stderr
    (line,) = [line for line in stderr.splitlines() if line.startswith("train: error: ")]
    assert expected in line and str(path) in line
    assert "weights are random" not in stderr  # no model was built
    assert not (tmp_path / "out").exists()  # and no job folder left behind


def test_a_start_that_fails_after_the_checks_leaves_no_job_folder(cache, tmp_path):
    broken = tmp_path / "weights.safetensors"
    broken.write_text("not weights")
    with pytest.raises(ValueError, match="weights.safetensors"):
        train_in_process(config(tmp_path), f"model.checkpoint={broken}")
    assert not (tmp_path / "out" / "job").exists()


def test_resuming_with_another_config_names_what_changed(cache, tmp_path, caplog):
    """A job_id reused with another dataset ratio resumes (auto) but says which keys differ from its checkpoint's."""
    path = config(tmp_path, max_iters=2)
    train_in_process(path)
    with caplog.at_level("WARNING", logger="lavis_ib.runners.runner_iter"):
        train_in_process(path, "datasets.synthetic_vqa.sample_ratio=2.0", "run.resume=auto")
    (warning,) = [r.getMessage() for r in caplog.records if "differs from the one it was trained with" in r.getMessage()]
    assert "datasets.synthetic_vqa.sample_ratio: None → 2.0" in warning and "run.resume" not in warning  # unset → 2
