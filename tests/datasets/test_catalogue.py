"""The 26 datasets of the paper: each has a converter that converts its fixture, through the registry, into the file
its builder's default config reads; a builder with its role; and the zero-shot prompt of the held-out ones."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest

import tests.datasets.converters as converter_tests
from lavis_ib import dataset_zoo, registry
from lavis_ib.common.paths import cache_root
from lavis_ib.datasets.convert import convert, default_output
from lavis_ib.datasets.records import read_jsonl
from lavis_ib.datasets.templates import ZERO_SHOT
from tests.datasets.converters.helpers import Fixture

HELD_IN = ("coco_caption", "capfilt14m", "textcaps", "vqav2", "okvqa", "aokvqa", "ocrvqa", "llava150k_conversation",
           "llava150k_reasoning", "llava150k_detail", "vqav2_qg", "okvqa_qg", "aokvqa_qg")
HELD_OUT = ("nocaps", "flickr30k", "gqa", "vsr", "iconqa", "textvqa", "vizwiz", "scienceqa", "msvd_qa", "msrvtt_qa",
            "ivqa", "visdial", "hateful_memes")


def fixture_catalogue() -> dict[str, Fixture]:
    """Every `CATALOGUE` declared by the converter test modules, merged; a dataset declared twice is an error."""
    merged: dict[str, Fixture] = {}
    for module_info in pkgutil.iter_modules(converter_tests.__path__):
        if not module_info.name.startswith("test_"):
            continue
        module = importlib.import_module(f"{converter_tests.__name__}.{module_info.name}")
        for name, fixture in getattr(module, "CATALOGUE", {}).items():
            assert name not in merged, f"{module.__name__} declares a second fixture for {name!r}"
            merged[name] = fixture
    return merged


CATALOGUE = fixture_catalogue()


def configured_storage(name: str, split: str) -> str:
    """The annotation path (relative to the data root) that `name`'s default config reads for `split`."""
    annotations = registry.get_builder_class(name)().config.build_info.annotations
    assert split in annotations, f"{name}: the default config has no {split!r} split (it has {sorted(annotations)})"
    return annotations[split].storage


def test_the_registered_paper_datasets_are_exactly_the_13_held_in_and_13_held_out():
    paper = [name for name in dataset_zoo if not name.startswith("synthetic_")]
    roles = {name: registry.get_builder_class(name)().config.role for name in paper}
    assert sorted(n for n, role in roles.items() if role == "held_in") == sorted(HELD_IN)
    assert sorted(n for n, role in roles.items() if role == "held_out") == sorted(HELD_OUT)
    assert len(set(HELD_IN)) == len(set(HELD_OUT)) == 13


def test_every_paper_dataset_and_only_those_have_a_converter_fixture():
    assert sorted(CATALOGUE) == sorted(HELD_IN + HELD_OUT)
    assert sorted(n for n in registry.list_converters() if not n.startswith("synthetic_")) == sorted(CATALOGUE)


@pytest.mark.parametrize("name", HELD_IN + HELD_OUT)
def test_fixture_converts_through_the_registry_into_the_file_the_config_reads(name, tmp_path, monkeypatch):
    fixture = CATALOGUE[name]
    monkeypatch.setenv("LAVIS_IB_CACHE", str(tmp_path / "cache"))
    fixture.write(tmp_path / "src")
    (report,) = convert(name, tmp_path / "src", splits=[fixture.split])
    assert report.written == fixture.written
    written = default_output(name) / f"{fixture.split}.jsonl"
    assert report.paths[0] == written and len(read_jsonl(written)) == fixture.written
    assert Path(configured_storage(name, fixture.split)) == written.relative_to(cache_root())


@pytest.mark.parametrize("name", HELD_IN + HELD_OUT)
def test_dataset_has_a_builder_with_its_role_category_and_prompt(name):
    config = registry.get_builder_class(name)().config
    assert config.role == ("held_in" if name in HELD_IN else "held_out")
    assert config.category and config.build_info.annotations
    if name in HELD_OUT:
        assert config.instruction.eval == ZERO_SHOT[name]
