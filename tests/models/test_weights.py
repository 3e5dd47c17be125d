"""Tests for checkpoint loading (LAVIS `.pth`, full state dicts, safetensors), its strictness and error messages,
configured weight locations, EVA ViT weight adaptation and safe (`weights_only`) reading."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import lavis_ib
from lavis_ib.common.io import WeightNotFoundError
from lavis_ib.models.weights.loading import read_state_dict

ARCH, TYPE = "blip2_vicuna_instruct", "tiny"
LAVIS_ONLY_BUFFER = "Qformer.bert.embeddings.position_ids"
PROMPT = "Describe the image in detail."


def build(seed: int):
    torch.manual_seed(seed)
    return lavis_ib.load_model(ARCH, TYPE, is_eval=True)


def samples() -> dict:
    generator = torch.Generator().manual_seed(123)
    return {"image": torch.randn(2, 3, 56, 56, generator=generator), "prompt": [PROMPT, "What is this?"]}


def token_ids(model) -> torch.Tensor:
    return model.generate_token_ids(samples(), num_beams=2, max_length=6)


def frozen_state(model) -> dict[str, torch.Tensor]:
    trainable = set(model.trainable_state_dict())
    return {k: v for k, v in model.state_dict().items() if k not in trainable}


def assert_same_tensors(a: dict, b: dict):
    assert set(a) == set(b)
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.fixture(scope="module")
def reference():
    return build(0)


@pytest.fixture(scope="module")
def reference_ids(reference) -> torch.Tensor:
    return token_ids(reference)


@pytest.fixture(scope="module")
def lavis_checkpoint(reference, tmp_path_factory) -> Path:
    """A LAVIS-format trimmed checkpoint: `{"model": trainable tensors + LAVIS's position_ids buffer}`."""
    state = dict(reference.trainable_state_dict())
    state[LAVIS_ONLY_BUFFER] = torch.arange(512).unsqueeze(0)
    path = tmp_path_factory.mktemp("ckpt") / "checkpoint_best.pth"
    torch.save({"model": state, "optimizer": {}, "epoch": 3}, path)
    return path


def fresh_with_reference_frozen(reference):
    """A differently seeded model whose frozen ViT/LLM equal the reference's (a trimmed checkpoint lacks them)."""
    model = build(1)
    assert not torch.equal(model.query_tokens, reference.query_tokens)
    model.load_state_dict(frozen_state(reference), strict=False)
    return model


# ----- (a) round trips --------------------------------------------------------------------------------------
def test_lavis_checkpoint_round_trip(reference, reference_ids, lavis_checkpoint):
    model = fresh_with_reference_frozen(reference)
    report = model.load_checkpoint(lavis_checkpoint)
    assert_same_tensors(model.trainable_state_dict(), reference.trainable_state_dict())
    assert LAVIS_ONLY_BUFFER in report.ignored
    assert not report.unexpected
    assert report.loaded == len(reference.trainable_state_dict())
    # frozen groups not in the checkpoint are reported by group, not as errors
    assert "llm_model" in report.missing
    assert "visual_encoder" in report.missing
    assert "Qformer" not in report.missing
    with torch.no_grad():
        torch.testing.assert_close(
            model.query_features(samples()["image"], samples()["prompt"]),
            reference.query_features(samples()["image"], samples()["prompt"]),
            rtol=0, atol=0,
        )
    assert torch.equal(token_ids(model), reference_ids)


def test_full_state_dict_round_trip(reference, reference_ids, tmp_path):
    path = tmp_path / "full.pth"
    torch.save(dict(reference.state_dict()), path)  # plain dict, no "model" key
    model = build(2)
    report = model.load_checkpoint(path)
    assert not report.missing and not report.unexpected
    assert_same_tensors(model.state_dict(), reference.state_dict())
    assert torch.equal(token_ids(model), reference_ids)


def test_safetensors_round_trip(reference, reference_ids, tmp_path):
    path = tmp_path / "trainable.safetensors"
    save_file({k: v.contiguous() for k, v in reference.trainable_state_dict().items()}, str(path))
    model = fresh_with_reference_frozen(reference)
    model.load_checkpoint(path)
    assert_same_tensors(model.trainable_state_dict(), reference.trainable_state_dict())
    assert torch.equal(token_ids(model), reference_ids)


def test_load_model_with_checkpoint(reference, reference_ids, lavis_checkpoint, tmp_path):
    torch.manual_seed(3)
    model = lavis_ib.load_model(ARCH, TYPE, is_eval=True, checkpoint=str(lavis_checkpoint))
    assert_same_tensors(model.trainable_state_dict(), reference.trainable_state_dict())
    assert not model.training
    full = tmp_path / "full.pth"
    torch.save({"model": reference.state_dict()}, full)
    torch.manual_seed(4)
    model = lavis_ib.load_model(ARCH, TYPE, is_eval=True, checkpoint=full)
    assert torch.equal(token_ids(model), reference_ids)


# ----- (b) strictness ---------------------------------------------------------------------------------------
def test_checkpoint_lacking_qformer_raises(reference, tmp_path):
    state = {k: v for k, v in reference.trainable_state_dict().items() if not k.startswith("Qformer.")}
    path = tmp_path / "noqformer.pth"
    torch.save({"model": state}, path)
    with pytest.raises(KeyError) as info:
        build(5).load_checkpoint(path)
    assert "Qformer" in str(info.value)
    assert str(path) in str(info.value)


def test_checkpoint_with_unknown_key_raises(reference, tmp_path):
    state = dict(reference.trainable_state_dict())
    state["Qformer.bert.mystery_layer.weight"] = torch.zeros(3)
    path = tmp_path / "unknown.pth"
    torch.save({"model": state}, path)
    with pytest.raises(KeyError) as info:
        build(5).load_checkpoint(path)
    assert "Qformer.bert.mystery_layer.weight" in str(info.value)


def test_non_strict_load_tolerates_unknown_key(reference, tmp_path):
    state = dict(reference.trainable_state_dict())
    state["something.else"] = torch.zeros(3)
    path = tmp_path / "unknown.pth"
    torch.save(state, path)
    report = build(5).load_checkpoint(path, strict=False)
    assert report.unexpected == ["something.else"]


def test_checkpoint_shape_mismatch_names_key(reference, tmp_path):
    state = dict(reference.trainable_state_dict())
    state["query_tokens"] = torch.zeros(1, 3, 64)
    path = tmp_path / "shape.pth"
    torch.save({"model": state}, path)
    with pytest.raises(ValueError) as info:
        build(5).load_checkpoint(path)
    assert "query_tokens" in str(info.value)


def test_missing_checkpoint_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.pth"):
        read_state_dict(tmp_path / "absent.pth")


# ----- (c) configured weight locations ----------------------------------------------------------------------
def test_missing_vit_weights_names_key_and_path():
    model = build(6)
    model.cfg.random_init = False
    model.cfg.vit_weights = "/nonexistent/eva.pth"
    with pytest.raises(FileNotFoundError) as info:
        model.load_configured_weights()
    assert isinstance(info.value, WeightNotFoundError)
    assert "vit_weights" in str(info.value)
    assert "/nonexistent/eva.pth" in str(info.value)


def test_missing_pretrained_names_key_and_path():
    model = build(6)
    model.cfg.random_init = False
    model.cfg.vit_weights = None
    model.cfg.load_pretrained = True
    model.cfg.pretrained = "/nonexistent/blip2_pretrained.pth"
    with pytest.raises(WeightNotFoundError) as info:
        model.load_configured_weights()
    assert "pretrained" in str(info.value)
    assert "/nonexistent/blip2_pretrained.pth" in str(info.value)


def test_missing_finetuned_names_key(tmp_path):
    model = build(6)
    model.cfg.random_init = False
    model.cfg.load_finetuned = True
    model.cfg.finetuned = str(tmp_path / "ft.pth")
    with pytest.raises(WeightNotFoundError, match="finetuned"):
        model.load_configured_weights()


def test_configured_pretrained_is_loaded(reference, lavis_checkpoint):
    model = fresh_with_reference_frozen(reference)
    model.cfg.random_init = False
    model.cfg.load_pretrained = True
    model.cfg.pretrained = str(lavis_checkpoint)
    model.load_configured_weights()
    assert_same_tensors(model.trainable_state_dict(), reference.trainable_state_dict())


# ----- (d) EVA ViT weights ----------------------------------------------------------------------------------
def lavis_bicubic(pos_embed: torch.Tensor, grid: list[int]) -> torch.Tensor:
    """LAVIS's `interpolate_pos_embed`, computed independently: CLS kept, the patch grid resized by plain bicubic."""
    cls, patches = pos_embed[:, :1], pos_embed[:, 1:]
    side = int(patches.shape[1] ** 0.5)
    square = patches.reshape(1, side, side, -1).permute(0, 3, 1, 2)
    resized = torch.nn.functional.interpolate(square, size=grid, mode="bicubic", align_corners=False)
    return torch.cat([cls, resized.permute(0, 2, 3, 1).flatten(1, 2)], dim=1)


@pytest.mark.parametrize("source_side", [8, 2, 3])
def test_load_vit_weights_drops_extra_block_and_resamples_pos_embed(tmp_path, source_side):
    source = build(7)
    target = build(8)
    vit_state = {k: v.clone() for k, v in source.visual_encoder.state_dict().items()}
    depth = len(source.visual_encoder.blocks)
    # an extra block beyond this depth (EVA-CLIP-g has 40 blocks, BLIP-2 keeps 39)
    for key in [k for k in vit_state if k.startswith(f"blocks.{depth - 1}.")]:
        vit_state[key.replace(f"blocks.{depth - 1}.", f"blocks.{depth}.", 1)] = torch.randn_like(vit_state[key])
    # pos_embed of a different grid (larger and smaller than the model's 4x4)
    width = vit_state["pos_embed"].shape[-1]
    other_grid = torch.randn(1, 1 + source_side * source_side, width, generator=torch.Generator().manual_seed(2))
    vit_state["pos_embed"] = other_grid
    path = tmp_path / "eva_vit.pth"
    torch.save(vit_state, path)

    target.load_vit_weights(path)
    loaded = target.visual_encoder.state_dict()
    assert not any(k.startswith(f"blocks.{depth}.") for k in loaded)
    grid = list(target.visual_encoder.patch_embed.grid_size)
    assert loaded["pos_embed"].shape == source.visual_encoder.pos_embed.shape
    torch.testing.assert_close(loaded["pos_embed"], lavis_bicubic(other_grid, grid), atol=1e-6, rtol=0)
    torch.testing.assert_close(loaded["pos_embed"][:, :1], other_grid[:, :1])  # CLS position is kept as is
    for key, value in loaded.items():
        if key != "pos_embed":
            assert torch.equal(value, vit_state[key]), key


def test_load_vit_weights_with_visual_encoder_prefix_and_missing_keys(tmp_path):
    source = build(7)
    prefixed = {f"visual_encoder.{k}": v for k, v in source.visual_encoder.state_dict().items()}
    path = tmp_path / "prefixed.pth"
    torch.save(prefixed, path)
    target = build(8)
    target.load_vit_weights(path)
    assert_same_tensors(target.visual_encoder.state_dict(), source.visual_encoder.state_dict())

    incomplete = dict(source.visual_encoder.state_dict())
    del incomplete["cls_token"]
    torch.save(incomplete, path)
    with pytest.raises(KeyError, match="cls_token"):
        target.load_vit_weights(path)


# ----- (e) weights_only -------------------------------------------------------------------------------------
class Payload:
    """An arbitrary object whose unpickling would have a side effect (touching a marker file)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickled_object_is_refused(tmp_path):
    marker = tmp_path / "unpickled.marker"
    path = tmp_path / "evil.pth"
    torch.save({"model": {"query_tokens": torch.zeros(1)}, "extra": Payload(marker)}, path)
    with pytest.raises(pickle.UnpicklingError):
        read_state_dict(path)
    assert not marker.exists()
    model = build(9)
    with pytest.raises(pickle.UnpicklingError):
        model.load_checkpoint(path)
    assert not marker.exists()


def test_non_state_dict_payload_is_refused(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], path)
    with pytest.raises(ValueError, match="state dict"):
        read_state_dict(path)
