"""Issue 10 case 10: a weight or config file that is not what it should be is one error naming the file, what it
looked like and what was expected (never torch's advice to turn `weights_only` off), and the file is left as it was."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from lavis_ib import load_model
from lavis_ib.common.io import FileFormatError
from lavis_ib.models.weights.loading import UnsafeCheckpointError, read_state_dict
from tests.models import hf_oracle
from tests.models.test_weights import Payload

SAFETENSORS = "expected a safetensors file"
TORCH = "expected a torch.save checkpoint"


def safetensors_bytes(tmp_path: Path) -> bytes:
    save_file({"a": torch.zeros(10, 10), "b": torch.ones(3)}, str(tmp_path / "good.safetensors"))
    return (tmp_path / "good.safetensors").read_bytes()


def bad_files(tmp_path: Path) -> dict[str, tuple[bytes, list[str]]]:
    """name → (content, fragments the error must contain besides the file name)."""
    st = safetensors_bytes(tmp_path)
    torch.save({"model": {"a": torch.zeros(100)}}, tmp_path / "good.pth")
    pth = (tmp_path / "good.pth").read_bytes()
    bad_header = st[:8] + b"{not json" + st[17:]
    return {
        "empty.pth": (b"", [TORCH, "an empty file (0 bytes)"]),
        "notes.pth": (b"hello world\n", [TORCH, "12 bytes of text starting 'hello world\\n'"]),
        "weights.pth": (st, ["holds safetensors content", "rename it to weights.safetensors"]),
        "cut.pth": (pth[: len(pth) // 2], ["truncated or corrupt torch checkpoint", TORCH]),
        "zero.safetensors": (b"", [SAFETENSORS, "an empty file (0 bytes)"]),
        "page.safetensors": (b"<html>404</html>", [SAFETENSORS, "16 bytes of text starting '<html>404</html>'"]),
        "cut.safetensors": (st[:-20], ["truncated safetensors file: its tensors need 412 data bytes, the file has 392"]),
        "header.safetensors": (bad_header, ["bad safetensors header (JSONDecodeError", SAFETENSORS]),
        "huge.safetensors": ((10**9).to_bytes(8, "little") + b"{}", ["its header says 1000000000 header bytes follow"]),
    }


BAD_FILE_NAMES = ["empty.pth", "notes.pth", "weights.pth", "cut.pth", "zero.safetensors", "page.safetensors",
                  "cut.safetensors", "header.safetensors", "huge.safetensors"]


@pytest.mark.parametrize("name", BAD_FILE_NAMES)
def test_bad_weight_file_is_named_and_described(tmp_path, name):
    content, fragments = bad_files(tmp_path)[name]
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(FileFormatError) as info:
        read_state_dict(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    for fragment in fragments:
        assert fragment in message
    assert "weights_only" not in message and info.value.__cause__ is None
    assert path.read_bytes() == content  # nothing lost


def test_pickled_code_is_refused_without_the_weights_only_advice(tmp_path):
    marker, path = tmp_path / "unpickled.marker", tmp_path / "evil.pth"
    torch.save({"model": {"q": torch.zeros(1)}, "extra": Payload(marker)}, path)
    with pytest.raises(UnsafeCheckpointError) as info:
        read_state_dict(path)
    message = str(info.value)
    assert message.startswith(f"{path}: refused: its pickle holds the object getattr") and "weights_only" not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert not marker.exists()


@pytest.fixture(scope="module")
def hf_directory(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("hf_vicuna")
    hf_oracle.build("vicuna", directory)
    return directory


def damaged_copy(source: Path, target: Path, name: str, cut: int) -> bytes:
    """`target`: a copy of the HF directory `source` with file `name` cut to `cut` bytes; returns the cut content."""
    shutil.copytree(source, target)
    content = (source / name).read_bytes()[:cut]
    (target / name).write_bytes(content)
    return content


def test_truncated_config_json_in_hf_directory(hf_directory, tmp_path):
    content = damaged_copy(hf_directory, tmp_path / "hf", "config.json", 200)
    with pytest.raises(FileFormatError) as info:
        load_model("blip2_vicuna_instruct", "tiny", checkpoint=str(tmp_path / "hf"))
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'hf' / 'config.json'}: not valid JSON")
    assert "truncated?" in message and "200 bytes of text starting '{" in message
    assert "expected a transformers InstructBLIP / BLIP-2 config.json" in message
    assert (tmp_path / "hf" / "config.json").read_bytes() == content
    with pytest.raises(json.JSONDecodeError):
        json.loads(content)


def test_truncated_weights_in_hf_directory(hf_directory, tmp_path):
    size = (hf_directory / "model.safetensors").stat().st_size
    damaged_copy(hf_directory, tmp_path / "hf", "model.safetensors", size - 100)
    with pytest.raises(FileFormatError, match=r"model\.safetensors: truncated safetensors file"):
        load_model("blip2_vicuna_instruct", "tiny", checkpoint=str(tmp_path / "hf"))
