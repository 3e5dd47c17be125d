"""Evaluation tasks, registered under the registry kind `task`: a dataset's `eval:` block names one.

| task | mode | datasets |
|---|---|---|
| `captioning` | generate | NoCaps (per domain too), Flickr30K, COCO Caption, TextCaps |
| `vqa` | generate, or rank an `answer_list` | GQA, TextVQA, VizWiz, VQAv2, OK-VQA, A-OKVQA (direct answer), iVQA; MSVD-QA, MSRVTT-QA |
| `classification` | rank `choices` / letters / `verbalizers`, or generate and map | ScienceQA-IMG, IconQA, A-OKVQA MC, HatefulMemes, VSR |
| `dialog` | rank `answer_options` | Visual Dialog |
"""

from lavis_ib.tasks.base import EvalDataError, EvalTask
from lavis_ib.tasks.captioning import CaptioningTask
from lavis_ib.tasks.classification import ClassificationTask
from lavis_ib.tasks.dialog import DialogTask
from lavis_ib.tasks.vqa import VQATask

__all__ = ["CaptioningTask", "ClassificationTask", "DialogTask", "EvalDataError", "EvalTask", "VQATask"]
