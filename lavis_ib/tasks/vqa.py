"""Open-ended question answering: GQA, TextVQA, VizWiz, VQAv2, OK-VQA, A-OKVQA (direct answer), iVQA, and MSVD-QA /
MSRVTT-QA by ranking an answer vocabulary.

The answer is generated (beam search with the paper's short-answer settings) or, in `rank` mode, the best-scoring
candidate of the dataset's answer list. Metrics: the official VQA accuracy (with its variants), exact match after
VQA normalisation (GQA, the video QA sets), or iVQA accuracy. A split without answers (VizWiz test-dev, VQAv2
test-dev) writes the official submission file instead.
"""

from __future__ import annotations

from pathlib import PurePosixPath

import torch

from lavis_ib.common.registry import registry
from lavis_ib.metrics import measure
from lavis_ib.tasks.base import SHORT_ANSWER_DECODING, EvalTask, is_string_list

ANSWER_LISTS = ("vqa_accuracy", "aokvqa_accuracy", "ivqa_accuracy")
"""Metrics that compare against all human answers (`answers`); the others compare against `text_output`."""
HUMAN_CONSENSUS = ("vqa_accuracy", "aokvqa_accuracy")
"""Metrics that score by agreement among several humans: a one-answer record caps them at 0 or 33 %."""


@registry.register_task("vqa")
class VQATask(EvalTask):
    """Short answers by generation or answer-list ranking, scored against the human answers."""

    MODES = ("generate", "rank")
    CANDIDATES = ("answer_list",)
    METRICS = ("vqa_accuracy", "aokvqa_accuracy", "exact_match", "ivqa_accuracy")
    DEFAULT_DECODING = SHORT_ANSWER_DECODING
    SUBMISSIONS = ("vqa", "vizwiz")

    @property
    def uses_answer_lists(self) -> bool:
        return self.metric_name in ANSWER_LISTS

    def has_ground_truth(self, record: dict) -> bool:
        if self.uses_answer_lists:
            return bool(record.get("answers"))
        return bool(record.get("text_output"))

    def check_record(self, record: dict, index: int) -> None:
        if self.uses_answer_lists and not is_string_list(record.get("answers")):
            raise self.fail(record, index, f"metric {self.metric_name} needs 'answers', a non-empty list of strings; "
                                           f"got {record.get('answers')!r}")
        if self.metric_name in HUMAN_CONSENSUS and len(record["answers"]) == 1:
            raise self.fail(record, index, f"metric {self.metric_name} counts how many humans gave the answer "
                                           "(min(1, matches / 3)), but this record has one answer, so no prediction "
                                           "can score full marks; score a one-answer dataset with metric exact_match")
        if not self.uses_answer_lists and not isinstance(record.get("text_output"), str):
            raise self.fail(record, index, f"metric {self.metric_name} needs the answer in 'text_output' (a string); "
                                           f"got {record.get('text_output')!r}")

    def ground_truth(self, batch: dict, i: int):
        if self.uses_answer_lists:
            answers = batch.get("answers")
            return list(answers[i]) if answers is not None and answers[i] else None
        return batch["text_output"][i] or None

    def base_record(self, batch: dict, i: int) -> dict:
        record = super().base_record(batch, i)
        if self.protocol.submission == "vizwiz" and "image_id" in batch:
            record["image"] = str(PurePosixPath(str(batch["image_id"][i])).name)
        return record

    def predict(self, model, batch: dict) -> list[dict]:
        predictions = super().predict(model, batch)
        if self.protocol.apply_lemmatizer:
            from lavis_ib.metrics import lemmatize  # spaCy, loaded once, only when asked for

            for prediction, lemma in zip(predictions, lemmatize([p["answer"] for p in predictions])):
                prediction["answer"] = lemma
        return predictions

    def from_generation(self, record: dict, output: str, batch: dict, i: int) -> dict:
        return {**record, "output": output, "answer": output}

    def from_scores(self, record: dict, candidates: list[str], scores: torch.Tensor, batch: dict, i: int) -> dict:
        best = int(torch.argmax(scores))
        top = torch.topk(scores, min(5, len(candidates)))
        return {**record, "answer": candidates[best], "top5": [[candidates[int(j)], round(float(s), 4)]
                                                               for s, j in zip(top.values, top.indices)]}

    def compute_metrics(self, predictions: list[dict]) -> dict:
        preds = [p["answer"] for p in predictions]
        return measure(self.metric_fn, preds, [p["gt"] for p in predictions], **self.protocol.metric_options)

    def submission(self, predictions: list[dict]) -> list[dict] | None:
        if self.protocol.submission == "vizwiz":  # EvalAI VizWiz: [{"image": "VizWiz_test_00000000.jpg", "answer"}]
            return [{"image": p["image"], "answer": p["answer"]} for p in predictions]
        if self.protocol.submission == "vqa":  # EvalAI VQAv2: [{"question_id": int, "answer"}]
            return [{"question_id": p.get("question_id", p["id"]), "answer": p["answer"]} for p in predictions]
        return None
