"""Where lavis_ib finds its shipped files and where it caches downloads.

`library_root` is the installed package (configs and tiny assets ship inside it, so an editable install and a wheel
behave the same). `cache_root` holds downloaded weights and datasets: `$LAVIS_IB_CACHE` if set, else
`~/.cache/lavis_ib` (XDG aware) — never inside the package, unlike LAVIS's hard-coded `/export/...` default.
`data_root` is where relative dataset paths resolve: a configured root when there is one, else the cache root.
"""

from __future__ import annotations

import os
from pathlib import Path

library_root = Path(__file__).resolve().parent.parent
configs_root = library_root / "configs"
assets_root = library_root / "assets"


def cache_root() -> Path:
    """The download/dataset cache directory, resolved from `LAVIS_IB_CACHE` or the user's cache dir."""
    if os.environ.get("LAVIS_IB_CACHE"):
        return Path(os.environ["LAVIS_IB_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "lavis_ib"


def data_root(*configured: str | os.PathLike | None) -> Path:
    """The first configured (not None) root, `~` expanded; `cache_root()` when none is configured."""
    for root in configured:
        if root is not None:
            return Path(root).expanduser()
    return cache_root()


def resolve_under(path: str | os.PathLike, root: Path) -> Path:
    """An absolute or `~` path as is; a relative one joined to `root`."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else root / path
