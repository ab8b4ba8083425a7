"""Lock files: one holder at a time, the waiter told once, and a killed holder's lock freed."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from usbench import locks

HOLD = """
import sys, time
from pathlib import Path
from usbench.locks import exclusive
with exclusive(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(120)
"""


@pytest.mark.slow
def test_a_killed_holder_never_blocks_the_next(tmp_path):
    path = tmp_path / ".build.lock"
    src = str(Path(locks.__file__).parents[1])
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONPATH": src})
    try:
        assert holder.stdout.readline().strip() == "held"
        waited = []
        probe = subprocess.run([sys.executable, "-c", "import fcntl, sys\n"
                                "fh = open(sys.argv[1], 'a')\n"
                                "try: fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
                                "except BlockingIOError: sys.exit(3)", str(path)])
        assert probe.returncode == 3  # held by the other process
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    with locks.exclusive(path, on_wait=lambda: waited.append(1)):
        pass
    assert waited == []  # free at once


def test_the_waiter_is_told_once_then_gets_the_lock(tmp_path):
    import fcntl
    import threading

    path = tmp_path / ".lock"
    other = open(path, "a")
    fcntl.flock(other, fcntl.LOCK_EX)  # another open file description: another holder
    told, got = [], threading.Event()

    def wait():
        with locks.exclusive(path, on_wait=lambda: told.append(1)):
            got.set()

    waiter = threading.Thread(target=wait)
    waiter.start()
    for _ in range(3000):  # at most 30 s
        if told:
            break
        waiter.join(0.01)
    assert told and not got.is_set()
    fcntl.flock(other, fcntl.LOCK_UN)
    other.close()
    waiter.join(30)
    assert got.is_set() and told == [1]
