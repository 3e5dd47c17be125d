"""The processor base class and its config mechanism: a processor's `__init__` signature is its config schema.

Each processor declares its accepted config keys and their defaults once, as keyword parameters of `__init__`;
`from_config` reads that signature to reject unknown keys (naming the closest valid one) before constructing.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

from lavis_ib.common.registry import closest_match

_IGNORED_KEYS = ("name",)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A plain dict from None, a mapping or an OmegaConf node (resolved, nested containers made plain)."""
    if cfg is None:
        return {}
    if isinstance(cfg, DictConfig):
        return dict(OmegaConf.to_container(cfg, resolve=True))
    if isinstance(cfg, Mapping):
        return dict(cfg)
    raise TypeError(f"a processor config must be a mapping or None, got {type(cfg).__name__}")


class BaseProcessor:
    """The identity processor, and the base of every processor: subclasses declare config keys in `__init__`."""

    def __call__(self, item: Any, generator: Any = None) -> Any:
        """Return `item` unchanged (visual processors take the per-sample `generator` their random steps draw from)."""
        return item

    @classmethod
    def config_defaults(cls) -> dict[str, Any]:
        """The accepted config keys and their defaults, read from the `__init__` signature."""
        defaults = {}
        for param in inspect.signature(cls.__init__).parameters.values():
            if param.name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            defaults[param.name] = None if param.default is param.empty else param.default
        return defaults

    @classmethod
    def from_config(cls, cfg: Any = None) -> "BaseProcessor":
        """Build from a config (dict/OmegaConf/None); `name` is ignored and an unknown key raises ValueError."""
        options = {k: v for k, v in config_to_dict(cfg).items() if k not in _IGNORED_KEYS}
        valid = cls.config_defaults()
        for key in options:
            if key not in valid:
                hint = closest_match(key, valid)
                suggestion = f"did you mean {hint!r}? " if hint else ""
                known = ", ".join(valid) or "(none)"
                raise ValueError(f"{cls.__name__}: unknown config key {key!r}; {suggestion}valid keys: {known}")
        return cls(**options)

    @classmethod
    def build(cls, **options: Any) -> "BaseProcessor":
        """LAVIS's spelling: build from keyword options, validated like a config."""
        return cls.from_config(options)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
