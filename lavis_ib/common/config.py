"""Layered configuration: model default YAML ⊕ dataset default YAMLs ⊕ project YAML ⊕ `--options key=value`.

Each layer is validated against the schema its component declares before merging, so an unknown key is reported
with the file it came from and the closest valid key. Unlike LAVIS, `--options model.model_type=X` really changes
which model default file is loaded.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from omegaconf import DictConfig, OmegaConf

from lavis_ib.common.paths import assets_root, configs_root
from lavis_ib.common.registry import registry
from lavis_ib.common.run_schema import RunConfig
from lavis_ib.common.schema import ConfigError, check_keys, check_node, from_dict

log = logging.getLogger(__name__)

_register = getattr(OmegaConf, "register_resolver", None) or OmegaConf.register_new_resolver
for _name, _root in (("assets", assets_root), ("configs", configs_root)):
    if not OmegaConf.has_resolver(_name):
        _register(_name, lambda rel, root=_root: str(root / rel))

def load_yaml(path: str | Path) -> DictConfig:
    """Read a YAML file; a missing file is a `FileNotFoundError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
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

    model: Optional[dict] = None
    datasets: Optional[dict] = None
    run: Optional[dict] = None
    preprocess: Optional[dict] = None


def _check_top_level(node: DictConfig, source: str) -> None:
    check_keys(node, TopLevel, source, "")


class Config:
    """The merged, validated configuration of one run (LAVIS's `Config`, with validation and working overrides)."""

    def __init__(self, cfg_path: str | Path, options: Sequence[str] | None = None):
        self.cfg_path = str(cfg_path)
        project = load_yaml(cfg_path)
        _check_top_level(project, self.cfg_path)
        user = parse_options(options)
        _check_top_level(user, "--options")
        if "model" not in project:
            raise ConfigError(f"{self.cfg_path}: missing required section 'model'")

        model_layer = self._model_layer(project, user)
        dataset_layers = self._dataset_layers(project, user)
        run_layer = OmegaConf.create({"run": project.get("run", {})})
        self._check_run_layers(project, user)
        self.config = OmegaConf.merge(model_layer, *dataset_layers, run_layer, user)
        self._validate_merged_model()
        self.run = from_dict(RunConfig, OmegaConf.to_container(self.run_cfg, resolve=True), self.cfg_path, "run")

    def _model_layer(self, project: DictConfig, user: DictConfig) -> DictConfig:
        """The model's default YAML (picked by arch + model_type, options included) merged under the project's."""
        arch = OmegaConf.select(user, "model.arch") or project.model.get("arch")
        if arch is None:
            raise ConfigError(f"{self.cfg_path}: missing required key 'model.arch'")
        model_cls = registry.get_model_class(arch)
        model_type = OmegaConf.select(user, "model.model_type") or project.model.get("model_type")
        if model_type is None:
            raise ConfigError(f"{self.cfg_path}: missing required key 'model.model_type'")
        default_path = model_cls.default_config_path(model_type)
        default = load_yaml(default_path)
        schema = model_cls.config_schema()
        for node, source in ((default.get("model", {}), str(default_path)), (project.model, self.cfg_path),
                             (user.get("model", {}), "--options")):
            check_node(OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node,
                       schema, source, "model")
        layer = OmegaConf.merge(default, {"model": project.model})
        layer.model.arch, layer.model.model_type = arch, model_type
        return layer

    def _dataset_layers(self, project: DictConfig, user: DictConfig) -> list[DictConfig]:
        """Each dataset's default YAML (variant `type`) merged under the project's block for it."""
        layers = []
        for name, block in (project.get("datasets") or {}).items():
            builder = registry.get_builder_class(name)
            variant = (block or {}).get("type", "default")
            default_path = builder.default_config_path(variant)
            default = load_yaml(default_path).datasets
            if name not in default:
                raise ConfigError(f"{default_path}: expected a block for dataset {name!r}, found {list(default)}")
            schema = builder.config_schema()
            for node, source in ((default[name], str(default_path)), (block, self.cfg_path),
                                 (OmegaConf.select(user, f"datasets.{name}"), "--options")):
                plain = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node
                check_node(plain or {}, schema, source, f"datasets.{name}")
            layers.append(OmegaConf.create({"datasets": {name: OmegaConf.merge(default[name], block or {})}}))
        return layers

    def _check_run_layers(self, project: DictConfig, user: DictConfig) -> None:
        """Each layer's `run` keys and values against `RunConfig`, so an error names the layer that set them."""
        for node, source in ((project.get("run"), self.cfg_path), (user.get("run"), "--options")):
            if node:
                from_dict(RunConfig, OmegaConf.to_container(node, resolve=True), source, "run")

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
