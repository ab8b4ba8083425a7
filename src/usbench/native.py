"""Quieting what native libraries (TensorFlow, LiteRT) print straight to file descriptor 2.

Their start-up notices are written by C++ before, or outside, any logging that a variable or
Python's ``logging`` controls. Python exceptions are unaffected: they propagate as usual.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# fd 2 is one per process: threads that hide it must take turns, or one could restore
# another's devnull for good.
_LOCK = threading.Lock()


@contextmanager
def quiet_native_stderr(quiet: bool = True) -> Iterator[None]:
    """Point fd 2 at devnull while the block runs (a no-op when `quiet` is False)."""
    if not quiet:
        yield
        return
    with _LOCK:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            with open(os.devnull, "wb") as devnull:
                os.dup2(devnull.fileno(), 2)
                yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
