"""`BaseModel`: how every registered architecture is built from a config and loads weights.

An architecture declares its config schema (a dataclass) and its model types (default YAML per type); `from_config`
validates the config, builds the modules and loads every configured weight source, and `load_checkpoint` accepts a
LAVIS `.pth`, our safetensors file or a Hugging Face directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch
from omegaconf import DictConfig, OmegaConf

import lavis_ib.common.config  # noqa: F401  (registers the ${assets:...} config resolver)
from torch import nn

from lavis_ib.common.paths import configs_root
from lavis_ib.common.registry import unknown_name_message
from lavis_ib.common.schema import from_dict


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
            raise KeyError(unknown_name_message(f"model_type of {cls.__name__}", model_type, cls.PRETRAINED_MODEL_CONFIG_DICT))
        return configs_root / cls.PRETRAINED_MODEL_CONFIG_DICT[model_type]

    @classmethod
    def default_config(cls, model_type: str) -> DictConfig:
        """The whole default YAML (`model` and `preprocess` sections) of `model_type`."""
        return OmegaConf.load(cls.default_config_path(model_type))

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
        from lavis_ib.models.precision import PrecisionPolicy

        parsed = cls.parse_config(cfg, source)
        model = cls(parsed, PrecisionPolicy.resolve(parsed, device, precision))
        model.load_configured_weights()
        return model

    @classmethod
    def from_pretrained(cls, model_type: str, device: str = "cpu", precision: str | None = None) -> "BaseModel":
        """The model described by the default YAML of `model_type`."""
        return cls.from_config(cls.default_config(model_type).model, str(cls.default_config_path(model_type)),
                               device=device, precision=precision)

    def load_configured_weights(self) -> None:
        """Load the weight files named in the config; architectures override this."""

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device
