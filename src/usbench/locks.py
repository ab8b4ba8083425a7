"""Lock files shared by usbench processes of one host: exclusive, and released by the OS when
their process ends, however it ends (``flock``), so a killed process never blocks the next.

Used where two processes would otherwise do the same work at once: create or mend the sqlite
MLflow store, build the same features.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def exclusive(path: Path, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold an exclusive lock on the file `path` (created if missing) for the block.

    Args:
        on_wait: called once, before blocking, when another process holds the lock.
    """
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock (the writes it guards are atomic on their own)
        yield
        return
    with open(path, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
