"""Workers end with their parent: each means alone, and a parent dead before the worker starts.

End-to-end kills of ``features build`` and ``sweep`` live in test_cache.py and test_sweep.py.
"""

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import alive, kill_all

# A worker (run by a parent process) that turns one means off, then waits to be ended.
WORKER = """
import sys, time
from usbench import procs
if sys.argv[1] == "watchdog":
    procs._kill_with_parent = lambda: False  # as on macOS
else:
    procs._watch = lambda parent_pid: None
procs.die_with_parent(int(sys.argv[2]))
print("ready", flush=True)
time.sleep(60)
"""

PARENT = """
import os, subprocess, sys, time
worker = subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2], str(os.getpid())])
print("worker", worker.pid, flush=True)
time.sleep(60)
"""


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="finds processes in /proc")
@pytest.mark.parametrize("means", [
    "watchdog",
    pytest.param("prctl", marks=pytest.mark.skipif(not sys.platform.startswith("linux"),
                                                   reason="PR_SET_PDEATHSIG is Linux only")),
])
def test_each_means_alone_ends_the_worker_with_its_parent(means):
    parent = subprocess.Popen([sys.executable, "-c", PARENT, WORKER, means],
                              stdout=subprocess.PIPE, text=True)
    worker = None
    try:
        said = dict((parent.stdout.readline().split() + [""])[:2] for _ in range(2))
        assert set(said) == {"worker", "ready"}  # started, and past die_with_parent
        worker = int(said["worker"])
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and alive(worker):
            time.sleep(0.05)
        assert not alive(worker)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        kill_all([worker] if worker and alive(worker) else [])
        parent.stdout.close()


@pytest.mark.slow
def test_worker_whose_parent_died_before_it_was_set_up_exits_at_once():
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    late = subprocess.run([sys.executable, "-c", WORKER, "prctl", str(gone.pid)],
                          capture_output=True, text=True, timeout=10)
    assert late.returncode == 1 and late.stdout == ""
