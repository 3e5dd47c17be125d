"""Bad inputs at the model's door: each is one clear error naming what was expected and what came in."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from lavis_ib import load_model

SIZE = 56  # the tiny model types' image size


@pytest.fixture(scope="module")
def vicuna():
    torch.manual_seed(0)
    return load_model("blip2_vicuna_instruct", "tiny", is_eval=True)


def image(batch=1, *tail):
    return torch.randn(batch, 3, *(tail or (SIZE, SIZE)), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("bad, error, message", [
    (torch.randn(3, SIZE, SIZE), ValueError, r"3-D tensor of shape \(3, 56, 56\) \(add the batch dimension"),
    (torch.randn(1, 1, 3, 2, SIZE, SIZE), ValueError, r"6-D tensor"),
    (torch.randn(1, SIZE, SIZE, 3), ValueError, r"got shape \(1, 56, 56, 3\) \(it looks channels-last"),
    (torch.randn(1, 1, SIZE, SIZE), ValueError, r"3 \(RGB\) channels in dimension 1"),
    (torch.randn(1, 4, SIZE, SIZE), ValueError, r"3 \(RGB\) channels in dimension 1 .* got shape \(1, 4, 56, 56\)"),
    (torch.zeros(1, 3, SIZE, SIZE, dtype=torch.uint8), TypeError, r"normalised float tensor; got dtype torch.uint8"),
    (torch.randn(1, 3, 224, 224), ValueError, r"is 224×224 px but this model takes 56×56"),
    (np.zeros((1, 3, SIZE, SIZE), dtype=np.float32), TypeError, r"got numpy.ndarray"),
    (Image.new("RGB", (SIZE, SIZE)), TypeError, r"got PIL.Image.Image .*vis_processors\['eval'\]"),
    (torch.randn(0, 3, SIZE, SIZE), ValueError, r"empty batch \(shape \(0, 3, 56, 56\)\)"),
    (torch.randn(1, 3, 0, SIZE, SIZE), ValueError, r"video with no frames"),
    (torch.full((1, 3, SIZE, SIZE), float("nan")), ValueError, r"contains NaN or infinite values"),
])
def test_bad_images_are_named_at_every_entry_point(vicuna, bad, error, message):
    for call in (lambda: vicuna.generate({"image": bad, "prompt": "x"}, max_length=3),
                 lambda: vicuna({"image": bad, "text_input": ["x"], "text_output": ["y"]}),
                 lambda: vicuna.score_candidates({"image": bad, "prompt": "x"}, ["a", "b"])):
        with pytest.raises(error, match=message):
            call()


def test_float64_images_are_accepted_as_fp32(vicuna):
    pixels = image()
    settings = dict(num_beams=1, max_length=3)
    assert torch.equal(vicuna.generate_token_ids({"image": pixels.double(), "prompt": "x"}, **settings),
                       vicuna.generate_token_ids({"image": pixels, "prompt": "x"}, **settings))


def test_text_lists_must_match_the_batch(vicuna):
    with pytest.raises(ValueError, match=r"samples\['text_input'\] has 3 entries for a batch of 2 images"):
        vicuna({"image": image(2), "text_input": ["a", "b", "c"], "text_output": ["x", "y"]})
    with pytest.raises(ValueError, match=r"samples\['text_output'\] has 1 entries for a batch of 2 images"):
        vicuna({"image": image(2), "text_input": ["a", "b"], "text_output": ["x"]})
    with pytest.raises(ValueError, match=r"samples\['prompt'\] has 3 entries for a batch of 1 images"):
        vicuna.generate({"image": image(), "prompt": ["a", "b", "c"]})
    with pytest.raises(TypeError, match=r"samples\['instruction'\]\[1\] must be a string, got int"):
        vicuna.generate({"image": image(2), "instruction": ["a", 3]})


@pytest.mark.parametrize("candidates, message", [
    (["a cat", ""], r"candidates\[1\] is an empty string: it has no tokens to score"),
    (["a cat", "   "], r"candidates\[1\] is an empty string"),
    ([], r"candidates must be a non-empty list of strings"),
    ([["a"], []], r"candidates\[1\] is empty: each sample needs at least one candidate"),
    ([["a"]], r"candidates has 1 per-sample lists for a batch of 2 images"),
    ("a cat", r"candidates must be a non-empty list of strings"),
])
def test_bad_candidates(vicuna, candidates, message):
    with pytest.raises(ValueError, match=message):
        vicuna.predict_class({"image": image(2), "prompt": "what is it?"}, candidates)


@pytest.mark.parametrize("argument, message", [
    ({"num_beams": 0}, r"generate\(\): num_beams must be an integer ≥ 1, got 0"),
    ({"num_beams": -1}, r"num_beams must be an integer ≥ 1, got -1"),
    ({"min_length": -1}, r"min_length must be an integer between 0 and max_length \(256\), got -1"),
    ({"max_length": 8, "min_length": 9}, r"min_length must be an integer between 0 and max_length \(8\), got 9"),
    ({"num_captions": 0}, r"num_captions must be an integer ≥ 1, got 0"),
    ({"num_beams": 2, "num_captions": 3}, r"num_captions must be ≤ num_beams \(2\) for beam search"),
    ({"max_length": 0}, r"max_length must be an integer ≥ 1, got 0"),
    ({"top_p": 0}, r"top_p must be in \(0, 1\], got 0"),
    ({"temperature": 0.0}, r"temperature must be > 0, got 0.0"),
    ({"use_nucleus_sampling": "yes"}, r"use_nucleus_sampling must be True or False, got 'yes'"),
])
def test_bad_generation_arguments_are_named(vicuna, argument, message):
    with pytest.raises(ValueError, match=message):
        vicuna.generate({"image": image(), "prompt": "x"}, **argument)
