"""Tokenizer loaders with LAVIS's InstructBLIP / BLIP-2 conventions, fixed at load time.

LAVIS builds its tokenizers and then mutates them (`add_special_tokens`, `padding_side = ...`) at call sites. Here every
convention is passed to `from_pretrained`, so the returned tokenizer is final, and `encode` picks padding/truncation
sides per call instead of flipping shared state. Nothing is downloaded unless a caller asks for it explicitly (a hub
id then resolves to a snapshot in the lavis_ib cache, failing fast offline). Every loaded tokenizer is checked: one
whose files are missing or broken (transformers then builds a 2-token LLaMA / 104-token T5 / 3-token OPT vocabulary
of special tokens only) or whose conventions' special tokens are absent is a `TokenizerError` naming the config key.

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

from lavis_ib.common.errors import UserError
from lavis_ib.common.io import HUB_TOKENIZER_PATTERNS, WeightNotFoundError, hub_snapshot
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

# A usable tokenizer has at least this many tokens besides its special ones. Byte-level BPE and byte-fallback
# sentencepiece vocabularies have 256+ by construction, real ones tens of thousands, the committed tiny ones ~1000;
# transformers' stand-ins for missing files have 0 or 1.
MIN_REGULAR_TOKENS = 256
# The config key a loader names when its caller does not say which key the location came from: the LLM tokenizer
# is `llm_tokenizer`, or the LLM's own location when that is unset.
QFORMER_TOKENIZER_KEY = "qformer_tokenizer"


class TokenizerError(UserError, ValueError):
    """A configured tokenizer location holds no usable tokenizer; the message names the config key and the path."""


def tiny_tokenizer_dir(kind: str) -> Path:
    """Directory of the tiny test tokenizer `kind` ("llama", "t5", "opt" or "bert") shipped inside the package."""
    if kind not in TINY_TOKENIZER_KINDS:
        raise ValueError(f"unknown tiny tokenizer {kind!r}; known: {', '.join(TINY_TOKENIZER_KINDS)}")
    return TINY_TOKENIZERS_ROOT / kind


def has_tokenizer_files(directory: str | os.PathLike) -> bool:
    """Whether `directory` holds any tokenizer file (complete or not): the test for "no tokenizer was saved here"."""
    return any((Path(directory) / name).is_file() for name in TOKENIZER_FILES)


def _resolve(location: str | os.PathLike, key: str, what: str, allow_download: bool) -> str:
    """The local tokenizer directory as a string; a hub id resolves to its cached snapshot only when `allow_download`
    is set (and fails within seconds, naming `key`, when the hub cannot be reached)."""
    path = Path(location).expanduser()
    if path.is_dir():
        return str(path)
    if allow_download:
        return hub_snapshot(str(location), key, HUB_TOKENIZER_PATTERNS)
    raise WeightNotFoundError(f"model.{key}: {what} tokenizer not found at {path} (resolved to {path.resolve()}; "
                              f"expected a local directory; nothing is downloaded)")


def _load(tokenizer_cls, location, key: str, what: str, allow_download: bool, required: Sequence[str], **kwargs):
    """`tokenizer_cls.from_pretrained` on the resolved location, then `check_tokenizer`; transformers' errors on
    unreadable files are re-raised as a `TokenizerError` naming `key` and the directory."""
    directory = _resolve(location, key, what, allow_download)
    try:
        tokenizer = tokenizer_cls.from_pretrained(directory, **kwargs)
    except (OSError, ValueError, RuntimeError, TypeError, KeyError) as error:
        raise TokenizerError(f"model.{key}: the {what} tokenizer files in {directory} cannot be read "
                             f"({type(error).__name__}: {error}); found {_listing(directory)}; expected a directory "
                             f"written by a {tokenizer_cls.__name__}'s save_pretrained") from error
    check_tokenizer(tokenizer, key, directory, what, required)
    return tokenizer


def check_tokenizer(tokenizer: PreTrainedTokenizerBase, key: str, directory: str, what: str,
                    required: Sequence[str]) -> None:
    """Refuse a degenerate tokenizer: fewer than `MIN_REGULAR_TOKENS` non-special tokens, or a `required` special
    token of the model's conventions that is missing or maps to the unknown token."""
    special = set(tokenizer.all_special_ids)
    regular = sum(1 for index in tokenizer.get_vocab().values() if index not in special)
    if regular < MIN_REGULAR_TOKENS:
        raise TokenizerError(
            f"model.{key}: the {what} tokenizer in {directory} has {regular} regular tokens ({len(tokenizer)} in all); "
            f"expected a real vocabulary (at least {MIN_REGULAR_TOKENS}): its vocabulary files are missing or broken "
            f"(found {_listing(directory)})")
    vocabulary = tokenizer.get_vocab()
    for token in required:
        index = vocabulary.get(token)
        if index is None or (index == tokenizer.unk_token_id and token != tokenizer.unk_token):
            raise TokenizerError(f"model.{key}: the {what} tokenizer in {directory} has no {token!r} token, which "
                                 f"the model's tokenizer conventions need (found {_listing(directory)})")


def _listing(directory: str) -> str:
    """The files of `directory`, for error messages."""
    names = sorted(p.name for p in Path(directory).iterdir())
    return ", ".join(names) if names else "an empty directory"


def _check_side(name: str, value: str) -> None:
    """Reject anything but "left"/"right" up front (the tokenizer attributes are not validated after init)."""
    if value not in SIDES:
        raise ValueError(f"{name} must be 'left' or 'right', got {value!r}")


def load_vicuna_tokenizer(
    location: str | os.PathLike, *, truncation_side: str = "left", allow_download: bool = False,
    key: str = "llm_tokenizer (or model.llm_model)",
) -> LlamaTokenizer:
    """LLaMA/Vicuna tokenizer as LAVIS's InstructBLIP sets it up: pad `[PAD]` appended, bos = eos = unk = `</s>`.

    Every encoding therefore starts with id 2, and `<unk>`/`<s>` are no longer special. Idempotent on a directory
    that already carries these conventions (e.g. an HF InstructBLIP export): `[PAD]` is reused, not added twice.
    """
    _check_side("truncation_side", truncation_side)
    tokenizer = _load(
        LlamaTokenizer, location, key, "Vicuna", allow_download, (VICUNA_SPECIAL_TOKEN,),
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
    location: str | os.PathLike, *, truncation_side: str = "left", allow_download: bool = False,
    key: str = "llm_tokenizer (or model.t5_model)",
) -> T5Tokenizer:
    """T5 / FLAN-T5 tokenizer: appends `</s>` (id 1), no BOS, pad id 0 — as LAVIS's InstructBLIP-T5 loads it."""
    _check_side("truncation_side", truncation_side)
    return _load(T5Tokenizer, location, key, "T5", allow_download, ("</s>", "<pad>"), truncation_side=truncation_side)


def load_opt_tokenizer(
    location: str | os.PathLike, *, truncation_side: str = "right", allow_download: bool = False,
    key: str = "llm_tokenizer (or model.opt_model)",
) -> GPT2Tokenizer:
    """OPT's GPT-2 byte-level BPE tokenizer, prepending `</s>` (id 2) as BOS like facebook/opt-* does.

    `add_bos_token=True` is passed explicitly because transformers 5 ignores it in the config when a
    `tokenizer.json` is present and only rebuilds the post-processor from explicit arguments.
    """
    _check_side("truncation_side", truncation_side)
    return _load(
        GPT2Tokenizer, location, key, "OPT", allow_download, ("</s>", "<pad>"),
        bos_token="</s>",
        eos_token="</s>",
        pad_token="<pad>",
        add_bos_token=True,
        add_eos_token=False,
        truncation_side=truncation_side,
    )


def load_qformer_tokenizer(
    location: str | os.PathLike, *, truncation_side: str = "right", allow_download: bool = False,
    key: str = QFORMER_TOKENIZER_KEY,
) -> BertTokenizer:
    """bert-base-uncased tokenizer with bos `[DEC]` appended (id = base vocab size), as LAVIS's `init_tokenizer`.

    Idempotent when `[DEC]` is already present (e.g. an HF `qformer_tokenizer/` directory).
    """
    _check_side("truncation_side", truncation_side)
    return _load(
        BertTokenizer, location, key, "Q-Former (BERT)", allow_download, ("[CLS]", "[SEP]", "[PAD]", "[UNK]"),
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
