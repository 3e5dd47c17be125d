"""The README and docs point only at files that exist in the repository (no references outside it)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "bench" / "README.md"]
REPO_PATH = re.compile(r"`((?:docs|tests|lavis_ib|bench|tools|projects)/[\w./-]+?)(?:::[\w\[\]-]+)?`")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_documented_repository_paths_exist(doc):
    text = doc.read_text(encoding="utf-8")
    assert "shared/" not in text and "reference/" not in text, f"{doc.name} refers to files outside the repository"
    paths = REPO_PATH.findall(text)
    missing = [p for p in paths if "*" not in p and "<" not in p and not (ROOT / p.rstrip("/")).exists()]
    assert not missing, f"{doc.name} names paths that do not exist: {missing}"
