"""The demo page's input checks: each bad input of the page's list gets a message saying what is wrong and what to do;
repairable images become RGB with a notice; an over-long instruction keeps its end, as training truncates it."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from lavis_ib.app.checks import (DemoInputError, check_candidates, check_decoding, check_image, check_instruction,
                                 MAX_ASPECT, MIN_SIDE)
from lavis_ib.models.blip2_vicuna_instruct import Blip2VicunaInstruct
from lavis_ib.models.text.tokenizers import load_vicuna_tokenizer

SIZE = 56


def saved(tmp_path, name: str, image: Image.Image, **params) -> str:
    path = tmp_path / name
    image.save(path, **params)
    return str(path)


@pytest.mark.parametrize("name, make, message", [
    ("one.png", lambda: Image.new("RGB", (1, 1)), f"one.png is 1×1 pixels: too small to show anything. The page takes "
                                                  f"images of at least {MIN_SIDE}×{MIN_SIDE} pixels"),
    ("wide.png", lambda: Image.new("RGB", (10000, 10)), f"wide.png is 10000×10 pixels (aspect ratio 1000:1)"),
])
def test_images_too_small_or_too_elongated_are_refused(tmp_path, name, make, message):
    with pytest.raises(DemoInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_image(saved(tmp_path, name, make()), SIZE)


def test_the_aspect_limit_is_inclusive(tmp_path):
    assert check_image(saved(tmp_path, "ok.png", Image.new("RGB", (MAX_ASPECT * 8, 8))), SIZE).image.size == (80, 8)


def test_no_file_and_files_that_are_not_images_are_refused(tmp_path):
    with pytest.raises(DemoInputError, match="No image: upload one, or pick an example scene"):
        check_image(None, SIZE)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DemoInputError, match="notes.txt is not an image file this page can read"):
        check_image(str(tmp_path / "notes.txt"), SIZE)
    good = saved(tmp_path, "good.png", Image.new("RGB", (64, 64), (200, 10, 10)))
    (tmp_path / "cut.png").write_bytes(open(good, "rb").read()[:60])  # header intact, pixel data cut off
    with pytest.raises(DemoInputError, match=r"cut.png cannot be read as an image \(OSError: ") as error:
        check_image(str(tmp_path / "cut.png"), SIZE)
    assert str(tmp_path) not in str(error.value)  # the upload's own name, not the server's temporary path


def test_cmyk_16_bit_and_transparent_palette_images_become_rgb_with_a_notice(tmp_path):
    cmyk = check_image(saved(tmp_path, "cmyk.jpg", Image.new("CMYK", (32, 32), (0, 255, 255, 0))), SIZE)
    assert cmyk.image.mode == "RGB" and np.abs(np.asarray(cmyk.image)[0, 0].astype(int) - (255, 0, 0)).max() <= 2
    assert cmyk.notices == ["cmyk.jpg is a CMYK image (mode CMYK): converted to 8-bit RGB."]
    ramp = Image.fromarray(np.full((16, 16), 65535, dtype=np.uint16))
    deep = check_image(saved(tmp_path, "deep.png", ramp), SIZE)
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    assert tuple(np.asarray(deep.image)[0, 0]) == (255, 255, 255)  # scaled, not clipped from 65535
    assert "converted to 8-bit RGB; its values scaled to 8 bits" in deep.notices[0]
    palette = Image.new("P", (16, 16))
    palette.putpalette([0, 200, 0] * 256)
    transparent = check_image(saved(tmp_path, "pal.png", palette, transparency=0), SIZE)
    assert tuple(np.asarray(transparent.image)[0, 0]) == (0, 200, 0)
    assert transparent.notices == ["pal.png is a palette image (mode P): converted to 8-bit RGB; transparency "
                                   "dropped (transparent pixels show their stored colour)."]
    assert check_image(saved(tmp_path, "rgb.png", Image.new("RGB", (16, 16))), SIZE).notices == []


@pytest.fixture(scope="module")
def tokenizer():
    cfg = Blip2VicunaInstruct.parse_config(Blip2VicunaInstruct.default_config("tiny").model)
    return load_vicuna_tokenizer(cfg.llm_tokenizer, key="llm_tokenizer")


def test_empty_and_over_long_instructions(tokenizer):
    for empty in ("", "   ", None):
        with pytest.raises(DemoInputError, match="Empty instruction: type one"):
            check_instruction(empty, tokenizer, 64)
    question = "Question: how many shapes are there? Short answer:"
    assert check_instruction(f"  {question} ", tokenizer, 64) == (question, [])
    long = "word " * 100 + question
    total = len(tokenizer(long, add_special_tokens=False)["input_ids"])
    kept, notices = check_instruction(long, tokenizer, 64)
    assert kept.endswith(question) and len(tokenizer(kept, add_special_tokens=False)["input_ids"]) == 63
    assert notices[0].startswith(f"The instruction is {total} tokens long and the model takes 63 (max_txt_len 64, "
                                 f"BOS included): its first {total - 63} tokens were dropped")


def test_candidates():
    assert check_candidates("circle, square,triangle") == ["circle", "square", "triangle"]
    assert check_candidates("a red circle\na blue square, big") == ["a red circle", "a blue square, big"]
    cases = {"": "No candidates to rank", " \n ": "No candidates to rank",
             "circle,,square": "Candidate 2 of 3 is empty", "a\nb\n\nc": "Candidate 3 of 4 is empty",
             "circle, circle": "Candidate 'circle' is listed twice", ",".join(map(str, range(51))): "at most 50"}
    for text, message in cases.items():
        with pytest.raises(DemoInputError, match=message):
            check_candidates(text)


SETTINGS = dict(sampling=False, num_beams=5, max_length=10, min_length=1, temperature=1.0, top_p=0.9,
                length_penalty=1.0, repetition_penalty=1.5, num_outputs=1)


@pytest.mark.parametrize("changes, message", [
    ({"min_length": 12}, "Min length 12 is more than max length 10"),
    ({"sampling": True, "temperature": 0}, "Temperature 0 with nucleus sampling: sampling needs a temperature above 0"),
    ({"num_outputs": 6}, "6 outputs need at least 6 beams"),
    ({"top_p": 0}, r"Top-p 0 is outside \(0, 1\]"),
    ({"max_length": None}, "Every decoding setting needs a number"),
])
def test_decoding_settings_that_cannot_work(changes, message):
    with pytest.raises(DemoInputError, match=message):
        check_decoding(**{**SETTINGS, **changes})


def test_decoding_settings_map_to_generate_and_say_what_they_are():
    greedy = check_decoding(**{**SETTINGS, "num_beams": 1})
    assert greedy.streams and greedy.describe() == ("greedy search, 1–10 new tokens, length penalty 1, repetition "
                                                    "penalty 1.5, 1 output")
    sampled = check_decoding(**{**SETTINGS, "sampling": True, "temperature": 0.7, "num_outputs": 3})
    assert sampled.streams and sampled.generate_args() == dict(
        use_nucleus_sampling=True, num_beams=1, max_length=10, min_length=1, top_p=0.9, temperature=0.7,
        length_penalty=1.0, repetition_penalty=1.5, num_captions=3, length_semantics="new_tokens")
    assert not check_decoding(**SETTINGS).streams
