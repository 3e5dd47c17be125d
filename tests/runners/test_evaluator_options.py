"""Evaluator options beyond the defaults: `--valid` adds `run.valid_splits`, `run.test_splits` overrides each
dataset's `eval.splits`, and a job's results table grows as later runs of the same job id evaluate other datasets."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from lavis_ib.cli import run
from tests.tasks.fixtures import write_eval_fixture


def config(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    for split in ("testdev", "val"):
        write_eval_fixture(data, "gqa", split, n=3)
    write_eval_fixture(data, "vsr", n=3)
    path = tmp_path / "eval.yaml"
    path.write_text(
        "model: {arch: blip2_vicuna_instruct, model_type: tiny}\n"
        f"datasets:\n  gqa: {{data_root: {data}}}\n  vsr: {{data_root: {data}}}\n"
        f"run: {{output_dir: {tmp_path / 'out'}, job_id: job, num_workers: 0, valid_splits: [val]}}\n")
    return path


def evaluated(*argv: str) -> list[tuple[str, str]]:
    torch.manual_seed(0)
    return [(s["dataset"], s["split"]) for s in run("evaluate", list(argv))]


def test_valid_flag_adds_configured_valid_splits_and_test_splits_override(tmp_path):
    cfg = str(config(tmp_path))
    assert evaluated("--cfg-path", cfg, "--datasets", "gqa") == [("gqa", "testdev")]
    assert evaluated("--cfg-path", cfg, "--datasets", "gqa", "--valid") == [("gqa", "testdev"), ("gqa", "val")]
    assert evaluated("--cfg-path", cfg, "--datasets", "gqa", "--options", "run.test_splits=[val]",
                     "run.job_id=other") == [("gqa", "val")]


def test_results_table_of_a_job_keeps_earlier_datasets(tmp_path, capsys):
    cfg = str(config(tmp_path))
    evaluated("--cfg-path", cfg, "--datasets", "gqa")
    evaluated("--cfg-path", cfg, "--datasets", "vsr")
    rows = json.loads((tmp_path / "out" / "job" / "results.json").read_text())["rows"]
    assert [(row["dataset"], row["split"]) for row in rows] == [("vsr", "test"), ("gqa", "testdev")]
    assert "| gqa | testdev |" in (tmp_path / "out" / "job" / "results.md").read_text()
