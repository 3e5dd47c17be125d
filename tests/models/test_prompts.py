"""Prompt assembly (`lavis_ib.models.text.prompts`) and the prompt-facing inference API on the tiny models."""

from __future__ import annotations

import pytest
import torch

from lavis_ib import load_model
from lavis_ib.models.text.prompts import class_prompts, fill_ocr, join_ocr_tokens, vqa_prompt, with_class_prefixes

OCR = [f"t{i}" for i in range(35)]
GREEDY = dict(num_beams=1, max_length=4, min_length=1, repetition_penalty=1.0)


@pytest.fixture(scope="module")
def vicuna():
    torch.manual_seed(0)
    return load_model("blip2_vicuna_instruct", "tiny", is_eval=True)


@pytest.fixture(scope="module")
def t5():
    torch.manual_seed(0)
    return load_model("blip2_t5_instruct", "tiny", is_eval=True)


def images(model, batch=2):
    size = model.cfg.image_size
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(11))


# ----- pure string functions ----------------------------------------------------------------------------------
def test_ocr_tokens_first_30_comma_joined():
    joined = join_ocr_tokens(OCR)
    assert joined == ", ".join(OCR[:30])
    assert "t29" in joined and "t30" not in joined
    assert fill_ocr(["OCR: {}. Caption:", "Text {} here"], [OCR, ["a", "b"]]) == [
        f"OCR: {joined}. Caption:", "Text a, b here"]
    assert fill_ocr(["no slot"], [OCR]) == ["no slot"]
    assert fill_ocr(["slot {}"], None) == ["slot {}"]


def test_vqa_prompt_two_slots():
    template = "OCR tokens: {}. Question: {} Short answer:"
    assert vqa_prompt(template, "what?", ["x", "y"], None) == "OCR tokens: x, y. Question: what? Short answer:"
    assert vqa_prompt(template, "what?", OCR, None) == f"OCR tokens: {join_ocr_tokens(OCR)}. Question: what? Short answer:"
    choices = "Question: {} Options: {}"
    assert vqa_prompt(choices, "which?", None, ["x", "y"]) == "Question: which? Options: (a) x (b) y"
    assert vqa_prompt("Question: {} Short answer:", "why?", None, None) == "Question: why? Short answer:"


def test_vqa_prompt_two_slots_without_ocr_or_choices_raises_value_error():
    with pytest.raises(ValueError) as info:
        vqa_prompt("A {} B {}", "q", None, None)
    assert not isinstance(info.value, UnboundLocalError)
    message = str(info.value)
    assert "ocr_tokens" in message and "choices" in message


def test_class_prefixes_only_when_non_empty():
    samples = {"context": ["c", ""], "history": ["", "h"], "caption": ["", "cap"]}
    assert with_class_prefixes(["p", "p"], samples) == [
        "context: c. p", 'This image has the caption "cap". dialog history: h\np']
    assert with_class_prefixes(["p"], {"history": ["h"]}) == ["dialog history: h\np"]
    assert with_class_prefixes(["p"], {"caption": ["c"]}) == ['This image has the caption "c". p']
    assert with_class_prefixes(["p"], {"context": [""], "history": [""], "caption": [""]}) == ["p"]
    assert class_prompts({"text_input": ["what?"], "context": ["ctx"]}, "", 1) == ["context: ctx. what?"]


# ----- through the models -------------------------------------------------------------------------------------
def test_generate_fills_ocr_tokens(vicuna):
    image = images(vicuna)
    ocr = [OCR, ["stop", "sign"]]
    template = "OCR tokens: {}. Caption:"
    got = vicuna.generate_token_ids({"image": image, "prompt": template, "ocr_tokens": ocr}, **GREEDY)
    rendered = [template.format(join_ocr_tokens(o)) for o in ocr]
    expected = vicuna.generate_token_ids({"image": image, "prompt": rendered}, **GREEDY)
    assert got.tolist() == expected.tolist()


def test_predict_answers_template_equals_generate(vicuna):
    image = images(vicuna)
    questions = ["what is it?", "how many shapes are there in the picture?"]
    template = "Question: {} Short answer:"
    answers = vicuna.predict_answers({"image": image, "text_input": questions}, num_beams=1, max_len=4, min_len=1,
                                     prompt=template)
    rendered = [template.format(q) for q in questions]
    ids = vicuna.generate_token_ids({"image": image, "prompt": rendered}, num_beams=1, max_length=4, min_length=1,
                                    length_penalty=vicuna.ANSWER_LENGTH_PENALTY)
    assert answers == vicuna.decode(ids)
    assert answers == vicuna.generate({"image": image, "prompt": rendered}, num_beams=1, max_length=4, min_length=1,
                                      length_penalty=vicuna.ANSWER_LENGTH_PENALTY)


def test_predict_answers_ocr_and_choices_templates(vicuna):
    image = images(vicuna)
    samples = {"image": image, "text_input": ["q1", "q2"], "choices": [["x", "y"], ["u", "v", "w"]]}
    got = vicuna.predict_answers(samples, num_beams=1, max_len=3, prompt="Question: {} Options: {}")
    rendered = ["Question: q1 Options: (a) x (b) y", "Question: q2 Options: (a) u (b) v (c) w"]
    assert got == vicuna.generate({"image": image, "prompt": rendered}, num_beams=1, max_length=3, min_length=1,
                                  length_penalty=vicuna.ANSWER_LENGTH_PENALTY)
    with pytest.raises(ValueError, match="ocr_tokens"):
        vicuna.predict_answers({"image": image, "text_input": ["q1", "q2"]}, prompt="{} and {}")


@pytest.mark.parametrize("kind", ["vicuna", "t5"])
def test_predict_answers_rank_returns_argmax(kind, request):
    model = request.getfixturevalue(kind)
    image = images(model)
    answer_list = ["yes", "no", "a red ball", "two"]
    questions = ["is it red?", "what is it?"]
    got = model.predict_answers({"image": image, "text_input": questions}, inference_method="rank",
                                answer_list=answer_list, prompt="Question: {} Answer:")
    scores = model.score_candidates({"image": image, "prompt": [f"Question: {q} Answer:" for q in questions]},
                                    answer_list)
    assert got == [answer_list[int(torch.argmax(s))] for s in scores.sum]
    assert all(a in answer_list for a in got)
    with pytest.raises(ValueError):
        model.predict_answers({"image": image, "text_input": questions}, inference_method="rank")


def test_nucleus_sampling_num_captions_reproducible(vicuna):
    image = images(vicuna)
    settings = dict(use_nucleus_sampling=True, num_captions=3, max_length=5, top_p=0.9, num_beams=1)
    torch.manual_seed(123)
    first = vicuna.generate({"image": image, "prompt": "A photo of"}, **settings)
    torch.manual_seed(123)
    second = vicuna.generate({"image": image, "prompt": "A photo of"}, **settings)
    assert len(first) == 3 * image.shape[0]
    assert first == second


# (max_length, min_length) → the exact number of new tokens when both bounds meet, per semantics and arch.
EXACT_LENGTHS = {("new_tokens", "vicuna"): 6, ("new_tokens", "t5"): 6, ("lavis", "vicuna"): 5}


@pytest.mark.parametrize("semantics", ["new_tokens", "lavis"])
@pytest.mark.parametrize("kind", ["vicuna", "t5"])
def test_length_semantics(kind, semantics, request):
    """`new_tokens`: both bounds count generated tokens. `lavis`: decoder-only counts a BOS placeholder in both
    (one token fewer), T5 counts its decoder start token in `min_length` only (so `max_length` still bounds)."""
    model = request.getfixturevalue(kind)
    image = images(model)
    pad = model.tokenizer.pad_token_id
    prompts = ["describe", "describe the picture in a lot of detail please"]

    def new_tokens(max_length, min_length):
        ids = model.generate_token_ids({"image": image, "prompt": prompts}, num_beams=1, max_length=max_length,
                                       min_length=min_length, length_semantics=semantics)
        if kind == "t5":
            ids = ids[:, 1:]  # the decoder start token is not a new token
        return (ids != pad).sum(dim=1)

    limit = 3 - (semantics == "lavis" and kind == "vicuna")
    assert (new_tokens(3, 1) <= limit).all()
    lengths = new_tokens(6, 6)
    if (semantics, kind) in EXACT_LENGTHS:
        assert lengths.tolist() == [EXACT_LENGTHS[semantics, kind]] * 2
    else:  # lavis T5: at least min_length - 1 = 5, at most max_length = 6
        assert ((lengths >= 5) & (lengths <= 6)).all()


def test_lavis_length_semantics_is_the_default_and_checked(vicuna):
    image = images(vicuna, 1)
    default = vicuna.generate_token_ids({"image": image, "prompt": "x"}, num_beams=1, max_length=4, min_length=4)
    lavis = vicuna.generate_token_ids({"image": image, "prompt": "x"}, num_beams=1, max_length=4, min_length=4,
                                      length_semantics="lavis")
    assert torch.equal(default, lavis) and default.shape[1] == 3
    with pytest.raises(ValueError, match="max_length=1 leaves no token to generate"):
        vicuna.generate({"image": image, "prompt": "x"}, max_length=1)
    with pytest.raises(ValueError, match="length_semantics must be one of lavis, new_tokens"):
        vicuna.generate({"image": image, "prompt": "x"}, length_semantics="hf")


def test_unknown_generate_kwarg_is_type_error(vicuna):
    with pytest.raises(TypeError, match="max_new_tokens"):
        vicuna.generate({"image": images(vicuna, 1), "prompt": "x"}, max_new_tokens=3)
    with pytest.raises(TypeError, match="beams"):
        vicuna.generate_token_ids({"image": images(vicuna, 1), "prompt": "x"}, beams=3)


def test_vicuna_tokenizer_conventions_through_model(vicuna):
    assert vicuna.tokenizer("hi").input_ids[0] == 2
    assert vicuna.tokenizer.pad_token_id == 1000 == vicuna.cfg.llm_config["vocab_size"]  # [PAD] appended
    ids = torch.tensor([[5, 0, 7, 0], [0, 2, 1000, 1000]])
    cleaned = vicuna.clean_output_ids(ids)
    assert cleaned.tolist() == [[5, 2, 7, 2], [2, 2, 1000, 1000]]
    assert vicuna.decode(torch.tensor([[0, 0]])) == [""]
