"""Shared fixtures: a tiny synthetic dataset made by the same generator as ``synthetic``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from usbench.datasets.synthetic import SynthConfig, generate

# Two slices per class per fold (200 clips), at most 1 s, in the full mix of formats.
TINY = SynthConfig(seed=7, clips_per_class_per_fold=2, slices_per_recording=2, max_duration=1.0)


@pytest.fixture(scope="session")
def tiny_root_ro(tmp_path_factory) -> Path:
    """A tiny dataset root shared by the session; tests must not modify it."""
    return generate(tmp_path_factory.mktemp("tiny") / "root", TINY)


@pytest.fixture
def tiny_root(tiny_root_ro, tmp_path) -> Path:
    """A private copy of the tiny dataset root, free to break."""
    return Path(shutil.copytree(tiny_root_ro, tmp_path / "root"))


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch) -> Path:
    """Every test gets its own empty feature cache and no USBENCH_DATA."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("USBENCH_CACHE", str(cache))
    monkeypatch.delenv("USBENCH_DATA", raising=False)
    return cache


def run_cli(*argv: str) -> int:
    from usbench.cli import main

    return main(list(argv))
