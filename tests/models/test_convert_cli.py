"""`python -m lavis_ib.models.convert` renames weight files both ways without changing a tensor."""

import subprocess
import sys

import torch
from safetensors.torch import load_file

from lavis_ib import load_model
from lavis_ib.models.checkpoint import read_state_dict


def test_convert_cli_round_trip(tmp_path):
    model = load_model("blip2_vicuna_instruct", "tiny")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    torch.save({"model": state}, tmp_path / "lavis.pth")
    run = lambda *args: subprocess.run([sys.executable, "-m", "lavis_ib.models.convert", *map(str, args)],
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
