"""Visual Dialog: rank a round's answer options (100 in VisDial v1.0) by log-likelihood given image, history and
question; the true answer's 1-based rank gives MRR (the paper's metric), R@1/5/10 and the mean rank."""

from __future__ import annotations

import torch

from lavis_ib.common.registry import registry
from lavis_ib.metrics import measure
from lavis_ib.tasks.base import EvalTask, is_string_list


def option_ranks(scores: torch.Tensor) -> list[int]:
    """The 1-based rank of every option (best = 1; ties keep option order), as EvalAI's VisDial format lists them."""
    order = torch.argsort(scores, descending=True, stable=True)
    ranks = torch.empty_like(order)
    ranks[order] = torch.arange(1, len(order) + 1)
    return ranks.tolist()


@registry.register_task("dialog")
class DialogTask(EvalTask):
    """Answer-option ranking scored by `ranking_metrics` on the rank of `answer_options[gt_index]`."""

    MODES = ("rank",)
    CANDIDATES = ("answer_options",)
    METRICS = ("ranking_metrics",)
    REPORT = "mrr"

    def check_record(self, record: dict, index: int) -> None:
        options = record.get("answer_options")
        if not is_string_list(options):
            raise self.fail(record, index, f"'answer_options' must be a non-empty list of strings, got {options!r}")
        gt = record.get("gt_index")
        if isinstance(gt, bool) or not isinstance(gt, int) or not 0 <= gt < len(options):
            raise self.fail(record, index, f"'gt_index' must index the {len(options)} answer_options, got {gt!r}")

    def ground_truth(self, batch: dict, i: int) -> int:
        return batch["gt_index"][i]

    def from_scores(self, record: dict, candidates: list[str], scores: torch.Tensor, batch: dict, i: int) -> dict:
        ranks = option_ranks(scores)
        round_id = (batch["meta"][i] or {}).get("round") if batch.get("meta") else None
        return {**record, "round_id": round_id, "ranks": ranks, "gt_rank": ranks[record["gt"]],
                "answer": candidates[ranks.index(1)]}

    def compute_metrics(self, predictions: list[dict]) -> dict:
        return measure(self.metric_fn, [p["gt_rank"] for p in predictions], **self.protocol.metric_options)

    def lavis_result(self, predictions: list[dict]) -> list[dict]:
        """EvalAI's VisDial format: `{image_id, round_id, ranks}` with the rank of each of the options."""
        return [{"image_id": p.get("image_id"), "round_id": p["round_id"], "ranks": p["ranks"]} for p in predictions]
