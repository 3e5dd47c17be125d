"""The built wheel is self-contained: configs, tokenizer assets and the demo image ship inside it, and the tiny
models build from an installed copy with the source tree out of reach."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

CHECK = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import lavis_ib
    from lavis_ib.common.registry import registry
    from lavis_ib.common.paths import assets_root, configs_root

    root = Path(lavis_ib.__file__).resolve().parent
    report = {
        "file": str(Path(lavis_ib.__file__).resolve()),
        "opt_tiny": str(registry.get_model_class("blip2_opt").default_config_path("tiny")),
        "assets_root": str(assets_root),
        "configs_root": str(configs_root),
        "llama_tokenizer": (root / "assets/tokenizers/llama/tokenizer.model").is_file(),
        "demo_image": (root / "assets/images/demo.png").is_file(),
        "datasets": list(lavis_ib.dataset_zoo),
        "model_yamls": sorted(str(p.relative_to(root)) for p in (root / "configs").glob("**/*.yaml")),
    }
    model = lavis_ib.load_model("blip2_vicuna_instruct", "tiny", is_eval=True)
    import torch
    out = model.generate({"image": torch.zeros(1, 3, 56, 56), "prompt": "What is this?"}, num_beams=1, max_length=3)
    report["generated"] = out
    report["n_params"] = sum(p.numel() for p in model.parameters())
    print("REPORT=" + json.dumps(report))
    """
)


def _copy_sources(target: Path) -> Path:
    """A copy of what the build needs, so building never writes into the working tree (build/, egg-info)."""
    src = target / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in ("setup.py", "setup.cfg", "pyproject.toml", "MANIFEST.in", "README.md"):
        if (REPO_ROOT / name).is_file():
            shutil.copy2(REPO_ROOT / name, src / name)
    shutil.copytree(REPO_ROOT / "lavis_ib", src / "lavis_ib", ignore=ignore)
    return src


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    src = _copy_sources(tmp)
    wheels = tmp / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "-q"]
    subprocess.run(pip + ["wheel", str(src), "--no-deps", "--no-build-isolation", "-w", str(wheels)],
                   check=True, cwd=tmp, timeout=120)
    (wheel,) = wheels.glob("lavis_ib-*.whl")
    site = tmp / "site"
    subprocess.run(pip + ["install", "--no-deps", "--no-index", "--target", str(site), str(wheel)],
                   check=True, cwd=tmp, timeout=120)
    return site


def run_in_installed(site: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP")}
    env["PYTHONPATH"] = str(site)
    env["PYTHONNOUSERSITE"] = "1"
    proc = subprocess.run([sys.executable, "-c", CHECK], cwd=site.parent, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = [l for l in proc.stdout.splitlines() if l.startswith("REPORT=")][-1]
    return json.loads(line.removeprefix("REPORT="))


def test_installed_wheel_is_self_contained(installed):
    report = run_in_installed(installed)
    site = installed.resolve()
    assert Path(report["file"]).is_relative_to(site), report["file"]
    assert not Path(report["file"]).is_relative_to((REPO_ROOT / "lavis_ib").resolve())
    opt_tiny = Path(report["opt_tiny"])
    assert opt_tiny.is_file() and opt_tiny.resolve().is_relative_to(site)
    assert Path(report["assets_root"]).resolve().is_relative_to(site)
    assert Path(report["configs_root"]).resolve().is_relative_to(site)
    assert report["llama_tokenizer"]
    assert report["demo_image"]
    shipped = sorted(str(p.relative_to(REPO_ROOT / "lavis_ib")) for p in (REPO_ROOT / "lavis_ib/configs").glob("**/*.yaml"))
    assert report["model_yamls"] == shipped
    assert len(report["datasets"]) == 34 and {"vqav2", "hateful_memes", "synthetic_vqa"} <= set(report["datasets"])
    assert len(report["generated"]) == 1 and isinstance(report["generated"][0], str)
    assert report["n_params"] > 0


def test_wheel_ships_every_asset(installed):
    source_assets = REPO_ROOT / "lavis_ib" / "assets"
    expected = sorted(str(p.relative_to(source_assets)) for p in source_assets.rglob("*")
                      if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")
    installed_assets = installed / "lavis_ib" / "assets"
    actual = sorted(str(p.relative_to(installed_assets)) for p in installed_assets.rglob("*")
                    if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")
    assert actual == expected


def declared_floors() -> dict[str, str]:
    """`{name: floor}` of setup.py's install_requires and dev extra (every entry must be `name>=version`)."""
    text = (REPO_ROOT / "setup.py").read_text(encoding="utf-8")
    floors = {}
    for entry in re.findall(r'"([A-Za-z][\w.-]*[<>=!~][^"]*)"', text):
        name, _, version = entry.partition(">=")
        assert version and re.fullmatch(r"[\d.]+", version), f"setup.py: {entry!r} is not 'name>=version'"
        floors[name.lower()] = version
    return floors


def test_every_dependency_floor_is_what_the_suite_runs_against():
    """setup.py's floors are constraints.txt's pins, and this environment has exactly them installed: the suite
    always runs at the floors a user's install may get."""
    floors = declared_floors()
    pins = dict(line.lower().split("==") for line in (REPO_ROOT / "constraints.txt").read_text().splitlines()
                if line and not line.startswith("#"))
    assert floors and floors == pins
    installed = {name: importlib.metadata.version(name) for name in floors}
    assert installed == floors
