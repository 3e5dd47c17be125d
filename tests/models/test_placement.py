"""`model.device_map`: the frozen LLM placed by accelerate over devices, CPU and disk. On this CPU-only machine a
`max_memory` too small for the LLM forces its layers to disk: outputs must equal the single-device model's, the
embeddings stay on the first device (the tokenizer's added rows grow them), and `.to()` leaves the LLM in place."""

from __future__ import annotations

import pytest
import torch

from lavis_ib.common.schema import ConfigError
from lavis_ib.runners.runner_iter import check_llm_training
from tests.models.big_llm import ANSWERS, PROMPTS, images, load_vicuna


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    offload = tmp_path_factory.mktemp("offload")
    placed = load_vicuna(device_map="auto", max_memory={"cpu": "150KB"}, offload_folder=str(offload))
    return load_vicuna(), placed, offload


def test_layers_go_to_disk_and_the_embeddings_stay_on_the_first_device(pair):
    _, placed, _ = pair
    device_map = placed.llm.hf_device_map
    assert device_map["model.embed_tokens"] == "cpu" and device_map["lm_head"] == "cpu"
    assert device_map["model.layers"] == "disk"  # read from the safetensors file at each forward, not held
    assert all(p.device.type == "meta" for p in placed.llm.model.layers.parameters())
    assert placed.llm.get_input_embeddings().weight.shape[0] == len(placed.tokenizer)  # grown after placement


def test_generate_and_ranking_equal_the_single_device_model(pair):
    plain, placed, _ = pair
    samples = {"image": images(), "prompt": PROMPTS}
    assert torch.equal(placed.score_candidates(samples, ANSWERS).stacked(),
                       plain.score_candidates(samples, ANSWERS).stacked())
    for beams in (1, 2):  # greedy, and beam search (its KV-cache reordering crosses the offload hooks)
        assert placed.generate(samples, max_length=5, num_beams=beams) == plain.generate(samples, max_length=5,
                                                                                       num_beams=beams)


def test_moving_the_model_leaves_the_placed_llm_where_it_is(pair):
    _, placed, _ = pair
    disk = [n for n, p in placed.llm.named_parameters() if p.device.type == "meta"]
    placed.to("cpu", torch.float64)
    assert placed.query_tokens.dtype == torch.float64
    assert [n for n, p in placed.llm.named_parameters() if p.device.type == "meta"] == disk
    assert placed.llm.get_input_embeddings().weight.dtype == torch.float32
    placed.to(torch.float32)


def test_export_and_training_refuse_a_placed_llm(pair, tmp_path):
    _, placed, _ = pair
    with pytest.raises(ConfigError, match="placed by model.device_map .*without model.device_map"):
        placed.export_hf(tmp_path / "hf")
    from types import SimpleNamespace

    with pytest.raises(ConfigError, match="t.yaml: model.device_map is for inference"):
        check_llm_training(SimpleNamespace(fsdp=False), {"device_map": "auto"}, "t.yaml")


@pytest.mark.parametrize("options, message", [
    ({"device_map": "everywhere"}, "model.device_map must be auto, balanced, balanced_low_0, sequential or a dict"),
    ({"max_memory": {"cpu": "1GB"}}, "model.max_memory / model.offload_folder need model.device_map"),
])
def test_bad_placement_settings_are_config_errors(options, message):
    with pytest.raises(ConfigError, match=message):
        load_vicuna(**options)
