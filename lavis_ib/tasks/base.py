"""The evaluation task interface: a protocol (a dataset's `eval:` block) applied to batches and to predictions.

A task serves a protocol, not one dataset: it checks the ground truth of every record before anything runs, turns
a collated batch into one JSON-serialisable prediction per sample (id, prompt, raw output or candidate scores, the
processed answer, and the ground truth), and computes its metrics from those predictions alone — so a resumed or
gathered prediction file scores exactly as a single uninterrupted run.
"""

from __future__ import annotations

from typing import Any, ClassVar, Optional, Sequence

import torch

from lavis_ib.common.errors import EvalDataError
from lavis_ib.common.registry import registry
from lavis_ib.common.schema import ConfigError
from lavis_ib.datasets.builders.schema import EvalProtocol

ID_KEYS = ("question_id", "image_id")
"""Record ids kept in every prediction (what the official scorers and submission formats key on)."""
LETTERS = "abcdefghijklmnopqrstuvwxyz"
SHORT_ANSWER_DECODING = {"num_beams": 5, "max_len": 10, "min_len": 1}
"""LAVIS / BLIP-2 VQA evaluation settings (the paper gives none), for every task whose generated text is an answer;
their length penalty is the model's answer default (`ANSWER_LENGTH_PENALTY`: Vicuna 0, FlanT5 -1)."""


def describe_record(dataset: str, split: str, record: dict, index: int) -> str:
    """`gqa testdev record 17 (question_id 2017...)`: where a ground-truth problem is."""
    ids = ", ".join(f"{key} {record[key]!r}" for key in ID_KEYS if record.get(key) is not None)
    return f"{dataset} {split} record {index}" + (f" ({ids})" if ids else "")


def is_string_list(value: Any) -> bool:
    return isinstance(value, list) and len(value) > 0 and all(isinstance(v, str) for v in value)


class EvalTask:
    """Base of the evaluation tasks; subclasses declare what they accept and implement the per-protocol parts."""

    MODES: ClassVar[tuple[str, ...]] = ("generate",)
    CANDIDATES: ClassVar[tuple[str, ...]] = ()
    METRICS: ClassVar[tuple[str, ...]] = ()  # the metric names the task can report; the first is the default
    REPORT: ClassVar[Optional[str]] = None  # the key reported as agg_metrics by default (None: the metric's name)
    DEFAULT_DECODING: ClassVar[dict] = {}
    SUBMISSIONS: ClassVar[tuple[str, ...]] = ()  # submission formats for splits without ground truth

    def __init__(self, protocol: EvalProtocol, dataset: str, split: str, answer_list: Sequence[str] | None = None,
                 source: str | None = None):
        self.protocol, self.dataset, self.split = protocol, dataset, split
        self.source = source or f"datasets.{dataset}.eval"
        self.answer_list = list(answer_list) if answer_list is not None else None
        self._check_choice("mode", protocol.mode, self.MODES)
        if protocol.mode == "rank":
            self._check_choice("candidates", protocol.candidates, self.CANDIDATES)
        if protocol.submission is not None:
            self._check_choice("submission", protocol.submission, self.SUBMISSIONS)
        self.metric_name = protocol.metric or self.METRICS[0]
        self._check_choice("metric", self.metric_name, self.METRICS)
        self.metric_fn = registry.get_metric_class(self.metric_name)
        if protocol.candidates == "answer_list" and protocol.mode == "rank" and not self.answer_list:
            raise ConfigError(f"{self.source}: candidates 'answer_list' but dataset {dataset!r} has no answer list "
                              f"(set build_info.answer_list)")

    def _check_choice(self, key: str, value: Any, allowed: Sequence[str]) -> None:
        if value not in allowed:
            raise ConfigError(f"{self.source}.{key}: task {self.protocol.task!r} accepts {', '.join(allowed) or 'none'}, "
                              f"got {value!r}")

    # ----- ground truth ---------------------------------------------------------------------------------------
    def check(self, record: dict, index: int) -> None:
        """Raise `EvalDataError` when `record` lacks what the protocol needs: its ground truth, candidates or the
        `meta` value `group_by` reports it under."""
        self.check_record(record, index)
        group_by = self.protocol.group_by
        if group_by and not isinstance((record.get("meta") or {}).get(group_by), str):
            raise self.fail(record, index, f"eval.group_by is {group_by!r} but the record has no meta.{group_by} "
                                           "string")

    def check_record(self, record: dict, index: int) -> None:
        """Raise `EvalDataError` when `record` lacks the ground truth (or candidates) the task needs."""

    def has_ground_truth(self, record: dict) -> bool:
        """Whether `record` can be scored (a test split without answers is only predicted, for a submission)."""
        return True

    def fail(self, record: dict, index: int, problem: str) -> EvalDataError:
        return EvalDataError(f"{describe_record(self.dataset, self.split, record, index)}: {problem}")

    # ----- inference ------------------------------------------------------------------------------------------
    @property
    def collate_mode(self) -> str:
        """The model collator's mode for this protocol's batches: prompts for generation, Q-Former text for ranking."""
        return "generate" if self.protocol.mode == "generate" else "score"

    def decoding(self, model) -> dict:
        """The resolved `generate` arguments: config values, else the task defaults, else the model's own."""
        chosen = {key: value for key, value in vars(self.protocol.decoding).items() if value is not None}
        values = {**self.DEFAULT_DECODING, **chosen}
        defaults = model.GENERATE_DEFAULTS
        return {
            "num_beams": values.get("num_beams", defaults["num_beams"]),
            "max_length": values.get("max_len", defaults["max_length"]),
            "min_length": values.get("min_len", defaults["min_length"]),
            "length_penalty": values.get("length_penalty", self.default_length_penalty(model)),
            "repetition_penalty": values.get("repetition_penalty", defaults["repetition_penalty"]),
            "length_semantics": values.get("length_semantics", model.cfg.length_semantics),
        }

    def default_length_penalty(self, model) -> float:
        if self.DEFAULT_DECODING is SHORT_ANSWER_DECODING:
            return model.ANSWER_LENGTH_PENALTY
        return model.GENERATE_DEFAULTS["length_penalty"]

    def candidates(self, batch: dict, i: int) -> list[str]:
        """Sample `i`'s candidate texts for ranking."""
        source = self.protocol.candidates
        if source == "answer_list":
            return self.answer_list
        if source == "verbalizers":
            return [word for words in self.protocol.verbalizers for word in words]
        if source == "choice_letters":
            return [f"({LETTERS[j]})" for j in range(len(batch["choices"][i]))]
        return list(batch[source][i])

    def predict(self, model, batch: dict) -> list[dict]:
        """One prediction record per sample of `batch` (a collated batch that has an image)."""
        base = [self.base_record(batch, i) for i in range(len(batch["instance_id"]))]
        if self.protocol.mode == "generate":
            outputs = model.generate(batch, **self.decoding(model))
            return [self.from_generation(record, output, batch, i)
                    for i, (record, output) in enumerate(zip(base, outputs))]
        per_sample = [self.candidates(batch, i) for i in range(len(base))]
        scores = getattr(model.score_candidates(batch, per_sample, self.protocol.n_segments), self.protocol.normalize)
        return [self.from_scores(record, per_sample[i], scores[i].float().cpu(), batch, i)
                for i, record in enumerate(base)]

    def base_record(self, batch: dict, i: int) -> dict:
        record = {"id": str(batch["instance_id"][i])}
        record.update({key: batch[key][i] for key in ID_KEYS if key in batch and batch[key][i] is not None})
        record["prompt"] = batch["instruction"][i]
        record["gt"] = self.ground_truth(batch, i)
        if self.protocol.group_by:
            record["group"] = batch["meta"][i][self.protocol.group_by]
        return record

    def ground_truth(self, batch: dict, i: int) -> Any:
        """What the metric compares against, copied into the prediction."""
        raise NotImplementedError

    def from_generation(self, record: dict, output: str, batch: dict, i: int) -> dict:
        raise NotImplementedError(f"task {self.protocol.task!r} does not generate")

    def from_scores(self, record: dict, candidates: list[str], scores: torch.Tensor, batch: dict, i: int) -> dict:
        raise NotImplementedError(f"task {self.protocol.task!r} does not rank")

    # ----- metrics and outputs ---------------------------------------------------------------------------------
    def metrics(self, predictions: list[dict]) -> dict:
        """`compute_metrics` over all predictions, and with `group_by` over each group's too (keys `<group>/<key>`,
        as the NoCaps server reports domains and the VQA evaluation answer types). A metric without a value on
        these predictions (ROC-AUC of one class, anything of none) is `Undefined(reason)` under each of its keys."""
        metrics = self.compute_metrics(predictions)
        if self.protocol.group_by:
            for group in sorted({p["group"] for p in predictions}):
                members = [p for p in predictions if p["group"] == group]
                metrics.update({f"{group}/{key}": value for key, value in self.compute_metrics(members).items()})
        return metrics

    def compute_metrics(self, predictions: list[dict]) -> dict:
        """Metrics (percent) of the scored predictions, each metric function called through `metrics.measure`."""
        raise NotImplementedError

    @classmethod
    def reported_metric(cls, protocol: EvalProtocol) -> str:
        """The metric key a protocol reports as `agg_metrics`, known before any task is built (training logs it)."""
        return protocol.report or cls.REPORT or protocol.metric or cls.METRICS[0]

    @property
    def report_key(self) -> str:
        """The metric key reported as `agg_metrics` (and beside Table 1)."""
        return self.reported_metric(self.protocol)

    def lavis_result(self, predictions: list[dict]) -> list[dict]:
        """The rows LAVIS writes to its `result/<split>*.json` for this kind of task."""
        return [{"question_id": p.get("question_id", p["id"]), "answer": p.get("answer")} for p in predictions]

    def submission(self, predictions: list[dict]) -> list[dict] | None:
        """The official submission file's content for a split without ground truth, when configured."""
        return None

    def summary(self, model) -> dict:
        """The protocol that produced the numbers: recorded beside every metric and in the results table."""
        summary = {"task": self.protocol.task, "mode": self.protocol.mode, "metric": self.metric_name}
        if self.protocol.metric_options:
            summary["metric_options"] = dict(self.protocol.metric_options)
        if self.protocol.mode == "generate":
            summary["decoding"] = self.decoding(model)
        else:
            summary.update(candidates=self.protocol.candidates, normalize=self.protocol.normalize)
            if self.protocol.candidates == "verbalizers":
                summary["verbalizers"] = self.protocol.verbalizers
            if self.protocol.candidates == "answer_list":
                summary["num_candidates"] = len(self.answer_list)
        if self.protocol.apply_lemmatizer:
            summary["apply_lemmatizer"] = True
        return summary
