"""Worker processes that end with their parent, however the parent ends.

A killed ``usbench`` (SIGKILL, SIGTERM, a crash) cannot stop its workers itself: without this,
feature extraction workers and sweep workers went on computing for nobody, and kept the
multiprocessing resource tracker alive with them. Every worker calls ``die_with_parent`` first
thing. On Linux the kernel kills it with its parent (``PR_SET_PDEATHSIG``); everywhere, a
watchdog thread also ends it within a second of the parent's exit. Stored work stays (shards
the parent wrote, finished trials); what a worker was computing is lost, as in the parent.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from contextlib import contextmanager

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
POLL_S = 1.0

_terminated = threading.Event()
_deferred = 0  # > 0: the code running checks for a SIGTERM itself (`sigterm_checked`)
_watched: set[int] = set()  # parents this process already watches (a reused pool worker)


def _on_sigterm(signum, frame):
    _terminated.set()
    if not _deferred:
        raise KeyboardInterrupt


@contextmanager
def sigterm_checked(checked: bool = True):
    """Within: a SIGTERM only sets the flag that `check_terminated` raises on, when `checked`
    (code that calls it often, as the Keras training loop does after every epoch). Raised
    anywhere, the KeyboardInterrupt could land in TensorFlow's garbage-collection callbacks,
    which print it and go on."""
    global _deferred
    _deferred += bool(checked)
    try:
        yield
    finally:
        _deferred -= bool(checked)


def interrupt_on_sigterm() -> None:
    """Treat SIGTERM as Ctrl-C: ``KeyboardInterrupt`` in the main thread, so the same code
    keeps finished work, marks open MLflow runs KILLED and says so; `terminated` then tells
    the two apart. A no-op outside the main thread."""
    if threading.current_thread() is threading.main_thread():
        _terminated.clear()
        signal.signal(signal.SIGTERM, _on_sigterm)


def terminated() -> bool:
    """True once SIGTERM reached a process that called `interrupt_on_sigterm`."""
    return _terminated.is_set()


def check_terminated() -> None:
    """Raise ``KeyboardInterrupt`` again after a SIGTERM: Python may have raised the first
    in a place that swallows it (a garbage-collection callback). Called after each fold and
    epoch."""
    if _terminated.is_set():
        raise KeyboardInterrupt


def _kill_with_parent() -> bool:
    """Ask Linux to SIGKILL this process when its parent ends; False where it cannot."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        # prctl reads unsigned longs: pass them as such, not as C ints.
        args = [ctypes.c_ulong(a) for a in (signal.SIGKILL, 0, 0, 0)]
        return libc.prctl(PR_SET_PDEATHSIG, *args) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(POLL_S)
    os._exit(1)


def die_with_parent(parent_pid: int) -> None:
    """End this worker process when process `parent_pid`, which started it, ends.

    Call it first thing in the worker (a pool initializer, a ``Process`` target). The parent
    must start the worker from a thread that outlives it: Linux counts the starting thread as
    the parent. Both means are harmless in a worker that ends normally.

    Args:
        parent_pid: ``os.getpid()`` of the parent, taken before it started the worker.
    """
    if parent_pid in _watched:  # a reused worker: already set up
        return
    _watched.add(parent_pid)
    _kill_with_parent()
    # The parent may have died before the line above: this worker was then reparented.
    if os.getppid() != parent_pid:
        os._exit(1)
    threading.Thread(target=_watch, args=(parent_pid,), name="usbench-die-with-parent",
                     daemon=True).start()
