"""Fixtures of the training-runner tests: a small synthetic world per test module, and the cache pointing at it."""

from __future__ import annotations

import pytest
import torch

from tests.runners.train_fixtures import build_small_world


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_small_world(tmp_path_factory.mktemp("cache"))


@pytest.fixture
def cache(world, monkeypatch):
    """`LAVIS_IB_CACHE` at the module's world, one torch thread (repeatable floating-point reductions)."""
    monkeypatch.setenv("LAVIS_IB_CACHE", str(world))
    torch.set_num_threads(1)
    return world
