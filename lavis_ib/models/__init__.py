"""Model architectures (registered under kind `model`) and the loading API.

`load_model_and_preprocess(name, model_type)` builds a registered architecture from its default YAML, optionally
loads a checkpoint (LAVIS `.pth`, our safetensors, or a whole Hugging Face directory) and returns it with the image
and text processors that YAML names. Keys of that YAML's `model` section can be overridden from Python with
`options={...}` and/or keyword arguments, validated like `--options` (unknown key → `ConfigError` with the closest key).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

from omegaconf import DictConfig

from lavis_ib.common.registry import registry
from lavis_ib.models import blip2_opt, blip2_t5_instruct, blip2_vicuna_instruct  # noqa: F401  (registration)
from lavis_ib.models.base import BaseModel
from lavis_ib.processors import build_processors


class ModelZoo:
    """The registered architectures and their model types; prints as a table."""

    def __init__(self):
        self.entries = {name: registry.get_model_class(name).model_types() for name in registry.list_models()}

    def __str__(self) -> str:
        width = max(len(name) for name in self.entries)
        rows = [f"{'Architectures':<{width}}  Types", "=" * (width + 60)]
        rows += [f"{name:<{width}}  {', '.join(types)}" for name, types in self.entries.items()]
        return "\n".join(rows)

    def __iter__(self):
        return iter(self.entries.items())

    def __len__(self) -> int:
        return sum(len(types) for types in self.entries.values())


model_zoo = ModelZoo()


def load_model(name: str, model_type: str, is_eval: bool = False, device: str = "cpu", checkpoint: str | None = None,
               precision: str | None = None, options: Mapping[str, Any] | None = None,
               quantization: str | None = None, device_map: str | dict | None = None,
               max_memory: dict | None = None, **overrides: Any):
    """Build `name`/`model_type` and load its configured weights, or those of `checkpoint` (file or HF directory).

    An HF-format directory carries its own architecture in `config.json`: the model is built from it, whatever its
    sizes. `precision` None keeps LAVIS's defaults (fp32 on CPU; on CUDA the ViT and LLM take `vit_precision` /
    `llm_precision`); `fp32` / `fp16` / `bf16` stores both frozen parts in that dtype (see `models.precision`).
    `options` (nested or dotted model-section keys) and keyword `overrides` (which win) change the default config,
    e.g. `load_model(..., options={"qformer_tokenizer": "/models/bert"}, max_txt_len=64)`.
    `quantization` ("int8" / "nf4" / "fp4"), `device_map` ("auto" or a dict) and `max_memory` are the config keys
    `model.quantization` / `model.device_map` / `model.max_memory`: the frozen LLM in 8 or 4 bits, or spread over
    GPUs, CPU and disk (see `models.quantization`, `models.placement`; `model.lora` adds adapters).
    """
    section, source, options, _ = requested_config(name, model_type, checkpoint, quantization, device_map, max_memory,
                                                   {**(options or {}), **overrides})
    return model_from_section(section, source, is_eval=is_eval, device=device, precision=precision,
                              overridden=options)


def requested_config(name: str, model_type: str, checkpoint, quantization, device_map, max_memory,
                     options: Mapping[str, Any]) -> tuple[DictConfig, str, dict, DictConfig]:
    """`(model section, its source, the keys the caller set, the whole default YAML)` for `load_model`'s arguments:
    the default YAML of `name`/`model_type` read once, the loading arguments and `options` merged and checked."""
    model_cls = registry.get_model_class(name)
    loading = {"quantization": quantization, "device_map": device_map, "max_memory": max_memory,
               "checkpoint": None if checkpoint is None else str(checkpoint)}
    options = {**options, **{k: v for k, v in loading.items() if v is not None}}
    default = model_cls.default_config(model_type)
    section = model_cls.config_with_options(model_type, options, default=default)
    source = str(model_cls.default_config_path(model_type)) + (" + options" if options else "")
    return section, source, options, default


def model_from_section(section: Mapping[str, Any], source: str, is_eval: bool = False, device: str = "cpu",
                       precision: str | None = None, overridden: Iterable[str] = ()) -> BaseModel:
    """The model a merged `model` section describes (`arch`, `model_type`, every key), with `section.checkpoint`
    loaded: the one place a model is built, by `load_model` and by both runners from their validated `Config`
    (which has read the default YAML already). `overridden`: the keys a user set, which an HF directory's own
    architecture must not contradict."""
    from lavis_ib.models.weights.hf_interop import is_hf_directory, load_hf_directory  # convert.py, only if needed

    model_cls = registry.get_model_class(section["arch"])
    checkpoint = section.get("checkpoint")
    if checkpoint is not None and is_hf_directory(checkpoint):
        model = load_hf_directory(model_cls, section, checkpoint, device=device, precision=precision,
                                  overridden=overridden)
    else:
        model = model_cls.from_config(section, source, device=device, precision=precision)
        if checkpoint is not None:
            model.load_checkpoint(Path(checkpoint))
    model = model.to(device)
    model.apply_precision()
    return model.eval() if is_eval else model


def load_preprocess(cfg: DictConfig | dict | None):
    """`(vis_processors, txt_processors)` dicts keyed "train"/"eval" from a `preprocess` config section."""
    return build_processors(cfg or {})


def load_model_and_preprocess(name: str, model_type: str, is_eval: bool = False, device: str = "cpu",
                              checkpoint: str | None = None, precision: str | None = None,
                              options: Mapping[str, Any] | None = None, quantization: str | None = None,
                              device_map: str | dict | None = None, max_memory: dict | None = None,
                              **overrides: Any):
    """`(model, vis_processors, txt_processors)` — LAVIS's one-line entry point; `options` / `overrides` as in
    `load_model`, with the image processors following the model's (possibly overridden) image size."""
    from lavis_ib.models.weights.hf_interop import preprocess_for_image_size

    section, source, options, default = requested_config(name, model_type, checkpoint, quantization, device_map,
                                                         max_memory, {**(options or {}), **overrides})
    model = model_from_section(section, source, is_eval=is_eval, device=device, precision=precision,
                               overridden=options)
    preprocess = default.get("preprocess")
    if model.cfg.image_size != default.model.get("image_size"):
        preprocess = preprocess_for_image_size(preprocess, model.cfg.image_size)
    vis_processors, txt_processors = load_preprocess(preprocess)
    return model, vis_processors, txt_processors
