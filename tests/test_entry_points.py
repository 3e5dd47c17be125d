"""CLI contract of `train.py` and `evaluate.py`: help, argument errors, and config errors as one line with exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_script(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / script), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("script", ["train.py", "evaluate.py"])
def test_entry_point_contract(script, tmp_path):
    shown = run_script(script, "--help", cwd=tmp_path)
    assert shown.returncode == 0 and "--cfg-path" in shown.stdout and "--options" in shown.stdout

    missing_arg = run_script(script, cwd=tmp_path)
    assert missing_arg.returncode == 2 and "--cfg-path" in missing_arg.stderr

    absent = run_script(script, "--cfg-path", "nowhere.yaml", cwd=tmp_path)
    assert absent.returncode == 2
    assert "config file not found: nowhere.yaml" in absent.stderr and "Traceback" not in absent.stderr

    typo = tmp_path / "typo.yaml"
    typo.write_text("model:\n  arch: blip2_opt\n  model_type: tiny\n  max_txt_lem: 3\nrun:\n  seed: 1\n")
    bad_key = run_script(script, "--cfg-path", str(typo), cwd=tmp_path)
    assert bad_key.returncode == 2 and "Traceback" not in bad_key.stderr
    assert f"{typo}: unknown key 'model.max_txt_lem'; did you mean 'model.max_txt_len'?" in bad_key.stderr

    good = tmp_path / "good.yaml"
    good.write_text("model:\n  arch: blip2_opt\n  model_type: tiny\nrun:\n  seed: 1\n")
    bad_value = run_script(script, "--cfg-path", str(good), "--options", "run.batch_size_eval=none", cwd=tmp_path)
    assert bad_value.returncode == 2
    assert "--options: 'run.batch_size_eval' must be int, got 'none'" in bad_value.stderr
