"""Where a shard set lives: a local `Path`, or a `ShardURL` (an fsspec URL or a `pipe:` command) with the retry
policy of its reads.

A `ShardURL` answers the few questions the shard-set code asks a `Path` — its file `name`, its `parent` (for
messages) and `with_name` (a sibling file of the set) — so one code path finds the manifest and the shards of either.
In a URL the file name is the last path segment (before any `?query`); in a `pipe:` command it is the last word
ending in `.tar` (`pipe:aws s3 cp s3://bucket/train-*.tar -`), which `with_name` replaces by each shard's name and by
the manifest's: the command must print the file it names to stdout.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from lavis_ib.common.errors import UserError
from lavis_ib.common.paths import resolve_under
from lavis_ib.common.remote import PIPE, Retry, is_remote

_PIPE_FILE = re.compile(r"[^\s/'\"]+\.tar(?=$|[\s'\"])")


class LocationError(UserError, ValueError):
    """A shard location that does not name a shard file (or pattern) where one is expected."""


@dataclass(frozen=True)
class ShardURL:
    """A file of a remote shard set: `url`, with its file name at `url[start:end]`, read with `retry`."""

    url: str
    start: int
    end: int
    retry: Retry = Retry()

    @classmethod
    def parse(cls, url: str, retry: Retry = Retry()) -> ShardURL:
        """`url` with its file name located (module docstring); a `pipe:` command naming no `.tar` file is an error."""
        if url.startswith(PIPE):
            matches = list(_PIPE_FILE.finditer(url, len(PIPE)))
            if not matches:
                raise LocationError(f"{url}: a pipe: command must name its shard file, <prefix>-NNNNNN.tar or the "
                                    f"pattern <prefix>-*.tar (e.g. 'pipe:aws s3 cp s3://bucket/train-*.tar -'); the "
                                    f"manifest is read by the same command with that name replaced by "
                                    f"<prefix>.manifest.json")
            return cls(url, *matches[-1].span(), retry)
        end = url.find("?") if "?" in url else len(url)
        return cls(url, url.rfind("/", 0, end) + 1, end, retry)

    @property
    def name(self) -> str:
        return self.url[self.start:self.end]

    @property
    def parent(self) -> str:
        """Where the set lives, for messages: the URL (or command) up to the file name."""
        return self.url[:self.start].rstrip("/")

    def with_name(self, name: str) -> ShardURL:
        """The file `name` of the same set: same folder (or command), same retry policy."""
        url = self.url[:self.start] + name + self.url[self.end:]
        return ShardURL(url, self.start, self.start + len(name), self.retry)

    def __str__(self) -> str:
        return self.url


Location = Path | ShardURL


def as_location(location: str | os.PathLike | ShardURL, retry: Retry = Retry()) -> Location:
    """A `ShardURL` for a URL or `pipe:` command (or one given), else a local `Path`."""
    if isinstance(location, ShardURL):
        return location
    if is_remote(location):
        return ShardURL.parse(str(location), retry)
    return Path(location)


def resolve_location(location: str, root: Path, retry: Retry = Retry()) -> Location:
    """A configured storage location: a URL or `pipe:` command as it is, a local path under `root` (`resolve_under`)."""
    return ShardURL.parse(location, retry) if is_remote(location) else resolve_under(location, root)
