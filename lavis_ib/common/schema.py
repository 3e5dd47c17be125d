"""Config schemas as dataclasses: build them from plain dicts and reject unknown keys with a close-match hint.

Every component declares its accepted keys once, as a dataclass; YAML layers are checked against it before they
are merged, so an error can name the file that introduced the bad key.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Mapping

from lavis_ib.common.registry import closest_match


class ConfigError(ValueError):
    """A config key or value is invalid; the message names the source file and the dotted key."""


def _field_types(schema: type) -> dict[str, Any]:
    hints = typing.get_type_hints(schema)
    return {f.name: hints[f.name] for f in dataclasses.fields(schema)}


def _nested_schema(annotation: Any) -> type | None:
    """The dataclass type behind an annotation like `VisionConfig` or `Optional[VisionConfig]`, if any."""
    if dataclasses.is_dataclass(annotation):
        return annotation
    for arg in typing.get_args(annotation):
        if dataclasses.is_dataclass(arg):
            return arg
    return None


def check_keys(node: Mapping, schema: type, source: str, prefix: str) -> None:
    """Raise `ConfigError` for the first key of `node` (recursively) that `schema` does not declare."""
    types = _field_types(schema)
    for key, value in node.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if key not in types:
            hint = closest_match(str(key), types)
            suggestion = f"; did you mean '{prefix + '.' if prefix else ''}{hint}'?" if hint else ""
            raise ConfigError(f"{source}: unknown key '{dotted}'{suggestion} (valid keys: {', '.join(sorted(types))})")
        nested = _nested_schema(types[key])
        if nested is not None and isinstance(value, Mapping):
            check_keys(value, nested, source, dotted)


def from_dict(schema: type, node: Mapping, source: str = "config", prefix: str = ""):
    """Instantiate `schema` from `node` (validated first); nested dataclass fields are built recursively."""
    check_keys(node, schema, source, prefix)
    types = _field_types(schema)
    kwargs = {}
    for key, value in node.items():
        nested = _nested_schema(types[key])
        if nested is not None and isinstance(value, Mapping):
            value = from_dict(nested, value, source, f"{prefix}.{key}" if prefix else key)
        kwargs[key] = value
    missing = [f.name for f in dataclasses.fields(schema) if f.name not in kwargs and _is_required(f)]
    if missing:
        where = f"{prefix}." if prefix else ""
        raise ConfigError(f"{source}: missing required key(s) {', '.join(where + m for m in missing)}")
    return schema(**kwargs)


def _is_required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def to_dict(instance) -> dict:
    """A plain nested dict of a schema instance."""
    return dataclasses.asdict(instance)
