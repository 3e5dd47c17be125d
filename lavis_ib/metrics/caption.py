"""Captioning metrics through pycocoevalcap (what LAVIS's `COCOEvalCap` runs): PTB tokenisation, then BLEU-1..4,
METEOR, ROUGE-L and CIDEr-D, all × 100."""

from __future__ import annotations

import functools
import shutil
from typing import Hashable, Mapping

from lavis_ib.common.registry import registry
from lavis_ib.metrics._checks import check_answer_lists, check_samples, check_strings

_NEEDS_JAVA = "needs Java on PATH (pycocoevalcap runs {tool} as a Java program)"


def _require_java(tool: str) -> None:
    """Fail early with a readable message instead of a `FileNotFoundError` from inside pycocoevalcap."""
    if shutil.which("java") is None:
        raise RuntimeError(f"{tool} {_NEEDS_JAVA.format(tool=tool)}")


@functools.lru_cache(maxsize=1)
def meteor_scorer():
    """One METEOR 1.5 Java process per interpreter: starting it (loading the paraphrase table) takes ~10 s."""
    _require_java("METEOR")
    from pycocoevalcap.meteor.meteor import Meteor

    return Meteor()


def _check_captions(preds: Mapping, refs: Mapping, keys: list[str]) -> list:
    """The ids, in `preds` order, after checking both maps cover the same ids with a caption and references each."""
    for name, value in (("preds", preds), ("refs", refs)):
        if not isinstance(value, Mapping):
            raise ValueError(f"{name} is {type(value).__name__}: expected a dict from sample id to caption(s)")
        check_samples(name, value, keys)
    missing = [key for key in preds if key not in refs][:5]
    extra = [key for key in refs if key not in preds][:5]
    if missing or extra:
        raise ValueError(
            f"preds and refs must have the same ids: ids without refs {missing}, ids without preds {extra} "
            "(at most 5 of each shown)"
        )
    ids = list(preds)
    check_strings("preds", preds)
    check_answer_lists("refs", {key: refs[key] for key in ids})
    return ids


def tokenize_captions(preds: Mapping[Hashable, str], refs: Mapping[Hashable, list[str]], ids: list):
    """PTB-tokenised `(refs, preds)` keyed by id, as the scorers take them, in a single tokenizer (Java) call."""
    _require_java("the PTB tokenizer")
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    batch = {("ref", key): [{"caption": text} for text in refs[key]] for key in ids}
    batch.update({("pred", key): [{"caption": preds[key]}] for key in ids})
    tokens = PTBTokenizer().tokenize(batch)
    return {key: tokens[("ref", key)] for key in ids}, {key: tokens[("pred", key)] for key in ids}


@registry.register_metric("caption_metrics")
def caption_metrics(
    preds: Mapping[Hashable, str], refs: Mapping[Hashable, list[str]], meteor: bool = True
) -> dict:
    """Corpus BLEU-1..4, METEOR, ROUGE-L and CIDEr-D of one caption per id against its references, × 100.

    CIDEr's document frequencies come from the references passed in, so score a whole split in one call.
    `meteor=False` skips METEOR (its Java process takes ~10 s to start) and leaves out the `"METEOR"` key.
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    keys = [f"Bleu_{n}" for n in range(1, 5)] + (["METEOR"] if meteor else []) + ["ROUGE_L", "CIDEr"]
    ids = _check_captions(preds, refs, keys)
    gts, res = tokenize_captions(preds, refs, ids)
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    result = {f"Bleu_{n}": 100.0 * score for n, score in enumerate(bleu, start=1)}
    if meteor:
        result["METEOR"] = 100.0 * meteor_scorer().compute_score(gts, res)[0]
    result["ROUGE_L"] = 100.0 * Rouge().compute_score(gts, res)[0]
    result["CIDEr"] = 100.0 * Cider().compute_score(gts, res)[0]
    return result
