"""The training loop in one process (`train.py`'s code path, in-process): learning, gradient accumulation, fp16 with a
grad scaler, clipping, preemption signals, divergence, corrupt images, TensorBoard, the choice of the best checkpoint
and the config errors."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file
from torch.optim.optimizer import register_optimizer_step_pre_hook

from lavis_ib.cli import load_runner, run
from lavis_ib.runners.checkpoints import CheckpointStore
from lavis_ib.runners.runner_iter import Progress, RunContext
from lavis_ib.runners.train_log import TrainLog
from tests.runners.train_fixtures import train_losses, write_train_config

NO_DROPOUT = {"qformer": {"hidden_dropout": 0.0, "attention_dropout": 0.0}}


def runner_for(tmp_path: Path, *options: str, name: str = "train.yaml", **config):
    path = write_train_config(tmp_path / name, tmp_path / "out", **config)
    return load_runner("train", ["--cfg-path", str(path), *(["--options", *options] if options else [])])


def weights(job_dir: Path, step: int) -> dict:
    return load_file(job_dir / "checkpoints" / f"step_{step}" / "model.safetensors")


def test_loss_decreases_on_a_small_task(cache, tmp_path):
    """The random tiny LLM is frozen, so only the soft prompt learns: a small but steady drop (seeded run)."""
    runner = runner_for(tmp_path, "run.job_id=learn", datasets=("synthetic_vqa",), max_iters=24, batch_size_train=4,
                        init_lr=1e-2, warmup_steps=0, save_freq=0, keep_last=1)
    summary = runner.train()
    losses = train_losses(Path(summary["job_dir"]))
    first, last = [losses[s] for s in range(1, 5)], [losses[s] for s in range(17, 25)]
    assert sum(last) / len(last) < sum(first) / len(first) - 0.05, losses
    assert summary["step"] == 24 and (Path(summary["job_dir"]) / "checkpoints" / "step_24").is_dir()


def test_accumulating_micro_batches_equals_one_larger_batch(cache, tmp_path):
    """Micro-batches are weighted by their target tokens, so 2 × 2 accumulated is a batch of 4 (to rounding)."""
    common = dict(datasets=("synthetic_vqa", "synthetic_caption"), max_iters=2, save_freq=2, model=NO_DROPOUT)
    big = runner_for(tmp_path, "run.job_id=big", name="big.yaml", batch_size_train=4, **common).train()
    acc = runner_for(tmp_path, "run.job_id=acc", name="acc.yaml", batch_size_train=2, accum_grad_iters=2,
                     **common).train()
    a, b = weights(Path(big["job_dir"]), 2), weights(Path(acc["job_dir"]), 2)
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-6
    losses_big, losses_acc = train_losses(Path(big["job_dir"])), train_losses(Path(acc["job_dir"]))
    assert losses_big == pytest.approx(losses_acc, rel=1e-6)


def test_fp16_runs_with_a_grad_scaler_and_saves_its_state(cache, tmp_path):
    summary = runner_for(tmp_path, "run.job_id=fp16", "run.precision=fp16", max_iters=2, save_freq=2).train()
    _, state = CheckpointStore(Path(summary["job_dir"]) / "checkpoints").load()
    assert state["scaler"]["scale"] > 1.0  # GradScaler's state, restored on resume
    losses = train_losses(Path(summary["job_dir"]))
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values())


def test_gradient_clipping_bounds_the_norm_the_optimizer_sees(cache, tmp_path):
    seen = []

    def record(optimizer, args, kwargs):
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        seen.append(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])).item())

    hook = register_optimizer_step_pre_hook(record)
    try:
        summary = runner_for(tmp_path, "run.job_id=clip", "run.grad_clip=0.01", max_iters=3, save_freq=0,
                             save_last=False).train()
    finally:
        hook.remove()
    logged = [json.loads(line) for line in (Path(summary["job_dir"]) / "log.txt").read_text().splitlines()]
    norms = [r["train_grad_norm"] for r in logged if "train_grad_norm" in r]
    assert len(seen) == 3 and all(n <= 0.01 * (1 + 1e-4) for n in seen)
    assert all(n > 0.05 for n in norms)  # the logged norm is the one before clipping


def test_sigterm_checkpoints_the_step_and_exits_then_resume_finishes(cache, tmp_path):
    runner = runner_for(tmp_path, "run.job_id=pre", max_iters=6, save_freq=0)
    runner.step_hooks.append(lambda step, record: os.kill(os.getpid(), signal.SIGTERM) if step == 2 else None)
    stopped = runner.train()
    assert stopped["step"] == 3  # the signal is seen at the start of step 3, which completes
    store = CheckpointStore(Path(stopped["job_dir"]) / "checkpoints")
    assert store.steps() == [3] and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    resumed = runner_for(tmp_path, "run.job_id=pre", "run.resume=auto", max_iters=6, save_freq=0).train()
    assert resumed["step"] == 6 and store.steps() == [3, 6]
    assert sorted(train_losses(Path(stopped["job_dir"]))) == list(range(1, 7))


def test_a_non_finite_loss_stops_naming_the_step_and_samples(cache, tmp_path, capsys):
    path = write_train_config(tmp_path / "nan.yaml", tmp_path / "out", max_iters=5, save_freq=1, init_lr=1e30,
                              warmup_steps=0, job_id="nan")
    with pytest.raises(SystemExit) as stop:
        run("train", ["--cfg-path", str(path)])
    assert stop.value.code == 1
    message = capsys.readouterr().err
    assert "the loss is not finite" in message and "synthetic_" in message and "step 2" in message
    store = CheckpointStore(tmp_path / "out" / "nan" / "checkpoints")
    assert store.steps() == [1] and f"last good checkpoint is {store.latest()}" in message


def test_a_corrupt_image_is_skipped_and_counted_or_fails_when_strict(cache, tmp_path, capsys):
    records = [json.loads(line) for line in (cache / "datasets" / "synthetic_vqa" / "train.jsonl").read_text()
               .splitlines()]
    broken = tmp_path / "broken"
    (broken / "datasets" / "synthetic_vqa").mkdir(parents=True)
    os.symlink(cache / "synthetic", broken / "synthetic")
    bad = broken / "bad.png"
    bad.write_bytes(b"not a png")
    records = [{**r, "image": str(bad)} if i % 2 == 0 else r for i, r in enumerate(records)]
    (broken / "datasets" / "synthetic_vqa" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    os.environ["LAVIS_IB_CACHE"] = str(broken)
    summary = runner_for(tmp_path, "run.job_id=skip", datasets=("synthetic_vqa",), max_iters=3, save_freq=0,
                         batch_size_train=4).train()
    logged = [json.loads(line) for line in (Path(summary["job_dir"]) / "log.txt").read_text().splitlines()]
    assert logged[-1]["train_skipped"] > 0 and summary["step"] == 3
    path = write_train_config(tmp_path / "strict.yaml", tmp_path / "out", datasets=(), max_iters=3, job_id="strict")
    text = path.read_text().replace("datasets: {}", "datasets:\n  synthetic_vqa: {strict: true}")
    path.write_text(text)
    with pytest.raises(Exception, match="bad.png"):
        load_runner("train", ["--cfg-path", str(path)]).train()


def test_tensorboard_event_files_hold_the_logged_scalars(cache, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    summary = runner_for(tmp_path, "run.job_id=tb", "run.tensorboard=true", max_iters=2, save_freq=0).train()
    events = EventAccumulator(str(Path(summary["job_dir"]) / "tensorboard"))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert {"train/loss", "train/lr", "train/grad_norm", "train/samples_per_s", "train/peak_memory_mb"} <= set(tags)
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2]
    assert events.Scalars("train/loss")[0].value == pytest.approx(train_losses(Path(summary["job_dir"]))[1])


class ScriptedEvaluator:
    """Stands in for the validation evaluator: each call returns the next validation's `{split: agg_metrics}`."""

    def __init__(self, *validations: dict):
        self.validations = list(validations)

    def evaluate_model(self, model, output_root, info, precision, splits=None) -> list[dict]:
        summaries = []
        for key, value in self.validations.pop(0).items():
            dataset, split = key.split("/")
            report = "CIDEr" if dataset == "synthetic_caption" else "exact_match"
            undefined = {report: "preds is empty: expected at least one sample"} if value is None else {}
            summaries.append({"dataset": dataset, "split": split, "report": report, "agg_metrics": value,
                              "metrics": {report: value}, "undefined": undefined})
        return summaries


VQA, CAPTION = "synthetic_vqa/val", "synthetic_caption/val"
# exact_match (0–100) and CIDEr (0 to several hundred): a mean of the two follows the captions
VALIDATIONS = [{VQA: 40.0, CAPTION: 300.0}, {VQA: 30.0, CAPTION: 700.0}, {VQA: None, CAPTION: 800.0},
               {VQA: 50.0, CAPTION: 100.0}]


@pytest.mark.parametrize("option, split, bests", [
    (None, VQA, [True, False, False, True]),  # the default: the first validated split, never the mixed mean
    (f"run.best_metric={CAPTION}", CAPTION, [True, True, True, False]),
])
def test_the_best_checkpoint_is_chosen_by_one_split_and_an_undefined_score_is_never_best(cache, tmp_path, option,
                                                                                         split, bests):
    runner = runner_for(tmp_path, *([option] if option else []), valid_splits=["val"])
    assert (runner.best_choice.split, runner.best_choice.configured) == (split, option is not None)
    runner.context = RunContext(info=SimpleNamespace(is_main=True), stop=None, job_dir=tmp_path, store=None,
                                log=TrainLog(tmp_path, tensorboard=False))
    evaluator, progress = ScriptedEvaluator(*VALIDATIONS), Progress()
    state = SimpleNamespace(model=SimpleNamespace(llm=torch.nn.Linear(1, 1)), engine=torch.nn.Linear(1, 1),
                            precision="fp32", progress=progress)  # the parts of a TrainingState validation uses
    chosen = []
    for step in range(1, len(VALIDATIONS) + 1):
        progress.step = step
        chosen.append(runner.validate(evaluator, state))
    assert chosen == bests
    scores = [v[split] for v in VALIDATIONS]
    assert progress.history == list(enumerate(scores, start=1))
    assert progress.best_score == max(s for s in scores if s is not None)
    events = [json.loads(line) for line in (tmp_path / "log.txt").read_text().splitlines()]
    metric = "CIDEr" if split == CAPTION else "exact_match"
    assert [e["val_agg_metrics"] for e in events] == scores
    assert all(e["val_best_metric"] == f"{split} {metric}" for e in events)
    assert events[2][f"val_{VQA}/exact_match"] is None  # logged as null, not dropped
    if split == VQA:
        assert events[2]["val_undefined"] == "preds is empty: expected at least one sample"
        assert [e["val_best_step"] for e in events] == [1, 1, 1, 4]


def test_log_names_the_best_checkpoint_metric_at_the_start_and_in_each_validation(cache, tmp_path):
    """A real run validating VQA (exact_match) and captions (CIDEr): the default picks the first, and says so."""
    summary = runner_for(tmp_path, "run.job_id=best", max_iters=2, val_freq=1, val_limit=2, valid_splits=["val"],
                         save_freq=0, save_last=False).train()
    logged = [json.loads(line) for line in (Path(summary["job_dir"]) / "log.txt").read_text().splitlines()]
    (start,) = [record["best_checkpoint"] for record in logged if "best_checkpoint" in record]
    assert start == {"split": VQA, "metric": "exact_match", "rule": "best checkpoint chosen by synthetic_vqa/val "
                     "exact_match (the first validated split; set run.best_metric to choose)"}
    validations = [record for record in logged if "val_agg_metrics" in record]
    assert [record["step"] for record in validations] == [1, 2]
    for record in validations:
        assert record["val_best_metric"] == f"{VQA} exact_match"
        assert record["val_agg_metrics"] == record[f"val_{VQA}/exact_match"]
        assert f"val_{CAPTION}/CIDEr" in record
    assert summary["history"] == [(r["step"], r[f"val_{VQA}/exact_match"]) for r in validations]


@pytest.mark.parametrize("option, expected", [
    ("run.max_epoch=3", "run.max_epoch: runner_iter counts optimizer steps; set run.max_iters"),
    ("run.iters_per_inner_epoch=100", "run.val_freq and run.save_freq count steps"),
    ("run.amp=true", "set run.precision instead: fp16"),
    ("run.max_iters=null", "run.max_iters is required"),
    ("run.batch_size_trian=4", "batch_size_train"),
    ("run.best_metric=synthetic_vqa/test", "not a validated split"),
    ("run.train_dataset_ratios={synthetic_vqa: 2}", "set each dataset's sample_ratio instead"),
])
def test_config_errors_name_our_key(cache, tmp_path, capsys, option, expected):
    path = write_train_config(tmp_path / "bad.yaml", tmp_path / "out", valid_splits=["val"])
    with pytest.raises(SystemExit) as stop:
        run("train", ["--cfg-path", str(path), "--options", option])
    assert stop.value.code == 2
    assert expected in capsys.readouterr().err


def test_resuming_from_a_lavis_file_points_to_model_checkpoint(cache, tmp_path, capsys):
    lavis_file = tmp_path / "checkpoint_5.pth"
    torch.save({"model": {}}, lavis_file)
    path = write_train_config(tmp_path / "bad.yaml", tmp_path / "out", resume_ckpt_path=str(lavis_file))
    with pytest.raises(SystemExit):
        run("train", ["--cfg-path", str(path)])
    assert "set model.checkpoint instead" in capsys.readouterr().err


def test_an_unknown_dataset_is_an_error_with_the_close_name(cache, tmp_path, capsys):
    path = write_train_config(tmp_path / "bad.yaml", tmp_path / "out", datasets=("synthetic_vqq",))
    with pytest.raises(SystemExit) as stop:
        run("train", ["--cfg-path", str(path)])
    assert stop.value.code == 2 and "synthetic_vqa" in capsys.readouterr().err
