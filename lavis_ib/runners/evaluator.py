"""Zero-shot evaluation of every dataset in a config: `python evaluate.py` or `torchrun evaluate.py`.

For each dataset split: check the ground truth of every record, cut the records in scope into batches of
`run.batch_size_eval`, share the batches not already in its prediction files (same job id) across ranks whole and
without padding (so every world size and every resume forms the same batches), append each batch's predictions as
it finishes, gather on rank 0, and write `predictions.jsonl`, `result.json` (LAVIS's rows), `metrics.json`
(metrics, counts, protocol; a metric undefined on the records in scope is null, its reason under `undefined`) or
the submission file of a split without answers. Finally `results.json` / `results.md` put every number beside
the paper's Table 1. Outputs go to `<run.output_dir>/<job_id>/<dataset>/<split>/` under the working directory.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch
from tqdm import tqdm

from lavis_ib.common import dist
from lavis_ib.common.config import Config
from lavis_ib.common.precision import autocast, run_precision
from lavis_ib.common.registry import UnknownNameError, closest_match, registry
from lavis_ib.common.schema import ConfigError
from lavis_ib.datasets import templates
from lavis_ib.datasets.builders.dataset import RecordDataset, ShardDataset
from lavis_ib.metrics import split_undefined
from lavis_ib.runners import setup
from lavis_ib.runners.job_folder import check_output_dir
from lavis_ib.runners.predictions import PredictionStore, iter_records
from lavis_ib.runners.results import ResultRow, render_markdown, result_row
from lavis_ib.runners.stop_signals import WorkerSafeLoader
from lavis_ib.tasks.base import EvalDataError, EvalTask

log = logging.getLogger(__name__)

MODEL_IDENTITY = ("arch", "model_type", "checkpoint", "pretrained", "finetuned", "llm_model", "t5_model", "opt_model")
"""Model config keys recorded with the predictions: a resumed split must come from the same weights."""
SKIPPED_SHOWN = 20  # unreadable records listed by id and reason in metrics.json


@dataclass
class SplitPlan:
    """One dataset split to evaluate: its dataset, task, output folder and the record indices in scope."""

    dataset_name: str
    split: str
    dataset: RecordDataset
    task: EvalTask
    templates: Optional[tuple[str, ...]]
    store: PredictionStore
    indices: range
    scored: bool  # False: no record has ground truth (a submission split)


def pending_batches(indices: Sequence[int], done: set[str], batch_size: int) -> list[list[int]]:
    """The batches of a split still to run: the records in scope (`indices`) cut into batches of `batch_size` from
    the first one, and of those the batches holding a record not `done`.

    The cut is over the records in scope, not over those left to do: a resumed run (whatever its world size, and
    whatever an earlier one finished) forms exactly the batches of one uninterrupted process, so every prediction
    has the batch-mates it would have had. A batch only partly done runs whole; its done records keep their earlier
    predictions. Shared across ranks whole (`dist.shard_batches`), so 2 ranks form the batches of 1."""
    grid = [[indices[i] for i in batch] for batch in dist.batch_ranges(len(indices), batch_size)]
    return [batch for batch in grid if any(str(i) not in done for i in batch)]


def file_identity(path: Path) -> dict:
    """Size and modification time of a weights file (or of every file of a directory): a checkpoint rewritten in
    place (training on) must not resume predictions made with its old weights."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path] if path.exists() else []
    return {str(f.relative_to(path) if path.is_dir() else f.name): [f.stat().st_size, f.stat().st_mtime_ns]
            for f in files}


class Evaluator:
    """Evaluates the config's datasets (optionally a subset, the first `limit` records of each split)."""

    def __init__(self, cfg: Config, datasets: Sequence[str] | None = None, limit: int | None = None,
                 include_valid: bool = False):
        self.cfg, self.run = cfg, cfg.run
        check_output_dir(self.run.output_dir, None, cfg.cfg_path)
        setup.check_preprocess(cfg)
        self.names = self.select_datasets(datasets)
        if limit is not None and limit < 1:
            raise ConfigError(f"--limit must be ≥ 1, got {limit}")
        self.limit, self.include_valid = limit, include_valid
        self.output_root: Path | None = None
        self.info: dist.DistInfo | None = None
        self.precision: str | None = None  # the run's (`run_precision`), set with the model

    @classmethod
    def from_config(cls, cfg: Config, **kwargs) -> "Evaluator":
        return cls(cfg, **kwargs)

    def select_datasets(self, wanted: Sequence[str] | None) -> list[str]:
        configured = list(self.cfg.datasets_cfg)
        if not configured:
            raise ConfigError(f"{self.cfg.cfg_path}: no datasets to evaluate (the config has no 'datasets' section)")
        if not wanted:
            return configured
        for name in wanted:
            if name not in configured:
                hint = closest_match(name, configured)
                raise ConfigError(f"--datasets: {name!r} is not in {self.cfg.cfg_path} (its datasets: "
                                  f"{', '.join(configured)})" + (f"; did you mean {hint!r}?" if hint else ""))
        return [name for name in configured if name in wanted]

    # ----- the run ---------------------------------------------------------------------------------------------
    def evaluate(self) -> list[dict]:
        """Evaluate every selected dataset split; returns the `metrics.json` contents (rank 0; [] elsewhere)."""
        with dist.distributed_run(self.cfg.run_cfg) as info:
            torch.manual_seed(self.run.seed)
            job = dist.job_id(self.run.job_id)
            output_root = Path(self.run.output_dir) / job
            self.check_protocols()
            precision = run_precision(self.run.precision, info.device)  # decided once, as training decides it
            model = setup.build_model(self.cfg, info.device, precision, is_eval=True)  # a failed start: no folder
            if info.is_main:
                output_root.mkdir(parents=True, exist_ok=True)
                PredictionStore(output_root).write_json("config.json", self.cfg.to_dict())
                log.info("evaluation job %s: outputs in %s", job, output_root)
            summaries = self.evaluate_model(model, output_root, info, precision)
            if info.is_main:
                self.write_results(summaries)
            return summaries if info.is_main else []

    def evaluate_model(self, model, output_root: Path, info: dist.DistInfo, precision: str,
                       splits: Sequence[str] | None = None) -> list[dict]:
        """Evaluate `model` (already built, in eval mode) on the selected datasets into `output_root`; every rank
        takes part and every rank gets the summaries. `splits` replaces the configured ones (training validation:
        `run.valid_splits`, only where a dataset has them). `precision`: the run's, which the forward passes autocast
        to."""
        self.output_root, self.info, self.precision = output_root, info, precision
        summaries = []
        for name in self.names:
            for plan in self.plans(name, model, splits):
                summaries.append(self.evaluate_split(model, plan))
                dist.barrier()
        return dist.broadcast_object(summaries if info.is_main else None)

    def model_identity(self) -> dict:
        identity = {key: self.cfg.model_cfg.get(key) for key in MODEL_IDENTITY
                    if self.cfg.model_cfg.get(key) is not None}
        if identity.get("checkpoint"):
            identity["checkpoint_files"] = file_identity(Path(identity["checkpoint"]))
        return identity

    def splits_for(self, name: str, protocol, configured: Sequence[str]) -> list[str]:
        """`run.test_splits` when set (every dataset must have them), else the protocol's `eval.splits`; plus the
        configured `run.valid_splits` when asked for."""
        splits = list(self.run.test_splits or protocol.splits)
        if not splits:
            raise ConfigError(f"datasets.{name}.eval.splits is empty and run.test_splits is not set: nothing to "
                              f"evaluate (configured splits: {', '.join(configured)})")
        if self.include_valid:
            splits += [s for s in self.run.valid_splits if s in configured and s not in splits]
        return splits

    def builder(self, name: str, vis_defaults: dict | None = None):
        """The dataset builder of `name` from its merged config block (`vis_defaults`: the model's preprocessing)."""
        return setup.dataset_builder(self.cfg, name, vis_defaults)

    @staticmethod
    def task_class(name: str, builder) -> type[EvalTask]:
        """The task of dataset `name`'s `eval:` block; a missing block or unknown task names the dataset's key."""
        protocol = builder.config.eval
        if protocol is None or not protocol.task:
            raise ConfigError(f"datasets.{name}: no 'eval:' block with a task, so it cannot be evaluated (see "
                              f"{type(builder).default_config_path()})")
        try:
            return registry.get_task_class(protocol.task)
        except UnknownNameError as error:
            raise ConfigError(f"datasets.{name}.eval.task: {error}") from None

    def check_protocols(self) -> None:
        """Every selected dataset names a known task: checked before the model is built."""
        for name in self.names:
            self.task_class(name, self.builder(name))

    def plans(self, name: str, model, splits: Sequence[str] | None = None) -> list[SplitPlan]:
        """The splits of dataset `name` to evaluate (`splits`: those of them the dataset has, instead of the
        configured ones), each checked and with its output folder opened."""
        builder = self.builder(name, setup.preprocessing(self.cfg, model))
        task_cls = self.task_class(name, builder)
        protocol = builder.config.eval
        if protocol.prompt is not None:
            builder.config.instruction.eval = protocol.prompt
        prompt_templates = templates.resolve_templates(builder.config.instruction.eval,
                                                       f"datasets.{name}.instruction.eval")
        plans = []
        chosen = self.splits_for(name, protocol, builder.splits) if splits is None else \
            [split for split in splits if split in builder.splits]
        for split in chosen:
            dataset = builder.build_split(split)
            if isinstance(dataset, ShardDataset):  # local or remote: read whole, as JSON lines are
                dataset = dataset.whole()
            task = task_cls(protocol, name, split, dataset.answer_list, source=f"datasets.{name}.eval")
            indices = range(min(len(dataset), self.limit or len(dataset)))
            scored = self.check_ground_truth(task, dataset, indices)
            plan = SplitPlan(name, split, dataset, task, prompt_templates,
                             PredictionStore(self.output_root / name / split), indices, scored)
            plans.append(plan)
        return plans

    def check_ground_truth(self, task: EvalTask, dataset: RecordDataset, indices: range) -> bool:
        """Check every record in scope before anything runs; False when none has ground truth (a submission split,
        which needs `eval.submission`)."""
        records = dataset.records
        has = [task.has_ground_truth(records[i]) for i in indices]
        if not any(has):
            if task.protocol.submission is None:
                raise EvalDataError(f"{task.dataset} {task.split}: no record has ground truth, so nothing can be "
                                    f"scored; set datasets.{task.dataset}.eval.submission to write a submission file")
            return False
        for i, scorable in zip(indices, has):
            task.check(records[i], i)
            if not scorable:
                raise task.fail(records[i], i, "has no ground truth while the rest of the split has")
        return True

    def protocol_record(self, plan: SplitPlan, model) -> dict:
        """What the predictions of a split depend on; a resumed folder must match it exactly."""
        summary = plan.task.summary(model)
        summary["prompt_templates"] = list(plan.templates) if plan.templates else None
        records = plan.dataset.records
        return {"dataset": plan.dataset_name, "split": plan.split, "records": str(getattr(records, "path", "")),
                "num_records": len(records), "model": self.model_identity(), "protocol": summary}

    # ----- one split ------------------------------------------------------------------------------------------
    def open_store(self, plan: SplitPlan, protocol: dict) -> set[str]:
        """Rank 0 checks the folder's protocol and reads what is done; every rank gets the same ids (or error).
        Records skipped as unreadable are not done: a re-run tries them again (the media may have been fixed)."""
        outcome = None
        if self.info.is_main:
            try:
                plan.store.check_protocol(protocol)
                done = plan.store.load()
                outcome = ("ok", sorted(key for key, row in done.items() if "skipped" not in row))
            except (ConfigError, ValueError) as error:
                outcome = ("error", str(error))
        status, value = dist.broadcast_object(outcome)
        if status == "error":
            raise ConfigError(value)
        return set(value)

    def autocast(self):
        """The forward passes' autocast, in the precision the model was built in (training's, during validation), so
        validation scores equal evaluate.py's."""
        return autocast(self.precision, self.info.device)

    def evaluate_split(self, model, plan: SplitPlan) -> dict:
        protocol = self.protocol_record(plan, model)
        done = self.open_store(plan, protocol)
        remaining = [i for i in plan.indices if str(i) not in done]
        pending = pending_batches(plan.indices, done, self.run.batch_size_eval)
        mine = dist.shard_batches(pending, self.info.rank, self.info.world_size)
        # workers leave SIGTERM/SIGUSR1 to the rank: a preemption during validation stops training after it, with a save
        loader = WorkerSafeLoader(plan.dataset, batch_sampler=mine, num_workers=self.run.num_workers,
                                  collate_fn=model.collator(plan.task.collate_mode))
        label = f"{plan.dataset_name}/{plan.split}"
        cache = getattr(model, "feature_cache", None)
        if cache is not None:
            cache.reset_counts()
        if self.info.is_main:
            again = sum(map(len, pending)) - len(remaining)
            log.info("%s: %d records in scope, %d done before, %d to evaluate on %d rank(s) (%d batches of ≤ %d%s)",
                     label, len(plan.indices), len(plan.indices) - len(remaining), len(remaining),
                     self.info.world_size, len(pending), self.run.batch_size_eval,
                     f"; {again} done records run again as batch-mates, their predictions kept" if again else "")
        new: list[dict] = []
        total = sum(str(i) not in done for batch in mine for i in batch)
        with tqdm(total=total, desc=label, unit="sample", disable=not self.info.is_main, dynamic_ncols=True) as bar:
            for batch in loader:
                rows = [{"id": str(s.index), "skipped": s.reason} for s in batch.get("skipped", ())]
                if "image" in batch:
                    with torch.no_grad(), self.autocast():
                        rows += plan.task.predict(model, batch)
                rows = [row for row in rows if row["id"] not in done]  # a done batch-mate keeps its prediction
                plan.store.append(self.info.rank, rows)
                new += rows
                bar.update(len(rows))
        if cache is not None:
            log.info("%s: feature cache (rank %d): %s", label, self.info.rank, cache)
        gathered = dist.gather_by_id(new, key="id", dst=0)
        if not self.info.is_main:
            return {}
        previous = plan.store.load(repair=False)
        merged = {**previous, **{row["id"]: row for row in gathered}}
        plan.store.finalize(merged)  # everything predicted so far; the metrics cover the records in scope
        in_scope = {str(i) for i in plan.indices}
        return self.write_split_outputs(plan, protocol, {k: row for k, row in merged.items() if k in in_scope})

    def write_split_outputs(self, plan: SplitPlan, protocol: dict, merged: dict[str, dict]) -> dict:
        rows = list(iter_records(merged))
        scored = [row for row in rows if "skipped" not in row]
        skipped = [row for row in rows if "skipped" in row]
        label = f"{plan.dataset_name} {plan.split}"
        if skipped:
            log.warning("%s: %d of %d records unreadable and skipped (listed in metrics.json); metrics are over the "
                        "other %d", label, len(skipped), len(rows), len(scored))
        summary = {
            **protocol, "report": plan.task.report_key, "num_in_scope": len(plan.indices),
            "num_scored": len(scored), "num_skipped": len(skipped),
            "skipped": [{"id": row["id"], "reason": row["skipped"]} for row in skipped[:SKIPPED_SHOWN]],
            "limit": self.limit,
        }
        if plan.scored:
            metrics, undefined = split_undefined(plan.task.metrics(scored))
            if not scored:  # the metrics' own reason ("preds is empty") says less than why
                undefined = {key: f"every record in scope was unreadable ({len(skipped)} skipped; first: "
                                  f"{skipped[0]['skipped'] if skipped else 'none'})" for key in undefined}
            summary.update(metrics=metrics, agg_metrics=metrics[plan.task.report_key], undefined=undefined)
            for reason in dict.fromkeys(undefined.values()):
                log.warning("%s: %s undefined (null in metrics.json) on the %d scored record(s): %s", label,
                            ", ".join(key for key, why in undefined.items() if why == reason), len(scored), reason)
            plan.store.write_json("result.json", plan.task.lavis_result(scored))
        else:
            submission = plan.task.submission(scored)
            path = plan.store.write_json(f"submission_{plan.task.protocol.submission}.json", submission)
            summary.update(metrics={}, agg_metrics=None, undefined={}, submission=str(path))
            log.info("%s: no ground truth; wrote the submission file %s", label, path)
        plan.store.write_json("metrics.json", summary)
        return summary

    def write_results(self, summaries: list[dict]) -> list[ResultRow]:
        """`results.json` and `results.md` in the job folder — this run's splits, then those earlier runs of the same
        job id evaluated with the same model — and the table on stdout."""
        model = self.cfg.model_cfg
        current = {(s["dataset"], s["split"]) for s in summaries}
        earlier = [json.loads(path.read_text(encoding="utf-8"))
                   for path in sorted(self.output_root.glob("*/*/metrics.json"))]
        summaries = summaries + [s for s in earlier if (s["dataset"], s["split"]) not in current
                                 and s.get("model") == self.model_identity()]
        rows = [result_row(summary, model.arch, model.model_type) for summary in summaries]
        title = f"Zero-shot results: {model.arch} / {model.model_type} (job {self.output_root.name})"
        table = render_markdown(rows, title)
        self.output_root.mkdir(parents=True, exist_ok=True)
        PredictionStore(self.output_root).write_json("results.json", {
            "model": self.model_identity(), "config": self.cfg.cfg_path, "rows": [row.to_dict() for row in rows]})
        (self.output_root / "results.md").write_text(table, encoding="utf-8")
        print(table)
        print(f"results written to {self.output_root}")
        return rows
