"""Hugging Face directories in and out: build a model from an HF InstructBLIP / BLIP-2 directory (its config.json
decides the sizes) and export ours to one that transformers' own classes and processors load.

The name mapping itself lives in `convert.py`; this module handles files, tokenizers (falling back to the model
type's configured ones for a directory saved without any), the LM-head tying a checkpoint actually has, and the
`<image>` token that current transformers versions expect in the LLM vocabulary.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from pathlib import Path
from typing import Iterable, Mapping

import torch
from omegaconf import DictConfig, OmegaConf
from safetensors.torch import save_file

from lavis_ib.common.io import FileFormatError, WeightMismatchError, atomic_write_path, read_json
from lavis_ib.common.registry import registry
from lavis_ib.common.schema import ConfigError
from lavis_ib.models.base import BaseModel
from lavis_ib.models.weights.loading import load_state_dict_into, read_state_dict
from lavis_ib.models.weights.convert import (
    fill_tied_weights,
    hf_config_from_model_cfg,
    hf_to_lavis_state_dict,
    lavis_to_hf_state_dict,
    llm_tied_weights_keys,
    model_cfg_from_hf_config,
)
from lavis_ib.models.text.tokenizers import TOKENIZER_FILES, has_tokenizer_files
from lavis_ib.processors.image import IMAGE_MEAN, IMAGE_STD

IMAGE_TOKEN = "<image>"


def is_hf_directory(path) -> bool:
    """A directory with a transformers `config.json` (as opposed to a single checkpoint file)."""
    return Path(path).is_dir() and (Path(path) / "config.json").is_file()


def read_hf_weights(directory: Path) -> dict[str, torch.Tensor]:
    """All tensors of an HF directory: `model.safetensors`, or the shards named by its index."""
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        weight_map = read_json(index, "a safetensors shard index: {\"weight_map\": {tensor name: shard file}}")
        if not isinstance(weight_map, dict) or not isinstance(weight_map.get("weight_map"), dict):
            raise FileFormatError(f"{index}: expected an object with a 'weight_map' object, found {weight_map!r:.80}")
        shards = sorted(set(weight_map["weight_map"].values()))
    else:
        shards = [p.name for p in sorted(directory.glob("*.safetensors"))]
    if not shards:
        raise FileNotFoundError(f"{directory}: no *.safetensors weights found (looked for model.safetensors and shards)")
    state = {}
    for shard in shards:
        state.update(read_state_dict(directory / shard))
    return state


def load_hf_directory(model_cls, section: Mapping, directory, device: str = "cpu", precision: str | None = None,
                      overridden: Iterable[str] = ()) -> BaseModel:
    """Build `model_cls` from an HF directory's config.json and load all of its weights (strictly).

    Non-architectural settings (prompt, text lengths, precision) come from the merged model `section`; `overridden`
    names the keys a user set there (the rest are the model type's defaults), which the HF config must not fix.
    """
    directory = Path(directory)
    config_path = directory / "config.json"
    hf_config = read_json(config_path, "a transformers InstructBLIP / BLIP-2 config.json (as save_pretrained writes)")
    if not isinstance(hf_config, dict) or "model_type" not in hf_config:
        raise FileFormatError(f"{config_path}: expected a transformers config object with a 'model_type' key, found "
                              f"{hf_config!r:.80}")
    return model_from_hf(model_cls, section, hf_config, read_hf_weights(directory), tokenizer_dir=directory,
                         source=str(config_path), precision=precision, policy_device=device, overridden=overridden)


def model_from_hf(model_cls, section: Mapping, hf_config, hf_state: dict[str, torch.Tensor], tokenizer_dir,
                  source: str, device: str | None = None, precision: str | None = None,
                  policy_device: str = "cpu", overridden: Iterable[str] = ()) -> BaseModel:
    """Build `model_cls` sized by an HF config (object or config.json dict) and load an HF state dict into it.

    `tokenizer_dir` holds the LLM tokenizer (and `qformer_tokenizer/` for InstructBLIP), as an HF directory does;
    where it holds none, the section's configured tokenizers are used (with a warning). `device` builds the
    modules there directly (no CPU copy of a large model). `section` is a merged model section (its model type's
    default YAML with the user's keys, `overridden`, over it); those keys may not touch the architecture the HF
    config fixes, and tokenizer keys among them win over the directory's own tokenizers.
    """
    arch, hf_cfg = model_cfg_from_hf_config(hf_config)
    expected = next(name for name in registry.list_models() if registry.get_model_class(name) is model_cls)
    if arch != expected:
        raise ValueError(f"{source} holds a {arch} model, not {expected}; load it with name={arch!r}")
    state = hf_to_lavis_state_dict(hf_state, arch)
    state = fill_tied_weights(state, llm_tied_weights_keys(arch, hf_cfg["llm_config"]))
    hf_cfg["llm_config"] = with_checkpoint_tying(arch, hf_cfg["llm_config"], state, source)
    cfg = OmegaConf.to_container(section, resolve=True) if isinstance(section, DictConfig) else dict(section)
    model_type = cfg["model_type"]
    overridden = {key.split(".")[0] for key in overridden}
    fixed = sorted(overridden & set(hf_cfg))
    if fixed:
        raise ConfigError(f"options: {', '.join('model.' + key for key in fixed)} fixed by {source}: an HF directory's "
                          f"architecture comes from its config.json")
    tokenizers = tokenizer_locations(model_cls, model_type, cfg, Path(tokenizer_dir), hf_cfg["qformer_text_input"])
    tokenizers.update({key: cfg[key] for key in tokenizers if key in overridden})
    cfg.update(hf_cfg, **tokenizers, random_init=True, vit_weights=None, pretrained=None, finetuned=None,
               model_type=model_type)
    parsed = model_cls.parse_config(cfg, source=source)
    with torch.device(device) if device is not None else contextlib.nullcontext():
        model = model_cls.build(parsed, device or policy_device, precision)
    report = load_state_dict_into(model, state)
    if report.missing or report.unexpected:
        raise WeightMismatchError(f"{source}: " + report.describe({}))
    model.finish_loading()
    return model


def with_checkpoint_tying(arch: str, llm_config: dict, state: dict[str, torch.Tensor], source: str) -> dict:
    """`llm_config` with `tie_word_embeddings: false` when the checkpoint's LM head differs from its input embedding.

    transformers 5 writes T5 configs as tied whatever the weights, and decides by the values, as here: Flan-T5
    checkpoints hold an untied `lm_head`, which a tied build would overwrite `shared` with.
    """
    differing = sorted(target for target, origin in llm_tied_weights_keys(arch, llm_config).items()
                       if target in state and origin in state and not torch.equal(state[target], state[origin]))
    if not differing:
        return llm_config
    if any(not key.endswith(".lm_head.weight") for key in differing):
        raise ValueError(f"{source}: {differing} differ from the weights their LLM config ties them to; only an "
                         f"untied lm_head is supported")
    return {**llm_config, "tie_word_embeddings": False}


def tokenizer_locations(model_cls, model_type: str, cfg: dict, directory: Path, qformer_text_input: bool) -> dict:
    """The `llm_tokenizer` / `qformer_tokenizer` config values for an HF directory: its own tokenizer files, or,
    for a directory saved without them, `model_type`'s configured ones (with a warning naming them)."""
    wanted = {"llm_tokenizer": (directory, cfg.get("llm_tokenizer") or cfg.get(model_cls.LLM_KEY))}
    if qformer_text_input:
        wanted["qformer_tokenizer"] = (directory / "qformer_tokenizer", cfg.get("qformer_tokenizer"))
    locations = {}
    for key, (own, configured) in wanted.items():
        if has_tokenizer_files(own):
            locations[key] = str(own)
            continue
        if not configured:
            raise FileNotFoundError(
                f"{own}: no tokenizer files (expected one of {', '.join(TOKENIZER_FILES)}), and model type "
                f"{model_type!r} configures no {key} to fall back to")
        warnings.warn(f"{own} holds no tokenizer files; using {model_type!r}'s configured {key}: {configured}",
                      stacklevel=3)
        locations[key] = str(configured)
    return locations


def preprocess_for_image_size(preprocess, image_size: int):
    """A copy of a `preprocess` section with every image processor resized to the model's input size."""
    preprocess = OmegaConf.create(OmegaConf.to_container(preprocess, resolve=True) if preprocess is not None else {})
    for split in (preprocess.get("vis_processor") or {}).values():
        split.image_size = image_size
    return preprocess


def export_hf(model: BaseModel, directory) -> Path:
    """Write `model` as an HF directory loadable by `InstructBlipForConditionalGeneration` / `Blip2ForConditional
    Generation` and `InstructBlipProcessor` / `Blip2Processor`; logits over the original vocabulary are unchanged.

    transformers places the visual tokens through an `<image>` placeholder token, so one row is appended to the LLM
    vocabulary (embedding = mean row; the placeholder is suppressed in the exported generation config). The
    placeholder is added to copies of the tokenizers: the live model is left exactly as it was. LoRA adapters are
    merged into the exported LLM weights; a quantized or offloaded LLM is refused (its weights are not all here).
    """
    from transformers import BlipImageProcessor, Blip2Processor, GenerationConfig, InstructBlipProcessor

    from lavis_ib.models.lora import merged_state_dict

    check_exportable(model)

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    arch, cfg = model.cfg.arch, OmegaConf.to_container(OmegaConf.structured(model.cfg), resolve=True)
    tokenizer = copy.deepcopy(model.tokenizer)  # the processors below add `<image>` to the tokenizer they get
    image_processor = BlipImageProcessor(
        size={"height": model.cfg.image_size, "width": model.cfg.image_size},
        image_mean=list(IMAGE_MEAN), image_std=list(IMAGE_STD),
    )
    if model.cfg.qformer_text_input:
        processor = InstructBlipProcessor(image_processor, tokenizer, copy.deepcopy(model.qformer_tokenizer),
                                          num_query_tokens=model.cfg.num_query_token)
    else:
        processor = Blip2Processor(image_processor, tokenizer, num_query_tokens=model.cfg.num_query_token)
    image_token_index = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    cfg["llm_config"] = model.llm.config.to_dict()
    hf_config = hf_config_from_model_cfg(arch, cfg, image_token_index=image_token_index)
    state = lavis_to_hf_state_dict({k: v.detach().float().cpu() for k, v in merged_state_dict(model).items()}, arch)
    vocab = max(len(tokenizer), hf_config.text_config.vocab_size)
    state = {k: _grow_rows(v, vocab) if _is_vocab_matrix(k, v, model) else v for k, v in state.items()}
    hf_config.text_config.vocab_size = vocab
    hf_config.save_pretrained(directory)
    with atomic_write_path(directory / "model.safetensors") as temporary:  # normal permissions, never half-written
        save_file({k: v.contiguous().clone() for k, v in state.items()}, str(temporary), metadata={"format": "pt"})
    processor.save_pretrained(directory)
    GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=model.eos_token_id if hasattr(model, "eos_token_id")
        else tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, suppress_tokens=[image_token_index],
    ).save_pretrained(directory)
    return directory


def check_exportable(model: BaseModel) -> None:
    """An HF directory holds the LLM's full-precision weights: a quantized or device-mapped LLM cannot give them."""
    how = "load the same checkpoint without {key}, then export (LoRA adapters are merged on export)"
    if model.cfg.quantization:
        raise ConfigError(f"export_hf writes full-precision LLM weights, and this LLM is quantized (model.quantization:"
                          f" {model.cfg.quantization}); " + how.format(key="model.quantization"))
    if model.placement.placed:
        raise ConfigError("export_hf writes every LLM weight, and this LLM is placed by model.device_map (offloaded "
                          "weights are not in memory); " + how.format(key="model.device_map"))


def _is_vocab_matrix(key: str, tensor: torch.Tensor, model) -> bool:
    rows = model.llm.get_input_embeddings().weight.shape[0]
    return key.startswith("language_model.") and tensor.dim() == 2 and tensor.shape[0] == rows


def _grow_rows(tensor: torch.Tensor, rows: int) -> torch.Tensor:
    if tensor.shape[0] >= rows:
        return tensor
    return torch.cat([tensor, tensor.mean(dim=0, keepdim=True).expand(rows - tensor.shape[0], -1)])
