"""`BaseModel`: how every registered architecture is built from a config and loads weights.

An architecture declares its config schema (a dataclass) and its model types (default YAML per type); `from_config`
validates the config, builds the modules and loads every configured weight source, and `load_checkpoint` accepts a
LAVIS `.pth`, our safetensors file or a Hugging Face directory. `from_pretrained(..., options=)` overrides keys of the
default config from Python, validated as `--options` is.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Mapping

import torch
from omegaconf import DictConfig, OmegaConf

import lavis_ib.common.config  # noqa: F401  (registers the ${assets:...} config resolver)
from torch import nn

from lavis_ib.common.paths import configs_root
from lavis_ib.common.registry import UnknownNameError, registry, unknown_name_message
from lavis_ib.common.schema import ConfigError, check_node, from_dict

if TYPE_CHECKING:
    from lavis_ib.common.io import HubFiles

# Keys that pick the config file itself: set through `load_model`'s `name` / `model_type`, not as overrides.
SELECTOR_KEYS = ("arch", "model_type")


class BaseModel(nn.Module):
    """Common construction and checkpoint plumbing; subclasses set `ConfigSchema` and `PRETRAINED_MODEL_CONFIG_DICT`."""

    ConfigSchema: type
    PRETRAINED_MODEL_CONFIG_DICT: dict[str, str] = {}

    @classmethod
    def config_schema(cls) -> type:
        return cls.ConfigSchema

    @classmethod
    def model_types(cls) -> list[str]:
        return sorted(cls.PRETRAINED_MODEL_CONFIG_DICT)

    @classmethod
    def default_config_path(cls, model_type: str) -> Path:
        """The default YAML of `model_type`, shipped inside the package."""
        if model_type not in cls.PRETRAINED_MODEL_CONFIG_DICT:
            arch = registry["model"].name_of(cls) or cls.__name__
            raise UnknownNameError(unknown_name_message("model_type", model_type, cls.PRETRAINED_MODEL_CONFIG_DICT,
                                                        scope=arch))
        return configs_root / cls.PRETRAINED_MODEL_CONFIG_DICT[model_type]

    @classmethod
    def default_config(cls, model_type: str) -> DictConfig:
        """The whole default YAML (`model` and `preprocess` sections) of `model_type`."""
        return OmegaConf.load(cls.default_config_path(model_type))

    @classmethod
    def config_with_options(cls, model_type: str, options: Mapping | None = None, source: str = "options",
                            default: DictConfig | None = None) -> DictConfig:
        """The `model` section of `model_type`'s default YAML (`default`, when the caller has read it) with `options`
        merged over it.

        `options` holds model-section keys, nested (`{"qformer": {"num_layers": 2}}`) or dotted (`"qformer.num_layers"`);
        each key and value is checked against the schema first, so a typo is a `ConfigError` with the closest key.
        """
        cfg = (default if default is not None else cls.default_config(model_type)).model
        overrides = nest_options(options or {}, source)
        if not overrides:
            return cfg
        for key in SELECTOR_KEYS:
            if key in overrides:
                raise ConfigError(f"{source}: 'model.{key}' selects the config file and cannot be overridden; pass it "
                                  f"as load_model's {'name' if key == 'arch' else key} argument")
        check_node(overrides, cls.config_schema(), source, "model")
        return OmegaConf.merge(cfg, overrides)

    @classmethod
    def parse_config(cls, cfg: Mapping | DictConfig, source: str = "model config"):
        """Validate a `model` section against the schema and return the schema instance."""
        if isinstance(cfg, DictConfig):
            cfg = OmegaConf.to_container(cfg, resolve=True)
        return from_dict(cls.ConfigSchema, cfg, source, "model")

    @classmethod
    def from_config(cls, cfg: Mapping | DictConfig, source: str = "model config", device: str = "cpu",
                    precision: str | None = None) -> "BaseModel":
        """Build the model for `device` under a precision policy and load the weights its config points to."""
        parsed = cls.parse_config(cfg, source)
        cls.check_locations(parsed)
        model = cls.build(parsed, device, precision)
        model.load_configured_weights()
        model.finish_loading()
        return model

    @classmethod
    def build(cls, cfg, device: str, precision: str | None) -> "BaseModel":
        """The modules of a parsed config for `device` under a precision policy, before any weight file is read."""
        from lavis_ib.models.precision import PrecisionPolicy

        return cls(cfg, PrecisionPolicy.resolve(cfg, device, precision))

    @classmethod
    def from_pretrained(cls, model_type: str, device: str = "cpu", precision: str | None = None,
                        options: Mapping | None = None) -> "BaseModel":
        """The model described by the default YAML of `model_type`, with `options` overriding its keys."""
        source = str(cls.default_config_path(model_type)) + (" + options" if options else "")
        return cls.from_config(cls.config_with_options(model_type, options), source, device=device,
                               precision=precision)

    @classmethod
    def directory_locations(cls, cfg) -> dict[str, tuple[str, "HubFiles"]]:
        """Config key → (directory or hub id, files needed) for every location the build of `cfg` reads.

        Written for the BLIP-2 family's keys (`qformer_tokenizer` under `qformer_text_input`; `llm_tokenizer`, else
        the class's `LLM_KEY`, for the LLM tokenizer; `LLM_KEY` for weights unless `random_init`); an architecture
        with other locations overrides it.
        """
        from lavis_ib.common.io import HUB_TOKENIZER_PATTERNS, HUB_WEIGHT_PATTERNS

        locations = {}
        if getattr(cfg, "qformer_text_input", False) and getattr(cfg, "qformer_tokenizer", None):
            locations["qformer_tokenizer"] = (cfg.qformer_tokenizer, HUB_TOKENIZER_PATTERNS)
        llm_key = getattr(cls, "LLM_KEY", None)
        llm = getattr(cfg, llm_key, None) if llm_key else None
        if getattr(cfg, "llm_tokenizer", None):
            locations["llm_tokenizer"] = (cfg.llm_tokenizer, HUB_TOKENIZER_PATTERNS)
        elif llm:
            locations[llm_key] = (llm, HUB_TOKENIZER_PATTERNS)
        if llm and not getattr(cfg, "random_init", False):
            locations[llm_key] = (llm, HUB_WEIGHT_PATTERNS)  # a weight snapshot carries the tokenizer files too
        return locations

    @classmethod
    def check_locations(cls, cfg) -> None:
        """Fail in seconds, naming the config key, on a location the (slow) build would fail on: a missing local
        directory, an unreachable or disabled hub for a hub id without a cached copy, or a tokenizer directory
        without tokenizer files. Hub ids are fetched into the cache here, once."""
        from lavis_ib.common.io import HUB_TOKENIZER_PATTERNS, resolve_dir_or_hub_id
        from lavis_ib.models.text.tokenizers import TOKENIZER_FILES, TokenizerError, has_tokenizer_files

        for key, (location, files) in cls.directory_locations(cfg).items():
            directory = resolve_dir_or_hub_id(str(location), key, files)
            if files is HUB_TOKENIZER_PATTERNS and not has_tokenizer_files(directory):
                raise TokenizerError(f"model.{key}: {directory} holds no tokenizer files (expected one of "
                                     f"{', '.join(TOKENIZER_FILES)})")

    def load_configured_weights(self) -> None:
        """Load the weight files named in the config; architectures override this."""

    def finish_loading(self) -> None:
        """What follows the configured weights (e.g. fresh adapters); architectures override this."""

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device


def nest_options(options: Mapping, source: str = "options") -> dict:
    """`options` as a nested dict: dotted keys split (`"a.b": 1` → `{"a": {"b": 1}}`), nested mappings merged."""
    nested: dict = {}
    for key, value in options.items():
        if not isinstance(key, str) or not key:
            raise ConfigError(f"{source}: keys must be non-empty strings, got {key!r}")
        *parents, leaf = key.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{source}: '{key}' sets a key under '{part}', which is given a plain value too")
        value = nest_options(value, source) if isinstance(value, Mapping) else value
        existing = node.get(leaf)
        if leaf in node and isinstance(existing, dict) != isinstance(value, dict):
            raise ConfigError(f"{source}: '{key}' is given both a plain value and nested keys")
        node[leaf] = OmegaConf.to_container(OmegaConf.merge(existing, value)) if isinstance(value, dict) and \
            isinstance(existing, dict) else value
    return nested
