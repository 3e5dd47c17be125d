"""`python -m lavis_ib.datasets.convert` / `lavis-ib-convert-data`: counts written and skipped, no silent overwrite,
clear errors with exit status 2, and a failed conversion leaves `--out` exactly as it was."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from lavis_ib.datasets.convert import convert, main
from lavis_ib.datasets.converters.base import SourceError
from lavis_ib.datasets.records import iter_shards, read_jsonl
from tests.datasets.converters.helpers import write_json
from tests.datasets.converters.test_video_qa import write_msvd
from tests.datasets.converters.test_vqa import write_vqav2


def snapshot(folder: Path) -> dict[str, bytes] | None:
    """Every file under `folder` with its bytes (None when the folder does not exist)."""
    if not folder.exists():
        return None
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_prints_counts_and_skip_reasons_and_refuses_to_overwrite(tmp_path, capsys):
    write_vqav2(tmp_path / "src")
    args = ["vqav2", "--src", str(tmp_path / "src"), "--out", str(tmp_path / "out"), "--split", "train"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "train: 2 records written, 1 skipped" in out and "1 × question without annotation" in out
    assert main(args) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert main(args + ["--overwrite"]) == 0 and len(read_jsonl(tmp_path / "out/train.jsonl")) == 2
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["train.jsonl"]  # no staging folder left


def test_webdataset_format_writes_shards(tmp_path, capsys):
    write_vqav2(tmp_path / "src")
    assert main(["vqav2", "--src", str(tmp_path / "src"), "--out", str(tmp_path / "out"), "--format", "wds",
                 "--per-shard", "1"]) == 0
    assert "2 shards in" in capsys.readouterr().out
    assert [r["question_id"] for r in iter_shards(sorted((tmp_path / "out").glob("train-*.tar")))] == [90, 91]


def test_overwriting_with_fewer_shards_removes_the_stale_ones(tmp_path):
    write_vqav2(tmp_path / "src")
    convert("vqav2", tmp_path / "src", tmp_path / "out", fmt="wds", per_shard=1)
    (report,) = convert("vqav2", tmp_path / "src", tmp_path / "out", fmt="wds", per_shard=2, overwrite=True)
    assert [p.name for p in report.paths] == ["train-000000.tar"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["train-000000.tar", "train.manifest.json"]


def test_unknown_dataset_and_split_name_the_alternatives(tmp_path, capsys):
    assert main(["vqa2", "--src", str(tmp_path)]) == 2
    assert "unknown converter 'vqa2'" in capsys.readouterr().err
    assert main(["okvqa", "--src", str(tmp_path), "--split", "test"]) == 2
    assert "okvqa: unknown split 'test'; this converter knows train, val" in capsys.readouterr().err


def test_src_that_is_not_a_folder_is_named_with_what_the_converter_reads(tmp_path, capsys):
    assert main(["vsr", "--src", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == (f"error: vsr: --src {tmp_path / 'nowhere'} is not a folder (expected: "
                                       "data/splits/zeroshot/<split>.jsonl (repository root))\n")
    assert not (tmp_path / "out").exists()


def test_msvd_without_youtube_mapping_exits_2_and_writes_nothing(tmp_path, capsys):
    write_msvd(tmp_path / "src")
    (tmp_path / "src" / "youtube_mapping.txt").unlink()
    out = tmp_path / "datasets" / "msvd_qa"
    assert main(["msvd_qa", "--src", str(tmp_path / "src"), "--out", str(out)]) == 2
    assert capsys.readouterr().err == (f"error: annotation file not found; looked for: "  # and no progress bar
                                       f"{tmp_path / 'src' / 'youtube_mapping.txt'}\n")
    assert not (tmp_path / "datasets").exists()  # not even the folders --out would have needed


def test_failure_in_a_later_split_keeps_the_earlier_splits_and_existing_files_out(tmp_path):
    write_vqav2(tmp_path / "src", "train")
    write_json(tmp_path / "src" / "v2_OpenEnded_mscoco_val2014_questions.json", {"questions": [{"image_id": 1}]})
    write_json(tmp_path / "src" / "v2_mscoco_val2014_annotations.json", {"annotations": []})
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("kept")
    before = snapshot(out)
    with pytest.raises(SourceError, match=r"questions\[0\]: missing key 'question_id'"):
        convert("vqav2", tmp_path / "src", out, ["train", "val"])
    assert snapshot(out) == before == {"notes.txt": b"kept"}


def test_artifact_conflict_is_refused_before_anything_is_written(tmp_path):
    write_msvd(tmp_path / "src")
    out = tmp_path / "out"
    write_json(out / "answer_list.json", ["a different list"])
    before = snapshot(out)
    with pytest.raises(FileExistsError, match="answer_list.json already exists; pass --overwrite"):
        convert("msvd_qa", tmp_path / "src", out, ["test"])
    assert snapshot(out) == before
    convert("msvd_qa", tmp_path / "src", out, ["test"], overwrite=True)
    assert json.loads((out / "answer_list.json").read_text()) == ["man", "dog", "cook"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lavis_ib.datasets.convert", *args], capture_output=True, text=True,
                          timeout=120)


def test_module_cli_contract(tmp_path):
    help_ = run_cli("--help")
    assert help_.returncode == 0 and "usage: python -m lavis_ib.datasets.convert" in help_.stdout
    assert "vsr" in help_.stdout and "hateful_memes" in help_.stdout
    unknown = run_cli("vqa2", "--src", str(tmp_path))
    assert unknown.returncode == 2 and "did you mean 'vqav2'?" in unknown.stderr
    no_src = run_cli("vqav2")
    assert no_src.returncode == 2 and "the following arguments are required: --src" in no_src.stderr
    write_vqav2(tmp_path / "src")
    done = run_cli("vqav2", "--src", str(tmp_path / "src"), "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert "train: 2 records written" in done.stdout
    assert "RuntimeWarning" not in done.stderr


def test_console_scripts_resolve_to_the_cli_mains():
    scripts = {ep.name: ep for ep in entry_points(group="console_scripts") if ep.name.startswith("lavis-ib-")}
    assert {name: ep.value for name, ep in scripts.items()} == {
        "lavis-ib-convert-data": "lavis_ib.datasets.convert:main",
        "lavis-ib-convert-weights": "lavis_ib.models.weights.convert_cli:main",
    }
    assert scripts["lavis-ib-convert-data"].load() is main
    from lavis_ib.models.weights import convert_cli

    assert scripts["lavis-ib-convert-weights"].load() is convert_cli.main


def test_weights_cli_usage_errors_exit_2_and_help_exits_0(capsys):
    from lavis_ib.models.weights.convert_cli import main as weights_main

    with pytest.raises(SystemExit) as help_exit:
        weights_main(["--help"])
    assert help_exit.value.code == 0 and "usage: lavis-ib-convert-weights" in capsys.readouterr().out
    with pytest.raises(SystemExit) as missing:
        weights_main(["a.pth", "b.safetensors", "--to", "hf"])
    assert missing.value.code == 2 and "the following arguments are required: --arch" in capsys.readouterr().err


def test_weights_cli_runs_as_a_module_without_a_runpy_warning():
    done = subprocess.run([sys.executable, "-m", "lavis_ib.models.weights.convert_cli", "--help"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and "usage: lavis-ib-convert-weights" in done.stdout
    assert "RuntimeWarning" not in done.stderr
