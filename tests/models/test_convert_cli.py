"""`python -m lavis_ib.models.weights.convert_cli` (console script `lavis-ib-convert-weights`) renames weight files
both ways without changing a tensor, and never destroys an existing file: no overwrite unasked, never the input, a
temporary file renamed into place, normal permissions."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lavis_ib import load_model
from lavis_ib.models.weights import convert_cli
from lavis_ib.models.weights.loading import read_state_dict
from lavis_ib.models.weights.convert_cli import main


def test_convert_cli_round_trip(tmp_path):
    model = load_model("blip2_vicuna_instruct", "tiny")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    torch.save({"model": state}, tmp_path / "lavis.pth")
    run = lambda *args: subprocess.run([sys.executable, "-m", "lavis_ib.models.weights.convert_cli", *map(str, args)],
                                       check=True, capture_output=True, text=True)
    out = run(tmp_path / "lavis.pth", tmp_path / "hf.safetensors", "--arch", "blip2_vicuna_instruct", "--to", "hf")
    assert "hf names" in out.stdout
    assert "RuntimeWarning" not in out.stderr  # the module is not imported twice under runpy
    hf = load_file(str(tmp_path / "hf.safetensors"))
    assert "language_projection.weight" in hf and "vision_model.post_layernorm.weight" in hf
    assert not any(k.startswith(("llm_proj", "Qformer")) for k in hf)
    run(tmp_path / "hf.safetensors", tmp_path / "back.pth", "--arch", "blip2_vicuna_instruct", "--to", "lavis")
    back = read_state_dict(tmp_path / "back.pth")
    assert set(back) == set(state)
    assert all(torch.equal(back[k], state[k]) for k in state)


# ----- issue 10 case 2: the output never destroys anything ---------------------------------------------------------
STATE = {"query_tokens": torch.arange(6.0).reshape(1, 2, 3), "llm_proj.weight": torch.eye(2)}


def convert(*args) -> None:
    """Run the CLI in-process (its `main`), for the checks that need no separate interpreter."""
    main([*map(str, args), "--arch", "blip2_vicuna_instruct", "--to", "hf"])


@pytest.fixture
def source(tmp_path) -> Path:
    path = tmp_path / "lavis.pth"
    torch.save({"model": STATE}, path)
    return path


def test_existing_destination_needs_overwrite(source, tmp_path, capsys):
    dst = tmp_path / "hf.safetensors"
    dst.write_bytes(b"earlier output")
    with pytest.raises(SystemExit) as info:
        convert(source, dst)
    assert info.value.code == 2
    assert f"dst '{dst}' already exists; pass --overwrite to replace it" in capsys.readouterr().err
    assert dst.read_bytes() == b"earlier output"
    convert(source, dst, "--overwrite")
    assert torch.equal(load_file(str(dst))["language_projection.weight"], torch.eye(2))


@pytest.mark.parametrize("spelling", ["same", "relative", "symlink"])
def test_destination_equal_to_source_is_always_refused(source, tmp_path, monkeypatch, capsys, spelling):
    monkeypatch.chdir(tmp_path)
    if spelling == "symlink":
        (tmp_path / "link.pth").symlink_to(source)
    dst = {"same": source, "relative": Path("sub/../lavis.pth"), "symlink": Path("link.pth")}[spelling]
    (tmp_path / "sub").mkdir()
    before = source.read_bytes()
    with pytest.raises(SystemExit):
        convert(source, dst, "--overwrite")
    assert "is the input file" in capsys.readouterr().err
    assert source.read_bytes() == before


def test_failed_write_keeps_the_previous_output(source, tmp_path, monkeypatch):
    dst = tmp_path / "hf.safetensors"
    dst.write_bytes(b"earlier output")

    def crash(state, filename, metadata=None):
        Path(filename).write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(convert_cli, "save_file", crash)
    with pytest.raises(OSError, match="disk full"):
        convert(source, dst, "--overwrite")
    assert dst.read_bytes() == b"earlier output"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf.safetensors", "lavis.pth"]  # no temporary left


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_output_gets_normal_permissions(source, tmp_path, suffix):
    umask = os.umask(0o027)
    try:
        convert(source, tmp_path / f"out{suffix}")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / f"out{suffix}").stat().st_mode) == 0o640  # 0666 under the umask, not 0600
    convert(source, tmp_path / f"default{suffix}")
    assert stat.S_IMODE((tmp_path / f"default{suffix}").stat().st_mode) == 0o666 & ~umask
