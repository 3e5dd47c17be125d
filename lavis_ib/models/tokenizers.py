"""Tokenizer loaders with LAVIS's InstructBLIP / BLIP-2 conventions, fixed at load time.

LAVIS builds its tokenizers and then mutates them (`add_special_tokens`, `padding_side = ...`) at call sites. Here every
convention is passed to `from_pretrained`, so the returned tokenizer is final, and `encode` picks padding/truncation
sides per call instead of flipping shared state. Nothing is downloaded unless a caller asks for it explicitly.

transformers 5 notes (checked against 5.23): the backend post-processor is rebuilt from `bos_token` only when
`add_bos_token`/`add_eos_token` are passed explicitly (a later `bos_token` change or `add_special_tokens` leaves the old
BOS id in place), and `add_bos_token` is neither saved nor read back when a `tokenizer.json` exists.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from transformers import BatchEncoding, BertTokenizer, GPT2Tokenizer, LlamaTokenizer, PreTrainedTokenizerBase
from transformers import T5Tokenizer

from lavis_ib.common.paths import assets_root

TINY_TOKENIZER_KINDS = ("llama", "t5", "opt", "bert")
TINY_TOKENIZERS_ROOT = assets_root / "tokenizers"

# Files `save_pretrained` writes for the tokenizers we load (sentencepiece, BPE, WordPiece and fast-tokenizer forms).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "tokenizer.model", "spiece.model", "vocab.json", "merges.txt", "vocab.txt")

VICUNA_PAD_TOKEN = "[PAD]"
VICUNA_SPECIAL_TOKEN = "</s>"
QFORMER_BOS_TOKEN = "[DEC]"
SIDES = ("left", "right")


def tiny_tokenizer_dir(kind: str) -> Path:
    """Directory of the tiny test tokenizer `kind` ("llama", "t5", "opt" or "bert") shipped inside the package."""
    if kind not in TINY_TOKENIZER_KINDS:
        raise ValueError(f"unknown tiny tokenizer {kind!r}; known: {', '.join(TINY_TOKENIZER_KINDS)}")
    return TINY_TOKENIZERS_ROOT / kind


def has_tokenizer_files(directory: str | os.PathLike) -> bool:
    """Whether `directory` holds any tokenizer file (complete or not): the test for "no tokenizer was saved here"."""
    return any((Path(directory) / name).is_file() for name in TOKENIZER_FILES)


def _resolve(location: str | os.PathLike, what: str, allow_download: bool) -> str:
    """The local tokenizer directory as a string; a hub id passes through only when `allow_download` is set."""
    path = Path(location).expanduser()
    if path.is_dir():
        return str(path)
    if allow_download:
        return str(location)
    raise FileNotFoundError(f"{what} tokenizer not found at {path} (expected a local directory; nothing is downloaded)")


def _check_side(name: str, value: str) -> None:
    """Reject anything but "left"/"right" up front (the tokenizer attributes are not validated after init)."""
    if value not in SIDES:
        raise ValueError(f"{name} must be 'left' or 'right', got {value!r}")


def load_vicuna_tokenizer(
    location: str | os.PathLike, *, truncation_side: str = "left", allow_download: bool = False
) -> LlamaTokenizer:
    """LLaMA/Vicuna tokenizer as LAVIS's InstructBLIP sets it up: pad `[PAD]` appended, bos = eos = unk = `</s>`.

    Every encoding therefore starts with id 2, and `<unk>`/`<s>` are no longer special. Idempotent on a directory
    that already carries these conventions (e.g. an HF InstructBLIP export): `[PAD]` is reused, not added twice.
    """
    _check_side("truncation_side", truncation_side)
    tokenizer = LlamaTokenizer.from_pretrained(
        _resolve(location, "Vicuna", allow_download),
        pad_token=VICUNA_PAD_TOKEN,
        bos_token=VICUNA_SPECIAL_TOKEN,
        eos_token=VICUNA_SPECIAL_TOKEN,
        unk_token=VICUNA_SPECIAL_TOKEN,
        add_bos_token=True,
        add_eos_token=False,
        truncation_side=truncation_side,
    )
    # transformers 5 also flags sentencepiece control pieces (`<s>`) as extra special tokens; LAVIS only has the four
    # named ones, so drop the tokens whose role moved to `</s>` (other extras, e.g. an `<image>` token, stay).
    extras = tokenizer.extra_special_tokens
    kept = [token for token in extras if token not in ("<s>", "<unk>")]
    if kept != extras:
        tokenizer.extra_special_tokens = kept
    return tokenizer


def load_t5_tokenizer(
    location: str | os.PathLike, *, truncation_side: str = "left", allow_download: bool = False
) -> T5Tokenizer:
    """T5 / FLAN-T5 tokenizer: appends `</s>` (id 1), no BOS, pad id 0 — as LAVIS's InstructBLIP-T5 loads it."""
    _check_side("truncation_side", truncation_side)
    return T5Tokenizer.from_pretrained(_resolve(location, "T5", allow_download), truncation_side=truncation_side)


def load_opt_tokenizer(
    location: str | os.PathLike, *, truncation_side: str = "right", allow_download: bool = False
) -> GPT2Tokenizer:
    """OPT's GPT-2 byte-level BPE tokenizer, prepending `</s>` (id 2) as BOS like facebook/opt-* does.

    `add_bos_token=True` is passed explicitly because transformers 5 ignores it in the config when a
    `tokenizer.json` is present and only rebuilds the post-processor from explicit arguments.
    """
    _check_side("truncation_side", truncation_side)
    return GPT2Tokenizer.from_pretrained(
        _resolve(location, "OPT", allow_download),
        bos_token="</s>",
        eos_token="</s>",
        pad_token="<pad>",
        add_bos_token=True,
        add_eos_token=False,
        truncation_side=truncation_side,
    )


def load_qformer_tokenizer(
    location: str | os.PathLike, *, truncation_side: str = "right", allow_download: bool = False
) -> BertTokenizer:
    """bert-base-uncased tokenizer with bos `[DEC]` appended (id = base vocab size), as LAVIS's `init_tokenizer`.

    Idempotent when `[DEC]` is already present (e.g. an HF `qformer_tokenizer/` directory).
    """
    _check_side("truncation_side", truncation_side)
    return BertTokenizer.from_pretrained(
        _resolve(location, "Q-Former (BERT)", allow_download),
        bos_token=QFORMER_BOS_TOKEN,
        truncation_side=truncation_side,
    )


def encode(
    tokenizer: PreTrainedTokenizerBase,
    texts: str | Sequence[str],
    *,
    padding_side: str,
    truncation_side: str,
    max_length: int | None = None,
    add_special_tokens: bool = True,
    padding: bool = True,
) -> BatchEncoding:
    """Tokenize a batch to `input_ids`/`attention_mask` tensors padded to the longest, leaving the tokenizer as found.

    `padding=False` returns unpadded lists of ids instead, for callers that assemble rows and pad once themselves.

    transformers 5 takes `padding_side` per call but reads `truncation_side` only from the tokenizer, so it is set
    and restored in `finally` (not thread-safe for one tokenizer shared across threads). The fast backend also keeps
    the last call's padding/truncation (and would bake it into a later `save_pretrained`), so that is restored too.
    Truncation happens only when `max_length` is given.
    """
    _check_side("padding_side", padding_side)
    _check_side("truncation_side", truncation_side)
    batch = [texts] if isinstance(texts, str) else list(texts)
    backend = tokenizer.backend_tokenizer if tokenizer.is_fast else None
    saved_padding = backend.padding if backend is not None else None
    saved_truncation = backend.truncation if backend is not None else None
    saved_side = tokenizer.truncation_side
    tokenizer.truncation_side = truncation_side
    try:
        return tokenizer(
            batch,
            padding="longest" if padding else False,
            truncation=max_length is not None,
            max_length=max_length,
            padding_side=padding_side,
            add_special_tokens=add_special_tokens,
            return_token_type_ids=False,
            return_attention_mask=True,
            return_tensors="pt" if padding else None,
        )
    finally:
        tokenizer.truncation_side = saved_side
        if backend is not None:
            if saved_padding is None:
                backend.no_padding()
            else:
                backend.enable_padding(**saved_padding)
            if saved_truncation is None:
                backend.no_truncation()
            else:
                backend.enable_truncation(**saved_truncation)
