"""`projects/instructblip/eval/synthetic.yaml` (the end of `make demo`) evaluates the synthetic world's held-out
tasks through `evaluate.py`'s code path and the same task classes as the real datasets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lavis_ib.cli import run
from lavis_ib.datasets import synthetic
from lavis_ib.metrics import accuracy, exact_match

CONFIG = Path(__file__).resolve().parents[2] / "projects" / "instructblip" / "eval" / "synthetic.yaml"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    synthetic.build_world(cache)
    return cache


def test_synthetic_held_out_suite_writes_the_results_table(world, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LAVIS_IB_CACHE", str(world))
    run("evaluate", ["--cfg-path", str(CONFIG), "--limit", "6", "--options",
                     f"run.output_dir={tmp_path / 'out'}", "run.job_id=demo"])
    job = tmp_path / "out" / "demo"
    table = capsys.readouterr().out
    rows = json.loads((job / "results.json").read_text())["rows"]
    assert [row["dataset"] for row in rows] == list(synthetic.HELD_OUT)
    assert [row["metric"] for row in rows] == ["exact_match", "accuracy", "accuracy", "exact_match"]
    assert (job / "results.md").read_text() in table
    recompute = {
        "synthetic_count": lambda p: exact_match([x["answer"] for x in p], [x["gt"] for x in p])["exact_match"],
        "synthetic_spatial": lambda p: accuracy([x["pred"] for x in p], [x["gt"] for x in p])["accuracy"],
        "synthetic_choice": lambda p: accuracy([x["pred"] for x in p], [x["gt"] for x in p])["accuracy"],
        "synthetic_video_qa": lambda p: exact_match([x["answer"] for x in p], [x["gt"] for x in p])["exact_match"],
    }
    for row in rows:
        (split_dir,) = (job / row["dataset"]).iterdir()
        predictions = [json.loads(line) for line in (split_dir / "predictions.jsonl").read_text().splitlines()]
        assert [p["id"] for p in predictions] == [str(i) for i in range(6)]
        assert row["num_scored"] == 6 and row["num_skipped"] == 0 and row["paper"] is None
        assert row["ours"] == recompute[row["dataset"]](predictions)
    assert json.loads((job / "config.json").read_text())["model"]["model_type"] == "tiny"


def test_evaluate_runs_unchanged_on_a_4bit_llm(world, tmp_path, monkeypatch):
    """`evaluate.py --options model.quantization=nf4`: the same rows and predictions per record, from an nf4 LLM."""
    monkeypatch.setenv("LAVIS_IB_CACHE", str(world))
    run("evaluate", ["--cfg-path", str(CONFIG), "--limit", "4", "--datasets", "synthetic_count,synthetic_choice",
                     "--options", f"run.output_dir={tmp_path / 'out'}", "run.job_id=nf4", "model.quantization=nf4"])
    job = tmp_path / "out" / "nf4"
    rows = json.loads((job / "results.json").read_text())["rows"]
    assert [(row["dataset"], row["num_scored"]) for row in rows] == [("synthetic_count", 4), ("synthetic_choice", 4)]
    assert json.loads((job / "config.json").read_text())["model"]["quantization"] == "nf4"
