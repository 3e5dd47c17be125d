"""Resolving weight locations (local path, http(s) URL with cached download, HF hub id) and safe reads/writes.

Nothing here downloads unless a caller asks for a URL or hub id that is not cached yet; a missing local file is an
error that names the config key that pointed at it. Hub ids resolve to a snapshot directory in `cache_root()`, and
an unreachable hub (or `HF_HUB_OFFLINE=1` without a cached copy) fails within seconds naming the key, never after
minutes of retries inside transformers. Written files go through a temporary file in the target folder and a rename.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import os
import shutil
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lavis_ib.common.errors import UserError
from lavis_ib.common.paths import cache_root


@dataclass(frozen=True)
class HubFiles:
    """What a hub snapshot fetches for one use (`fetch` patterns) and what a cached one must hold (`required`)."""

    fetch: tuple[str, ...]
    required: tuple[str, ...]


# Tokenizer files only, or a model's config, weights and tokenizer (pickled `*.bin` only where no safetensors exist).
HUB_TOKENIZER_PATTERNS = HubFiles(
    fetch=("tokenizer*", "special_tokens_map.json", "added_tokens.json", "*.model", "vocab.*", "merges.txt"),
    required=("tokenizer*", "*.model", "vocab.*"))
HUB_WEIGHT_PATTERNS = HubFiles(fetch=("*.json", "*.safetensors", "*.model", "*.txt"),
                               required=("*.safetensors", "*.bin"))
HUB_PROBE_TIMEOUT_S = 10.0
DOWNLOAD_TIMEOUT_S = 60.0  # per socket operation, not for the whole download


class WeightNotFoundError(UserError, FileNotFoundError):
    """A configured weight location does not exist; the message names the config key and the path tried."""


class HubUnavailableError(WeightNotFoundError):
    """A hub id is configured but the hub cannot be reached (or is disabled) and no cached copy exists."""


class WeightMismatchError(UserError, KeyError):
    """A weights file whose tensor names do not fit the model (missing trainable tensors, unknown keys)."""


class FileFormatError(UserError, ValueError):
    """A file exists but does not hold what it should; the message names the file, what it holds and what was expected."""


def is_url(location: str) -> bool:
    return urllib.parse.urlparse(str(location)).scheme in ("http", "https")


def looks_like_hub_id(location: str) -> bool:
    """`name` or `org/name`, not a URL and not an existing path — how configs name HF hub checkpoints."""
    text = str(location)
    return not is_url(text) and text.count("/") <= 1 and not text.startswith((".", "/", "~")) and not Path(text).exists()


def cached_download(url: str, sha256: str | None = None) -> Path:
    """Download `url` once into `cache_root()/downloads` (atomically), verifying `sha256` when known."""
    target = cache_root() / "downloads" / Path(urllib.parse.urlparse(url).path).name
    if not target.exists():
        with atomic_write_path(target) as tmp, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as resp, \
                open(tmp, "wb") as out:
            shutil.copyfileobj(resp, out)
    if sha256 and file_sha256(target) != sha256:
        raise ValueError(f"checksum mismatch for {target} (from {url}): expected sha256 {sha256}")
    return target


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_file(location: str, key: str, sha256: str | None = None) -> Path:
    """A local file for `location` (downloading URLs into the cache); `WeightNotFoundError` naming `key` if absent."""
    if is_url(location):
        return cached_download(location, sha256)
    path = Path(location).expanduser()
    if not path.is_file():
        raise WeightNotFoundError(f"model.{key}: no file at {str(path)!r} (resolved to {str(path.resolve())!r})")
    return path


def resolve_dir_or_hub_id(location: str, key: str, files: HubFiles = HUB_WEIGHT_PATTERNS) -> str:
    """A local directory: `location` itself, or the cached hub snapshot of a hub id; error naming `key` otherwise.

    A path starting with `.`, `/` or `~` is always local and never sent to the hub.
    """
    path = Path(location).expanduser()
    if path.is_dir():
        return str(path)
    if looks_like_hub_id(location):
        return hub_snapshot(str(location), key, files)
    raise WeightNotFoundError(f"model.{key}: no directory at {str(location)!r} (resolved to {str(path.resolve())!r}); "
                              f"a path starting with '.', '/' or '~' is local and never looked up on the hub")


def hub_offline() -> bool:
    """Whether `HF_HUB_OFFLINE` (read now, not at import like huggingface_hub) disables hub access."""
    from huggingface_hub import constants

    return constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")


def hub_cache_dir() -> Path:
    """Where hub snapshots are stored: under the configured `cache_root()`, not the user's global HF cache."""
    return cache_root() / "huggingface"


def hub_snapshot(repo_id: str, key: str, files: HubFiles = HUB_WEIGHT_PATTERNS) -> str:
    """The local snapshot directory of hub repo `repo_id` (the files `files` fetches), downloaded once into
    `hub_cache_dir()`; offline or unreachable without a cached copy, a `HubUnavailableError` within seconds."""
    from huggingface_hub import HfApi, constants, snapshot_download
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    cache_dir = hub_cache_dir()
    cached = _cached_snapshot(repo_id, cache_dir, files.required)
    if cached is not None:
        return cached
    advice = (f"to load without network, download it where there is one (`hf download {repo_id} --local-dir DIR`) "
              f"and set model.{key} to that directory (options={{'{key}': 'DIR'}} or --options model.{key}=DIR)")
    if hub_offline():
        raise HubUnavailableError(f"model.{key}: {repo_id!r} is a Hugging Face hub id (there is no local directory of "
                                  f"that name), HF_HUB_OFFLINE is set and {cache_dir} holds no copy; {advice}")
    try:
        info = HfApi().model_info(repo_id, timeout=HUB_PROBE_TIMEOUT_S)
    except (RepositoryNotFoundError, GatedRepoError) as error:
        raise WeightNotFoundError(f"model.{key}: {repo_id!r} is not a local directory, and the hub at "
                                  f"{constants.ENDPOINT} has no accessible repository of that name "
                                  f"({type(error).__name__})") from None
    except Exception as error:  # any transport failure means the same thing here: the hub is not reachable
        raise HubUnavailableError(f"model.{key}: {repo_id!r} is a Hugging Face hub id (there is no local directory of "
                                  f"that name) and the hub at {constants.ENDPOINT} cannot be reached "
                                  f"({type(error).__name__}: {error}); {advice}") from None
    published = [sibling.rfilename for sibling in info.siblings or ()]
    patterns = list(files.fetch)
    if "*.bin" in files.required and not any(name.endswith(".safetensors") for name in published):
        patterns.append("*.bin")  # only pickled weights published: fetch those (transformers reads them weights_only)
    return snapshot_download(repo_id, cache_dir=cache_dir, allow_patterns=patterns, etag_timeout=HUB_PROBE_TIMEOUT_S)


def _cached_snapshot(repo_id: str, cache_dir: Path, required: tuple[str, ...]) -> str | None:
    """The cached snapshot of `repo_id` if it holds a file matching one of the `required` patterns, else None."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        directory = snapshot_download(repo_id, cache_dir=cache_dir, local_files_only=True)
    except LocalEntryNotFoundError:
        return None
    names = [p.name for p in Path(directory).iterdir()]
    return directory if any(fnmatch.fnmatch(name, pattern) for name in names for pattern in required) else None


def describe_content(path: Path, head: bytes | None = None) -> str:
    """What a file looks like, for error messages: empty, text (its start) or binary (its first bytes) and its size."""
    size = path.stat().st_size
    if size == 0:
        return "an empty file (0 bytes)"
    if head is None:
        with open(path, "rb") as handle:
            head = handle.read(64)
    for cut in range(4):  # the sample may end inside a multi-byte UTF-8 character
        try:
            text = head[:len(head) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
        if all(c.isprintable() or c.isspace() for c in text):
            return f"{size} bytes of text starting {text[:40]!r}"
        break
    return f"{size} bytes of binary data starting {head[:16]!r}"


def read_json(path: str | os.PathLike, expected: str) -> Any:
    """The parsed JSON file `path`; a `FileFormatError` naming it, the parse error and `expected` if it is not JSON."""
    path = Path(path)
    text = path.read_bytes()
    try:
        return json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        ends = text.rstrip()[-1:]
        truncated = " (it ends mid-document: truncated?)" if ends and ends not in b"}]" else ""
        raise FileFormatError(f"{path}: not valid JSON ({error}){truncated}; it is {describe_content(path)}; "
                              f"expected {expected}") from None


def default_file_mode() -> int:
    """0666 minus the process umask (0644 typically): the permissions `open(path, "w")` would give a new file."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_write_path(target: str | os.PathLike) -> Iterator[Path]:
    """A temporary path next to `target` to write to; renamed onto `target` (normal permissions) only on success.

    The temporary file lives in the target's folder so the rename is atomic; on an error it is removed and an
    existing `target` is left untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        os.chmod(temporary, default_file_mode())
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
