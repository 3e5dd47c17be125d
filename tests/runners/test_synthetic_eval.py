"""`projects/instructblip/eval/synthetic.yaml` (the end of `make demo`) evaluates the synthetic world's held-out
tasks through `evaluate.py`'s code path and the same task classes as the real datasets."""

from __future__ import annotations

import json
from pathlib import Path

from lavis_ib.cli import run
from lavis_ib.datasets import synthetic
from lavis_ib.metrics import accuracy, exact_match

CONFIG = Path(__file__).resolve().parents[2] / "projects" / "instructblip" / "eval" / "synthetic.yaml"


def test_synthetic_held_out_suite_writes_the_results_table(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LAVIS_IB_CACHE", str(tmp_path / "cache"))
    synthetic.build_world(tmp_path / "cache")
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
