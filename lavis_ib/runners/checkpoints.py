"""Training checkpoints of the iteration-based runner, written so that a killed writer never leaves a broken one.

Layout under a job folder::

    <job>/checkpoints/step_<N>/model.safetensors   trainable weights (`model.trainable_state_dict()`)
                              /train_state.pt      optimizer, schedule, scaler, RNG, data position: plain types and
                                                   tensors only, so it loads with `torch.load(weights_only=True)`
                              /meta.json           step, time and caller metadata, for humans
    <job>/checkpoints/latest                       text: the last complete `step_<N>`
    <job>/checkpoints/best                         text: the best `step_<N>`

A checkpoint is written into `.step_<N>.tmp-<pid>`, fsynced and renamed into place before `latest` is rewritten
(atomically), so `latest` always names a complete checkpoint; readers ignore the dot-directories and the next save
removes those a dead writer left. Only one process (rank 0) should write a store.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from lavis_ib.common.io import FileFormatError, atomic_write_path, default_file_mode, describe_content

log = logging.getLogger(__name__)

MODEL_FILE = "model.safetensors"
TRAIN_STATE_FILE = "train_state.pt"
META_FILE = "meta.json"
LATEST_FILE = "latest"
BEST_FILE = "best"
STEP_DIR = re.compile(r"step_(\d+)")
TEMP_DIR = re.compile(r"\.step_(\d+)\.(?:tmp|old)-(\d+)")
EXPECTED = f"a checkpoint directory step_<N> holding {MODEL_FILE} and {TRAIN_STATE_FILE}"

# Types `torch.load(weights_only=True)` reads back (exact types: subclasses such as defaultdict are refused).
WEIGHTS_ONLY_TYPES = (type(None), bool, int, float, complex, str, bytes, bytearray, torch.dtype, torch.device,
                      torch.Size, torch.Tensor, torch.nn.Parameter)
WEIGHTS_ONLY_CONTAINERS = (dict, OrderedDict, list, tuple, set)


def step_dir_name(step: int) -> str:
    return f"step_{step}"


def is_complete(directory: Path) -> bool:
    """Whether `directory` holds both checkpoint files (what a finished save leaves)."""
    return (directory / MODEL_FILE).is_file() and (directory / TRAIN_STATE_FILE).is_file()


def check_weights_only(obj: Any, where: str = "train_state") -> None:
    """Raise `TypeError` naming the first value (by its key path) that `torch.load(weights_only=True)` would refuse.

    Checked before writing, so a bad train state fails when saved rather than when a resumed run tries to read it.
    """
    kind = type(obj)
    if kind in WEIGHTS_ONLY_TYPES:
        return
    if kind not in WEIGHTS_ONLY_CONTAINERS:
        raise TypeError(f"{where} is a {kind.__module__}.{kind.__qualname__}, which torch.load(weights_only=True) "
                        f"cannot read back; store plain Python types or tensors (e.g. int(x), x.tolist(), "
                        f"torch.as_tensor(x))")
    if isinstance(obj, dict):
        for key, value in obj.items():
            check_weights_only(key, f"{where} key {key!r}")
            check_weights_only(value, f"{where}[{key!r}]")
    else:
        for index, value in enumerate(obj):
            check_weights_only(value, f"{where}[{index}]")


def portable_tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`state` as safetensors accepts it: detached, on the CPU, contiguous, and no two tensors sharing storage."""
    seen: set[int] = set()
    result = {}
    for name, tensor in state.items():
        if not isinstance(name, str) or not isinstance(tensor, torch.Tensor):
            raise TypeError(f"model_state[{name!r}]: expected a str name and a tensor, got {type(name).__name__} → "
                            f"{type(tensor).__name__}")
        tensor = tensor.detach().cpu().contiguous()
        pointer = tensor.untyped_storage().data_ptr()
        if pointer in seen:
            tensor = tensor.clone()  # shares memory with an earlier tensor (tied or a view): save its own copy
        elif pointer:
            seen.add(pointer)
        result[name] = tensor
    return result


def fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def fsync_dir(path: Path) -> None:
    """Make a rename or new entry in `path` durable (a no-op where directories cannot be opened, e.g. Windows)."""
    try:
        handle = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class CheckpointStore:
    """The checkpoints of one job: `root` is `<job>/checkpoints`; `keep_last` step dirs are kept (0: all)."""

    def __init__(self, root: str | os.PathLike, keep_last: int = 3):
        if not isinstance(keep_last, int) or isinstance(keep_last, bool) or keep_last < 0:
            raise ValueError(f"keep_last must be an integer ≥ 0 (0 keeps every checkpoint), got {keep_last!r}")
        self.root = Path(root)
        self.keep_last = keep_last

    def step_dir(self, step: int) -> Path:
        return self.root / step_dir_name(step)

    def steps(self) -> list[int]:
        """The steps of the complete checkpoints, ascending."""
        if not self.root.is_dir():
            return []
        found = (STEP_DIR.fullmatch(p.name) for p in self.root.iterdir() if p.is_dir())
        return sorted(int(m.group(1)) for m in found if m and is_complete(self.root / m.group(0)))

    # writing

    def save(self, step: int, model_state: dict[str, torch.Tensor], train_state: dict,
             metadata: dict | None = None) -> Path:
        """Write checkpoint `step` atomically, point `latest` at it, prune old ones; return its directory."""
        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            raise ValueError(f"checkpoint step must be an integer ≥ 0, got {step!r}")
        check_weights_only(train_state)
        meta = json.dumps({"step": step, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "unix_time": time.time(),
                           "metadata": metadata or {}}, indent=2)  # fails here, before any write, if not JSON
        tensors = portable_tensors(model_state)
        self.root.mkdir(parents=True, exist_ok=True)
        self.remove_leftovers()
        staging = self.root / f".{step_dir_name(step)}.tmp-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        save_file(tensors, str(staging / MODEL_FILE), metadata={"format": "pt", "step": str(step)})
        with open(staging / TRAIN_STATE_FILE, "wb") as handle:
            torch.save(train_state, handle)
        (staging / META_FILE).write_text(meta + "\n", encoding="utf-8")
        for name in (MODEL_FILE, TRAIN_STATE_FILE, META_FILE):
            os.chmod(staging / name, default_file_mode())  # safetensors writes 0600: colleagues must read weights
            fsync_file(staging / name)
        fsync_dir(staging)
        target = self._move_into_place(staging, step)
        self._write_pointer(LATEST_FILE, step)
        self.prune()
        return target

    def _move_into_place(self, staging: Path, step: int) -> Path:
        """Rename `staging` to `step_<N>`; an existing `step_<N>` is first renamed aside, then deleted."""
        target = self.step_dir(step)
        aside = None
        if target.exists():
            aside = self.root / f".{target.name}.old-{os.getpid()}"
            shutil.rmtree(aside, ignore_errors=True)
            os.replace(target, aside)
        os.replace(staging, target)
        fsync_dir(self.root)
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
        return target

    def _write_pointer(self, name: str, step: int) -> None:
        """Atomically (and durably) make the pointer file `name` read `step_<N>`."""
        with atomic_write_path(self.root / name) as temporary:
            with open(temporary, "w", encoding="utf-8") as handle:
                handle.write(step_dir_name(step) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
        fsync_dir(self.root)

    def mark_best(self, step: int) -> None:
        """Record checkpoint `step` (which must exist) as the best; the previous best becomes prunable."""
        directory = self.step_dir(step)
        if not is_complete(directory):
            raise FileNotFoundError(f"cannot mark step {step} as best: {directory} is not {EXPECTED} (save it first)")
        self._write_pointer(BEST_FILE, step)
        self.prune()

    def remove_leftovers(self) -> list[Path]:
        """Delete the `.step_*.tmp-<pid>` / `.old-<pid>` directories of writers that are gone; return them."""
        removed = []
        for path in self.root.iterdir() if self.root.is_dir() else ():
            match = TEMP_DIR.fullmatch(path.name)
            if match and path.is_dir():
                pid = int(match.group(2))
                if pid == os.getpid() or not process_alive(pid):
                    shutil.rmtree(path, ignore_errors=True)
                    removed.append(path)
        if removed:
            log.info("removed %d unfinished checkpoint write(s): %s", len(removed), ", ".join(p.name for p in removed))
        return removed

    def prune(self) -> list[Path]:
        """Delete step dirs beyond the `keep_last` highest steps, never the ones `latest` or `best` name."""
        if self.keep_last == 0 or not self.root.is_dir():
            return []
        found = sorted(int(m.group(1)) for m in (STEP_DIR.fullmatch(p.name) for p in self.root.iterdir()) if m)
        protected = {self._pointer(LATEST_FILE), self._pointer(BEST_FILE)}
        keep = set(found[-self.keep_last:]) | {step for step in protected if step is not None}
        removed = [self.step_dir(step) for step in found if step not in keep]
        for path in removed:
            shutil.rmtree(path, ignore_errors=True)
        return removed

    # reading

    def _pointer(self, name: str) -> int | None:
        """The step a pointer file names, or None if it is absent or does not hold `step_<N>`."""
        path = self.root / name
        try:
            text = path.read_text(encoding="utf-8").strip()
        except (FileNotFoundError, NotADirectoryError, UnicodeDecodeError):
            return None
        match = STEP_DIR.fullmatch(text)
        if not match:
            log.warning("%s does not name a checkpoint (expected a line 'step_<N>', found %r); ignoring it", path,
                        text[:60])
            return None
        return int(match.group(1))

    def latest(self) -> Path | None:
        """The checkpoint `latest` names; if that is missing or incomplete, the newest complete one (with a warning)."""
        step = self._pointer(LATEST_FILE)
        if step is not None and is_complete(self.step_dir(step)):
            return self.step_dir(step)
        steps = self.steps()
        fallback = self.step_dir(steps[-1]) if steps else None
        if step is not None:
            log.warning("%s names %s, which is not %s; using %s instead", self.root / LATEST_FILE,
                        step_dir_name(step), EXPECTED, fallback or "nothing (no checkpoint is complete)")
        elif fallback is not None:
            log.warning("%s is missing or unreadable; using the newest complete checkpoint, %s",
                        self.root / LATEST_FILE, fallback)
        return fallback

    def best(self) -> Path | None:
        """The checkpoint `best` names, or None (with a warning if `best` names one that is gone or incomplete)."""
        step = self._pointer(BEST_FILE)
        if step is None:
            return None
        if not is_complete(self.step_dir(step)):
            log.warning("%s names %s, which is not %s; there is no best checkpoint", self.root / BEST_FILE,
                        step_dir_name(step), EXPECTED)
            return None
        return self.step_dir(step)

    def load(self, directory: str | os.PathLike | None = None) -> tuple[dict[str, torch.Tensor], dict]:
        """`(model_state, train_state)` of `directory` (None: this store's latest); see `load_checkpoint`."""
        if directory is None:
            directory = self.latest()
            if directory is None:
                raise FileNotFoundError(f"{self.root}: no checkpoint to load (expected {EXPECTED} in it)")
        return load_checkpoint(directory)


def resolve_checkpoint_dir(directory: str | os.PathLike) -> Path:
    """A checkpoint directory for `directory`: itself, or the latest one of a `checkpoints` root or job folder."""
    path = Path(directory)
    if not path.is_dir():
        raise FileNotFoundError(f"checkpoint directory not found: {path} (expected {EXPECTED}, a job's "
                                f"checkpoints folder or a job folder)")
    if STEP_DIR.fullmatch(path.name) or is_complete(path):
        return path
    root = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    latest = CheckpointStore(root).latest()
    if latest is None:
        raise FileNotFoundError(f"{path} is not a checkpoint: expected {EXPECTED}, or a checkpoints folder whose "
                                f"{LATEST_FILE} names one")
    return latest


def load_checkpoint(directory: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """`(model_state, train_state)` of a checkpoint directory (or the latest of a `checkpoints` root / job folder).

    `train_state.pt` is read with `weights_only=True` onto the CPU. A missing file is a `FileNotFoundError` and a
    damaged one a `FileFormatError`, both naming the file and what was expected.
    """
    path = resolve_checkpoint_dir(directory)
    for name in (MODEL_FILE, TRAIN_STATE_FILE):
        if not (path / name).is_file():
            raise FileNotFoundError(f"{path / name} is missing: expected {EXPECTED} (an interrupted or partly "
                                    f"deleted checkpoint?)")
    return _read_model_file(path / MODEL_FILE), _read_train_state(path / TRAIN_STATE_FILE)


def _read_model_file(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise FileFormatError(f"{path}: not a readable safetensors file ({error}); it is {describe_content(path)}; "
                              f"expected the checkpoint's trainable weights") from None


def _read_train_state(path: Path) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # corrupt zip, truncated pickle, refused global: all mean "not a usable train state"
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise FileFormatError(f"{path}: cannot be read with torch.load(weights_only=True) ({type(error).__name__}: "
                              f"{first_line}); it is {describe_content(path)}; expected the train state dict "
                              f"that CheckpointStore.save wrote") from None
    if not isinstance(state, dict):
        raise FileFormatError(f"{path}: holds a {type(state).__name__}, expected the train state dict")
    return state


# RNG state: every generator a training step draws from, in types that weights_only loading accepts.

def rng_state() -> dict:
    """The states of Python's `random`, NumPy's global generator, torch's CPU generator and (with CUDA) the current
    device's generator: one device per rank, and touching the others would create a CUDA context on each."""
    kind, key, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state = {"python": random.getstate(),
             "numpy": {"kind": str(kind), "key": torch.from_numpy(key.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict) -> None:
    """Restore the generators `rng_state()` captured, exactly; a missing part is a `KeyError` naming it."""
    missing = [key for key in ("python", "numpy", "torch") if key not in state]
    if missing:
        raise KeyError(f"RNG state lacks {', '.join(missing)}; expected the dict rng_state() returns "
                       f"(keys python, numpy, torch and, with CUDA, cuda)")
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = state["numpy"]
    np.random.set_state((numpy_state["kind"], np.asarray(numpy_state["key"], dtype=np.int64).astype(np.uint32),
                         numpy_state["pos"], numpy_state["has_gauss"], numpy_state["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if torch.cuda.is_available():
        if "cuda" in state:
            torch.cuda.set_rng_state(state["cuda"])
        else:
            log.warning("the RNG state has no CUDA generator state (it was saved without CUDA); CUDA's is left as is")
