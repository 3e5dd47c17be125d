"""Config schemas as dataclasses: build them from plain dicts and reject unknown keys with a close-match hint.

Every component declares its accepted keys once, as a dataclass; YAML layers are checked against it before they
are merged, so an error can name the file that introduced the bad key. Values are checked against the field's
annotation (`int`, `float`, `bool`, `str`, `Optional[...]`, `Literal[...]`, lists and dicts) when the schema is
built, so `vit_precision: fp17` or `max_txt_len: "long"` is an error naming the file and key, not a failure later.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Mapping

from lavis_ib.common.errors import UserError
from lavis_ib.common.registry import closest_match


class ConfigError(UserError, ValueError):
    """A config key or value is invalid; the message names the source file and the dotted key."""


def _field_types(schema: type) -> dict[str, Any]:
    hints = typing.get_type_hints(schema)
    return {f.name: hints[f.name] for f in dataclasses.fields(schema)}


def _nested_schema(annotation: Any) -> type | None:
    """The dataclass type behind an annotation like `VisionConfig` or `Optional[VisionConfig]`, if any."""
    if dataclasses.is_dataclass(annotation):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):  # not dict[str, X]: its keys are free
        return next((arg for arg in typing.get_args(annotation) if dataclasses.is_dataclass(arg)), None)
    return None


def check_keys(node: Mapping, schema: type, source: str, prefix: str) -> None:
    """Raise `ConfigError` for the first key of `node` (recursively) that `schema` does not declare; a key the
    schema lists in its `RETIRED` mapping (accepted elsewhere, meaningless here) gets that entry's remedy instead."""
    types = _field_types(schema)
    retired = getattr(schema, "RETIRED", {})
    for key, value in node.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if key in retired:
            raise ConfigError(f"{source}: {dotted}: {retired[key]}")
        if key not in types:
            hint = closest_match(str(key), types)
            suggestion = f"; did you mean '{prefix + '.' if prefix else ''}{hint}'?" if hint else ""
            raise ConfigError(f"{source}: unknown key '{dotted}'{suggestion} (valid keys: {', '.join(sorted(types))})")
        nested = _nested_schema(types[key])
        if nested is not None and isinstance(value, Mapping):
            check_keys(value, nested, source, dotted)


def _describe(annotation: Any) -> str:
    """A readable name of an annotation for error messages."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(annotation))
    if origin is typing.Union or origin is types.UnionType:
        return " or ".join(_describe(a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", str(annotation))


def _matches(annotation: Any, value: Any) -> bool:
    """Whether `value` (plain YAML data) fits `annotation`; an int is accepted where a float is expected."""
    if annotation is Any:
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return value in typing.get_args(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return any(_matches(arg, value) for arg in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if dataclasses.is_dataclass(annotation):
        return isinstance(value, (Mapping, annotation))
    container = origin or annotation
    if container in (list, tuple, typing.Sequence):
        return isinstance(value, (list, tuple))
    if container in (dict, typing.Mapping):
        return isinstance(value, Mapping)
    return isinstance(value, annotation) if isinstance(annotation, type) else True


def check_value(annotation: Any, value: Any, source: str, dotted: str) -> Any:
    """`value` if it fits `annotation` (an int widened to float), else a `ConfigError` naming key and expectation."""
    if not _matches(annotation, value):
        raise ConfigError(f"{source}: '{dotted}' must be {_describe(annotation)}, got {value!r}")
    if annotation is float and isinstance(value, int):
        return float(value)
    return value


def check_node(node: Mapping, schema: type, source: str, prefix: str) -> None:
    """Keys and value types of one (partial) config layer, so an error names the layer that set the value."""
    check_keys(node, schema, source, prefix)
    types_ = _field_types(schema)
    for key, value in node.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        nested = _nested_schema(types_[key])
        if nested is not None and isinstance(value, Mapping):
            check_node(value, nested, source, dotted)
        else:
            check_value(types_[key], value, source, dotted)


def from_dict(schema: type, node: Mapping, source: str = "config", prefix: str = ""):
    """Instantiate `schema` from `node` (keys and values validated first); nested dataclasses built recursively.

    A `ValueError` raised by the schema's own `__post_init__` checks is re-raised as a `ConfigError` naming `source`.
    """
    check_keys(node, schema, source, prefix)
    types_ = _field_types(schema)
    kwargs = {}
    for key, value in node.items():
        dotted = f"{prefix}.{key}" if prefix else key
        nested = _nested_schema(types_[key])
        if nested is not None and isinstance(value, Mapping):
            value = from_dict(nested, value, source, dotted)
        else:
            value = check_value(types_[key], value, source, dotted)
        kwargs[key] = value
    missing = [f.name for f in dataclasses.fields(schema) if f.name not in kwargs and _is_required(f)]
    if missing:
        where = f"{prefix}." if prefix else ""
        raise ConfigError(f"{source}: missing required key(s) {', '.join(where + m for m in missing)}")
    try:
        return schema(**kwargs)
    except ConfigError:
        raise
    except ValueError as error:
        raise ConfigError(f"{source}: {error}") from error


def _is_required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def to_dict(instance) -> dict:
    """A plain nested dict of a schema instance."""
    return dataclasses.asdict(instance)
