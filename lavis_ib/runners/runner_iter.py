"""Iteration-based instruction tuning (`train.py`, runner `runner_iter`): the paper counts optimizer steps.

One step = `accum_grad_iters` micro-batches of `batch_size_train` per rank from the balanced mixture of the training
datasets, an optimizer step with the per-step schedule, optional clipping, and bookkeeping: log events every
`log_freq` steps, validation every `val_freq` steps through the evaluation tasks, checkpoints every `save_freq`
steps (and at the best validation score, the last step and on SIGTERM/SIGUSR1).

Resume is exact: a checkpoint holds the trainable weights, the optimizer, scaler, every rank's RNG states and
sampler position, and the log accumulators, so a run killed after step k and resumed from it produces bitwise the
run that was never interrupted. Differences from LAVIS's `RunnerIter`: no unconditional barrier (one
process needs no process group), resume loads the trainable weights LAVIS saves (its strict load fails), gradient
clipping, `lr_scale` honoured, validation on any split, outputs under the working directory.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import resource
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from lavis_ib.common import dist
from lavis_ib.common.config import Config
from lavis_ib.common.io import FileFormatError, WeightMismatchError
from lavis_ib.common.registry import registry
from lavis_ib.common.schema import ConfigError
from lavis_ib.datasets.builders.dataset import SkipCounter
from lavis_ib.common.precision import autocast, run_precision
from lavis_ib.datasets.sampling import BalancedSampler, MixtureDataset, balanced_mixture
from lavis_ib.runners import setup
from lavis_ib.runners.checkpoints import META_FILE, STEP_DIR, CheckpointStore, rng_state, set_rng_state
from lavis_ib.runners.evaluator import Evaluator
from lavis_ib.runners.job_folder import (check_output_dir, check_resume_choice, checkpoint_store,
                                        set_aside_for_restart, set_aside_later_checkpoints)
from lavis_ib.runners.optim import (check_schedule, grad_scaler, max_iters_of, optimizer_from_run,
                                    param_group_summary, scheduler_from_run)
from lavis_ib.runners.predictions import differences
from lavis_ib.runners.sharding import gathered, shard_frozen_llm
from lavis_ib.runners.stop_signals import StopRequest, WorkerSafeLoader
from lavis_ib.runners.train_log import TrainLog

log = logging.getLogger(__name__)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite: the run stops without saving over the last good checkpoint."""


# ---------------------------------------------------------------------------------------------------------------
# Config checks


def check_training_run(run, cfg_path: str) -> int:
    """The number of steps (`run.max_iters`), checked with the other training-only values."""
    try:
        steps = max_iters_of(run)
    except ValueError as error:
        raise ConfigError(f"{cfg_path}: {error}") from None
    if steps < 1:
        raise ConfigError(f"{cfg_path}: run.max_iters must be ≥ 1, got {run.max_iters}")
    if run.grad_clip is not None and run.grad_clip < 0:
        raise ConfigError(f"{cfg_path}: run.grad_clip must be > 0 (or 0/unset for no clipping), got {run.grad_clip}")
    return steps


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (1 << 32))
    torch.manual_seed(seed)


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory so far: CUDA allocations on a GPU, the process's max resident set on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------------------------------------------------------
# Run state


@dataclass
class Interval:
    """Sums over the steps since the last log event (saved with checkpoints so a resumed log matches)."""

    loss: float = 0.0
    grad_norm: float = 0.0
    steps: int = 0
    seconds: float = 0.0  # time in training steps (validation and checkpoints excluded), for samples/s

    def add(self, loss: float, grad_norm: float, seconds: float) -> None:
        self.loss += loss
        self.grad_norm += grad_norm
        self.steps += 1
        self.seconds += seconds

    def means(self) -> dict:
        return {"loss": self.loss / self.steps, "grad_norm": self.grad_norm / self.steps}


@dataclass(frozen=True)
class BestChoice:
    """What picks the best checkpoint: one validated split's reported metric (its `agg_metrics`), higher is better.

    `run.best_metric` names the split; unset, it is the first validated split in config order (datasets as listed,
    then `run.valid_splits`' order). One split, so one scale: a mean over splits would add CIDEr (0–1000) to
    accuracies (0–100) and follow the captions. A validation where its value is undefined (null) is never the best.
    """

    split: str  # "<dataset>/<split>"
    metric: str  # that split's eval protocol's reported key, e.g. "exact_match", "CIDEr"
    configured: bool  # set by run.best_metric, else the default

    def describe(self) -> str:
        how = "run.best_metric" if self.configured else "the first validated split; set run.best_metric to choose"
        return f"best checkpoint chosen by {self.split} {self.metric} ({how})"


@dataclass
class Progress:
    """Where the run is: the next step to take, the best validation score and the log accumulators."""

    step: int = 0
    best_score: Optional[float] = None
    best_step: Optional[int] = None
    interval: Interval = field(default_factory=Interval)
    history: list = field(default_factory=list)  # (step, score) of every validation

    def state_dict(self) -> dict:
        return {"step": self.step, "best_score": self.best_score, "best_step": self.best_step,
                "interval": [self.interval.loss, self.interval.grad_norm, self.interval.steps, self.interval.seconds],
                "history": [list(entry) for entry in self.history]}

    def load_state_dict(self, state: dict) -> None:
        self.step, self.best_score, self.best_step = state["step"], state["best_score"], state["best_step"]
        loss, grad_norm, steps, seconds = state["interval"]
        self.interval = Interval(loss, grad_norm, int(steps), seconds)
        self.history = [tuple(entry) for entry in state["history"]]


@dataclass
class TrainingState:
    """What a run trains with, built once by `RunnerIter.setup` and passed to every step, save and resume."""

    model: Any  # the Blip2Base being trained
    engine: Any  # what the forward goes through: `model`, or its DDP wrapper
    precision: str  # `common.precision.run_precision` of the run
    mixture: MixtureDataset
    sampler: BalancedSampler
    groups: list  # the optimizer's parameter groups (for the start-up log)
    optimizer: torch.optim.Optimizer
    scheduler: Any  # runners.optim's per-step schedule
    scaler: torch.amp.GradScaler
    progress: Progress = field(default_factory=Progress)
    skips: SkipCounter = field(default_factory=SkipCounter)

    def trainable(self) -> list[torch.nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]


@dataclass
class RunContext:
    """What one `train()` call runs in, opened by it before `setup()`: this process's place in the process group,
    the stop request (SIGTERM/SIGUSR1), the job folder, its checkpoint store and the training log."""

    info: dist.DistInfo
    stop: StopRequest
    job_dir: Path
    store: CheckpointStore
    log: TrainLog
    started: bool = False  # the first step has begun: from then on a failure keeps the job folder


# ---------------------------------------------------------------------------------------------------------------
# The runner


@registry.register_runner("runner_iter")
class RunnerIter:
    """`RunnerIter.from_config(cfg).train()`. `step_hooks` are called on every rank after each optimizer step
    with `(step, record)` (the step's loss, lr, grad norm): for custom logging, or a test that kills the run; they
    find the run's `TrainingState` (model, optimizer, progress, ...) in `runner.state`."""

    def __init__(self, cfg: Config):
        self.cfg, self.run = cfg, cfg.run
        self.max_iters = check_training_run(self.run, cfg.cfg_path)
        if not list(cfg.datasets_cfg):
            raise ConfigError(f"{cfg.cfg_path}: no datasets to train on (the config has no 'datasets' section)")
        self.check_before_start()
        self.step_hooks: list[Callable[[int, dict], None]] = []
        self.context: RunContext | None = None  # set by `train()`

    def check_before_start(self) -> None:
        """Every config value and the job folder, before any process group opens or any folder is written: the
        schedule, each dataset's config, `run.best_metric`, `run.output_dir` and what `run.resume` allows."""
        check_schedule(self.run, self.cfg.cfg_path)
        check_llm_training(self.run, self.cfg.model_cfg, self.cfg.cfg_path)
        setup.check_preprocess(self.cfg)
        for name in self.cfg.datasets_cfg:
            try:
                setup.dataset_builder(self.cfg, name)  # its config block's values (sample_ratio ≥ 0, splits, ...)
            except ConfigError as error:
                where = "" if str(error).startswith(self.cfg.cfg_path) else f"{self.cfg.cfg_path}: "
                raise ConfigError(f"{where}{error}") from None
        self.validated = self.validation_datasets()
        explicit_job = self.run.job_id is not None
        job_dir = Path(self.run.output_dir) / dist.job_id(self.run.job_id) if explicit_job else None
        check_output_dir(self.run.output_dir, job_dir, self.cfg.cfg_path)
        if job_dir is not None:  # without a job_id the folder is a new timestamp
            check_resume_choice(self.run.resume, job_dir, self.cfg.cfg_path)

    @classmethod
    def from_config(cls, cfg: Config) -> "RunnerIter":
        return cls(cfg)

    # The run's context, read-only views of `self.context` (which `train()` opens).
    info = property(lambda self: self.context.info, doc="This process's place in the process group.")
    stop = property(lambda self: self.context.stop, doc="The stop request (SIGTERM / SIGUSR1).")
    job_dir = property(lambda self: self.context.job_dir, doc="The job folder.")
    store = property(lambda self: self.context.store, doc="The job's checkpoint store.")
    log = property(lambda self: self.context.log, doc="The training log.")

    # ----- set-up -------------------------------------------------------------------------------------------
    def setup(self) -> TrainingState:
        """Build what the run trains with: the model (the same initial weights on every rank), the mixture of the
        train splits and this rank's sampler, the DDP wrapper, optimizer, schedule and grad scaler."""
        info, run = self.info, self.run
        seed_everything(run.seed)
        precision = run_precision(run.precision, info.device)  # decided once: model storage, autocast, validation
        model = setup.build_model(self.cfg, info.device, precision, is_eval=False)
        mixture, sampler = balanced_mixture(self.build_datasets(model), seed=run.seed, rank=info.rank,
                                            world_size=info.world_size, num_samples=None)
        groups = model.optimizer_param_groups(run.weight_decay, run.lr_layer_decay)
        optimizer = optimizer_from_run(groups, run, info.device)
        return TrainingState(model=model, engine=self.wrap(model), precision=precision, mixture=mixture,
                             sampler=sampler, groups=groups, optimizer=optimizer,
                             scheduler=scheduler_from_run(optimizer, run), scaler=grad_scaler(precision, info.device))

    def build_datasets(self, model) -> dict:
        """`{name: dataset}` of every configured dataset's train split(s); a dataset without one only validates."""
        preprocessing = setup.preprocessing(self.cfg, model)
        datasets = {}
        for name in self.cfg.datasets_cfg:
            builder = setup.dataset_builder(self.cfg, name, preprocessing)
            splits = [split for split in self.run.train_splits if split in builder.splits]
            if not splits:
                log.info("%s has none of run.train_splits %s: validation only", name, list(self.run.train_splits))
            for split in splits:
                key = name if len(splits) == 1 else f"{name}/{split}"
                datasets[key] = builder.build_split(split, rank=self.info.rank, world_size=self.info.world_size)
        if not datasets:
            raise ConfigError(f"{self.cfg.cfg_path}: no dataset has a split named in run.train_splits "
                              f"{list(self.run.train_splits)}; nothing to train on")
        return datasets

    def build_loader(self, mixture, sampler, model) -> DataLoader:
        # Its own generator: creating the iterator (again, after a resume) must not draw from the global RNG. Its
        # workers leave SIGTERM/SIGUSR1 to the rank, so a stop signal sent to the whole process group ends with a save.
        return WorkerSafeLoader(mixture, batch_size=self.run.batch_size_train, sampler=sampler,
                                num_workers=self.run.num_workers, collate_fn=model.collator("train"),
                                generator=torch.Generator().manual_seed(self.run.seed),
                                pin_memory=self.info.device.type == "cuda")

    def wrap(self, model):
        """DDP over the trainable parameters only: frozen ViT/LLM weights are neither broadcast nor bucketed; with
        `run.fsdp` the frozen LLM is sharded across the ranks first (`sharding`)."""
        if not self.info.distributed:
            if self.run.fsdp:
                log.info("run.fsdp: one process, nothing to shard the LLM across; it stays whole")
            return model
        from torch.nn.parallel import DistributedDataParallel

        frozen = [name for name, p in model.named_parameters() if not p.requires_grad]
        if self.run.fsdp:
            blocks = shard_frozen_llm(model.llm)
            log.info("run.fsdp: the frozen LLM is sharded across %d ranks (%d blocks, FSDP2)",
                     self.info.world_size, blocks)
        DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(model, frozen)
        device_ids = [self.info.device.index] if self.info.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=device_ids, broadcast_buffers=False)

    def validation_datasets(self) -> list[str]:
        """The configured datasets that have an `eval:` protocol and one of `run.valid_splits`; sets
        `self.best_choice`, what picks the best checkpoint."""
        self.best_choice: Optional[BestChoice] = None
        if not self.run.valid_splits:
            return []
        names, reported = [], {}  # reported: "<dataset>/<split>" → its protocol's agg_metrics key, in config order
        for name in self.cfg.datasets_cfg:
            builder = setup.dataset_builder(self.cfg, name)
            protocol = builder.config.eval
            if protocol is None or not protocol.task:
                log.info("%s: no eval protocol, not validated", name)
                continue
            splits = [split for split in self.run.valid_splits if split in builder.splits]
            if splits:
                names.append(name)
                metric = Evaluator.task_class(name, builder).reported_metric(protocol)
                reported.update({f"{name}/{split}": metric for split in splits})
        if not names:
            raise ConfigError(f"{self.cfg.cfg_path}: run.valid_splits {list(self.run.valid_splits)} is set but no "
                              "dataset with an eval protocol has such a split")
        if self.run.best_metric is not None and self.run.best_metric not in reported:
            raise ConfigError(f"{self.cfg.cfg_path}: run.best_metric {self.run.best_metric!r} is not a validated "
                              f"split; expected one of {', '.join(reported)}")
        split = self.run.best_metric or next(iter(reported))
        self.best_choice = BestChoice(split, reported[split], configured=self.run.best_metric is not None)
        return names

    # ----- the run ------------------------------------------------------------------------------------------
    def train(self) -> dict:
        """Train to `max_iters` (or until a stop signal); returns the final progress (rank 0 and others alike)."""
        with dist.distributed_run(self.run) as info, StopRequest() as stop:
            job = dist.job_id(self.run.job_id)
            job_dir = Path(self.run.output_dir) / job
            new_folder = not job_dir.exists()  # read by rank 0 only, which alone creates the folder
            if info.is_main and self.run.resume == "restart":
                set_aside_for_restart(job_dir)
            dist.barrier()  # the earlier run is aside before any rank reads the job folder
            context = self.context = RunContext(
                info, stop, job_dir, checkpoint_store(job_dir, keep_last=self.run.keep_last),
                TrainLog(job_dir, enabled=info.is_main, tensorboard=self.run.tensorboard))
            try:
                return self.train_in(job)
            except BaseException:
                if new_folder and not context.started and info.is_main:  # a failed start leaves no folder behind
                    context.log.close()
                    shutil.rmtree(job_dir, ignore_errors=True)
                raise
            finally:
                context.log.close()

    def train_in(self, job: str) -> dict:
        info, run = self.info, self.run
        state = self.state = self.setup()  # also `runner.state`, for step hooks
        progress = state.progress
        seed_everything(run.seed + info.rank)  # dropout differs per rank (LAVIS), reproducibly
        resumed = self.resume(state)
        self.log.config(self.cfg.to_dict(), job=job, world_size=info.world_size, resumed_from=resumed)
        self.describe_start(state)
        evaluator = Evaluator(self.cfg, datasets=self.validated, limit=run.val_limit) if self.validated else None
        loader = iter(self.build_loader(state.mixture, state.sampler, state.model))
        trainable = state.trainable()
        state.engine.train()
        with tqdm(total=self.max_iters, initial=progress.step, desc=f"train {job}", unit="step",
                  disable=not info.is_main, dynamic_ncols=True) as bar:  # closed on errors too
            samples_per_step = run.batch_size_train * run.accum_grad_iters * info.world_size
            self.context.started = True
            while progress.step < self.max_iters:
                step, started = progress.step, time.perf_counter()
                record = self.train_step(state, loader, trainable, step)
                progress.step = step + 1
                progress.interval.add(record["loss"], record["grad_norm"], time.perf_counter() - started)
                for hook in self.step_hooks:
                    hook(progress.step, record)
                bar.update(1)
                bar.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{record['lr']:.2e}")
                if progress.step % run.log_freq == 0 or progress.step == self.max_iters:
                    self.log_train(state, samples_per_step, record["lr"])
                last = progress.step == self.max_iters
                best = False
                if evaluator is not None and ((run.val_freq and progress.step % run.val_freq == 0) or last):
                    best = self.validate(evaluator, state)
                stopping = record["stop"]
                periodic = run.save_freq and progress.step % run.save_freq == 0
                if best or stopping or periodic or (last and run.save_last):
                    self.save(state, best)
                if stopping:
                    name = signal.Signals(self.stop.signum).name if self.stop.signum else "a stop signal (another rank)"
                    log.warning("%s received: stopped after step %d with a checkpoint; the same command with "
                                "run.job_id=%s continues it (run.resume=auto)", name, progress.step, job)
                    break
        return {"step": progress.step, "best_score": progress.best_score, "best_step": progress.best_step,
                "job_dir": str(self.job_dir), "history": progress.history}

    def train_step(self, state: TrainingState, loader, trainable: list, step: int) -> dict:
        """One optimizer step over `accum_grad_iters` micro-batches per rank.

        Each micro-batch's mean loss is weighted by its share of the step's supervised tokens over all ranks, so
        the gradient is that of the token mean over the whole step: accumulating k micro-batches equals one k×
        larger batch (LAVIS averages the micro-batch means instead). The loss and the stop/divergence flags are
        agreed across ranks.
        """
        world, engine = self.info.world_size, state.engine
        optimizer, scaler, model = state.optimizer, state.scaler, state.model
        batches = [next(loader) for _ in range(self.run.accum_grad_iters)]
        tokens = [float(model.supervised_tokens(batch)) for batch in batches]
        agreed = self.all_reduce([sum(tokens), float(self.stop.signum is not None)])
        total_tokens, stop = max(agreed[0], 1.0), agreed[1]
        loss_sum, bad_batches = torch.zeros((), device=self.info.device), []
        for micro, batch in enumerate(batches):
            state.skips.update(batch)
            sync = micro == len(batches) - 1 or not hasattr(engine, "no_sync")
            with contextlib.nullcontext() if sync else engine.no_sync():
                with autocast(state.precision, self.info.device):
                    loss = engine(batch)["loss"]
                if not torch.isfinite(loss):
                    bad_batches.append(describe_batch(batch))
                scaler.scale(loss * (tokens[micro] * world / total_tokens)).backward()
            loss_sum += loss.detach().float() * tokens[micro]
        lr = state.scheduler.step(step)
        loss_total, bad = self.all_reduce([loss_sum, float(len(bad_batches))])
        if bad:
            self.diverged(step, bad_batches)
        scaler.unscale_(optimizer)
        max_norm = self.run.grad_clip if self.run.grad_clip else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(trainable, max_norm).item()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        return {"loss": loss_total / total_tokens, "lr": lr, "grad_norm": grad_norm, "stop": bool(stop),
                "tokens": int(total_tokens)}

    def all_reduce(self, values: list) -> list[float]:
        """Sums over ranks of a few scalars (floats or 0-d tensors), in one collective."""
        flat = torch.stack([torch.as_tensor(v, dtype=torch.float64).reshape(()) for v in values]).to(self.info.device)
        if self.info.distributed:
            torch.distributed.all_reduce(flat)
        return flat.tolist()

    def diverged(self, step: int, bad_batches: list[str]) -> None:
        """Every rank raises with the sample ids of every rank's non-finite batches; nothing is saved."""
        where = dist.gather_objects([f"rank {self.info.rank}: {text}" for text in bad_batches])
        latest = self.store.latest()
        kept = f"the last good checkpoint is {latest}" if latest else "no checkpoint was written yet"
        raise TrainingDiverged(f"step {step + 1}: the loss is not finite for the batch(es) of {'; '.join(where)}; "
                               f"stopped; {kept} (lower run.init_lr, set run.grad_clip, or check those samples)")

    # ----- bookkeeping --------------------------------------------------------------------------------------
    def describe_start(self, state: TrainingState) -> None:
        if not self.info.is_main:
            return
        model, mixture, groups = state.model, state.mixture, state.groups
        total = sum(p.numel() for p in model.parameters())
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        log.info("trainable parameters: %s of %s (%.2f %%)", f"{trainable:,}", f"{total:,}", 100 * trainable / total)
        log.info("optimizer groups:\n%s", param_group_summary(groups))
        log.info("training mixture:\n%s", mixture.ratio_table())
        self.log.write_line({"parameters": {"trainable": trainable, "total": total}})
        choice = self.best_choice
        if choice is not None:
            log.info("%s", choice.describe())
            self.log.write_line({"best_checkpoint": {"split": choice.split, "metric": choice.metric,
                                                     "rule": choice.describe()}})

    def log_train(self, state: TrainingState, samples_per_step: int, lr: float) -> None:
        progress = state.progress
        interval = progress.interval
        values = {**interval.means(), "lr": lr, "samples_per_s": samples_per_step * interval.steps / interval.seconds,
                  "peak_memory_mb": peak_memory_mb(self.info.device),
                  "skipped": state.skips.total}
        self.log.event("train", progress.step, values)
        progress.interval = Interval()

    def validate(self, evaluator: Evaluator, state: TrainingState) -> bool:
        """Evaluate the valid splits; True when `self.best_choice`'s split scores higher than at every earlier one.
        Each val event logs that score (`agg_metrics`, null where undefined on the records validated), what it is
        (`best_metric`), the best so far, and every split's metrics."""
        model, engine, progress = state.model, state.engine, state.progress
        engine.eval()
        with gathered(model.llm):  # ranks validate uneven shares: no per-block collectives (run.fsdp)
            summaries = evaluator.evaluate_model(model, self.job_dir / "validation" / f"step_{progress.step}",
                                                 self.info, state.precision, splits=self.run.valid_splits)
        engine.train()
        by_split = {f"{s['dataset']}/{s['split']}": s for s in summaries}
        choice = self.best_choice
        chosen = by_split[choice.split]
        score = chosen.get("agg_metrics")
        progress.history.append((progress.step, score))
        best = score is not None and (progress.best_score is None or score > progress.best_score)
        if best:
            progress.best_score, progress.best_step = score, progress.step
        values = {"agg_metrics": score, "best_metric": f"{choice.split} {choice.metric}",
                  "best_score": progress.best_score, "best_step": progress.best_step}
        if score is None:
            values["undefined"] = (chosen.get("undefined") or {}).get(chosen["report"], "the split has no ground truth")
        for name, summary in by_split.items():
            for metric, value in (summary.get("metrics") or {}).items():
                if value is None or isinstance(value, (int, float)):
                    values[f"{name}/{metric}"] = value
        self.log.event("val", progress.step, values)
        if self.info.is_main:
            shown = ", ".join(f"{name} {_score(s.get('agg_metrics'))}" for name, s in by_split.items())
            log.info("step %d validation: %s; best checkpoint by %s %s: %s at step %s", progress.step, shown,
                     choice.split, choice.metric, _score(progress.best_score), progress.best_step)
            if score is None:
                log.warning("step %d: %s %s is undefined (%s), so this step cannot be the best", progress.step,
                            choice.split, choice.metric, values["undefined"])
        return best

    def save(self, state: TrainingState, best: bool) -> None:
        """Checkpoint the current step (collective: every rank sends its RNG and sampler state to rank 0, which
        writes)."""
        step = state.progress.step
        consumed = step * self.run.batch_size_train * self.run.accum_grad_iters
        mine = {"rng": rng_state(), "sampler": state.sampler.state_dict(consumed),
                "skipped": dict(state.skips.state_dict())}
        ranks = dist.gather_objects([mine], dst=0)
        if self.info.is_main:
            saved = {"step": step, "world_size": self.info.world_size, "optimizer": state.optimizer.state_dict(),
                     "scheduler": state.scheduler.state_dict(), "scaler": state.scaler.state_dict(),
                     "progress": state.progress.state_dict(), "ranks": ranks}
            path = self.store.save(step, state.model.trainable_state_dict(), saved,
                                   metadata={"best_score": state.progress.best_score, "best": best,
                                             "config": self.cfg.to_dict()})
            if best:
                self.store.mark_best(step)
            log.info("checkpoint: %s", path)
        dist.barrier()

    def resume_path(self) -> Optional[Path]:
        """`run.resume_ckpt_path`, else (`run.resume: auto`) the job's latest checkpoint, else None."""
        if self.run.resume_ckpt_path:
            path = Path(self.run.resume_ckpt_path)
            if path.is_file():
                raise ConfigError(f"run.resume_ckpt_path {path} is a file; it must be a checkpoint directory of this "
                                  "runner (<job>/checkpoints/step_<N>); to start from a LAVIS .pth or our "
                                  "model.safetensors, set model.checkpoint instead")
            return path
        if self.run.resume == "auto":
            return self.store.latest()
        return None

    def resume(self, training: TrainingState) -> Optional[str]:
        """Load the checkpoint to continue from, if any: weights, optimizer, schedule, scaler, this rank's RNG and
        data position. Returns its path."""
        path = self.resume_path()
        if path is None:
            if self.run.resume == "auto" and self.info.is_main:
                log.info("run.resume=auto: no checkpoint in %s yet, starting from step 0", self.store.root)
            return None
        weights, state = self.load_resumable(path)
        if state["world_size"] != self.info.world_size:
            raise ConfigError(f"{path} was written by {state['world_size']} process(es), this run has "
                              f"{self.info.world_size}; resume with the same number (data order and RNG are per rank)")
        load_trainable(training.model, weights, path)
        training.optimizer.load_state_dict(state["optimizer"])
        self.load_schedule(training.scheduler, state, path)
        training.scaler.load_state_dict(state["scaler"])
        training.progress.load_state_dict(state["progress"])
        mine = state["ranks"][self.info.rank]
        training.sampler.load_state_dict(mine["sampler"])
        training.skips.load_state_dict(mine["skipped"])
        set_rng_state(mine["rng"])
        if self.info.is_main:
            set_aside_later_checkpoints(self.job_dir, path)
            log.info("resumed from %s at step %d", path, state["step"])
            self.warn_config_changes(path)
            if state["step"] >= self.max_iters:
                log.warning("the job already ran its run.max_iters=%d steps; nothing to train (to train longer: "
                            "--options run.max_iters=<more> run.resume_schedule=extend)", self.max_iters)
        dist.barrier()  # the later checkpoints are aside before any rank goes on
        return str(path)

    def warn_config_changes(self, path: Path) -> None:
        """A resumed run whose config differs from its checkpoint's (a job_id reused for another experiment, say)
        goes on, naming every key that changed; the resume keys themselves are expected to change."""
        try:
            saved = json.loads((path / META_FILE).read_text(encoding="utf-8"))["metadata"]["config"]
        except (OSError, ValueError, KeyError, TypeError):
            return  # written before configs were recorded, or meta.json is gone: nothing to compare
        ignored = ("run.resume", "run.resume_schedule", "run.resume_ckpt_path")
        changed = [line for line in differences(saved, self.cfg.to_dict()) if not line.startswith(ignored)]
        if changed:
            log.warning("resuming %s with a config that differs from the one it was trained with: %s", path,
                        "; ".join(changed))

    def load_resumable(self, path: Path) -> tuple[dict, dict]:
        """The checkpoint at `path`; a damaged one is an error naming the newest earlier one that loads, and the
        option that continues from it."""
        try:
            return self.store.load(path)
        except FileFormatError as error:
            earlier = self.earlier_readable_checkpoint(path)
            hint = (f"; the newest earlier checkpoint that loads is {earlier}: continue from it with --options "
                    f"run.resume_ckpt_path={earlier}") if earlier else "; no earlier checkpoint of this job loads"
            raise FileFormatError(f"cannot resume from {path}: {error}{hint}") from None

    def earlier_readable_checkpoint(self, path: Path) -> Optional[Path]:
        match = STEP_DIR.fullmatch(path.name)
        limit = int(match.group(1)) if match else None
        for step in reversed(self.store.steps()):
            if limit is not None and step >= limit:
                continue
            try:
                self.store.load(self.store.step_dir(step))
            except (FileFormatError, FileNotFoundError):
                continue
            return self.store.step_dir(step)
        return None

    def load_schedule(self, scheduler, state: dict, path: Path) -> None:
        """The checkpoint's lr schedule must be this run's; `run.resume_schedule: extend` lets `max_iters` grow."""
        if self.run.resume_schedule != "extend":
            scheduler.load_state_dict(state["scheduler"])
            return
        if self.max_iters <= state["step"]:
            raise ConfigError(f"run.resume_schedule=extend: run.max_iters={self.max_iters} must exceed the step of "
                              f"{path} ({state['step']}) to train longer")
        scheduler.load_state_dict(state["scheduler"], may_differ=("max_iters",))
        if self.info.is_main and state["scheduler"].get("max_iters") != self.max_iters:
            log.warning("run.resume_schedule=extend: run.max_iters %s → %d from step %d on; the lr follows the new "
                        "schedule (not bitwise a run planned this long)", state["scheduler"].get("max_iters"),
                        self.max_iters, state["step"])


def check_llm_training(run, model_cfg, source) -> None:
    """What training cannot do with the frozen LLM's loading options: FSDP2 shards plain frozen weights only, and a
    device map's offloaded layers have no gradient path worth training through."""
    if run.fsdp:
        for key in ("quantization", "lora"):
            if model_cfg.get(key):
                raise ConfigError(f"{source}: run.fsdp shards a plain frozen LLM, and model.{key} is set (FSDP2 "
                                  f"cannot shard {'quantized' if key == 'quantization' else 'adapter-wrapped'} layers);"
                                  f" set run.fsdp: false — a quantized LLM already needs a quarter of the memory")
    if model_cfg.get("device_map"):
        raise ConfigError(f"{source}: model.device_map is for inference (generate, ranking, evaluate.py); training "
                          f"keeps the LLM on each rank's device: remove it (model.quantization fits a big LLM instead)")


def load_trainable(model, weights: dict, source: Path) -> None:
    """Load a checkpoint's trainable weights: every trainable tensor must be there and nothing unknown."""
    missing = sorted(model.trainable_names() - set(weights))
    unexpected = sorted(set(weights) - set(model.state_dict()))
    if missing or unexpected:
        raise WeightMismatchError(f"{source}: the checkpoint does not match this model's trainable parts: "
                                  f"missing {missing[:5]} ({len(missing)}), unknown {unexpected[:5]} "
                                  f"({len(unexpected)}); was it written for another model config?")
    model.load_state_dict(weights, strict=False)


def _score(value: Optional[float]) -> str:
    return "undefined" if value is None else f"{value:.4f}"


def describe_batch(batch: dict) -> str:
    """The samples of a batch as `dataset[index]`, for an error message."""
    names = batch.get("dataset") or ["?"] * len(batch.get("instance_id") or [])
    return ", ".join(f"{name}[{index}]" for name, index in zip(names, batch.get("instance_id") or []))
