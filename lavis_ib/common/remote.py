"""Reading whole files named by fsspec URLs (`s3://`, `gs://`, `hf://`, `https://`, ...) or `pipe:` commands, with a
bounded number of tries.

A file is streamed once into a spooled temporary file (memory up to `SPOOL_BYTES`, then disk) and hashed on the way,
so the caller can check its size and sha256 before using a byte of it, and a failed try starts over cleanly. A
dropped connection, a timeout, a server error (5xx, 408, 429), a short read and a failing `pipe:` command are tried
again after a short, doubling pause; after the last try a `RemoteReadError` names the URL, the tries and the last
error. A file that is not there (404) or not readable (403) fails at once. `pipe:<command>` reads the command's
stdout, webdataset's convention.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import BinaryIO, Iterator

from lavis_ib.common.errors import UserError

logger = logging.getLogger(__name__)

PIPE = "pipe:"
SPOOL_BYTES = 64 << 20
CHUNK_BYTES = 1 << 20
READ_TIMEOUT_S = 60.0  # per socket read or connect, not for the whole file: a stalled server is a failed try
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+://")  # two letters at least, so `C://` stays a Windows path
_PERMANENT_STATUS = range(400, 500)
_RETRIED_STATUS = (408, 429)


def is_remote(location: object) -> bool:
    """Whether `location` is an fsspec URL (`scheme://...`) or a `pipe:` command rather than a local path."""
    text = str(location)
    return text.startswith(PIPE) or _URL.match(text) is not None


@dataclass(frozen=True)
class Retry:
    """How hard to try a remote read: `tries` in all, pausing `backoff_s`, then twice that, ... between them."""

    tries: int = 3
    backoff_s: float = 0.5

    def __post_init__(self):
        if not isinstance(self.tries, int) or isinstance(self.tries, bool) or self.tries < 1:
            raise ValueError(f"tries must be an integer ≥ 1, got {self.tries!r}")
        if not isinstance(self.backoff_s, (int, float)) or isinstance(self.backoff_s, bool) or self.backoff_s < 0:
            raise ValueError(f"backoff_s must be a number ≥ 0, got {self.backoff_s!r}")

    def pause(self, failed: int) -> float:
        """Seconds to wait after the `failed`-th failed try."""
        return self.backoff_s * 2 ** (failed - 1)


class RemoteReadError(UserError, OSError):
    """A remote file could not be read in the configured number of tries; the message names the URL and the tries."""


class MissingBackendError(UserError, ImportError):
    """The fsspec filesystem of a URL's scheme is not installed (s3fs for `s3://`, aiohttp for `https://`, ...)."""


class IncompleteRead(ConnectionError):
    """The stream ended before the number of bytes the caller expected: a connection closed early."""


class PipeCommandError(ConnectionError):
    """A `pipe:` command exited with a non-zero status (its stderr's end is in the message)."""


@dataclass(frozen=True)
class Fetched:
    """A fetched file: its content (a binary file positioned at the start), size and sha256."""

    file: BinaryIO
    size: int
    sha256: str


def fetch(url: str, retry: Retry = Retry(), expected_bytes: int | None = None) -> Fetched:
    """The whole content of `url`, tried up to `retry.tries` times; fewer than `expected_bytes` is a failed try.

    A missing file raises `FileNotFoundError` at once; a file still failing after the last try `RemoteReadError`.
    """
    for attempt in itertools.count(1):
        try:
            return _fetch_once(url, expected_bytes)
        except Exception as error:
            if not is_transient(error):
                raise
            if attempt == retry.tries:
                raise RemoteReadError(f"{url}: could not be read in {retry.tries} tries (last error: "
                                      f"{type(error).__name__}: {error}); check the connection, or allow more "
                                      f"tries (build_info.annotations.<split>.tries)") from error
            logger.warning("%s: read failed (%s: %s); try %d of %d in %.2f s", url, type(error).__name__, error,
                           attempt + 1, retry.tries, retry.pause(attempt))
            time.sleep(retry.pause(attempt))


def is_transient(error: BaseException) -> bool:
    """Whether a failed read is worth another try: a connection, timeout or server problem, not a missing file."""
    if isinstance(error, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, UserError)):
        return False
    status = getattr(error, "status", None)  # aiohttp.ClientResponseError: the HTTP status
    if isinstance(status, int) and status in _PERMANENT_STATUS and status not in _RETRIED_STATUS:
        return False
    return isinstance(error, (OSError, TimeoutError, EOFError, *_client_errors()))


def _client_errors() -> tuple[type, ...]:
    """aiohttp's transport errors (a dropped body is a `ClientPayloadError`, which is no `OSError`), when installed."""
    try:
        from aiohttp import ClientError
    except ImportError:
        return ()
    return (ClientError,)


def _fetch_once(url: str, expected_bytes: int | None) -> Fetched:
    """One try: `url` streamed into a spool and hashed on the way; a short stream is an `IncompleteRead`."""
    digest, size = hashlib.sha256(), 0
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)
    try:
        with open_stream(url, expected_bytes) as stream:
            while block := stream.read(CHUNK_BYTES):
                digest.update(block)
                spool.write(block)
                size += len(block)
        if expected_bytes is not None and size < expected_bytes:
            raise IncompleteRead(f"the stream ended after {size:,} of {expected_bytes:,} bytes")
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return Fetched(spool, size, digest.hexdigest())


@contextlib.contextmanager
def open_stream(url: str, expected_bytes: int | None = None) -> Iterator[BinaryIO]:
    """A binary stream of `url`: a `pipe:` command's stdout, or the fsspec file (HTTP: one streaming GET)."""
    if url.startswith(PIPE):
        with _pipe_stdout(url[len(PIPE):]) as stream:
            yield stream
        return
    with _fsspec_open(url, expected_bytes) as stream:
        yield stream


def _fsspec_open(url: str, expected_bytes: int | None) -> BinaryIO:
    import fsspec
    from fsspec.utils import get_protocol

    protocol = get_protocol(url)
    options, open_options = {}, {}
    if protocol in ("http", "https"):
        # Stream with one GET: no HEAD when the size is known, no range requests (which not every server honours).
        options = {"client_kwargs": {"timeout": _http_timeout()}}
        open_options = {"block_size": 0, "size": expected_bytes}
    try:
        fs, path = fsspec.core.url_to_fs(url, **options)
    except ImportError as error:
        extra = " (pip install 'lavis_ib[remote]' installs it for http/https)" if protocol in ("http", "https") else ""
        raise MissingBackendError(f"{url}: reading {protocol}:// URLs needs a package that is not installed: "
                                  f"{error}{extra}") from None
    except ValueError as error:
        raise MissingBackendError(f"{url}: fsspec has no filesystem for {protocol}:// ({error})") from None
    return fs.open(path, "rb", **open_options)


def _http_timeout():
    from aiohttp import ClientTimeout

    return ClientTimeout(total=None, sock_connect=READ_TIMEOUT_S, sock_read=READ_TIMEOUT_S)


@contextlib.contextmanager
def _pipe_stdout(command: str) -> Iterator[BinaryIO]:
    """The stdout of shell `command`; a non-zero exit after it ends is a `PipeCommandError` with its stderr's end."""
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(command, shell=True, stdout=subprocess.PIPE, stderr=stderr)
        try:
            yield process.stdout
        finally:
            process.stdout.close()
            status = process.wait()
        if status != 0:
            stderr.seek(0)
            tail = stderr.read()[-500:].decode("utf-8", "replace").strip()
            raise PipeCommandError(f"command {command!r} exited with status {status}"
                                   + (f": {tail}" if tail else " (nothing on stderr)"))
