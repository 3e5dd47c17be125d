"""Per-step learning-rate schedules and the AdamW optimizer of the iteration-based runner.

LAVIS (`lavis/common/optims.py`) steps its schedules per epoch and writes one lr into every parameter group, so the
groups' layer-wise `lr_scale` is ignored. Here a schedule is a pure function of the 0-based optimizer step (resuming
needs only the step) and `step()` writes `lr_at(step) * group["lr_scale"]`, so layer-wise lr decay takes effect.
The three LAVIS names are registered under the registry kind `lr_scheduler`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import torch

from lavis_ib.common.errors import UserError
from lavis_ib.common.registry import UnknownNameError, registry
from lavis_ib.common.schema import ConfigError, check_keys


@dataclass(frozen=True)
class ScheduleSettings:
    """The settings every lr schedule takes, declared once as a config schema: `build_scheduler` checks its
    arguments against it as config layers are checked (`common.schema.check_keys`), and each field's `run` metadata
    is the `run` key it is read from, so errors name what the user wrote. Values are checked by the schedule."""

    name: Any = field(default=None, metadata={"run": "lr_sched"})
    max_iters: Any = field(default=None, metadata={"run": "max_iters"})
    init_lr: Any = field(default=None, metadata={"run": "init_lr"})
    min_lr: Any = field(default=None, metadata={"run": "min_lr"})
    warmup_lr: Any = field(default=None, metadata={"run": "warmup_lr"})
    warmup_steps: Any = field(default=None, metadata={"run": "warmup_steps"})
    decay_rate: Any = field(default=None, metadata={"run": "lr_decay_rate"})
    decay_steps: Any = field(default=None, metadata={"run": "decay_steps"})


RUN_KEYS = {setting.name: setting.metadata["run"] for setting in fields(ScheduleSettings)}
"""Each schedule argument's key in the config's `run` section."""
DEFAULT_DECAY_PERIODS = 10  # step_lr without decay_steps: ten decays over the post-warm-up run (LAVIS: per epoch)


class ScheduleMismatchError(UserError, ValueError):
    """A resumed run's schedule settings differ from those its checkpoint was trained with."""


def _setting(name: str) -> str:
    """`argument (run.key)`: how an error names a schedule setting."""
    return f"{name} (run.{RUN_KEYS[name]})"


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)


class LRSchedule:
    """A per-step lr schedule: linear warm-up from `warmup_lr` to `init_lr` over `warmup_steps`, then `after_warmup`.

    `warmup_lr` < 0 means `init_lr` (LAVIS's -1: no warm-up ramp). Built, it writes step 0's lr into the optimizer,
    so an optimizer step taken before the first `step()` call already uses the scheduled, scaled lr.
    """

    name: ClassVar[str] = ""

    def __init__(self, *, optimizer: torch.optim.Optimizer, max_iters: int, init_lr: float, min_lr: float = 0.0,
                 warmup_lr: float = -1.0, warmup_steps: int = 0, decay_rate: float | None = None,
                 decay_steps: int | None = None):
        self.optimizer = optimizer
        self.max_iters = max_iters
        self.init_lr = init_lr
        self.min_lr = min_lr
        self.warmup_lr = warmup_lr
        self.warmup_steps = warmup_steps
        self.decay_rate = decay_rate
        self.decay_steps = decay_steps
        self._settings = {"name": self.name, "max_iters": max_iters, "init_lr": init_lr, "min_lr": min_lr,
                          "warmup_lr": warmup_lr, "warmup_steps": warmup_steps, "decay_rate": decay_rate,
                          "decay_steps": decay_steps}
        self.validate()
        self.warmup_lr = init_lr if warmup_lr < 0 else warmup_lr
        self.step(0)

    def _fail(self, text: str) -> None:
        raise ValueError(f"lr schedule {self.name!r}: {text}")

    def validate(self) -> None:
        """Reject settings that cannot describe a schedule, naming the setting, its run key and the value."""
        if not _is_int(self.max_iters) or self.max_iters < 1:
            self._fail(f"{_setting('max_iters')} must be an integer ≥ 1, got {self.max_iters!r}")
        if not _is_int(self.warmup_steps) or self.warmup_steps < 0:
            self._fail(f"{_setting('warmup_steps')} must be an integer ≥ 0, got {self.warmup_steps!r}")
        if self.warmup_steps > self.max_iters:
            self._fail(f"{_setting('warmup_steps')} = {self.warmup_steps} exceeds {_setting('max_iters')} = "
                       f"{self.max_iters}: the warm-up would never end")
        for key in ("init_lr", "min_lr", "warmup_lr"):
            value = getattr(self, key)
            if not _is_number(value):
                self._fail(f"{_setting(key)} must be a number, got {value!r}")
            if value < 0 and key != "warmup_lr":  # a negative warmup_lr means init_lr (LAVIS)
                self._fail(f"{_setting(key)} must be ≥ 0, got {value!r}")
        if self.min_lr > self.init_lr:
            self._fail(f"{_setting('min_lr')} = {self.min_lr} is above {_setting('init_lr')} = {self.init_lr}")

    def lr_at(self, step: int) -> float:
        """The base lr (before each group's `lr_scale`) of the 0-based optimizer step `step` about to be taken."""
        if step < 0:
            raise ValueError(f"lr schedule {self.name!r}: step must be ≥ 0, got {step}")
        if step < self.warmup_steps:
            return self.warmup_lr + (self.init_lr - self.warmup_lr) * step / self.warmup_steps
        return self.after_warmup(step - self.warmup_steps)

    def after_warmup(self, step: int) -> float:
        """The lr `step` steps after the warm-up ended."""
        raise NotImplementedError

    def step(self, step: int) -> float:
        """Write `lr_at(step) * lr_scale` into every parameter group; return the base lr (for the log)."""
        lr = self.lr_at(step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        return lr

    def state_dict(self) -> dict[str, Any]:
        """The settings (the lr is a function of the step alone, so they are the whole state)."""
        return dict(self._settings)

    def load_state_dict(self, state: Mapping[str, Any], may_differ: Iterable[str] = ()) -> None:
        """Check that a checkpoint's schedule settings are this run's (but those in `may_differ`);
        `ScheduleMismatchError` listing any change and the ways on."""
        allowed = set(may_differ)
        changed = [f"{_setting(key)}: checkpoint {state.get(key)!r}, this run {value!r}"
                   for key, value in self._settings.items() if state.get(key) != value and key not in allowed]
        changed += [f"{key}: checkpoint {state[key]!r}, unknown to this run" for key in state if key not in
                    self._settings]
        if changed:
            longer = ("; to train longer on the same optimizer state and data stream, add "
                      "run.resume_schedule=extend" if "max_iters" not in allowed and state.get("max_iters") !=
                      self.max_iters else "")
            raise ScheduleMismatchError("the resumed run's lr schedule differs from its checkpoint's ("
                                        + "; ".join(changed) + f"); resume with the checkpoint's settings{longer}; "
                                        "or train the new schedule from step 0 with run.resume=restart (the old "
                                        "checkpoints are moved aside), or in a new run.job_id initialised from the "
                                        "checkpoint's weights (model.checkpoint=<step_N>/model.safetensors)")

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self._settings.items() if k != "name" and v is not None)
        return f"{type(self).__name__}({settings})"


@registry.register_lr_scheduler("linear_warmup_cosine_lr")
class LinearWarmupCosineLR(LRSchedule):
    """Warm-up, then a half cosine from `init_lr` reaching `min_lr` at step `max_iters` (and staying there)."""

    name = "linear_warmup_cosine_lr"

    def validate(self) -> None:
        super().validate()
        if self.warmup_steps >= self.max_iters:
            self._fail(f"{_setting('warmup_steps')} = {self.warmup_steps} must be below {_setting('max_iters')} = "
                       f"{self.max_iters}, or no step is left for the cosine")

    def after_warmup(self, step: int) -> float:
        progress = min(1.0, step / (self.max_iters - self.warmup_steps))
        return self.min_lr + (self.init_lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


@registry.register_lr_scheduler("linear_warmup_step_lr")
class LinearWarmupStepLR(LRSchedule):
    """Warm-up, then `init_lr * decay_rate ** k` in period k of `decay_steps` steps, never below `min_lr`.

    LAVIS decays once per epoch; a step-counting run needs the period instead: `decay_steps`, by default a tenth of
    the steps after the warm-up (`(max_iters - warmup_steps) // 10`, at least 1), i.e. ten decays over the run.
    """

    name = "linear_warmup_step_lr"

    def validate(self) -> None:
        super().validate()
        rate = self.decay_rate
        if not _is_number(rate) or not 0 < rate <= 1:
            self._fail(f"{_setting('decay_rate')} is required and must be in (0, 1], got {rate!r}")
        if self.decay_steps is None:
            self.decay_steps = max(1, (self.max_iters - self.warmup_steps) // DEFAULT_DECAY_PERIODS)
        elif not _is_int(self.decay_steps) or self.decay_steps < 1:
            self._fail(f"{_setting('decay_steps')} must be an integer ≥ 1 (or unset), got {self.decay_steps!r}")

    def after_warmup(self, step: int) -> float:
        return max(self.min_lr, self.init_lr * self.decay_rate ** (step // self.decay_steps))


@registry.register_lr_scheduler("constant_lr")
class ConstantLR(LRSchedule):
    """Warm-up, then `init_lr` for the rest of the run."""

    name = "constant_lr"

    def after_warmup(self, step: int) -> float:
        return self.init_lr


def build_scheduler(name: str, optimizer: torch.optim.Optimizer, **settings: Any) -> LRSchedule:
    """The registered schedule `name` over `optimizer`; an unknown name raises the registry's `UnknownNameError`."""
    schedule_cls = registry.get_lr_scheduler_class(name)
    check_keys({key: value for key, value in settings.items() if key != "name"}, ScheduleSettings,
               f"lr schedule {name!r}", "")
    return schedule_cls(optimizer=optimizer, **settings)


def max_iters_of(run) -> int:
    """`run.max_iters` as a whole number of optimizer steps (LAVIS-style 2e4 becomes 20000)."""
    if run.max_iters is None:
        raise ValueError("run.max_iters is required: the iteration-based runner counts optimizer steps")
    max_iters = int(float(run.max_iters))
    if max_iters != float(run.max_iters):
        raise ValueError(f"run.max_iters must be a whole number of steps, got {run.max_iters!r}")
    return max_iters


def scheduler_from_run(optimizer: torch.optim.Optimizer, run) -> LRSchedule:
    """The schedule a `RunConfig` (the config's `run` section) describes."""
    return build_scheduler(run.lr_sched, optimizer, max_iters=max_iters_of(run), init_lr=run.init_lr, min_lr=run.min_lr,
                           warmup_lr=run.warmup_lr, warmup_steps=run.warmup_steps, decay_rate=run.lr_decay_rate,
                           decay_steps=run.decay_steps)


def check_schedule(run, cfg_path: str) -> None:
    """Build the configured schedule over a stand-in optimizer: a bad name or setting is a `ConfigError` naming
    the file and the run key, before anything else is built."""
    stand_in = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.0)
    try:
        scheduler_from_run(stand_in, run)
    except UnknownNameError as error:
        raise ConfigError(f"{cfg_path}: run.{RUN_KEYS['name']}: {error}") from None
    except ValueError as error:
        raise ConfigError(f"{cfg_path}: {error}") from None


def fused_supported(device: torch.device | str) -> bool:
    """Whether torch has a fused AdamW kernel for `device`'s type (CUDA, and CPU since torch 2.4)."""
    try:
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices

        supported = _get_fused_kernels_supported_devices()
    except ImportError:  # a private helper: if it moves, assume the devices torch 2.4+ documents
        supported = ["cuda", "cpu"]
    return torch.device(device).type in supported


def build_optimizer(param_groups: Iterable[dict], init_lr: float, weight_decay: float,
                    betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                    device: torch.device | str | None = None) -> torch.optim.AdamW:
    """AdamW over `param_groups` (from `model.optimizer_param_groups`), fused where the device supports it.

    Groups keep their `name` and `lr_scale`; a group without `weight_decay` takes `weight_decay`. `device` None
    means the device of the first parameter. Where no fused kernel exists the multi-tensor (foreach) path is used.
    """
    groups = [dict(group) for group in param_groups]
    params = [p for group in groups for p in group["params"]]
    if not params:
        raise ValueError("build_optimizer: the parameter groups hold no parameters (is everything frozen?)")
    for group in groups:
        group.setdefault("lr_scale", 1.0)
    device = torch.device(device) if device is not None else params[0].device
    fused = fused_supported(device) and all(p.is_floating_point() for p in params)
    return torch.optim.AdamW(groups, lr=init_lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                             fused=fused or None, foreach=None if fused else True)


def grad_scaler(precision: str, device: torch.device | str) -> torch.amp.GradScaler:
    """The run's gradient scaler, on `device`'s type: enabled for fp16 only (bf16 and fp32 need no loss scaling)."""
    return torch.amp.GradScaler(torch.device(device).type, enabled=precision == "fp16")


def optimizer_from_run(param_groups: Iterable[dict], run, device: torch.device | str | None = None):
    """`build_optimizer` with a `RunConfig`'s `init_lr`, `weight_decay`, `beta1` and `beta2`."""
    return build_optimizer(param_groups, run.init_lr, run.weight_decay, betas=(run.beta1, run.beta2), device=device)


def param_group_summary(groups: Iterable[dict]) -> str:
    """A text table of the groups for the log: name, tensors, parameters, weight decay, lr scale; then the total."""
    rows = [(str(g.get("name", i)), len(g["params"]), sum(p.numel() for p in g["params"]),
             f"{g.get('weight_decay', 0.0):g}", f"{g.get('lr_scale', 1.0):.4g}") for i, g in enumerate(groups)]
    rows.append(("total", sum(r[1] for r in rows), sum(r[2] for r in rows), "", ""))
    header = ("group", "tensors", "params", "weight_decay", "lr_scale")
    cells = [header] + [(name, str(t), f"{n:,}", wd, scale) for name, t, n, wd, scale in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
             for row in cells]
    return "\n".join(lines[:1] + ["-" * len(lines[0])] + lines[1:])
