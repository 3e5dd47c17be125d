"""Layered configuration: model default YAML ⊕ dataset default YAMLs ⊕ project YAML ⊕ `--options key=value`.

Each layer is validated against the schema its component declares before merging, so an unknown key is reported
with the file it came from and the closest valid key. Unlike LAVIS, `--options model.model_type=X` really changes
which model default file is loaded.

A project YAML may compose others with a top-level `include: <path>` or `include: [<path>, ...]` (relative to the
including file's folder): the included files are loaded recursively, merged in list order, and the including
file's own content is merged on top. Each file is validated on its own, so an error names the file that set the key.

`model.arch` may be left out: it is inferred from `model.model_type` when exactly one registered architecture has
that type. `--options model.model_type=X` (without `model.arch`) switches to the one architecture that has `X`
when the files' architecture does not.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from omegaconf import DictConfig, ListConfig, OmegaConf

from lavis_ib.common.paths import assets_root, configs_root
from lavis_ib.common.registry import UnknownNameError, closest_match, registry
from lavis_ib.common.run_schema import RunConfig
from lavis_ib.common.schema import ConfigError, check_keys, check_node, from_dict

log = logging.getLogger(__name__)

_register = getattr(OmegaConf, "register_resolver", None) or OmegaConf.register_new_resolver
for _name, _root in (("assets", assets_root), ("configs", configs_root)):
    if not OmegaConf.has_resolver(_name):
        _register(_name, lambda rel, root=_root: str(root / rel))

def load_yaml(path: str | Path, included_by: str | None = None) -> DictConfig:
    """Read a YAML file; a missing file is a `FileNotFoundError` naming it (and the file that included it)."""
    path = Path(path)
    if not path.is_file():
        suffix = f" (included by {included_by})" if included_by else ""
        raise FileNotFoundError(f"config file not found: {path}{suffix}")
    return OmegaConf.load(path)


def parse_options(options: Sequence[str] | None) -> DictConfig:
    """`--options` as a config: `key=value` tokens, or alternating `key value` pairs (LAVIS accepts both)."""
    options = list(options or [])
    if options and "=" not in options[0]:
        if len(options) % 2:
            raise ConfigError(f"--options: odd number of tokens for key/value pairs: {options}")
        options = [f"{k}={v}" for k, v in zip(options[::2], options[1::2])]
    bad = [o for o in options if "=" not in o]
    if bad:
        raise ConfigError(f"--options: expected key=value, got {bad}")
    return OmegaConf.from_dotlist(options)


@dataclass
class TopLevel:
    """Schema of a config file's top level: the sections LAVIS configs use."""

    include: Optional[Union[str, list]] = None  # project files only: other YAMLs merged under this one
    model: Optional[dict] = None
    datasets: Optional[dict] = None
    run: Optional[dict] = None
    preprocess: Optional[dict] = None


def _check_top_level(node: DictConfig, source: str) -> None:
    check_keys(node, TopLevel, source, "")


def _include_paths(node: DictConfig, source: str) -> list[str]:
    """The files `node` (read from `source`) includes, resolved against `source`'s folder, in merge order."""
    if "include" not in node:
        return []
    try:
        value = node.get("include")
        if isinstance(value, (DictConfig, ListConfig)):
            value = OmegaConf.to_container(value, resolve=True)
    except Exception as error:  # an interpolation that does not resolve
        raise ConfigError(f"{source}: 'include' could not be read: {error}") from error
    if value is None:
        return []
    entries = [value] if isinstance(value, str) else value
    if not isinstance(entries, list):
        raise ConfigError(f"{source}: 'include' must be a path or a list of paths, got {value!r}")
    paths = []
    for index, entry in enumerate(entries):
        key = "include" if isinstance(value, str) else f"include[{index}]"
        if not isinstance(entry, str) or not entry.strip():
            raise ConfigError(f"{source}: '{key}' must be a path (a non-empty string), got {entry!r}")
        path = os.path.expanduser(entry)
        if not os.path.isabs(path):
            path = os.path.join(os.path.dirname(source), path)
        paths.append(os.path.normpath(path))
    return paths


def load_project(path: str | Path, _chain: tuple[tuple[str, str], ...] = (),
                 _included_by: str | None = None) -> list[tuple[str, DictConfig]]:
    """A project YAML and, recursively, the files it includes, as `(source, node)` pairs in merge order.

    Included files come first (in list order, each preceded by its own includes), the including file last, so a
    later pair wins when merged. Every file's top level is checked; `include` is removed from the nodes. A missing
    included file is a `FileNotFoundError` naming the includer; an include cycle is a `ConfigError` showing it.
    """
    source = str(path)
    real = os.path.realpath(os.path.expanduser(source))
    if any(real == seen for seen, _ in _chain):
        cycle = " -> ".join([name for _, name in _chain] + [source])
        raise ConfigError(f"include cycle: {cycle}")
    node = load_yaml(source, _included_by)
    if not isinstance(node, DictConfig):
        raise ConfigError(f"{source}: expected a mapping of sections at the top level, got a list")
    _check_top_level(node, source)
    layers: list[tuple[str, DictConfig]] = []
    chain = _chain + ((real, source),)
    for included in _include_paths(node, source):
        layers.extend(load_project(included, chain, source))
    if "include" in node:
        node = node.copy()
        node.pop("include")
    layers.append((source, node))
    return layers


def _restrict(value: Any, shape: Any) -> Any:
    """`value` (resolved) limited to the keys present in `shape` (the same node before merging), recursively."""
    if isinstance(value, dict) and isinstance(shape, dict):
        return {k: _restrict(value[k], v) for k, v in shape.items() if k in value}
    return value


def _archs_with(model_type: Any) -> list[str]:
    """The registered architectures that have a default config for `model_type`."""
    return [arch for arch in registry.list_models() if model_type in registry.get_model_class(arch).model_types()]


def _known_model_types() -> str:
    return "; ".join(f"{arch}: {', '.join(registry.get_model_class(arch).model_types())}"
                     for arch in registry.list_models())


class Config:
    """The merged, validated configuration of one run (LAVIS's `Config`, with validation and working overrides)."""

    def __init__(self, cfg_path: str | Path, options: Sequence[str] | None = None):
        self.cfg_path = str(cfg_path)
        self.layers = load_project(cfg_path)  # (source, node) per project file, included files first
        self.sources = [source for source, _ in self.layers]
        project = OmegaConf.merge(*(node for _, node in self.layers))
        user = parse_options(options)
        _check_top_level(user, "--options")
        if "include" in user:
            raise ConfigError("--options: 'include' can only be set in a config file")
        if "model" not in project:
            also = " (nor in the files it includes)" if len(self.layers) > 1 else ""
            raise ConfigError(f"{self.cfg_path}: missing required section 'model'{also}")
        if not isinstance(project.model, DictConfig):
            raise ConfigError(f"{self._source_of(user, 'model')}: 'model' must be a mapping")

        model_layer = self._model_layer(project, user)
        dataset_layers = self._dataset_layers(project, user)
        run_layer = OmegaConf.create({"run": project.get("run", {})})
        self._check_run_layers(project, user)
        self.config = OmegaConf.merge(model_layer, *dataset_layers, run_layer, user)
        self._validate_merged_model()
        self.run = from_dict(RunConfig, OmegaConf.to_container(self.run_cfg, resolve=True), self.cfg_path, "run")

    def _source_of(self, user: DictConfig, dotted: str) -> str:
        """The layer that sets `dotted` last: `--options`, else the last project file that sets it."""
        if OmegaConf.select(user, dotted, default=None) is not None:
            return "--options"
        for source, node in reversed(self.layers):
            if OmegaConf.select(node, dotted, default=None) is not None:
                return source
        return self.cfg_path

    def _file_blocks(self, project: DictConfig, dotted: str) -> list[tuple[str, Any]]:
        """Each project file's block at `dotted`, as plain data, with the file as its source.

        Interpolations are resolved in the context of all files merged (so a file may refer to a key another file
        sets), while the values and keys are the file's own.
        """
        blocks = []
        for source, node in self.layers:
            own = OmegaConf.select(node, dotted, default=None)
            if own is None:
                continue
            if not isinstance(own, DictConfig):
                raise ConfigError(f"{source}: '{dotted}' must be a mapping, got {own!r}")
            shape = OmegaConf.to_container(own, resolve=False)
            context = OmegaConf.merge(project, node) if len(self.layers) > 1 else node
            resolved = OmegaConf.to_container(OmegaConf.select(context, dotted), resolve=True)
            blocks.append((source, _restrict(resolved, shape)))
        return blocks

    def _resolve_arch(self, project: DictConfig, user: DictConfig) -> tuple[str, Any]:
        """`model.arch` and `model.model_type` after all layers: the arch set, or the one having the type."""
        model_type = OmegaConf.select(user, "model.model_type") or project.model.get("model_type")
        if model_type is None:
            raise ConfigError(f"{self.cfg_path}: missing required key 'model.model_type'")
        type_source = self._source_of(user, "model.model_type")
        user_arch = OmegaConf.select(user, "model.arch")
        arch = user_arch or project.model.get("arch")
        if arch is None:
            owners = _archs_with(model_type)
            if len(owners) == 1:
                log.debug("model.model_type=%s: model.arch=%s", model_type, owners[0])
                return owners[0], model_type
            if owners:
                raise ConfigError(f"{type_source}: model.model_type {model_type!r} is ambiguous: the archs "
                                  f"{', '.join(owners)} all have it; set model.arch to one of them")
            every = {t for a in registry.list_models() for t in registry.get_model_class(a).model_types()}
            hint = closest_match(str(model_type), every)
            guess = f"; did you mean {hint!r} (model.arch {', '.join(_archs_with(hint))})?" if hint else ""
            raise ConfigError(f"{type_source}: unknown model.model_type {model_type!r} (and no model.arch set)"
                              f"{guess}; known model types by arch: {_known_model_types()}")
        model_cls = registry.get_model_class(arch)
        if model_type in model_cls.model_types():
            return arch, model_type
        owners = [a for a in _archs_with(model_type) if a != arch]
        type_from_options = OmegaConf.select(user, "model.model_type") is not None
        if type_from_options and not user_arch and len(owners) == 1:
            log.info("model.model_type=%s selects model.arch=%s", model_type, owners[0])
            return owners[0], model_type
        try:
            model_cls.default_config_path(model_type)
        except KeyError as error:
            message = error.args[0] if error.args else str(error)
            arch_source = self._source_of(user, "model.arch")
            where = type_source if arch_source == type_source else f"{type_source} (model.arch from {arch_source})"
            if len(owners) == 1:
                hint = (f"; model_type {model_type!r} belongs to arch {owners[0]!r}: set model.arch={owners[0]} "
                        f"(or leave model.arch out to infer it from model.model_type)")
            elif owners:
                hint = f"; model_type {model_type!r} exists in archs {', '.join(owners)}: set model.arch to one"
            else:
                other = {t: a for a in registry.list_models() if a != arch
                         for t in registry.get_model_class(a).model_types() if t not in model_cls.model_types()}
                close = closest_match(str(model_type), other)
                hint = f"; or did you mean {close!r} of arch {other[close]!r}?" if close else ""
            raise UnknownNameError(f"{where}: {message} (model.arch is {arch!r}){hint}") from None
        return arch, model_type  # not reached: default_config_path raises for a type the arch lacks

    def _model_layer(self, project: DictConfig, user: DictConfig) -> DictConfig:
        """The model's default YAML (picked by arch + model_type, options included) merged under the project's."""
        arch, model_type = self._resolve_arch(project, user)
        model_cls = registry.get_model_class(arch)
        default_path = model_cls.default_config_path(model_type)
        default = load_yaml(default_path)
        schema = model_cls.config_schema()
        layers = [(str(default_path), default.get("model", {})), *self._file_blocks(project, "model"),
                  ("--options", user.get("model", {}))]
        for source, node in layers:
            check_node(OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node,
                       schema, source, "model")
        self.model_overrides = sorted({key for _, node in layers[1:] for key in (node or {})} - {"arch", "model_type"})
        project_preprocess = {"preprocess": project.preprocess} if project.get("preprocess") else {}
        layer = OmegaConf.merge(default, {"model": project.model}, project_preprocess)
        layer.model.arch, layer.model.model_type = arch, model_type
        return layer

    def _dataset_layers(self, project: DictConfig, user: DictConfig) -> list[DictConfig]:
        """Each dataset's default YAML (variant `type`) merged under the project's block for it."""
        layers = []
        datasets = project.get("datasets") or {}
        if not isinstance(datasets, (DictConfig, dict)):
            raise ConfigError(f"{self._source_of(user, 'datasets')}: 'datasets' must be a mapping")
        for name, block in datasets.items():
            builder = registry.get_builder_class(name)
            variant = (block or {}).get("type", "default")
            default_path = builder.default_config_path(variant)
            default = load_yaml(default_path).datasets
            if name not in default:
                raise ConfigError(f"{default_path}: expected a block for dataset {name!r}, found {list(default)}")
            schema = builder.config_schema()
            for node, source in ((default[name], str(default_path)),
                                 *((n, s) for s, n in self._file_blocks(project, f"datasets.{name}")),
                                 (OmegaConf.select(user, f"datasets.{name}"), "--options")):
                plain = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node
                check_node(plain or {}, schema, source, f"datasets.{name}")
            layers.append(OmegaConf.create({"datasets": {name: OmegaConf.merge(default[name], block or {})}}))
        return layers

    def _check_run_layers(self, project: DictConfig, user: DictConfig) -> None:
        """Each layer's `run` keys and values against `RunConfig`, so an error names the layer that set them."""
        user_run = user.get("run")
        for source, node in (*self._file_blocks(project, "run"),
                             ("--options", OmegaConf.to_container(user_run, resolve=True) if user_run else None)):
            if node:
                from_dict(RunConfig, node, source, "run")

    def _validate_merged_model(self) -> None:
        """Build the model schema from the merged model section so missing required keys are reported."""
        model_cls = registry.get_model_class(self.config.model.arch)
        model_cls.parse_config(self.model_cfg, source=self.cfg_path)

    @property
    def model_cfg(self) -> DictConfig:
        return self.config.model

    @property
    def run_cfg(self) -> DictConfig:
        return self.config.get("run", OmegaConf.create({}))

    @property
    def datasets_cfg(self) -> DictConfig:
        return self.config.get("datasets", OmegaConf.create({}))

    @property
    def preprocess_cfg(self) -> DictConfig:
        """The model's default `preprocess` section with the project's and `--options`' keys over it: the image
        size / mean / std the datasets' processors default to."""
        return self.config.get("preprocess", OmegaConf.create({}))

    def to_dict(self) -> dict:
        return OmegaConf.to_container(self.config, resolve=True)

    def pretty_print(self) -> str:
        """The merged config, one JSON block per section, also sent to the log."""
        text = "\n".join(f"== {name} ==\n{json.dumps(value, indent=2)}" for name, value in self.to_dict().items())
        log.info("\n%s", text)
        return text

    def __repr__(self) -> str:
        return f"Config({self.cfg_path!r})"
