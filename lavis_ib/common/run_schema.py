"""The typed schema of a config's `run` section: LAVIS's run keys with their meaning and defaults.

Declared once here so a typo (`batch_size_trian`) or a wrong value (`precision: fp17`, `max_iters: lots`) is an
error naming the file and key before anything is built. The runner issues add their keys to `RunConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal, Optional, Union

Precision = Literal["fp32", "fp16", "bf16"]


@dataclass
class RunConfig:
    """The run keys of LAVIS's project YAMLs (`runner_base` / `runner_iter`) plus lavis_ib's `precision`; all optional,
    LAVIS defaults. LAVIS keys that would mean nothing here are refused with what to do instead (`RETIRED`)."""

    RETIRED: ClassVar[dict[str, str]] = {
        "task": "each dataset's evaluation protocol names its task (`eval.task` in the dataset's config, e.g. "
                "lavis_ib/configs/datasets/gqa/defaults.yaml); delete run.task",
        "evaluate": "evaluation is its own command: python evaluate.py --cfg-path <config> (train.py always "
                    "trains); delete run.evaluate",
        "distributed": "the launcher decides: torchrun --nproc_per_node=N (or srun under SLURM) starts the "
                       "processes and the run reads its environment; delete run.distributed",
        "world_size": "the launcher sets it: torchrun --nproc_per_node=N (or SLURM's task count); delete "
                      "run.world_size",
        "gpu": "each process uses cuda:LOCAL_RANK from its launcher; choose the GPUs with CUDA_VISIBLE_DEVICES, or "
               "one device with run.device (e.g. cuda:1); delete run.gpu",
        "use_dist_eval_sampler": "evaluation always splits the records over the ranks without repeats, so each is "
                                 "scored once; delete run.use_dist_eval_sampler",
        "max_epoch": "runner_iter counts optimizer steps; set run.max_iters instead (LAVIS's max_epoch × iterations "
                     "per epoch)",
        "iters_per_inner_epoch": "there are no inner epochs here; run.val_freq and run.save_freq count steps (LAVIS's "
                                 "val_freq × iters_per_inner_epoch)",
        "amp": "set run.precision instead: fp16 (LAVIS's amp: True, with a grad scaler) or bf16 (the default on CUDA)",
        "train_dataset_ratios": "set each dataset's sample_ratio instead (datasets.<name>.sample_ratio multiplies its "
                                "sqrt-size share, paper §2.4)",
    }

    runner: str = "runner_iter"
    device: Optional[str] = None  # None: cuda when available, else cpu
    seed: int = 42
    output_dir: str = "output"  # relative to the working directory (never inside the package, unlike LAVIS)
    job_id: Optional[str] = None  # None: a timestamp; re-running with the same job id resumes its evaluation
    dist_url: str = "env://"  # the process group's init method (ranks and world size come from the launcher)
    # data
    train_splits: list = field(default_factory=lambda: ["train"])
    valid_splits: list = field(default_factory=list)
    test_splits: list = field(default_factory=list)
    batch_size_train: int = 1
    batch_size_eval: int = 1
    num_workers: int = 4
    feature_cache_size: int = 2048  # evaluation: frozen-ViT outputs kept per run, in images/frames (0: off)
    # optimisation
    lr_sched: str = "linear_warmup_cosine_lr"
    init_lr: float = 1e-5
    min_lr: float = 0.0
    warmup_lr: float = -1.0
    warmup_steps: int = 0
    lr_decay_rate: Optional[float] = None
    weight_decay: float = 0.05
    lr_layer_decay: float = 1.0
    beta2: float = 0.999
    precision: Optional[Precision] = None  # None: bf16 on CUDA (fp16 without bf16), fp32 on CPU; train and eval alike
    accum_grad_iters: int = 1
    # training (runner_iter counts optimizer steps; see docs/training.md)
    beta1: float = 0.9
    grad_clip: Optional[float] = None  # max global grad norm of the trainable parameters; None or 0: no clipping
    decay_steps: Optional[int] = None  # linear_warmup_step_lr: steps between decays (None: the scheduler's default)
    fsdp: bool = False  # shard the frozen LLM across the ranks with FSDP2 (runners/sharding.py)
    # schedule and bookkeeping (in optimizer steps for runner_iter)
    max_iters: Optional[Union[int, float]] = None  # LAVIS casts e.g. 2e4 with int(float(...))
    log_freq: int = 50
    save_freq: int = 1000  # steps between checkpoints (0: only the last one, and on SIGTERM/SIGUSR1)
    val_freq: Optional[int] = None  # steps between validations on valid_splits (None: only after the last step)
    val_limit: Optional[int] = None  # validate on the first N records of each valid split (None: all)
    # "<dataset>/<split>" whose agg_metrics (its eval protocol's reported metric, higher is better) picks the best
    # checkpoint; None: the first validated split in config order (never a mean: CIDEr and accuracies differ in scale)
    best_metric: Optional[str] = None
    keep_last: int = 3  # step checkpoints kept (0: all); the best one is never deleted
    save_last: bool = True
    # A job folder that already holds checkpoints (runners/job_folder.py): "auto" continues from its latest, so a
    # relaunch or requeue needs only the same command and job_id; "restart" moves its files aside and starts at
    # step 0; "never" refuses to start there. Nothing is ever deleted.
    resume: Literal["auto", "restart", "never"] = "auto"
    # "exact": a resumed run's lr schedule must equal its checkpoint's; "extend": run.max_iters may grow (same
    # optimizer state and data stream, the schedule recomputed for the new length; not bitwise a longer plan)
    resume_schedule: Literal["exact", "extend"] = "exact"
    resume_ckpt_path: Optional[str] = None  # a checkpoint directory (step_<N>) of this runner to continue from
    tensorboard: bool = True  # TensorBoard event files in <job>/tensorboard (rank 0)

    def __post_init__(self):
        for key in ("batch_size_train", "batch_size_eval", "accum_grad_iters", "log_freq"):
            if getattr(self, key) < 1:
                raise ValueError(f"run.{key} must be ≥ 1, got {getattr(self, key)}")
        for key in ("num_workers", "warmup_steps", "seed", "feature_cache_size", "save_freq", "keep_last"):
            if getattr(self, key) < 0:
                raise ValueError(f"run.{key} must be ≥ 0, got {getattr(self, key)}")
        for key in ("val_freq", "val_limit", "decay_steps"):
            if getattr(self, key) is not None and getattr(self, key) < 1:
                raise ValueError(f"run.{key} must be ≥ 1 (or unset), got {getattr(self, key)}")
