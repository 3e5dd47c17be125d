"""Resolving weight locations (local path, http(s) URL with cached download, HF hub id) and safe reads.

Nothing here downloads unless a caller asks for a URL that is not cached yet; a missing local file is an error
that names the config key that pointed at it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

from lavis_ib.common.paths import cache_root


class WeightNotFoundError(FileNotFoundError):
    """A configured weight location does not exist; the message names the config key and the path tried."""


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
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as tmp, urllib.request.urlopen(url) as resp:
            shutil.copyfileobj(resp, tmp)
        os.replace(tmp.name, target)
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


def resolve_dir_or_hub_id(location: str, key: str) -> str:
    """A local directory path, or an HF hub id passed through for transformers; error naming `key` otherwise."""
    path = Path(location).expanduser()
    if path.is_dir():
        return str(path)
    if looks_like_hub_id(location):
        return str(location)
    raise WeightNotFoundError(f"model.{key}: no directory at {str(path)!r} and it is not a hub id")
