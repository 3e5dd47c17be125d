"""Optional dependencies: a feature that needs one fails before any work, naming the pip extra that installs it."""

from __future__ import annotations

import importlib.util

from lavis_ib.common.errors import UserError


class MissingExtraError(UserError, ImportError):
    """An optional package a configured feature needs is not installed; the message names the install command."""


def require(module: str, extra: str, feature: str) -> None:
    """Raise `MissingExtraError` unless `module` is importable; `feature` says what needs it (a config key)."""
    if importlib.util.find_spec(module) is None:
        raise MissingExtraError(f"{feature} needs the '{module}' package, which is not installed: "
                                f"pip install -e .[{extra}]  (or pip install {module})")
