"""Where usbench keeps things: the feature cache and the results folder.

The cache defaults to the user cache directory (``USBENCH_CACHE`` overrides); results go to
``results/`` in the working directory.
"""

from __future__ import annotations

import os
from pathlib import Path

from usbench.errors import CacheError


def cache_dir() -> Path:
    """The cache root: ``$USBENCH_CACHE`` or the platform's user cache dir for usbench."""
    env = os.environ.get("USBENCH_CACHE")
    if env:
        return Path(env).expanduser().resolve()
    import platformdirs

    return Path(platformdirs.user_cache_dir("usbench")).resolve()


def results_dir() -> Path:
    """``results/`` in the current working directory."""
    return Path.cwd() / "results"


def writable_dir(path: Path, what: str = "Cache directory",
                 fix: str = "Set USBENCH_CACHE to a folder you can write to.") -> Path:
    """Create `path` if needed and prove it is writable, or raise CacheError with the fix."""
    if path.exists() and not path.is_dir():
        raise CacheError(f"{what} {path} is a file, not a folder. Move or rename that file.")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise CacheError(f"{what} {path} is not writable ({reason}). {fix}") from None
    return path


def writable_results() -> Path:
    """``results_dir()``, proven writable before any work starts (a run's record goes there).

    Raises:
        CacheError: it cannot be created or written, with the fix.
    """
    return writable_dir(results_dir(), "Results folder",
                        "Run usbench from a folder you can write to, or make this one "
                        "writable.")
