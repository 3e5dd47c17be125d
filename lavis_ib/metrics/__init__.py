"""Evaluation metrics: pure functions of predictions and references returning `{name: value}` in percent (as the
InstructBLIP paper's Table 1 prints them; CIDEr × 100), registered under the registry kind `metric`.

| metric | datasets |
|---|---|
| `vqa_accuracy` | VQAv2, OK-VQA, TextVQA, VizWiz (official scorer) |
| `aokvqa_accuracy` | A-OKVQA direct answer (`vqa_accuracy(variant="aokvqa")`) |
| `exact_match` | GQA |
| `ivqa_accuracy` | iVQA |
| `accuracy` | ScienceQA-IMG, IconQA, A-OKVQA multiple choice, VSR, MSVD-QA, MSRVTT-QA |
| `roc_auc` | HatefulMemes |
| `ranking_metrics` | Visual Dialog (MRR; also R@1/5/10, mean rank) |
| `caption_metrics` | NoCaps, Flickr30K, COCO Caption, TextCaps |

A metric without a value on the samples given (ROC-AUC of one class, any metric of no sample) raises
`UndefinedMetricError` with the keys it would have returned; the tasks call metrics through `measure`, which makes
those keys `Undefined(reason)` (`undefined.py`), so evaluation reports them as null with the reason and goes on.
"""

from lavis_ib.metrics.caption import caption_metrics
from lavis_ib.metrics.classification import accuracy, ranking_metrics, roc_auc
from lavis_ib.metrics.lemmatizer import lemmatize
from lavis_ib.metrics.undefined import Undefined, UndefinedMetricError, measure, split_undefined
from lavis_ib.metrics.vqa import aokvqa_accuracy, exact_match, ivqa_accuracy, normalize_answer, vqa_accuracy

__all__ = [
    "accuracy",
    "aokvqa_accuracy",
    "caption_metrics",
    "exact_match",
    "ivqa_accuracy",
    "lemmatize",
    "normalize_answer",
    "measure",
    "ranking_metrics",
    "roc_auc",
    "split_undefined",
    "Undefined",
    "UndefinedMetricError",
    "vqa_accuracy",
]
