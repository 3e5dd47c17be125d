"""Captioning (NoCaps, Flickr30K, COCO Caption, TextCaps): generate one caption per image, score with pycocoevalcap.

CIDEr's document frequencies come from the evaluated references, so the metrics are computed once over the whole
split (and once per `group_by` value, e.g. NoCaps' in-/near-/out-domain, as the NoCaps server reports them: see
`EvalTask.metrics`).
"""

from __future__ import annotations

from lavis_ib.common.registry import registry
from lavis_ib.metrics import measure
from lavis_ib.tasks.base import EvalTask, is_string_list


@registry.register_task("captioning")
class CaptioningTask(EvalTask):
    """Generation scored by `caption_metrics` (CIDEr, BLEU-4, METEOR, ROUGE-L; `report` defaults to CIDEr)."""

    METRICS = ("caption_metrics",)
    REPORT = "CIDEr"
    # LAVIS / BLIP-2 captioning evaluation defaults (the paper gives none)
    DEFAULT_DECODING = {"num_beams": 5, "max_len": 80, "min_len": 10, "length_penalty": 1.0}

    def check_record(self, record: dict, index: int) -> None:
        if not is_string_list(record.get("captions")):
            raise self.fail(record, index, f"'captions' must be a non-empty list of reference strings, "
                                           f"got {record.get('captions')!r}")

    def ground_truth(self, batch: dict, i: int) -> list[str]:
        return list(batch["captions"][i])

    def from_generation(self, record: dict, output: str, batch: dict, i: int) -> dict:
        return {**record, "output": output, "caption": output}

    def compute_metrics(self, predictions: list[dict]) -> dict:
        preds = {p["id"]: p["caption"] for p in predictions}
        refs = {p["id"]: p["gt"] for p in predictions}
        return measure(self.metric_fn, preds, refs, **self.protocol.metric_options)

    def lavis_result(self, predictions: list[dict]) -> list[dict]:
        return [{"image_id": p.get("image_id", p["id"]), "caption": p["caption"]} for p in predictions]
