"""Distributed core: process group from torchrun or SLURM, rank helpers, one job id for all ranks, sharding, gather.

A single-process run needs no process group: every helper here works without one (rank 0, world 1, `barrier` a
no-op, gathers return the input), unlike LAVIS whose unconditional `dist.barrier()` crashes such runs. Deliberate
differences from LAVIS's `init_distributed_mode` (which writes rank, world size and gpu into the run config): the run config is read, not mutated
(callers use the returned `DistInfo`); SLURM's world size comes from the job step (`SLURM_STEP_NUM_TASKS`, else
`SLURM_NTASKS`), not the config, and rank 0's host is the step's first node; gloo is used on
CPU; the job id is chosen on rank 0 and broadcast instead of being computed per process; evaluation shards are not
padded with repeats, so no sample is counted twice.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
import socket
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Optional, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")

DEFAULT_MASTER_ADDR = "127.0.0.1"
DEFAULT_MASTER_PORT = 29500  # torchrun's default rendezvous port
# Long enough for rank 0 to score a large split while the others wait; LAVIS's 365 days hides real hangs.
PROCESS_GROUP_TIMEOUT = datetime.timedelta(hours=1)
JOB_ID_FORMAT = "%Y%m%d%H%M%S"


@dataclass(frozen=True)
class DistEnv:
    """What the launcher's environment says about this process (torchrun or SLURM), before any group exists."""

    rank: int
    world_size: int
    local_rank: int
    master_addr: str
    master_port: int
    source: str  # "torchrun" | "slurm"


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the run: what `init_distributed` set up (or found) and the device it should use."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    distributed: bool = False
    backend: Optional[str] = None  # None when there is no process group
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the process that writes files and logs."""
        return self.rank == 0


# ---------------------------------------------------------------------------------------------------------------
# Environment parsing (pure functions, no process group)


def _int_var(environ: Mapping[str, str], name: str, default: Optional[int] = None) -> int:
    """Integer value of environment variable `name`, with an error naming it when it is missing or not a number."""
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        if default is None:
            raise ValueError(f"environment variable {name} is required for a distributed launch but is not set")
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} is not an integer") from None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on `host` now: a `--master_port` for a local torchrun (the demo, the tests)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def first_host(nodelist: str) -> str:
    """First hostname of a SLURM node list (`gpu[07-09,12],cpu01` → `gpu07`), the node rank 0 runs on."""
    depth, end = 0, len(nodelist)
    for i, char in enumerate(nodelist):  # the first top-level comma ends the first host group
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            end = i
            break
    group = nodelist[:end].strip()
    match = re.fullmatch(r"([^\[\]]*)\[([^\]]+)\](.*)", group)
    if match is None:
        if not group or "[" in group or "]" in group:
            raise ValueError(f"cannot read a hostname from SLURM node list {nodelist!r}")
        return group
    prefix, ranges, suffix = match.groups()
    return prefix + re.split(r"[-,]", ranges, maxsplit=1)[0] + suffix


def parse_dist_env(environ: Optional[Mapping[str, str]] = None) -> Optional[DistEnv]:
    """Rank layout from torchrun (`RANK`, `WORLD_SIZE`; they win when srun starts torchrun) or, failing that, from
    the SLURM task srun started (`SLURM_PROCID`, `SLURM_LOCALID`, the step's task count and first node: an srun on
    some of the job's nodes has rank 0 on its own first node, not the job's); None for a plain single-process run.
    Rendezvous defaults to `MASTER_ADDR`/`MASTER_PORT` when they are set."""
    environ = os.environ if environ is None else environ
    if "RANK" in environ and "WORLD_SIZE" in environ:
        source, rank, world = "torchrun", _int_var(environ, "RANK"), _int_var(environ, "WORLD_SIZE")
        local_rank = _int_var(environ, "LOCAL_RANK", default=rank)  # torchrun always sets it; manual single-node
        default_addr = DEFAULT_MASTER_ADDR
    elif "SLURM_PROCID" in environ:
        tasks = "SLURM_STEP_NUM_TASKS" if environ.get("SLURM_STEP_NUM_TASKS") else "SLURM_NTASKS"
        source, rank, world = "slurm", _int_var(environ, "SLURM_PROCID"), _int_var(environ, tasks)
        local_rank = _int_var(environ, "SLURM_LOCALID")
        nodelist = next((environ[name] for name in ("SLURM_STEP_NODELIST", "SLURM_NODELIST", "SLURM_JOB_NODELIST")
                         if environ.get(name)), None)
        default_addr = first_host(nodelist) if nodelist else DEFAULT_MASTER_ADDR
    else:
        return None
    if world < 1 or not 0 <= rank < world or local_rank < 0:
        raise ValueError(f"{source} environment gives rank {rank}, local rank {local_rank} of world size {world}; "
                         "expected 0 <= rank < world size and local rank >= 0")
    return DistEnv(rank=rank, world_size=world, local_rank=local_rank,
                   master_addr=environ.get("MASTER_ADDR") or default_addr,
                   master_port=_int_var(environ, "MASTER_PORT", default=DEFAULT_MASTER_PORT), source=source)


def resolve_device(requested: Optional[str], local_rank: int, cuda_count: int) -> torch.device:
    """The device for this process: the run's `device` type ("cuda"/"cpu"; None → cuda when present) at index
    `local_rank`, so each rank on a node gets its own GPU; a clear error when that GPU does not exist."""
    kind = torch.device(requested).type if requested else ("cuda" if cuda_count > 0 else "cpu")
    if kind != "cuda":
        return torch.device(kind)
    if local_rank >= cuda_count:
        raise ValueError(f"run.device is cuda but local rank {local_rank} has no GPU ({cuda_count} visible); "
                         "launch at most one process per GPU or set run.device=cpu")
    return torch.device("cuda", local_rank)


def choose_backend(device: torch.device | str) -> str:
    """nccl for CUDA devices, gloo otherwise (CPU runs and tests)."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


# ---------------------------------------------------------------------------------------------------------------
# Process group


def _cfg_value(run_cfg: Any, key: str, default: Any = None) -> Any:
    """`run_cfg[key]` for a mapping (dict, DictConfig), `run_cfg.key` for an object (RunConfig), else `default`."""
    if run_cfg is None:
        return default
    if isinstance(run_cfg, Mapping):
        value = run_cfg.get(key, default)
    else:
        value = getattr(run_cfg, key, default)
    return default if value is None else value


def is_dist_avail_and_initialized() -> bool:
    """Whether a default process group exists (torch.distributed may be absent from a build)."""
    return dist.is_available() and dist.is_initialized()


def init_distributed(run_cfg: Any = None) -> DistInfo:
    """Join the process group described by the torchrun/SLURM environment (reusing one that already exists) and
    return this process's `DistInfo`; a single process (no launcher, or world size 1) gets no group."""
    env = parse_dist_env()
    requested = _cfg_value(run_cfg, "device")
    cuda_count = torch.cuda.device_count()
    if is_dist_avail_and_initialized():  # idempotent: describe the group we are already in
        rank, world = dist.get_rank(), dist.get_world_size()
        local_rank = env.local_rank if env is not None and env.rank == rank else rank % max(cuda_count, 1)
        return DistInfo(rank, world, local_rank, True, str(dist.get_backend()),
                        resolve_device(requested, local_rank, cuda_count))
    if env is None or env.world_size == 1:
        local_rank = env.local_rank if env is not None else 0
        return DistInfo(local_rank=local_rank, device=resolve_device(requested, local_rank, cuda_count))
    device = resolve_device(requested, env.local_rank, cuda_count)
    backend = choose_backend(device)
    if backend == "nccl":
        torch.cuda.set_device(device)
    os.environ.setdefault("MASTER_ADDR", env.master_addr)  # env:// rendezvous reads these (SLURM does not set them)
    os.environ.setdefault("MASTER_PORT", str(env.master_port))
    dist.init_process_group(backend=backend, init_method=_cfg_value(run_cfg, "dist_url", "env://"),
                            rank=env.rank, world_size=env.world_size, timeout=PROCESS_GROUP_TIMEOUT,
                            device_id=device if backend == "nccl" else None)
    return DistInfo(env.rank, env.world_size, env.local_rank, True, backend, device)


def destroy() -> None:
    """Tear down the default process group if there is one, so the process exits without NCCL/gloo warnings."""
    if is_dist_avail_and_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def distributed_run(run_cfg: Any = None) -> Iterator[DistInfo]:
    """`with distributed_run(cfg.run_cfg) as info:` — init on entry, destroy on exit (only a group it created)."""
    existed = is_dist_avail_and_initialized()
    info = init_distributed(run_cfg)
    try:
        yield info
    finally:
        if not existed:
            destroy()


# ---------------------------------------------------------------------------------------------------------------
# Rank helpers


def get_rank() -> int:
    """This process's global rank; 0 without a process group."""
    return dist.get_rank() if is_dist_avail_and_initialized() else 0


def get_world_size() -> int:
    """Number of processes in the run; 1 without a process group."""
    return dist.get_world_size() if is_dist_avail_and_initialized() else 1


def is_main_process() -> bool:
    """Whether this is rank 0, the one that writes files and logs."""
    return get_rank() == 0


def barrier() -> None:
    """Wait for every rank; a no-op without a process group (LAVIS's unconditional barrier crashes there)."""
    if not is_dist_avail_and_initialized():
        return
    if dist.get_backend() == "nccl":
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        dist.barrier()


def broadcast_object(obj: T, src: int = 0) -> T:
    """Rank `src`'s `obj` (any picklable value) on every rank; `obj` itself without a process group."""
    if not is_dist_avail_and_initialized():
        return obj
    holder = [obj if get_rank() == src else None]
    dist.broadcast_object_list(holder, src=src)
    return holder[0]


def _check_job_id(value: Any) -> str:
    """`value` as a job id that is safe as one directory name under `run.output_dir`."""
    text = str(value).strip()
    if not text or text in {".", ".."} or "/" in text or "\\" in text:
        raise ValueError(f"run.job_id {value!r} is not usable as a directory name (empty, '.', '..' or has a slash)")
    return text


def job_id(explicit: Any = None) -> str:
    """One job id for all ranks: rank 0's candidate (`explicit`, i.e. `run.job_id`, else a `%Y%m%d%H%M%S` local
    timestamp) broadcast to the others, so ranks straddling a clock boundary share one output directory."""
    candidate = _check_job_id(explicit) if explicit is not None else time.strftime(JOB_ID_FORMAT)
    return broadcast_object(candidate, src=0)


# ---------------------------------------------------------------------------------------------------------------
# Sharding for evaluation


def shard_indices(n: int, rank: int, world_size: int) -> range:
    """Contiguous shard of `range(n)` for `rank`: shards cover 0..n-1 exactly once, sizes differ by at most one
    (the first `n % world_size` ranks get the extra item), and nothing is padded — unlike DistributedSampler."""
    if n < 0 or world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"cannot shard {n} items for rank {rank} of world size {world_size}")
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return range(start, start + base + (1 if rank < extra else 0))


def batch_ranges(n: int, batch_size: int) -> list[range]:
    """`range(n)` cut into consecutive batches of `batch_size`, the last one possibly short."""
    if n < 0 or batch_size < 1:
        raise ValueError(f"cannot cut {n} items into batches of {batch_size}")
    return [range(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]


def shard_batches(batches: list[T], rank: int, world_size: int) -> list[T]:
    """Rank `rank`'s contiguous run of whole `batches` (`shard_indices` over the batches, not the items): every
    world size runs the same batches, so a result that depends on a sample's batch-mates (left padding, beam search
    at float near-ties) does not depend on the number of ranks. Ranks differ by at most one batch; nothing padded."""
    return [batches[k] for k in shard_indices(len(batches), rank, world_size)]


# ---------------------------------------------------------------------------------------------------------------
# Gathering per-rank results


def _gather_per_rank(local: list, dst: Optional[int]) -> Optional[list[list]]:
    """Every rank's `local` list, indexed by rank: on all ranks when `dst` is None, else on `dst` only (None
    elsewhere)."""
    if not isinstance(local, list):
        raise TypeError(f"gather expects this rank's results as a list, got {type(local).__name__}")
    if not is_dist_avail_and_initialized():
        return [list(local)]
    if dst is None:
        per_rank: list = [None] * get_world_size()
        dist.all_gather_object(per_rank, local)
        return per_rank
    per_rank = [None] * get_world_size() if get_rank() == dst else None
    dist.gather_object(local, per_rank, dst=dst)
    return per_rank


def gather_objects(local: list, dst: Optional[int] = None) -> Optional[list]:
    """All ranks' lists concatenated in rank order — on every rank by default (all_gather_object), or only on rank
    `dst` when given (gather_object; the other ranks get None, so misuse fails loudly). Must be called on all ranks."""
    per_rank = _gather_per_rank(local, dst)
    return None if per_rank is None else [item for part in per_rank for item in part]


def _sort_key(value: Any) -> tuple:
    """Orders ids of mixed types deterministically: numbers by value, then everything else by type name and str."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, "", value)
    return (1, type(value).__name__, str(value))


def _same_record(a: Any, b: Any) -> bool:
    """Equal content, treating NaN scores as equal to themselves (`nan != nan` would look like a conflict)."""
    return a == b or repr(a) == repr(b)


def gather_by_id(records: list[Mapping], key: str = "id", dst: Optional[int] = None) -> Optional[list[Mapping]]:
    """Merge every rank's result records into one list sorted by `record[key]`, keeping one copy of records that
    several ranks (or one) produced identically; two different records with one id are an error naming both ranks.
    `dst` as in `gather_objects`."""
    per_rank = _gather_per_rank(records, dst)
    if per_rank is None:
        return None
    merged: dict[Any, tuple[int, Mapping]] = {}
    for rank, part in enumerate(per_rank):
        for record in part:
            if not isinstance(record, Mapping) or key not in record:
                raise KeyError(f"rank {rank} produced a result without the id key {key!r}: {record!r}")
            rid = record[key]
            if rid in merged and not _same_record(merged[rid][1], record):
                first_rank, first = merged[rid]
                raise ValueError(f"id {rid!r} has different results on rank {first_rank} ({first!r}) and rank "
                                 f"{rank} ({record!r}); each sample must be evaluated once, deterministically")
            merged.setdefault(rid, (rank, record))
    return [merged[rid][1] for rid in sorted(merged, key=_sort_key)]
