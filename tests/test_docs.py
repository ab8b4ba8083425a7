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


def test_models_page_lists_every_parameter_with_its_range():
    """The parameter tables of docs/models.md are what docs/make_models.py makes of the
    families' specs (run it after changing a default or a range)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_models", ROOT / "docs" / "make_models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    page = (ROOT / "docs" / "models.md").read_text(encoding="utf-8")
    assert module.render(page) == page, "run python docs/make_models.py"
    assert "| `n_estimators` | `300` | an int in [1, 10000] |" in page
