"""What both runners build from a validated `Config`, built one way: the model (from the model section `Config`
already merged and checked, so the model's default YAML is read once per run, by `Config`), its precision, the
image defaults its `preprocess` section gives the datasets, and each dataset's builder. The precision is decided by
the caller (`common.precision.run_precision`, once per run) and passed in."""

from __future__ import annotations

from typing import Optional

import torch
from omegaconf import OmegaConf

from lavis_ib.common.config import Config
from lavis_ib.common.registry import registry
from lavis_ib.common.schema import ConfigError
from lavis_ib.processors import build_processors, model_vis_defaults


def build_model(cfg: Config, device: torch.device, precision: str, is_eval: bool):
    """The run's model on `device`, its frozen parts in `precision` (the runner's one `run_precision` decision, which
    its autocast uses too), with `model.checkpoint` loaded and the frozen ViT's feature cache sized by
    `run.feature_cache_size` (repeated images skip the ViT). For training, 4-bit LLM weights stay in one layout
    (`models.quantization.keep_4bit_weights_unpacked`)."""
    from lavis_ib.models import model_from_section  # the model package, only once the config is valid
    from lavis_ib.models.quantization import keep_4bit_weights_unpacked

    model = model_from_section(OmegaConf.to_container(cfg.model_cfg, resolve=True), cfg.cfg_path, is_eval=is_eval,
                               device=str(device), precision=precision,
                               overridden=cfg.model_overrides)
    model.enable_feature_cache(cfg.run.feature_cache_size)
    if not is_eval:
        keep_4bit_weights_unpacked(model)  # a validation must not change how the later training steps compute
    return model


def check_preprocess(cfg: Config) -> None:
    """The merged `preprocess` section (model default, project, `--options`) names processors that exist with keys
    they take: checked before anything is built."""
    try:
        build_processors(cfg.preprocess_cfg)
    except (ValueError, KeyError) as error:
        raise ConfigError(f"{cfg.cfg_path}: preprocess: {error.args[0] if error.args else error}") from None


def preprocessing(cfg: Config, model) -> dict:
    """The image size / mean / std a dataset's processors default to: the config's `preprocess` section, with the
    model's own input size (an HF directory may set another than the model type's)."""
    defaults = model_vis_defaults(cfg.preprocess_cfg)
    defaults["image_size"] = model.cfg.image_size
    return defaults


def dataset_builder(cfg: Config, name: str, vis_defaults: Optional[dict] = None):
    """The builder of dataset `name` from its merged config block (`vis_defaults`: the model's preprocessing)."""
    block = OmegaConf.to_container(cfg.datasets_cfg[name], resolve=True)
    return registry.get_builder_class(name)(block, source=f"datasets.{name}", vis_defaults=vis_defaults)
