"""Shared fixtures: a tiny synthetic dataset made by the same generator as ``synthetic``;
helpers that find processes in /proc for tests that kill ``usbench``."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest

from usbench.datasets.synthetic import SynthConfig, generate

# Two slices per class per fold (200 clips), at most 1 s, in the full mix of formats.
TINY = SynthConfig(seed=7, clips_per_class_per_fold=2, slices_per_recording=2, max_duration=1.0)


def pytest_collection_modifyitems(items):
    """The CNN's and the real BirdNET model's cases of parametrised tests are slow (seconds
    each): ``pytest -m "not slow"`` keeps their MLP and small-model cases."""
    for item in items:
        if "[cnn" in item.nodeid or "[birdnet" in item.nodeid:
            item.add_marker(pytest.mark.slow)


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


@pytest.fixture
def in_tmp(tmp_path, monkeypatch) -> Path:
    """Run the test in its own folder, so its results/ (MLflow store included) is its own.
    Modules that write results use it for every test: ``pytestmark =
    pytest.mark.usefixtures("in_tmp")``."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_cli(*argv: str) -> int:
    from usbench.cli import main

    return main(list(argv))


def cli_error(capsys, *argv: str) -> str:
    """Run a command that must fail: its one error line, without the ``usbench: error:``."""
    assert run_cli(*argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0].removeprefix("usbench: error: ")


def run_id_of(out: str) -> str:
    """The MLflow run id in the output of ``usbench run``."""
    return out.split("MLflow run ")[1].split(";")[0]


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of `pid` from /proc, or None once it is gone."""
    try:
        text = open(f"/proc/{pid}/stat").read()
    except OSError:
        return None
    state, ppid = text.rpartition(")")[2].split()[:2]  # the name may hold spaces and ")"
    return state, int(ppid)


def alive(pid: int) -> bool:
    """True while `pid` runs; a zombie waiting for a parent to reap it counts as gone."""
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def descendants(pid: int) -> set[int]:
    """The live processes below `pid` (children, their children, ...), found in /proc."""
    parents = {}
    for entry in os.listdir("/proc"):
        stat = _stat(int(entry)) if entry.isdigit() else None
        if stat and stat[0] not in ("Z", "X"):
            parents[int(entry)] = stat[1]
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def kill_all(pids) -> None:
    """Clean up after a failing test: no stray worker outlives it."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def assert_all_end(pids, within: float = 10.0) -> None:
    """Wait up to `within` seconds for every process in `pids` to end; fail if any lives."""
    import time

    deadline = time.monotonic() + within
    while time.monotonic() < deadline and any(map(alive, pids)):
        time.sleep(0.05)
    assert not [pid for pid in pids if alive(pid)]


def missing_tool(why: str) -> None:
    """Skip a test whose outside tool (a browser, a server) is absent; fail it under CI, whose
    ``.ci/run`` installs every such tool, so that a lost install step cannot pass as a skip."""
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(f"{why} (CI must have it: .ci/run installs it)")
    pytest.skip(why)
