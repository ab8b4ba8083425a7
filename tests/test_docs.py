"""The generated documentation pages are up to date with the figures they are made from."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


@pytest.mark.slow
def test_benchmarks_page_is_up_to_date():
    """docs/benchmarks.md is what docs/make_benchmarks.py makes of results/benchmarks/*.json."""
    proc = subprocess.run([sys.executable, "docs/make_benchmarks.py", "--check"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
