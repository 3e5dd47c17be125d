"""Generation that prefills once: the `[pads | Q | prompt]` prefix runs at batch B and its KV cache is expanded for
beams / captions, instead of `generate` running it B × beams times. The token ids must equal the old path's, which
is kept here only as the reference: `self.llm.generate(inputs_embeds=...)` with the inputs expanded by transformers.
"""

from __future__ import annotations

import types

import pytest
import torch

from transformers import DynamicCache

from lavis_ib import load_model
from lavis_ib.models.inference.generation_cache import SharedPrefixLayer, expand_prefix_cache

ARCHS = {"vicuna": "blip2_vicuna_instruct", "opt": "blip2_opt"}
PROMPTS = ["What is shown?", "Describe the colours of every shape in this picture in detail, please.", "Where?"]
SETTINGS = {
    "greedy": dict(num_beams=1),
    "beam3": dict(num_beams=3),
    "beam5-lp0": dict(num_beams=5, length_penalty=0.0),
    "beam5-lp2": dict(num_beams=5, length_penalty=2.0),
    "beam5-lp-1": dict(num_beams=5, length_penalty=-1.0),
    "beam5-min=max": dict(num_beams=5, min_length=10, max_length=10, length_semantics="new_tokens"),
    "beam5-lavis-lengths": dict(num_beams=5, min_length=4, max_length=9, length_semantics="lavis"),
    "beam5-captions3": dict(num_beams=5, num_captions=3),
    "beam3-repetition1.5": dict(num_beams=3, repetition_penalty=1.5),
    "beam5-repetition2": dict(num_beams=5, repetition_penalty=2.0, length_penalty=0.5),
}
SAMPLING = {
    "nucleus-captions3": dict(use_nucleus_sampling=True, num_beams=1, num_captions=3, top_p=0.9),
    "beam-sample-captions2": dict(use_nucleus_sampling=True, num_beams=3, num_captions=2, temperature=0.8),
}
BASE = dict(max_length=12, min_length=2, repetition_penalty=1.0)


@pytest.fixture(scope="module", params=sorted(ARCHS))
def model(request):
    torch.manual_seed(0)
    return load_model(ARCHS[request.param], "tiny", is_eval=True)


def samples(model, batch: int) -> dict:
    size = model.cfg.image_size
    images = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(1))
    return {"image": images, "prompt": PROMPTS[:batch] if batch > 1 else PROMPTS[1:2]}


def expanded_reference(self, visual, prompt_tokens, gen_kwargs):
    """The path before the prefill change: transformers expands the inputs ×beams and prefills all of them."""
    embeds, mask = self.generation_inputs(visual, prompt_tokens)
    with self.llm_compute():
        out = self.llm.generate(inputs_embeds=embeds, attention_mask=mask, eos_token_id=self.eos_token_id,
                                pad_token_id=self.tokenizer.pad_token_id, **gen_kwargs)
    return self.clean_output_ids(out)


def both_paths(model, batch: int, settings: dict, seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(ours, reference) token ids for the same inputs; each run from `seed` when given."""
    inputs, args = samples(model, batch), {**BASE, **settings}
    if seed is not None:
        torch.manual_seed(seed)
    ours = model.generate_token_ids(inputs, **args)
    model.generate_ids_from = types.MethodType(expanded_reference, model)
    try:
        if seed is not None:
            torch.manual_seed(seed)
        reference = model.generate_token_ids(inputs, **args)
    finally:
        del model.generate_ids_from
    return ours, reference


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("case", sorted(SETTINGS))
def test_ids_equal_the_expanded_prefill(model, batch, case):
    ours, reference = both_paths(model, batch, SETTINGS[case])
    assert ours.shape == reference.shape
    assert ours.tolist() == reference.tolist()


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("case", sorted(SAMPLING))
def test_sampling_equals_the_expanded_prefill_under_a_seed(model, batch, case):
    """The prefill draws no random numbers (eval mode), so the same seed gives the same captions."""
    settings = SAMPLING[case]
    ours, reference = both_paths(model, batch, settings, seed=7)
    assert ours.shape[0] == batch * settings["num_captions"]
    assert ours.tolist() == reference.tolist()
    again, _ = both_paths(model, batch, settings, seed=7)
    assert again.tolist() == ours.tolist()


def test_early_eos_pads_finished_beams_alike(model, monkeypatch):
    """With an EOS the beams actually emit, finished hypotheses and padding come out as on the old path."""
    settings = dict(num_beams=4, num_captions=2, length_penalty=0.0)  # sum of log-probs: a short answer wins
    eos = model.generate_token_ids(samples(model, 3), **BASE, **settings)[0, 2].item()  # the best beam's third token
    monkeypatch.setattr(type(model), "eos_token_id", property(lambda self: eos))
    ours, reference = both_paths(model, 3, settings)
    assert ours.tolist() == reference.tolist()
    assert (ours == eos).any() and (ours == model.tokenizer.pad_token_id).any()


@pytest.mark.parametrize("settings", [dict(num_beams=1), dict(num_beams=5), dict(num_beams=3, num_captions=3),
                                      dict(use_nucleus_sampling=True, num_beams=1, num_captions=4)])
def test_prefix_runs_once_per_sample(model, settings):
    """One LLM call over the prefix at batch B; every call at the expanded batch reads one position."""
    calls = []

    def record(module, args, kwargs):
        tokens = kwargs.get("inputs_embeds")
        tokens = tokens if tokens is not None else kwargs.get("input_ids")
        calls.append(tuple(tokens.shape[:2]))

    handle = model.llm.register_forward_pre_hook(record, with_kwargs=True)
    try:
        model.generate_token_ids(samples(model, 3), **BASE, **settings)
    finally:
        handle.remove()
    prefix_length = model.generation_inputs(model.query_features(samples(model, 3)["image"], PROMPTS),
                                            PROMPTS)[0].shape[1]
    copies = max(settings["num_beams"], settings.get("num_captions", 1))
    # one copy has nothing to share: `generate` prefills the whole prefix itself, as transformers does
    assert calls[0] == (3, prefix_length if copies == 1 else prefix_length - 1)
    assert all(call == (3 * copies, 1) for call in calls[1:]), calls


def test_t5_encoder_runs_once_per_sample():
    """T5 needs no change: `generate` runs the encoder at batch B, then expands its outputs for the beams."""
    t5 = load_model("blip2_t5_instruct", "tiny", is_eval=True)
    shapes = []
    handle = t5.llm.get_encoder().register_forward_pre_hook(
        lambda module, args, kwargs: shapes.append(tuple(kwargs["inputs_embeds"].shape[:2])), with_kwargs=True)
    try:
        out = t5.generate_token_ids(samples(t5, 3), **BASE, num_beams=5, num_captions=2)
    finally:
        handle.remove()
    assert len(shapes) == 1 and shapes[0][0] == 3
    assert out.shape[0] == 6


def test_shared_prefix_layer_holds_what_a_repeated_dynamic_cache_holds():
    """Updates past the planned capacity, beam reorders within each sample, and a crop: the same keys and values as
    transformers' layer repeated ×copies, with the prefix rows never moved."""
    generator = torch.Generator().manual_seed(0)
    batch, copies, heads, prefix, dim = 2, 3, 2, 5, 4

    def filled():
        cache = DynamicCache()
        cache.update(torch.randn(batch, heads, prefix, dim, generator=torch.Generator().manual_seed(1)),
                     torch.randn(batch, heads, prefix, dim, generator=torch.Generator().manual_seed(2)), 0)
        return cache

    reference = filled()
    reference.batch_repeat_interleave(copies)
    ours = expand_prefix_cache(filled(), copies, capacity=prefix + 2)
    assert isinstance(ours.layers[0], SharedPrefixLayer)
    for step in range(6):
        new = [torch.randn(batch * copies, heads, 1, dim, generator=generator) for _ in range(2)]
        expected, got = reference.update(*new, 0), ours.update(*new, 0)
        assert all(torch.equal(e, g) for e, g in zip(expected, got))
        parents = torch.randint(0, copies, (batch, copies), generator=generator) + torch.arange(batch)[:, None] * copies
        reference.reorder_cache(parents.flatten())
        ours.reorder_cache(parents.flatten())
        assert torch.equal(reference.layers[0].keys, ours.layers[0].keys)
        assert torch.equal(reference.layers[0].values, ours.layers[0].values)
    assert ours.get_seq_length() == prefix + 6
    reference.crop(-2)
    ours.crop(-2)
    assert torch.equal(reference.layers[0].keys, ours.layers[0].keys) and ours.get_seq_length() == prefix + 4
