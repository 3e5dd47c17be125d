"""End-to-end zero-shot evaluation through `lavis_ib.cli.run("evaluate", ...)` on the tiny random models.

Every dataset with an eval fixture is evaluated once per architecture (module-scoped runs), then each dataset's
output files are checked against what a user relies on: one prediction per record with the rendered prompt and the
record's ground truth, the protocol recorded beside the metric, and a metric that equals its recomputation from
`predictions.jsonl` with the public metric functions. Further runs check that the batch size does not change the
predictions, that unreadable media are skipped, counted and retried, that a metric undefined on the records in
scope is reported as such (`evaluate.py` itself, as a subprocess), and the `--limit` / `--datasets` options.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from lavis_ib import metrics
from lavis_ib.cli import run as cli_run
from lavis_ib.common.config import Config
from lavis_ib.common.registry import registry
from lavis_ib.common.schema import ConfigError
from lavis_ib.datasets import templates
from lavis_ib.datasets.records import read_jsonl, write_jsonl
from tests.tasks.fixtures import FIXTURE_SPLITS, NOCAPS_DOMAINS, write_eval_fixture

REPO = Path(__file__).resolve().parents[2]
EVAL_CONFIGS = REPO / "projects" / "instructblip" / "eval"
VICUNA, T5 = "blip2_vicuna_instruct", "blip2_t5_instruct"
N = 5  # records per dataset split in the suite runs
CAPTIONING = ("nocaps", "flickr30k", "coco_caption", "textcaps")
T5_DATASETS = ("gqa", "hateful_memes", "visdial", "scienceqa", "msvd_qa", "nocaps")
HELD_OUT = ("nocaps", "flickr30k", "gqa", "vsr", "iconqa", "textvqa", "visdial", "hateful_memes", "vizwiz",
            "scienceqa", "msvd_qa", "msrvtt_qa", "ivqa")  # the paper's Table 1, in its order

# dataset: (task, mode, metric, report key, candidates) as the dataset configs' eval: blocks must give them
PROTOCOLS = {
    **{name: ("captioning", "generate", "caption_metrics", "CIDEr", None) for name in CAPTIONING},
    "gqa": ("vqa", "generate", "exact_match", "exact_match", None),
    "vsr": ("classification", "generate", "accuracy", "accuracy", None),
    "iconqa": ("classification", "rank", "accuracy", "accuracy", "choices"),
    "textvqa": ("vqa", "generate", "vqa_accuracy", "vqa_accuracy", None),
    "visdial": ("dialog", "rank", "ranking_metrics", "mrr", "answer_options"),
    "hateful_memes": ("classification", "rank", "roc_auc", "roc_auc", "verbalizers"),
    "vizwiz": ("vqa", "generate", "vqa_accuracy", "vqa_accuracy", None),
    "scienceqa": ("classification", "rank", "accuracy", "accuracy", "choices"),
    "msvd_qa": ("vqa", "rank", "exact_match", "exact_match", "answer_list"),
    "msrvtt_qa": ("vqa", "rank", "exact_match", "exact_match", "answer_list"),
    "ivqa": ("vqa", "generate", "ivqa_accuracy", "ivqa_accuracy", None),
    "okvqa": ("vqa", "generate", "vqa_accuracy", "vqa_accuracy", None),
    "aokvqa": ("vqa", "generate", "aokvqa_accuracy", "aokvqa_accuracy", None),
    "vqav2": ("vqa", "generate", "vqa_accuracy", "vqa_accuracy", None),
}
# the record field copied into each prediction's `gt`
GT_FIELD = {
    **{name: "captions" for name in CAPTIONING},
    **{name: "text_output" for name in ("gqa", "msvd_qa", "msrvtt_qa")},
    **{name: "answers" for name in ("textvqa", "vizwiz", "ivqa", "okvqa", "aokvqa", "vqav2")},
    **{name: "label" for name in ("vsr", "iconqa", "hateful_memes", "scienceqa")},
    "visdial": "gt_index",
}
# the instruction.eval family of the held-in datasets (the held-out ones: templates.ZERO_SHOT, Appendix E)
HELD_IN_FAMILY = {"coco_caption": "short_description", "textcaps": "short_description", "okvqa": "short_answer",
                  "aokvqa": "short_answer", "vqav2": "short_answer"}
# exact prompts of a few records, written out: what the LLM is actually given
PROMPTS = {
    ("gqa", 0): "Question: is the sky blue? Short answer:",
    ("textvqa", 1): "OCR tokens: Coca, Cola, Classic. Question: what brand is the drink? Short answer:",
    ("iconqa", 0): "Question: how many shapes are there? Options: (a) 2 (b) 3 (c) 4. Short answer:",
    ("vsr", 0): 'Based on the image, is this statement true or false? "The cat is left of the dog." Answer:',
    ("hateful_memes", 0): 'This is an image with: "its their character not their color that matters" written on '
                          'it. Is it hateful? Answer:',
    ("scienceqa", 1): "Context: Ducks live near water. The feet of the duck are adapted for swimming. Question: "
                      "Which animal's feet are also adapted for swimming? Options: (a) sea otter (b) tokay gecko. "
                      "Answer:",
    ("visdial", 1): "Dialog history: two people standing next to a dog. Question: how many people are there "
                    "Answer: 2.\n Question: what color is the bus Short answer:",
    ("nocaps", 0): "A short image description:",
    ("textcaps", 0): "OCR tokens: STOP. A short image description:",
    ("msvd_qa", 0): "Question: what is the man doing? Short answer:",
}
VERBALIZERS = [["no", "false"], ["yes", "true"]]  # HatefulMemes: `scores` come in this order, flattened


# ----------------------------------------------------------------------------------------------------- helpers


def write_config(path: Path, data_roots: dict[str, Path], output_dir: Path, job_id: str, batch_size: int,
                 arch: str = VICUNA, eval_blocks: dict[str, str] | None = None) -> Path:
    """A project YAML evaluating `data_roots`' datasets; `eval_blocks`: a flow-style `eval:` override per dataset
    (captioning defaults to no METEOR: its Java start costs ~10 s)."""
    eval_blocks = eval_blocks or {}
    lines = [f"model: {{arch: {arch}, model_type: tiny}}", "datasets:"]
    for name, root in data_roots.items():
        block = eval_blocks.get(name, "{metric_options: {meteor: false}}" if name in CAPTIONING else None)
        extra = f", eval: {block}" if block else ""
        lines.append(f"  {name}: {{data_root: '{root}'{extra}}}")
    lines.append(f"run: {{output_dir: '{output_dir}', job_id: {job_id}, batch_size_eval: {batch_size}, "
                 f"num_workers: 0}}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def evaluate(*argv: str) -> list[dict]:
    return cli_run("evaluate", list(argv))


def read_json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def read_predictions(folder: Path) -> list[dict]:
    lines = (folder / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def by_summary(summaries: list[dict]) -> dict[tuple[str, str], dict]:
    return {(s["dataset"], s["split"]): s for s in summaries}


def expected_prompt(name: str, record: dict) -> str:
    """The instruction as the dataset config says to render it: the eval text processor, then the template."""
    config = registry.get_builder_class(name).default_config()
    processor_cfg = (config.get("text_processor") or {}).get("eval")
    raw = dict(record)
    if processor_cfg is not None and raw["text_input"]:
        raw["text_input"] = registry.get_processor_class(processor_cfg["name"])()(raw["text_input"])
    (template,) = templates.FAMILIES[config.instruction.eval]
    return templates.render(template, raw, bool(config.instruction.get("ocr_prefix", False)))


def softmax(values: list[float]) -> list[float]:
    top = max(values)
    exps = [math.exp(v - top) for v in values]
    return [e / sum(exps) for e in exps]


def logsumexp(values: list[float]) -> float:
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


def argmax(values: list[float]) -> int:
    return max(range(len(values)), key=lambda j: (values[j], -j))  # the first of equal maxima


def recompute(name: str, predictions: list[dict]) -> dict:
    """The dataset's metrics from its predictions alone, with the public metric functions."""
    metric = PROTOCOLS[name][2]
    if metric == "caption_metrics":
        return metrics.caption_metrics({p["id"]: p["caption"] for p in predictions},
                                       {p["id"]: p["gt"] for p in predictions}, meteor=False)
    if metric in ("exact_match", "vqa_accuracy", "ivqa_accuracy", "aokvqa_accuracy"):
        return getattr(metrics, metric)([p["answer"] for p in predictions], [p["gt"] for p in predictions])
    if metric == "ranking_metrics":
        return metrics.ranking_metrics([p["gt_rank"] for p in predictions])
    result = metrics.accuracy([p["pred"] for p in predictions], [p["gt"] for p in predictions])
    result["num_unmapped"] = sum(p["pred"] == -1 for p in predictions)
    if metric == "roc_auc":
        result.update(metrics.roc_auc([p["probs"][1] for p in predictions], [p["gt"] for p in predictions]))
    return result


def assert_metrics_equal(ours: dict, expected: dict) -> None:
    assert set(expected) <= set(ours), sorted(set(expected) - set(ours))
    for key, value in expected.items():
        assert ours[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


def assert_same_predictions(a: list[dict], b: list[dict], tol: float = 1e-5) -> None:
    """Equal field by field; floats (ranking scores, probabilities) within `tol`, everything else exactly."""
    def same(x, y) -> bool:
        if isinstance(x, float) or isinstance(y, float):
            return isinstance(x, (int, float)) and isinstance(y, (int, float)) and abs(x - y) <= tol
        if isinstance(x, list) and isinstance(y, list):
            return len(x) == len(y) and all(same(u, v) for u, v in zip(x, y))
        if isinstance(x, dict) and isinstance(y, dict):
            return x.keys() == y.keys() and all(same(x[k], y[k]) for k in x)
        return x == y

    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert same(x, y), (x, y)


@dataclass
class Job:
    """One evaluation run: its job folder, the summaries `evaluate` returned, and the fixture records."""

    root: Path
    summaries: dict[tuple[str, str], dict]
    records: dict[tuple[str, str], list[dict]]
    config: Path

    def folder(self, name: str, split: str) -> Path:
        return self.root / name / split


# ----------------------------------------------------------------------------------------------------- runs


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The tiny models' matrices are too small to gain from intra-op threads, and on a busy 2-core machine the
    threads' spin-waits multiply the run time (measured: 240 s instead of ~40 s); restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def suite_data(tmp_path_factory):
    """Fixtures of every dataset (n=5) plus VizWiz test (no answers), under one data root."""
    root = tmp_path_factory.mktemp("suite_data")
    records = {(name, split): read_jsonl(write_eval_fixture(root, name, split, n=N))
               for name, split in FIXTURE_SPLITS.items()}
    records["vizwiz", "test"] = read_jsonl(write_eval_fixture(root, "vizwiz", "test", n=N))
    return root, records


@pytest.fixture(scope="module")
def vicuna(suite_data, tmp_path_factory):
    data, records = suite_data
    base = tmp_path_factory.mktemp("vicuna")
    config = write_config(base / "suite.yaml", {name: data for name in FIXTURE_SPLITS}, base / "out", "suite", 8)
    summaries = evaluate("--cfg-path", str(config))
    return Job(base / "out" / "suite", by_summary(summaries), records, config)


@pytest.fixture(scope="module")
def vizwiz_test(vicuna):
    """The same config on VizWiz's test split only (another job id: each run rewrites its job's results table)."""
    summaries = evaluate("--cfg-path", str(vicuna.config), "--datasets", "vizwiz",
                         "--options", "run.test_splits=[test]", "run.job_id=vizwiz_test")
    return Job(vicuna.root.parent / "vizwiz_test", by_summary(summaries), vicuna.records, vicuna.config)


@pytest.fixture(scope="module")
def t5(vicuna):
    """The same config and data with the T5 architecture selected by --options, on six datasets."""
    summaries = evaluate("--cfg-path", str(vicuna.config), "--datasets", ",".join(T5_DATASETS),
                         "--options", f"model.arch={T5}", "run.job_id=t5")
    return Job(vicuna.root.parent / "t5", by_summary(summaries), vicuna.records, vicuna.config)


# ----------------------------------------------------------------------------------------------------- 1. suite


@pytest.mark.parametrize("name", list(FIXTURE_SPLITS))
def test_dataset_end_to_end(vicuna, name):
    split = FIXTURE_SPLITS[name]
    task, mode, metric, report, candidates = PROTOCOLS[name]
    folder = vicuna.folder(name, split)
    for file in ("protocol.json", "predictions.jsonl", "result.json", "metrics.json"):
        assert (folder / file).is_file(), file
    assert not (folder / "parts").exists()  # merged into predictions.jsonl once the split is complete
    records = vicuna.records[name, split]
    predictions = read_predictions(folder)

    # predictions.jsonl: one line per record, in record order, with prompt, ground truth and the mode's outputs
    assert [p["id"] for p in predictions] == [str(i) for i in range(N)]
    for record, p in zip(records, predictions):
        assert p["prompt"] == expected_prompt(name, record)
        assert p["gt"] == record[GT_FIELD[name]]
        if "question_id" in record:
            assert p["question_id"] == record["question_id"]
        if mode == "generate":
            assert isinstance(p["output"], str)
            if task == "classification":
                assert p["pred"] in (-1, 0, 1)  # VSR: false, true, or unmapped
            if task == "vqa":
                assert p["answer"] == p["output"]  # no lemmatizer configured
            if task == "captioning":
                assert p["caption"] == p["output"]
        elif task == "classification":
            assert len(p["scores"]) == (4 if name == "hateful_memes" else len(record["choices"]))
        elif task == "dialog":
            assert sorted(p["ranks"]) == list(range(1, len(record["answer_options"]) + 1))
        else:
            assert 1 <= len(p["top5"]) <= 5
    for (dataset, index), prompt in PROMPTS.items():
        if dataset == name:
            assert predictions[index]["prompt"] == prompt

    # metrics.json: counts, protocol, and the metric recomputed from predictions.jsonl
    summary = read_json(folder / "metrics.json")
    assert summary == vicuna.summaries[name, split]  # what evaluate() returned
    assert (summary["dataset"], summary["split"], summary["num_records"]) == (name, split, N)
    assert summary["model"] == {"arch": VICUNA, "model_type": "tiny"}
    assert (summary["num_in_scope"], summary["num_scored"], summary["num_skipped"]) == (N, N, 0)
    assert summary["skipped"] == [] and summary["limit"] is None
    assert summary["report"] == report
    assert summary["agg_metrics"] == summary["metrics"][report]
    protocol = summary["protocol"]
    assert (protocol["task"], protocol["mode"], protocol["metric"]) == (task, mode, metric)
    family = templates.ZERO_SHOT.get(name) or HELD_IN_FAMILY[name]
    assert protocol["prompt_templates"] == list(templates.FAMILIES[family])
    if mode == "generate":
        expected = ({"num_beams": 5, "max_length": 80, "min_length": 10, "length_penalty": 1.0}
                    if task == "captioning" else
                    {"num_beams": 5, "max_length": 10, "min_length": 1, "length_penalty": 0.0})
        assert {key: protocol["decoding"][key] for key in expected} == expected
        assert "candidates" not in protocol
    else:
        assert protocol["candidates"] == candidates and "decoding" not in protocol
    assert_metrics_equal(summary["metrics"], recompute(name, predictions))
    assert read_json(folder / "protocol.json") == {key: summary[key] for key in
                                                   ("dataset", "split", "records", "num_records", "model",
                                                    "protocol")}

    # result.json: LAVIS's rows
    result = read_json(folder / "result.json")
    if task == "captioning":
        expected_rows = [{"image_id": r["image_id"], "caption": p["caption"]} for r, p in zip(records, predictions)]
    elif task == "vqa":
        expected_rows = [{"question_id": r["question_id"], "answer": p["answer"]} for r, p in zip(records, predictions)]
    elif task == "classification":  # VSR records have no question_id: the record index stands in
        expected_rows = [{"question_id": r.get("question_id", str(i)), "pred_ans": p["pred"], "gt_ans": r["label"]}
                         for i, (r, p) in enumerate(zip(records, predictions))]
    else:
        expected_rows = [{"image_id": r["image_id"], "round_id": r["meta"]["round"], "ranks": p["ranks"]}
                         for r, p in zip(records, predictions)]
    assert result == expected_rows


@pytest.mark.parametrize("name", ["iconqa", "scienceqa", "hateful_memes"])
def test_classification_ranking_is_the_argmax(vicuna, name):
    predictions = read_predictions(vicuna.folder(name, FIXTURE_SPLITS[name]))
    for p in predictions:
        scores = p["scores"]  # rounded to 5 decimals in the file: probabilities agree within 1e-5
        if name == "hateful_memes":
            class_scores = [logsumexp(scores[:2]), logsumexp(scores[2:])]  # {no, false} vs {yes, true}
        else:
            class_scores = scores
        assert p["pred"] == argmax(class_scores)
        assert p["probs"] == pytest.approx(softmax(class_scores), abs=1e-5)
    if name == "hateful_memes":
        protocol = read_json(vicuna.folder(name, "dev_seen") / "metrics.json")["protocol"]
        assert protocol["verbalizers"] == VERBALIZERS


def test_vsr_generation_maps_to_classes(vicuna):
    """VSR generates; the answer maps to false/no → 0, true/yes → 1, anything else → -1 (counted as wrong)."""
    predictions = read_predictions(vicuna.folder("vsr", "test"))
    words = {"false": 0, "no": 0, "true": 1, "yes": 1}
    assert [p["pred"] for p in predictions] == [words.get(metrics.normalize_answer(p["output"]), -1)
                                                for p in predictions]
    summary = read_json(vicuna.folder("vsr", "test") / "metrics.json")
    assert summary["metrics"]["num_unmapped"] == sum(p["pred"] == -1 for p in predictions)


@pytest.mark.parametrize("name", ["msvd_qa", "msrvtt_qa"])
def test_answer_list_ranking(vicuna, suite_data, name):
    data, _ = suite_data
    answer_list = read_json(data / registry.get_builder_class(name).default_config().build_info.answer_list.storage)
    summary = read_json(vicuna.folder(name, "test") / "metrics.json")
    assert summary["protocol"]["num_candidates"] == len(answer_list)
    for p in read_predictions(vicuna.folder(name, "test")):
        top = [score for _, score in p["top5"]]
        assert p["answer"] == p["top5"][0][0] and p["answer"] in answer_list
        assert top == sorted(top, reverse=True) and len(p["top5"]) == 5


def test_visdial_ranks_follow_the_scores(vicuna):
    """Re-score the VisDial options with the same model and batch: every rank is 1 + the options scoring strictly
    higher (ties: the earlier option first), `gt_rank` is the gt option's, `answer` the top option."""
    from torch.utils.data import DataLoader

    from lavis_ib.runners import setup
    from lavis_ib.runners.evaluator import Evaluator

    cfg = Config(vicuna.config)
    evaluator = Evaluator(cfg, datasets=["visdial"])
    evaluator.output_root = vicuna.root
    torch.manual_seed(cfg.run.seed)  # the evaluator seeds the same way before building the model
    model = setup.build_model(cfg, torch.device("cpu"), "fp32", is_eval=True)
    (plan,) = evaluator.plans("visdial", model)
    batch = next(iter(DataLoader(plan.dataset, batch_size=cfg.run.batch_size_eval,
                                 collate_fn=model.collator("score"))))
    scores = model.score_candidates(batch, [list(o) for o in batch["answer_options"]]).sum
    predictions = read_predictions(vicuna.folder("visdial", "val"))
    assert len(scores) == len(predictions) == N
    for record, p, s in zip(vicuna.records["visdial", "val"], predictions, scores):
        s = s.tolist()
        ranks = [1 + sum(t > s[j] for t in s) + sum(t == s[j] for t in s[:j]) for j in range(len(s))]
        assert p["ranks"] == ranks
        assert p["gt_rank"] == ranks[record["gt_index"]]
        assert p["answer"] == record["answer_options"][argmax(s)]
        assert p["round_id"] == record["meta"]["round"]


def test_nocaps_reports_each_domain(vicuna):
    folder = vicuna.folder("nocaps", "val")
    predictions = read_predictions(folder)
    summary = read_json(folder / "metrics.json")
    domains = {r["meta"]["domain"] for r in vicuna.records["nocaps", "val"]}
    assert domains == set(NOCAPS_DOMAINS)  # n=5 covers all three
    assert [p["group"] for p in predictions] == [r["meta"]["domain"] for r in vicuna.records["nocaps", "val"]]
    for domain in domains:
        members = [p for p in predictions if p["group"] == domain]
        expected = recompute("nocaps", members)
        assert f"{domain}/CIDEr" in summary["metrics"] and len(members) >= 1
        assert_metrics_equal(summary["metrics"], {f"{domain}/{key}": value for key, value in expected.items()})
    assert not any(key.startswith("METEOR") or key.endswith("/METEOR") for key in summary["metrics"])


def test_results_table(vicuna):
    results = read_json(vicuna.root / "results.json")
    assert results["model"] == {"arch": VICUNA, "model_type": "tiny"}
    rows = {row["dataset"]: row for row in results["rows"]}
    assert list(rows) == list(FIXTURE_SPLITS) and len(results["rows"]) == len(FIXTURE_SPLITS)
    for name, split in FIXTURE_SPLITS.items():
        row, summary = rows[name], vicuna.summaries[name, split]
        assert (row["split"], row["metric"], row["ours"]) == (split, summary["report"], summary["agg_metrics"])
        assert (row["num_scored"], row["num_skipped"]) == (N, 0)
        assert row["paper"] is None and row["difference"] is None  # Table 1 has no tiny model
    table = (vicuna.root / "results.md").read_text(encoding="utf-8")
    body = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| dataset")]
    assert [line.split(" | ")[0][2:] for line in body] == list(FIXTURE_SPLITS)
    assert f"{VICUNA} / tiny (job suite)" in table


def test_vizwiz_test_split_writes_the_submission(vizwiz_test):
    folder = vizwiz_test.folder("vizwiz", "test")
    summary = read_json(folder / "metrics.json")
    assert list(vizwiz_test.summaries) == [("vizwiz", "test")]
    assert summary["agg_metrics"] is None and summary["metrics"] == {}
    assert (summary["num_scored"], summary["num_skipped"]) == (N, 0)
    assert not (folder / "result.json").exists()
    submission = read_json(folder / "submission_vizwiz.json")
    assert summary["submission"] == str(folder / "submission_vizwiz.json")
    predictions = read_predictions(folder)
    assert submission == [{"image": f"VizWiz_test_{i:08d}.jpg", "answer": p["answer"]}
                          for i, p in enumerate(predictions)]
    assert all(isinstance(row["answer"], str) for row in submission)
    assert all("gt" in p and p["gt"] is None for p in predictions)
    rows = read_json(vizwiz_test.root / "results.json")["rows"]
    assert [(r["dataset"], r["split"], r["ours"]) for r in rows] == [("vizwiz", "test", None)]


# ----------------------------------------------------------------------------------------------------- 2. T5


@pytest.mark.parametrize("name", T5_DATASETS)
def test_t5_arch(t5, name):
    split = FIXTURE_SPLITS[name]
    folder = t5.folder(name, split)
    summary = read_json(folder / "metrics.json")
    assert summary["model"] == {"arch": T5, "model_type": "tiny"}
    assert (summary["num_scored"], summary["num_skipped"]) == (N, 0)
    predictions = read_predictions(folder)
    assert [p["id"] for p in predictions] == [str(i) for i in range(N)]
    records = t5.records[name, split]
    assert [p["gt"] for p in predictions] == [r[GT_FIELD[name]] for r in records]
    assert [p["prompt"] for p in predictions] == [expected_prompt(name, r) for r in records]  # not LLM-specific
    assert summary["agg_metrics"] == summary["metrics"][PROTOCOLS[name][3]]
    assert_metrics_equal(summary["metrics"], recompute(name, predictions))
    if name == "gqa":  # the model's answer default: FlanT5 -1, Vicuna 0
        assert summary["protocol"]["decoding"]["length_penalty"] == -1.0
    if name == "nocaps":  # captioning sets its own length penalty whatever the LLM
        assert summary["protocol"]["decoding"]["length_penalty"] == 1.0
    assert list(t5.summaries) == [(n, FIXTURE_SPLITS[n]) for n in FIXTURE_SPLITS if n in T5_DATASETS]


def test_t5_and_vicuna_differ(t5, vicuna):
    """The --options arch switch really built another model (a stale Vicuna run would match these)."""
    assert read_predictions(t5.folder("hateful_memes", "dev_seen")) != \
        read_predictions(vicuna.folder("hateful_memes", "dev_seen"))
    assert read_json(vicuna.folder("gqa", "testdev") / "metrics.json")["protocol"]["decoding"][
        "length_penalty"] == 0.0


# ----------------------------------------------------------------------------------------------------- 3. batch size


BATCH_SETS = {"gqa": 8, "textvqa": 8, "flickr30k": 3, "scienceqa": 8, "visdial": 8, "hateful_memes": 8,
              "msvd_qa": 8}
# Generation is greedy here. The tiny model's weights are random, so its next-token distribution is nearly flat
# (top log-probs -6.408, -6.444, -6.459, ...): beam search then prunes between candidates whose scores differ by
# less than float noise, and batch 1 vs 8 (log-probs equal within 5e-7) can keep different beams. Greedy decoding
# still runs every batch-dependent step (left padding, visual prefix, position ids, KV cache, repetition penalty).
GREEDY = {"gqa": "{decoding: {num_beams: 1}}", "textvqa": "{decoding: {num_beams: 1}}",
          "flickr30k": "{metric_options: {meteor: false}, decoding: {num_beams: 1}}"}


def test_batch_size_does_not_change_predictions(tmp_path):
    """Batch size 1 and 8 (left-padded prompts, per-sample candidates) give the same predictions.jsonl: every field
    equal, floats (ranking scores and probabilities) within 1e-5."""
    data = tmp_path / "data"
    for name, n in BATCH_SETS.items():
        write_eval_fixture(data, name, n=n)
    roots = {name: data for name in BATCH_SETS}
    jobs = {}
    for batch_size in (1, 8):
        config = write_config(tmp_path / f"bs{batch_size}.yaml", roots, tmp_path / "out", f"bs{batch_size}",
                              batch_size, eval_blocks=GREEDY)
        evaluate("--cfg-path", str(config))
        jobs[batch_size] = tmp_path / "out" / f"bs{batch_size}"
    for name, n in BATCH_SETS.items():
        split = FIXTURE_SPLITS[name]
        one, eight = (read_predictions(jobs[b] / name / split) for b in (1, 8))
        assert len(one) == n and [p["id"] for p in one] == [str(i) for i in range(n)]
        assert_same_predictions(one, eight)
        summaries = [read_json(jobs[b] / name / split / "metrics.json") for b in (1, 8)]
        assert summaries[0]["agg_metrics"] == pytest.approx(summaries[1]["agg_metrics"], abs=1e-9)
        if name in GREEDY:
            assert summaries[0]["protocol"]["decoding"]["num_beams"] == 1
    # the prompts of one batch really differ in length (left padding is exercised)
    assert len({len(p["prompt"]) for p in read_predictions(jobs[8] / "gqa" / "testdev")}) > 1


# ----------------------------------------------------------------------------------------------------- 4. skipping


def corrupt_run(tmp_path):
    """GQA, 6 records of which the first 2 have unreadable images, evaluated once."""
    data = tmp_path / "data"
    records = read_jsonl(write_eval_fixture(data, "gqa", n=6, corrupt=2))
    config = write_config(tmp_path / "gqa.yaml", {"gqa": data}, tmp_path / "out", "corrupt", 4)
    (summary,) = evaluate("--cfg-path", str(config))
    return data, records, config, summary, tmp_path / "out" / "corrupt" / "gqa" / "testdev"


def test_corrupt_images_are_skipped_and_counted(tmp_path):
    _, records, _, summary, folder = corrupt_run(tmp_path)
    assert (summary["num_in_scope"], summary["num_scored"], summary["num_skipped"]) == (6, 4, 2)
    assert [s["id"] for s in summary["skipped"]] == ["0", "1"]
    for entry, record in zip(summary["skipped"], records):
        assert isinstance(entry["reason"], str) and Path(record["image"]).name in entry["reason"]
    assert read_json(folder / "metrics.json") == summary
    predictions = read_predictions(folder)
    assert [p["id"] for p in predictions] == [str(i) for i in range(6)]
    assert predictions[:2] == [{"id": s["id"], "skipped": s["reason"]} for s in summary["skipped"]]
    assert not any("skipped" in p for p in predictions[2:])
    scored = predictions[2:]
    assert summary["metrics"] == metrics.exact_match([p["answer"] for p in scored], [p["gt"] for p in scored])
    assert summary["agg_metrics"] == summary["metrics"]["exact_match"]
    assert [row["question_id"] for row in read_json(folder / "result.json")] == [r["question_id"]
                                                                                 for r in records[2:]]
    rows = read_json(folder.parents[1] / "results.json")["rows"]
    assert (rows[0]["num_scored"], rows[0]["num_skipped"]) == (4, 2)


def test_skipped_records_are_retried_once_readable(tmp_path, caplog):
    data, _, config, first, folder = corrupt_run(tmp_path)
    scored = read_predictions(folder)[2:]
    write_eval_fixture(data, "gqa", n=6, corrupt=0)  # the two files fixed: a re-run retries them only
    caplog.clear()
    with caplog.at_level("INFO", logger="lavis_ib.runners.evaluator"):
        (summary,) = evaluate("--cfg-path", str(config))
    assert "6 records in scope, 4 done before, 2 to evaluate" in caplog.text
    assert (summary["num_scored"], summary["num_skipped"], summary["skipped"]) == (6, 0, [])
    again = read_predictions(folder)
    assert [p["id"] for p in again] == [str(i) for i in range(6)] and not any("skipped" in p for p in again)
    assert again[2:] == scored  # kept, not recomputed
    assert summary["metrics"] == metrics.exact_match([p["answer"] for p in again], [p["gt"] for p in again])
    assert read_json(folder / "metrics.json") == summary


def test_a_split_with_every_record_unreadable_reports_its_metric_undefined(tmp_path, caplog):
    """Nothing left to score is an undefined metric with the reason (and a warning), not a crash of the run."""
    data = tmp_path / "data"
    write_eval_fixture(data, "gqa", n=3, corrupt=3)
    config = write_config(tmp_path / "gqa.yaml", {"gqa": data}, tmp_path / "out", "unreadable", 2)
    with caplog.at_level("WARNING", logger="lavis_ib.runners.evaluator"):
        (summary,) = evaluate("--cfg-path", str(config))
    assert (summary["num_in_scope"], summary["num_scored"], summary["num_skipped"]) == (3, 0, 3)
    assert summary["metrics"] == {"exact_match": None} and summary["agg_metrics"] is None
    reason = summary["undefined"]["exact_match"]
    assert reason.startswith("every record in scope was unreadable (3 skipped; first: cannot open image ")
    assert read_json(tmp_path / "out" / "unreadable" / "gqa" / "testdev" / "metrics.json") == summary
    assert "exact_match undefined" in caplog.text
    table = (tmp_path / "out" / "unreadable" / "results.md").read_text(encoding="utf-8")
    assert "| gqa | testdev | exact_match | undefined |" in table and f"gqa testdev exact_match: {reason}" in table


def test_smoke_run_on_one_class_reports_roc_auc_undefined_and_ends_normally(tmp_path):
    """`evaluate.py --limit 4` on HatefulMemes records whose first four are all hateful (as the real dev_seen's first
    six are): ROC-AUC has no value on them, so it is null with the reason, accuracy is still computed, the table
    says "undefined", and the command exits 0 instead of a ValueError traceback."""
    data = tmp_path / "data"
    path = write_eval_fixture(data, "hateful_memes", n=6)
    records = read_jsonl(path)
    for record in records[:4]:
        record.update(label=1, text_output="yes")
    write_jsonl(records, path, overwrite=True)
    config = write_config(tmp_path / "hateful.yaml", {"hateful_memes": data}, tmp_path / "out", "smoke", 4)
    env = {key: value for key, value in os.environ.items() if key not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(REPO), TOKENIZERS_PARALLELISM="false")
    done = subprocess.run([sys.executable, str(REPO / "evaluate.py"), "--cfg-path", str(config), "--limit", "4"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "Traceback" not in done.stderr
    reason = "labels are all 1: ROC-AUC needs at least one positive (1) and one negative (0)"
    job = tmp_path / "out" / "smoke"
    summary = read_json(job / "hateful_memes" / "dev_seen" / "metrics.json")
    assert (summary["num_scored"], summary["limit"], summary["report"]) == (4, 4, "roc_auc")
    assert summary["agg_metrics"] is None and summary["metrics"]["roc_auc"] is None
    assert summary["undefined"] == {"roc_auc": reason}
    predictions = read_predictions(job / "hateful_memes" / "dev_seen")
    assert [p["gt"] for p in predictions] == [1, 1, 1, 1]
    assert summary["metrics"]["accuracy"] == metrics.accuracy([p["pred"] for p in predictions], [1] * 4)["accuracy"]
    assert f"roc_auc undefined (null in metrics.json) on the 4 scored record(s): {reason}" in done.stderr
    (row,) = read_json(job / "results.json")["rows"]
    assert (row["ours"], row["undefined"]) == (None, reason)
    table = (job / "results.md").read_text(encoding="utf-8")
    assert "| hateful_memes | dev_seen | roc_auc | undefined |" in table
    assert f"- hateful_memes dev_seen roc_auc: {reason}" in table


# ----------------------------------------------------------------------------------------------------- 5. options


def test_limit_and_datasets(vicuna):
    out = vicuna.root.parent
    summaries = evaluate("--cfg-path", str(vicuna.config), "--limit", "2", "--datasets", "gqa,vsr",
                         "--options", "run.job_id=limited")
    assert [(s["dataset"], s["num_in_scope"], s["num_scored"], s["limit"]) for s in summaries] == [
        ("gqa", 2, 2, 2), ("vsr", 2, 2, 2)]
    job = out / "limited"
    assert sorted(p.name for p in job.iterdir() if p.is_dir()) == ["gqa", "vsr"]
    for name in ("gqa", "vsr"):
        folder = job / name / FIXTURE_SPLITS[name]
        assert [p["id"] for p in read_predictions(folder)] == ["0", "1"]
        assert read_json(folder / "metrics.json")["limit"] == 2
        assert len(read_json(folder / "result.json")) == 2
        assert read_json(folder / "protocol.json")["num_records"] == N  # the split's size, not the limit
    assert [row["dataset"] for row in read_json(job / "results.json")["rows"]] == ["gqa", "vsr"]
    # the first two predictions equal the full run's: a limit only narrows the scope
    assert read_predictions(job / "gqa" / "testdev") == read_predictions(vicuna.folder("gqa", "testdev"))[:2]


def test_unknown_dataset_exits_2_naming_the_config_datasets(vicuna, capsys):
    with pytest.raises(SystemExit) as exit_info:
        evaluate("--cfg-path", str(vicuna.config), "--datasets", "gqa,vsrr", "--options", "run.job_id=never")
    assert exit_info.value.code == 2
    message = capsys.readouterr().err
    assert "'vsrr' is not in" in message and "did you mean 'vsr'?" in message
    assert f"(its datasets: {', '.join(FIXTURE_SPLITS)})" in message
    assert not (vicuna.root.parent / "never").exists()


def test_zero_limit_is_refused(vicuna, capsys):
    with pytest.raises(SystemExit) as exit_info:
        evaluate("--cfg-path", str(vicuna.config), "--limit", "0")
    assert exit_info.value.code == 2
    assert "--limit must be ≥ 1, got 0" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------------- 6. configs


def test_model_type_selects_the_arch():
    assert Config(EVAL_CONFIGS / "gqa.yaml", ["model.model_type=flant5xl"]).model_cfg.arch == T5
    assert Config(EVAL_CONFIGS / "gqa.yaml").model_cfg.arch == VICUNA  # common.yaml: vicuna7b


def test_tiny_model_type_needs_an_arch(tmp_path):
    """`tiny` exists for several archs: without model.arch the config is refused, naming them."""
    path = tmp_path / "tiny.yaml"
    path.write_text("model: {model_type: tiny}\ndatasets: {gqa: {}}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="model.model_type 'tiny' is ambiguous") as error:
        Config(path)
    assert VICUNA in str(error.value) and T5 in str(error.value)


LLMS = {"vicuna7b": VICUNA, "vicuna13b": VICUNA, "flant5xl": T5, "flant5xxl": T5}


DEMO_ONLY = {"synthetic"}
"""Evaluation configs of the demo's tiny Vicuna (projects/instructblip/demo_model.yaml), not for every LLM:
tests/runners/test_synthetic_eval.py runs them."""


@pytest.mark.parametrize("path", sorted(p for p in EVAL_CONFIGS.glob("*.yaml") if p.stem not in DEMO_ONLY),
                         ids=lambda p: p.name)
def test_eval_config_loads_for_every_llm(path):
    """Each evaluation config validates (no model is built) with each LLM; a suite_<llm>.yaml is that LLM's suite
    already, so it is loaded as is (with options it is suite.yaml, loaded with all four below)."""
    fixed = path.stem.removeprefix("suite_") if path.stem.startswith("suite_") else None
    for llm in [fixed] if fixed else LLMS:
        cfg = Config(path, None if fixed else [f"model.model_type={llm}"])
        assert (cfg.model_cfg.model_type, cfg.model_cfg.arch) == (llm, LLMS[llm]), path.name
        for name in cfg.datasets_cfg:
            assert cfg.datasets_cfg[name].eval.task, (path.name, name)
    if path.stem == "aokvqa_mc":  # the multiple-choice protocol overrides the direct-answer block
        assert (cfg.datasets_cfg.aokvqa.eval.task, cfg.datasets_cfg.aokvqa.eval.candidates) == ("classification",
                                                                                               "choices")


def test_suite_is_the_papers_held_out_datasets():
    cfg = Config(EVAL_CONFIGS / "suite.yaml")
    assert list(cfg.datasets_cfg) == list(HELD_OUT)
    for name in HELD_OUT:
        block = cfg.datasets_cfg[name]
        assert block.role == "held_out", name
        assert block.eval.task == PROTOCOLS[name][0] and list(block.eval.splits), name
    assert set(templates.ZERO_SHOT) == set(HELD_OUT)
