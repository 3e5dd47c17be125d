"""A local HTTP server for the remote-shard tests: serves a folder on 127.0.0.1, counts the body bytes it sends per
file, and can drop a file's next responses halfway through the body (Content-Length sent, connection closed)."""

from __future__ import annotations

import functools
import threading
from collections import Counter
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class ShardServer:
    """`with ShardServer(folder) as server:` serves `folder` at `server.url`; `sent[name]` counts body bytes,
    `gets[name]` GET requests (answered or not); `drops[name] = n` cuts the next n responses of `name`
    (`float("inf")`: all of them)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.sent: Counter[str] = Counter()
        self.gets: Counter[str] = Counter()
        self.drops: dict[str, float] = {}
        self._lock = threading.Lock()
        handler = functools.partial(_Handler, self, directory=str(folder))
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def __enter__(self) -> ShardServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def reset(self) -> None:
        with self._lock:
            self.sent.clear()
            self.gets.clear()

    def _respond(self, name: str, body: bytes) -> tuple[bytes, bool]:
        """What to send of `body` for a GET of `name`, and whether the connection is dropped after it."""
        with self._lock:
            drop = self.drops.get(name, 0) > 0
            if drop:
                self.drops[name] -= 1
            sent = body[: len(body) // 2] if drop else body
            self.sent[name] += len(sent)
        return sent, drop


class _Handler(SimpleHTTPRequestHandler):
    def __init__(self, server: ShardServer, *args, **kwargs):
        self.shards = server
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:
        with self.shards._lock:
            self.shards.gets[self.path.lstrip("/")] += 1
        super().do_GET()

    def copyfile(self, source, outputfile) -> None:
        sent, drop = self.shards._respond(self.path.lstrip("/"), source.read())
        outputfile.write(sent)
        if drop:
            self.close_connection = True

    def log_message(self, *args) -> None:  # quiet: the tests assert on the counts instead
        pass
