"""The pre-trained tiny ViT and LLM that `make demo` instruction-tunes: the committed weights come from the tools in
`tools/` with their current settings, and the demo's model config loads them into the frozen parts."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lavis_ib.common.config import Config
from lavis_ib.common.paths import assets_root
from lavis_ib.common.registry import registry

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_MODEL = REPO_ROOT / "projects" / "instructblip" / "demo_model.yaml"


@pytest.fixture(scope="module")
def tools():
    sys.path.insert(0, str(REPO_ROOT / "tools"))
    try:
        yield {name: importlib.import_module(name) for name in ("make_tiny_lm", "make_tiny_vit")}
    finally:
        sys.path.remove(str(REPO_ROOT / "tools"))


@pytest.mark.parametrize("tool, directory", [("make_tiny_vit", "tiny_vit"), ("make_tiny_lm", "tiny_lm")])
def test_committed_weights_come_from_the_tools_settings(tools, tool, directory):
    """Re-running the first training steps reproduces the recorded losses (fixed seeds, one thread)."""
    threads = torch.get_num_threads()
    try:
        problems = tools[tool].check(assets_root / directory)
    finally:
        torch.set_num_threads(threads)
    assert problems == [], f"rerun `python tools/{tool}.py`: {problems}"


def test_recorded_pretraining_reached_its_goal():
    vit = json.loads((assets_root / "tiny_vit" / "pretraining.json").read_text())["patch_accuracy"]
    assert vit["shape"] >= 99 and vit["colour"] >= 99 and vit["word"] >= 99  # patches a thing or word covers
    record = json.loads((assets_root / "tiny_lm" / "pretraining.json").read_text())
    assert min(record["in_context_accuracy"].values()) >= 95  # answers from the caption it is given, eval templates
    # the held-out tasks' zero-shot prompts, never trained on, answered from captions alone (counting, direction of
    # motion across frame captions); chance: 33.3 % and 25 %
    held_out = record["held_out_in_context"]
    assert held_out["synthetic_count"] >= 95 and held_out["synthetic_video_qa"] >= 95


def test_the_demo_model_loads_the_pretrained_frozen_parts():
    cfg = Config(str(DEMO_MODEL))
    model = registry.get_model_class(cfg.model_cfg.arch).from_config(cfg.model_cfg)
    vit = load_file(str(assets_root / "tiny_vit" / "vit.safetensors"))
    assert set(vit) == set(model.visual_encoder.state_dict())
    for name, tensor in model.visual_encoder.state_dict().items():
        assert torch.equal(tensor.float(), vit[name].float()), name
    lm = load_file(str(assets_root / "tiny_lm" / "model.safetensors"))
    embeddings = model.llm.get_input_embeddings().weight
    assert embeddings.shape[0] == lm["model.embed_tokens.weight"].shape[0] + 1  # + the [PAD] the model adds
    assert torch.equal(embeddings[:-1].float(), lm["model.embed_tokens.weight"].float())
    assert torch.equal(model.llm.lm_head.weight[:-1].float(), lm["lm_head.weight"].float())
    assert model.query_tokens.shape == (1, 32, 64)
    assert not any(p.requires_grad for p in model.visual_encoder.parameters())
    assert not any(p.requires_grad for p in model.llm.parameters())
