"""Tests for the tiny tokenizer assets, their generator and the loaders in `lavis_ib.models.text.tokenizers`."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import sentencepiece as spm
from transformers import LlamaTokenizer

from lavis_ib.models.text.tokenizers import (
    TINY_TOKENIZER_KINDS,
    TINY_TOKENIZERS_ROOT,
    encode,
    has_tokenizer_files,
    MIN_REGULAR_TOKENS,
    TokenizerError,
    load_opt_tokenizer,
    load_qformer_tokenizer,
    load_t5_tokenizer,
    load_vicuna_tokenizer,
    tiny_tokenizer_dir,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
TEXT = "Write a short description for the image."
LONG_TEXT = " ".join(f"the {c} cube is next to the {c} star." for c in ("red", "blue", "green", "yellow", "pink"))


def llama_sentencepiece() -> spm.SentencePieceProcessor:
    """The tiny LLaMA sentencepiece model itself (its piece count plays the role of real Vicuna's 32000)."""
    return spm.SentencePieceProcessor(model_file=str(tiny_tokenizer_dir("llama") / "tokenizer.model"))


@pytest.fixture(scope="module")
def vicuna():
    return load_vicuna_tokenizer(tiny_tokenizer_dir("llama"))


def test_tiny_dirs_exist_and_are_small():
    total = 0
    for kind in TINY_TOKENIZER_KINDS:
        directory = tiny_tokenizer_dir(kind)
        assert directory.is_dir() and directory.parent == TINY_TOKENIZERS_ROOT
        total += sum(f.stat().st_size for f in directory.iterdir())
    assert total < 2 * 1024 * 1024
    with pytest.raises(ValueError, match="unknown tiny tokenizer"):
        tiny_tokenizer_dir("gpt9")


def test_vicuna_conventions(vicuna):
    sentencepiece = llama_sentencepiece()
    base = sentencepiece.get_piece_size()
    ids = vicuna(TEXT).input_ids
    assert ids[0] == 2 and ids.count(2) == 1
    assert ids[1:] == sentencepiece.encode(TEXT)
    assert vicuna.bos_token_id == vicuna.eos_token_id == vicuna.unk_token_id == 2
    assert vicuna.pad_token == "[PAD]" and vicuna.pad_token_id == base and len(vicuna) == base + 1
    assert 0 not in vicuna.all_special_ids
    assert set(vicuna.all_special_ids) == {2, base}
    assert vicuna.decode([0]) == "<unk>"


def test_vicuna_from_sentencepiece_model_only(tmp_path, vicuna):
    """A real Vicuna dir has only tokenizer.model (+ config); the conversion path must give the same ids."""
    shutil.copy(tiny_tokenizer_dir("llama") / "tokenizer.model", tmp_path)
    converted = load_vicuna_tokenizer(tmp_path)
    assert converted([TEXT, LONG_TEXT]).input_ids == vicuna([TEXT, LONG_TEXT]).input_ids
    assert converted.pad_token_id == vicuna.pad_token_id


def test_vicuna_idempotent_on_round_trip(tmp_path, vicuna):
    vicuna.save_pretrained(tmp_path)
    again = load_vicuna_tokenizer(tmp_path)
    assert again([TEXT, LONG_TEXT]).input_ids == vicuna([TEXT, LONG_TEXT]).input_ids
    assert again.pad_token_id == vicuna.pad_token_id and len(again) == len(vicuna)
    assert set(again.all_special_ids) == set(vicuna.all_special_ids)


def test_vicuna_fixes_stale_post_processor(tmp_path, vicuna):
    """A dir saved after LAVIS-style `add_special_tokens` (transformers 5 keeps the `<s>` post-processor) still loads
    with `</s>` as the first id."""
    mutated = LlamaTokenizer.from_pretrained(tiny_tokenizer_dir("llama"))
    for key, value in (("pad_token", "[PAD]"), ("bos_token", "</s>"), ("eos_token", "</s>"), ("unk_token", "</s>")):
        mutated.add_special_tokens({key: value})
    mutated.save_pretrained(tmp_path)
    fixed = load_vicuna_tokenizer(tmp_path)
    assert fixed(TEXT).input_ids == vicuna(TEXT).input_ids
    assert fixed.pad_token_id == vicuna.pad_token_id and len(fixed) == len(vicuna)


@pytest.mark.parametrize("side", ["left", "right"])
def test_encode_padding_layout(vicuna, side):
    before = (vicuna.padding_side, vicuna.truncation_side)
    batch = encode(vicuna, [TEXT, "a red cube"], padding_side=side, truncation_side="right")
    assert set(batch.keys()) == {"input_ids", "attention_mask"}
    ids, mask = batch["input_ids"], batch["attention_mask"]
    assert ids.shape == mask.shape and ids.shape[0] == 2
    assert mask[0].all()
    short = ids[1][mask[1].bool()].tolist()
    assert short[0] == 2 and short == vicuna("a red cube").input_ids
    n_pad = int((mask[1] == 0).sum())
    assert n_pad > 0
    pads = ids[1][:n_pad] if side == "left" else ids[1][-n_pad:]
    assert (pads == vicuna.pad_token_id).all()
    assert (mask[1][:n_pad] == 0).all() if side == "left" else (mask[1][-n_pad:] == 0).all()
    assert (vicuna.padding_side, vicuna.truncation_side) == before
    assert vicuna.backend_tokenizer.padding is None and vicuna.backend_tokenizer.truncation is None


def test_encode_truncation_sides(vicuna):
    full = vicuna(LONG_TEXT).input_ids
    before = (vicuna.padding_side, vicuna.truncation_side)
    left = encode(vicuna, [LONG_TEXT], padding_side="right", truncation_side="left", max_length=10)["input_ids"][0]
    right = encode(vicuna, [LONG_TEXT], padding_side="right", truncation_side="right", max_length=10)["input_ids"][0]
    assert len(left) == len(right) == 10
    assert left.tolist() == [2] + full[-9:]
    assert right.tolist() == full[:10]
    assert (vicuna.padding_side, vicuna.truncation_side) == before
    assert len(encode(vicuna, LONG_TEXT, padding_side="left", truncation_side="left")["input_ids"][0]) == len(full)
    with pytest.raises(ValueError, match="padding_side"):
        encode(vicuna, [TEXT], padding_side="middle", truncation_side="left")


def test_encode_does_not_leak_into_saved_files(tmp_path, vicuna):
    encode(vicuna, [TEXT, LONG_TEXT], padding_side="left", truncation_side="left", max_length=6)
    vicuna.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "tokenizer.json").read_text())
    assert saved["padding"] is None and saved["truncation"] is None


def test_t5_conventions():
    tokenizer = load_t5_tokenizer(tiny_tokenizer_dir("t5"))
    ids = tokenizer(TEXT).input_ids
    assert ids[-1] == 1 and ids.count(1) == 1 and ids[0] not in (0, 1)
    assert tokenizer.bos_token_id is None
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (0, 1, 2)
    assert len(tokenizer) == 1100
    assert tokenizer.convert_tokens_to_ids(["<extra_id_0>", "<extra_id_99>"]) == [1099, 1000]
    batch = encode(tokenizer, [TEXT, "a"], padding_side="right", truncation_side="left")
    assert batch["input_ids"][1, -1].item() == 0 and batch["attention_mask"][1, -1].item() == 0


def test_opt_conventions(tmp_path):
    tokenizer = load_opt_tokenizer(tiny_tokenizer_dir("opt"))
    ids = tokenizer("Hello").input_ids
    assert ids[0] == 2 and ids.count(2) == 1
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id) == (2, 2, 1)
    assert tokenizer.convert_tokens_to_ids(["<s>", "<unk>"]) == [0, 3]
    assert len(tokenizer) == 1000
    tokenizer.save_pretrained(tmp_path)
    assert load_opt_tokenizer(tmp_path)("Hello").input_ids == ids


def test_qformer_conventions(tmp_path):
    tokenizer = load_qformer_tokenizer(tiny_tokenizer_dir("bert"))
    base = len((tiny_tokenizer_dir("bert") / "vocab.txt").read_text(encoding="utf-8").splitlines())
    tokens = tokenizer.convert_ids_to_tokens(tokenizer("A red Circle.").input_ids)
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]" and "red" in tokens
    assert tokenizer.bos_token == "[DEC]" and tokenizer.bos_token_id == base and len(tokenizer) == base + 1
    assert "[DEC]" not in (tiny_tokenizer_dir("bert") / "vocab.txt").read_text(encoding="utf-8")
    tokenizer.save_pretrained(tmp_path)
    again = load_qformer_tokenizer(tmp_path)
    assert again.bos_token_id == base and len(again) == base + 1


@pytest.mark.parametrize(
    "loader", [load_vicuna_tokenizer, load_t5_tokenizer, load_opt_tokenizer, load_qformer_tokenizer]
)
def test_missing_directory(tmp_path, loader):
    missing = tmp_path / "no_such_tokenizer"
    with pytest.raises(FileNotFoundError, match="no_such_tokenizer"):
        loader(missing)
    with pytest.raises(FileNotFoundError, match="not found at"):
        loader("lmsys/vicuna-7b-v1.1")


def test_has_tokenizer_files(tmp_path, vicuna):
    """Every saved form counts (even an incomplete one); a directory with only weights or subfolders does not."""
    assert all(has_tokenizer_files(tiny_tokenizer_dir(kind)) for kind in TINY_TOKENIZER_KINDS)
    (tmp_path / "qformer_tokenizer").mkdir()
    (tmp_path / "config.json").write_text("{}")
    assert not has_tokenizer_files(tmp_path)
    (tmp_path / "vocab.txt").write_text("")
    assert has_tokenizer_files(tmp_path)
    saved = tmp_path / "saved"
    vicuna.save_pretrained(saved)
    assert has_tokenizer_files(saved)


def test_generator_is_deterministic_and_matches_assets(tmp_path):
    script = REPO_ROOT / "tools" / "make_tiny_tokenizers.py"
    spec = importlib.util.spec_from_file_location("make_tiny_tokenizers", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    first, second = module.main(tmp_path / "a"), module.main(tmp_path / "b")
    for kind in TINY_TOKENIZER_KINDS:
        committed = sorted(p.name for p in tiny_tokenizer_dir(kind).iterdir())
        assert sorted(p.name for p in (first / kind).iterdir()) == committed
        for name in committed:
            expected = (tiny_tokenizer_dir(kind) / name).read_bytes()
            assert (first / kind / name).read_bytes() == (second / kind / name).read_bytes(), f"{kind}/{name} differs"
            assert (first / kind / name).read_bytes() == expected, (
                f"{kind}/{name} is stale: rerun `python tools/make_tiny_tokenizers.py`"
            )


# ----- issue 10 case 4: a tokenizer without a real vocabulary is an error, never silently used ------------------------
LOADERS = {"llama": load_vicuna_tokenizer, "t5": load_t5_tokenizer, "opt": load_opt_tokenizer,
           "bert": load_qformer_tokenizer}
KEYS = {"llama": "model.llm_tokenizer (or model.llm_model)", "t5": "model.llm_tokenizer (or model.t5_model)",
        "opt": "model.llm_tokenizer (or model.opt_model)", "bert": "model.qformer_tokenizer"}


@pytest.mark.parametrize("kind", TINY_TOKENIZER_KINDS)
@pytest.mark.parametrize("files", ["empty", "config_only", "truncated_json"])
def test_degenerate_tokenizer_directory_is_refused(tmp_path, kind, files):
    """What transformers builds from missing/broken files (LLaMA 2 tokens, T5 104, OPT 3, BERT 6) is refused."""
    written = {"empty": {}, "config_only": {"tokenizer_config.json": "{}"},
               "truncated_json": {"tokenizer.json": '{"version": "1.0", "trunc'}}[files]
    for name, text in written.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(TokenizerError) as info:
        LOADERS[kind](tmp_path)
    message = str(info.value)
    assert message.startswith(f"{KEYS[kind]}: the ") and str(tmp_path) in message
    expected = "cannot be read" if files == "truncated_json" else f"expected a real vocabulary (at least {MIN_REGULAR_TOKENS})"
    assert expected in message
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(written)  # nothing written or removed


def test_committed_tiny_tokenizers_pass_the_check():
    """The tiny assets have ~1000 tokens, well above the minimum; their loaders accept them."""
    sizes = {kind: len(LOADERS[kind](tiny_tokenizer_dir(kind))) for kind in TINY_TOKENIZER_KINDS}
    assert sizes == {"llama": 1001, "t5": 1100, "opt": 1000, "bert": 1001}


def test_missing_special_token_is_refused():
    """A real vocabulary without the tokens the conventions need (a T5 vocabulary as the Q-Former's) is refused."""
    with pytest.raises(TokenizerError, match=r"^model.qformer_tokenizer: .* has no '\[PAD\]' token"):
        load_qformer_tokenizer(tiny_tokenizer_dir("t5"))


@pytest.mark.parametrize("key", ["llm_tokenizer", "qformer_tokenizer"])
def test_empty_tokenizer_directory_in_config_fails_before_the_build(tmp_path, key):
    """An empty directory as `llm_tokenizer` / `qformer_tokenizer` no longer yields a model that computes a loss."""
    from lavis_ib import load_model

    with pytest.raises(TokenizerError) as info:
        load_model("blip2_vicuna_instruct", "tiny", **{key: str(tmp_path)})
    assert str(info.value).startswith(f"model.{key}: {tmp_path} holds no tokenizer files (expected one of")
