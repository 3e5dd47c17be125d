"""Every command the README, the docs and the config headers give works as written: its module or script exists
and answers `--help`, its config loads with its options, and the synthetic world's command runs."""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from lavis_ib.cli import parse_args
from lavis_ib.common.config import Config

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "bench" / "README.md",
           *sorted((ROOT / "projects").rglob("*.md")), *sorted((ROOT / "projects").rglob("*.yaml")),
           *sorted((ROOT / "lavis_ib" / "configs").rglob("*.yaml"))]
COMMAND = re.compile(r"(?:(?:\.venv/bin/)?python3?|torchrun)\s[^`#\n]*|lavis-ib-convert-[\w-]+[^`#\n]*")
PLACEHOLDER = re.compile(r"[<$]|\.\.\.")


def logical_lines(path: Path) -> list[str]:
    """The file's lines with YAML comment markers dropped and `\\` continuations joined."""
    lines, pending = [], ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if path.suffix == ".yaml":
            if not line.lstrip().startswith("#"):
                continue
            line = line.lstrip()[1:]
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        lines.append(pending + line)
        pending = ""
    return lines


def documented_commands() -> list[tuple[str, list[str]]]:
    """`(where, tokens)` of every command in the documentation, placeholders (`<job>`, `...`) kept."""
    found = []
    for path in SOURCES:
        for number, line in enumerate(logical_lines(path), 1):
            for match in COMMAND.finditer(line):
                text = match.group(0).strip().rstrip(").,;")
                try:
                    tokens = shlex.split(text)
                except ValueError:
                    continue
                if len(tokens) > 1:
                    found.append((f"{path.relative_to(ROOT)}:{number}", tokens))
    return found


COMMANDS = documented_commands()


def entry_points() -> list[tuple[str, list[str]]]:
    """The `train.py` / `evaluate.py` invocations: `(where, arguments after the script)`."""
    calls = []
    for where, tokens in COMMANDS:
        scripts = [i for i, token in enumerate(tokens) if token in ("train.py", "evaluate.py")]
        if scripts and "--cfg-path" in tokens:  # a bare `python train.py` in prose names the script only
            calls.append((where, tokens[scripts[0]:]))
    return calls


def modules() -> dict[str, str]:
    """`{module: where}` of every `python -m module` command."""
    found = {}
    for where, tokens in COMMANDS:
        if tokens[0].endswith(("python", "python3")) and tokens[1] == "-m" and len(tokens) > 2:
            found.setdefault(tokens[2], where)
    return found


def scripts() -> dict[str, str]:
    """`{script path: where}` of every `python <script>.py` command other than the two entry points."""
    found = {}
    for where, tokens in COMMANDS:
        if tokens[0].endswith(("python", "python3")) and tokens[1].endswith(".py") and \
                tokens[1] not in ("train.py", "evaluate.py"):
            found.setdefault(tokens[1], where)
    return found


def test_the_documentation_gives_commands_of_every_kind():
    assert len(entry_points()) >= 30 and {"lavis_ib.datasets.convert", "lavis_ib.datasets.synthetic"} <= set(modules())
    assert {"bench/generate.py", "bench/train.py"} <= set(scripts())


@pytest.mark.parametrize("where, args", entry_points(), ids=[where for where, _ in entry_points()])
def test_each_documented_train_and_evaluate_command_loads_its_config(where, args, monkeypatch):
    monkeypatch.chdir(ROOT)
    mode = "train" if args[0] == "train.py" else "evaluate"
    arguments = [token for token in args[1:] if token != "..."]
    parsed = parse_args(mode, arguments)
    if not (ROOT / parsed.cfg_path).is_file():
        assert not parsed.cfg_path.startswith("projects/instructblip"), f"{where}: {parsed.cfg_path} does not exist"
        return  # a user's own config (projects/mydata.yaml)
    options = [option for option in parsed.options or [] if not PLACEHOLDER.search(option)]
    Config(parsed.cfg_path, options)


def test_each_documented_module_answers_help_and_each_script_compiles():
    """`python -m module --help` for each module the docs give (side by side); each documented script exists and
    compiles (tests/test_gpu_check.py runs the bench scripts themselves)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for script, where in scripts().items():
        assert (ROOT / script).is_file(), f"{where}: {script} does not exist"
        compile((ROOT / script).read_text(encoding="utf-8"), script, "exec")
    for module, where in modules().items():
        assert importlib.util.find_spec(module) is not None, f"{where}: no module {module}"
    running = {where: subprocess.Popen([sys.executable, "-m", module, "--help"], stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
               for module, where in modules().items()}
    for where, process in running.items():
        out, err = process.communicate(timeout=180)
        assert process.returncode == 0 and "usage:" in out, f"{where}: {err[-2000:]}"


def test_each_documented_console_script_is_installed():
    from importlib.metadata import entry_points as installed

    console = {entry.name for entry in installed(group="console_scripts")}
    documented = {tokens[0] for _, tokens in COMMANDS if tokens[0].startswith("lavis-ib-")}
    assert documented and documented <= console


def test_the_synthetic_world_command_of_the_config_headers_runs(tmp_path):
    """`python -m lavis_ib.datasets.synthetic --images N` (demo.yaml's and synthetic.yaml's headers)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LAVIS_IB_CACHE": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "lavis_ib.datasets.synthetic", "--images", "20"], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"records of 8 datasets under {tmp_path}" in done.stdout
    assert (tmp_path / "datasets" / "synthetic_vqa" / "train.jsonl").is_file()
