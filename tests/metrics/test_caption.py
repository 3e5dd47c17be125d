"""Caption metrics: hand values, and our wiring (ids, PTB tokenisation, × 100) against pycocoevalcap called directly
the way LAVIS's `COCOEvalCap` calls it. Two tokenizer (Java) calls and one METEOR start (~10 s) in all."""

from __future__ import annotations

import pytest

from lavis_ib.metrics import caption_metrics
from lavis_ib.metrics import caption as caption_module

# Disjoint vocabularies, so every n-gram's idf is log(3) > 0; image 1's prediction equals its reference after PTB
# tokenisation (lower-case, punctuation removed), image 2's shares nothing with its references.
REFS = {
    1: ["red bus on street"],
    "b": ["Two dogs play outside.", "a pair of dogs playing"],
    3: ["green tree near lake"],
}
PREDS = {1: "Red bus, on street.", "b": "kite", 3: "green tree near lake"}


def oracle(preds, refs):
    """pycocoevalcap as `COCOEvalCap.evaluate` runs it (tokenised in one call here, pred last per id)."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    tokens = PTBTokenizer().tokenize({k: [{"caption": c} for c in refs[k] + [preds[k]]] for k in refs})
    gts, res = {k: v[:-1] for k, v in tokens.items()}, {k: v[-1:] for k, v in tokens.items()}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    scores = {f"Bleu_{n}": s for n, s in enumerate(bleu, 1)}
    scores["METEOR"] = caption_module.meteor_scorer().compute_score(gts, res)[0]
    scores["ROUGE_L"] = Rouge().compute_score(gts, res)[0]
    scores["CIDEr"] = Cider().compute_score(gts, res)[0]
    return {name: 100 * value for name, value in scores.items()}, gts, res


def test_caption_metrics_match_pycocoevalcap_and_hand_values():
    ours = caption_metrics(PREDS, REFS)
    expected, gts, res = oracle(PREDS, REFS)
    assert res[1] == ["red bus on street"] and gts["b"] == ["two dogs play outside", "a pair of dogs playing"]
    assert ours == pytest.approx(expected, rel=1e-12)
    assert list(ours) == ["Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr"]
    # CIDEr-D by hand: an exact match scores 10 (cosine 1 for n = 1..4, no length penalty, × 10), no overlap 0;
    # mean over the 3 images × 100 = 2000 / 3. ROUGE-L: F(β=1.2) of 1, 0 and 1 → 200 / 3.
    assert ours["CIDEr"] == pytest.approx(2000 / 3)
    assert ours["ROUGE_L"] == pytest.approx(200 / 3)
    assert 0 < ours["METEOR"] < 100


@pytest.mark.parametrize(
    "preds, refs, message",
    [
        ({}, {}, "preds is empty"),
        ([("1", "a")], {1: ["a"]}, "preds is list: expected a dict"),
        ({1: "a", 2: "b"}, {1: ["a"], 3: ["c"]}, r"ids without refs \[2\], ids without preds \[3\]"),
        ({1: None}, {1: ["a"]}, r"preds\[1\] is NoneType"),
        ({"x": "a"}, {"x": []}, r"refs\['x'\] is empty"),
        ({"x": "a"}, {"x": "a"}, r"refs\['x'\] is str"),
    ],
)
def test_bad_input_fails_before_any_java_call(preds, refs, message):
    with pytest.raises(ValueError, match=message):
        caption_metrics(preds, refs)


def test_missing_java_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(caption_module.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="needs Java on PATH"):
        caption_metrics({1: "a"}, {1: ["a"]}, meteor=False)
