"""Classification and multiple choice: ScienceQA-IMG, IconQA, A-OKVQA multiple choice, HatefulMemes, VSR.

`rank` mode scores candidates by log-likelihood (the paper's vocabulary ranking): the record's `choices` (or their
letters), or `verbalizers` — one word list per class, a class scoring the log of its words' summed likelihoods, so
HatefulMemes' P(hateful) = P({yes, true}) / P({yes, true, no, false}), the score its ROC-AUC needs. `generate` mode
(VSR in the paper) maps the generated answer to the class whose verbalizers (or choice text) it equals after VQA
normalisation; an answer that maps to no class counts as wrong and is reported as `num_unmapped`.
"""

from __future__ import annotations

import torch

from lavis_ib.common.registry import registry
from lavis_ib.common.schema import ConfigError
from lavis_ib.metrics import accuracy, measure, normalize_answer
from lavis_ib.tasks.base import SHORT_ANSWER_DECODING, EvalTask, is_string_list

UNMAPPED = -1


@registry.register_task("classification")
class ClassificationTask(EvalTask):
    """The gold class is the record's `label` (an index into `choices`, or a verbalizer class)."""

    MODES = ("rank", "generate")
    CANDIDATES = ("choices", "choice_letters", "verbalizers")
    METRICS = ("accuracy", "roc_auc")
    DEFAULT_DECODING = SHORT_ANSWER_DECODING

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        verbalizers = self.protocol.verbalizers
        if self.protocol.candidates == "verbalizers" and not verbalizers:
            raise ConfigError(f"{self.source}.verbalizers: candidates 'verbalizers' needs the word lists per class")
        if self.metric_name == "roc_auc" and (verbalizers is None or len(verbalizers) != 2
                                              or self.protocol.mode != "rank"):
            raise ConfigError(f"{self.source}.metric: roc_auc needs mode 'rank' with two verbalizer classes "
                              f"(negative first), got mode {self.protocol.mode!r}, verbalizers {verbalizers!r}")

    def check_record(self, record: dict, index: int) -> None:
        choices = record.get("choices")
        needs_choices = self.protocol.verbalizers is None or self.protocol.candidates in ("choices", "choice_letters")
        if needs_choices and not is_string_list(choices):
            raise self.fail(record, index, f"'choices' must be a non-empty list of strings, got {choices!r}")
        classes = len(choices) if needs_choices else len(self.protocol.verbalizers)
        label = record.get("label")
        if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < classes:
            raise self.fail(record, index, f"'label' must be a class index in [0, {classes}), got {label!r}")

    def has_ground_truth(self, record: dict) -> bool:
        return record.get("label") is not None

    def ground_truth(self, batch: dict, i: int) -> int:
        return batch["label"][i] if "label" in batch else None

    def class_words(self, batch: dict, i: int) -> list[list[str]]:
        """The texts that stand for each class: the verbalizers, else each choice itself."""
        if self.protocol.verbalizers is not None:
            return self.protocol.verbalizers
        return [[choice] for choice in batch["choices"][i]]

    def from_generation(self, record: dict, output: str, batch: dict, i: int) -> dict:
        answer = normalize_answer(output)
        classes = [c for c, words in enumerate(self.class_words(batch, i))
                   if answer in {normalize_answer(w) for w in words}]
        return {**record, "output": output, "pred": classes[0] if classes else UNMAPPED}

    def from_scores(self, record: dict, candidates: list[str], scores: torch.Tensor, batch: dict, i: int) -> dict:
        if self.protocol.candidates == "verbalizers":
            sizes = [len(words) for words in self.protocol.verbalizers]
            class_scores = torch.stack([part.logsumexp(0) for part in scores.split(sizes)])
        else:
            class_scores = scores
        probs = class_scores.softmax(0)
        return {**record, "scores": [float(s) for s in scores], "probs": [float(p) for p in probs],
                "pred": int(torch.argmax(class_scores))}

    def compute_metrics(self, predictions: list[dict]) -> dict:
        preds, gold = [p["pred"] for p in predictions], [p["gt"] for p in predictions]
        metrics = measure(accuracy, preds, gold)
        metrics["num_unmapped"] = sum(p == UNMAPPED for p in preds)
        if self.metric_name == "roc_auc":
            metrics.update(measure(self.metric_fn, [p["probs"][1] for p in predictions], gold))
        return metrics

    def lavis_result(self, predictions: list[dict]) -> list[dict]:
        return [{"question_id": p.get("question_id", p["id"]), "pred_ans": p["pred"], "gt_ans": p["gt"]}
                for p in predictions]
