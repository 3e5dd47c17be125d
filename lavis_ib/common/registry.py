"""One registry for every kind of pluggable component (model, builder, converter, processor, task, runner,
lr_scheduler, metric).

Components register themselves by name with a decorator; lookups of an unknown name raise a `KeyError` that
lists the known names and the closest match, and registering a name twice is an error. Unlike LAVIS's registry
this one holds no global state or paths (see `lavis_ib.common.paths`).
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
from typing import Callable, Iterator, TypeVar

from lavis_ib.common.errors import UserError

T = TypeVar("T")

KINDS = ("model", "builder", "converter", "processor", "task", "runner", "lr_scheduler", "metric")

# The modules whose import registers each kind's components. A registry imports them on its first lookup, so
# `import lavis_ib` stays light (no torch for the converter CLI) and a lookup still sees every component.
PROVIDERS: dict[str, tuple[str, ...]] = {
    "model": ("lavis_ib.models",),
    "builder": ("lavis_ib.datasets.builders",),
    "converter": ("lavis_ib.datasets.converters", "lavis_ib.datasets.synthetic"),
    "processor": ("lavis_ib.processors",),
    "metric": ("lavis_ib.metrics",),
    "task": ("lavis_ib.tasks",),
    "runner": ("lavis_ib.runners",),
    "lr_scheduler": ("lavis_ib.runners.optim",),
}


def closest_match(name: str, candidates) -> str | None:
    """The candidate most similar to `name` (difflib ratio ≥ 0.5), or None."""
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.5)
    return matches[0] if matches else None


def unknown_name_message(kind: str, name: str, known, scope: str = "") -> str:
    """The error text for a miss: what was asked for (`scope`: whose, e.g. an architecture), what exists, and the
    likely intended name."""
    known = sorted(known)
    hint = closest_match(name, known)
    of = f" of {scope}" if scope else ""
    text = f"unknown {kind} {name!r}{of}; known {kind}s{of}: {', '.join(known) or '(none)'}"
    return text + (f"; did you mean {hint!r}?" if hint else "")


class UnknownNameError(UserError, KeyError):
    """A name (component, model type, split) that is not known; the message lists the known ones."""


class Registry:
    """Name → object map for one kind of component, with strict registration and helpful misses."""

    def __init__(self, kind: str, providers: tuple[str, ...] = ()):
        self.kind = kind
        self._providers = providers
        self._entries: dict[str, object] = {}

    @property
    def entries(self) -> dict[str, object]:
        """Every registered entry, after importing the provider modules (once they all imported without error)."""
        for module in self._providers:
            importlib.import_module(module)
        self._providers = ()
        return self._entries

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering its target under `name`; a second registration of the same name raises."""

        def decorate(obj: T) -> T:
            if name in self._entries:
                raise KeyError(f"{self.kind} {name!r} is already registered (to {self._entries[name]!r})")
            self._entries[name] = obj
            return obj

        return decorate

    def get(self, name: str):
        """The object registered as `name`; `KeyError` naming the known names and closest match otherwise."""
        try:
            return self.entries[name]
        except KeyError:
            raise UnknownNameError(unknown_name_message(self.kind, name, self.entries)) from None

    def name_of(self, obj: object) -> str | None:
        """The name `obj` is registered under, or None."""
        return next((name for name, entry in self.entries.items() if entry is obj), None)

    def list(self, pattern: str = "*") -> list[str]:
        """Sorted registered names matching a shell-style pattern."""
        return sorted(n for n in self.entries if fnmatch.fnmatch(n, pattern))

    def __contains__(self, name: str) -> bool:
        return name in self.entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.list())

    def __len__(self) -> int:
        return len(self.entries)


class _Registries:
    """The set of per-kind registries, with LAVIS-style `register_model` / `get_model_class` spellings."""

    def __init__(self):
        self.kinds = {kind: Registry(kind, PROVIDERS.get(kind, ())) for kind in KINDS}

    def __getitem__(self, kind: str) -> Registry:
        if kind not in self.kinds:
            raise UnknownNameError(unknown_name_message("registry kind", kind, self.kinds))
        return self.kinds[kind]

    def __getattr__(self, attr: str):
        for prefix, suffix in (("register_", ""), ("get_", "_class"), ("list_", "s")):
            if attr.startswith(prefix) and attr.endswith(suffix):
                kind = attr[len(prefix) : len(attr) - len(suffix)]
                if kind in KINDS:
                    registry = self.kinds[kind]
                    return {"register_": registry.register, "get_": registry.get, "list_": registry.list}[prefix]
        raise AttributeError(attr)


registry = _Registries()
