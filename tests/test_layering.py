"""Layering: the data layer (`lavis_ib.datasets`, `lavis_ib.processors`) never imports the model package, neither
at module level nor inside a function, so datasets can be converted, built and loaded without any model code; and no
two modules of the library import each other, directly or around a longer circle (imports inside functions and under
`TYPE_CHECKING` count too: a circle hidden in a function is still one to untie)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

LIBRARY = Path(__file__).resolve().parents[1] / "lavis_ib"
DATA_LAYER = ("datasets", "processors")
FORBIDDEN = "lavis_ib.models"
MODEL_API = {"load_model", "load_model_and_preprocess", "load_preprocess", "model_zoo"}  # lavis_ib's model names


def model_imports(path: Path, root: Path = LIBRARY.parent) -> list[str]:
    """`file:line: statement` for every import of the model package in `path` (including `from lavis_ib import
    load_model` and the like, which reach it through the package's lazy attributes)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names if alias.name.startswith(FORBIDDEN)]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] if node.module.startswith(FORBIDDEN) else []
            if node.module == "lavis_ib":
                names += [f"lavis_ib.{a.name}" for a in node.names if a.name == "models" or a.name in MODEL_API]
        else:
            continue
        found += [(node.lineno, f"{path.relative_to(root)}:{node.lineno}: imports {name}") for name in names]
    return [text for _, text in sorted(found)]


@pytest.mark.parametrize("package", DATA_LAYER)
def test_no_source_file_of_the_data_layer_imports_the_model_package(package):
    files = sorted((LIBRARY / package).rglob("*.py"))
    assert len(files) > 3
    assert [hit for path in files for hit in model_imports(path)] == []


def test_the_checker_sees_imports_inside_functions_and_through_the_package(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from lavis_ib.models.convert import x\n\nfrom lavis_ib import load_model, registry\n"
                      "import lavis_ib.models\n")
    assert model_imports(sample, tmp_path) == [
        "sample.py:2: imports lavis_ib.models.convert",
        "sample.py:4: imports lavis_ib.load_model",
        "sample.py:5: imports lavis_ib.models",
    ]


def test_building_datasets_and_processors_loads_no_model_code():
    code = (
        "import json, pkgutil, importlib, sys\n"
        "import lavis_ib.datasets, lavis_ib.processors\n"
        "for package in (lavis_ib.datasets, lavis_ib.processors):\n"
        "    for info in pkgutil.walk_packages(package.__path__, package.__name__ + '.'):\n"
        "        importlib.import_module(info.name)\n"
        "from lavis_ib import dataset_zoo, registry\n"
        "rows = str(dataset_zoo)\n"
        "processor = registry.get_processor_class('blip_question').from_config(None)\n"
        "print(json.dumps({'question': processor('What is THIS?'), 'loaded': sorted(m for m in sys.modules\n"
        "      if m.startswith('lavis_ib.models') or m.split('.')[0] in ('transformers', 'timm'))}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"question": "what is this?", "loaded": []}


def module_name(path: Path, root: Path) -> str:
    """`lavis_ib/models/__init__.py` → `lavis_ib.models`, `lavis_ib/models/blip2.py` → `lavis_ib.models.blip2`."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, name: str, known: set[str]) -> set[str]:
    """The modules of `known` that `path` (module `name`) imports anywhere in its text. `from package import module`
    names that module, not the package; a relative import resolves against `name`'s package."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parents = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parents + ([base] if base else []))
            submodules = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known]
            targets = submodules + ([base] if len(submodules) < len(node.names) else [])
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import a.b.c` where a.b.c is a class or function: its module
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph(root: Path, package: str = "lavis_ib") -> dict[str, set[str]]:
    """Module → the modules of the same library it imports."""
    files = {module_name(path, root): path for path in sorted((root / package).rglob("*.py"))}
    return {name: imported_modules(path, name, set(files)) for name, path in files.items()}


def import_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle of imports (`[a, b, a]`), or None."""
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as error:
        return error.args[1]
    return None


def test_the_library_has_no_import_circle():
    graph = import_graph(LIBRARY.parent)
    assert len(graph) > 100 and sum(map(len, graph.values())) > 250  # the whole library was read
    assert import_circle(graph) is None


def test_the_circle_finder_sees_function_level_and_type_checking_imports(tmp_path):
    package = tmp_path / "lavis_ib"
    (package / "models").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "models" / "__init__.py").write_text("from lavis_ib.models import base  # registration\n")
    (package / "models" / "base.py").write_text("def export():\n    from lavis_ib.models.weights import export\n")
    (package / "models" / "weights.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .base import Model\n")
    graph = import_graph(tmp_path)
    assert graph == {"lavis_ib": set(), "lavis_ib.models": {"lavis_ib.models.base"},
                     "lavis_ib.models.base": {"lavis_ib.models.weights"},
                     "lavis_ib.models.weights": {"lavis_ib.models.base"}}
    assert sorted(set(import_circle(graph))) == ["lavis_ib.models.base", "lavis_ib.models.weights"]
    (package / "models" / "weights.py").write_text("import torch\n")
    assert import_circle(import_graph(tmp_path)) is None
