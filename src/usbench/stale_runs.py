"""MLflow runs left RUNNING by a usbench process that died (killed while logging).

Every run usbench opens carries the tag ``usbench.process``: ``host:pid:start`` of the process
that logs it (start: the process's start time in clock ticks after boot, read from ``/proc``,
so that a reused pid is not taken for the same process; empty where there is no ``/proc``).
The first time a process opens a store, it marks KILLED the RUNNING runs whose process, on
this host, is gone, and says so in one warning each. Runs of other hosts and of live
processes are never touched.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger("usbench")

_checked: set[str] = set()  # the stores this process has looked at


def _start_time(pid: int) -> str:
    """When process `pid` started (clock ticks after boot), or '' where it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            stat = fh.read()
    except OSError:
        return ""
    fields = stat.rpartition(")")[2].split()  # the name, in parentheses, may hold spaces
    return fields[19] if len(fields) > 19 else ""  # field 22 of stat(5); 3 is the first here


def this_process() -> str:
    """``host:pid:start`` of this process (the value of the ``usbench.process`` tag)."""
    return f"{socket.gethostname()}:{os.getpid()}:{_start_time(os.getpid())}"


def gone(owner: str) -> bool:
    """True if `owner` (``host:pid:start``) names a process of this host that no longer runs
    (its pid is free, or now belongs to a process started at another time)."""
    host, _, rest = owner.rpartition(":")  # the start
    host, _, pid = host.rpartition(":")
    start = rest
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        pass
    now = _start_time(int(pid))
    return bool(start and now and now != start)


def close_dead_runs(client, uri: str) -> list[str]:
    """Mark KILLED the RUNNING runs in the store of `client` that a dead process of this host
    left open (once per store and process); returns their ids.

    A store that cannot be searched is left to the command's own use of it to report; a run
    that cannot be marked costs a warning.
    """
    if uri in _checked:
        return []
    _checked.add(uri)
    from usbench.mlflow_store import short_reason
    from usbench.record import Tag

    try:
        ids = [e.experiment_id for e in client.search_experiments()]
        host = socket.gethostname().replace("'", "")
        runs = client.search_runs(ids, f"attributes.status = 'RUNNING' and "
                                       f"tags.`{Tag.PROCESS}` LIKE '{host}:%'",
                                  max_results=1000) if ids else []
    except Exception as exc:  # the command's own use of the store says what is wrong
        log.debug(f"could not search for runs of dead processes: {short_reason(exc)}")
        return []
    closed = []
    for r in runs:
        owner = r.data.tags.get(Tag.PROCESS, "")
        if not gone(owner):
            continue
        try:
            client.set_terminated(r.info.run_id, "KILLED")
        except Exception as exc:
            log.warning(f"warning: could not mark MLflow run {r.info.run_id} "
                        f"({r.info.run_name}), left RUNNING by a dead process, KILLED "
                        f"({short_reason(exc)}).")
            continue
        closed.append(r.info.run_id)
        where = r.data.tags.get(Tag.LOCAL_RECORD)
        log.warning(f"warning: MLflow run {r.info.run_id} ({r.info.run_name}) was left "
                    f"RUNNING by usbench process {owner.rpartition(':')[0]}, which ended: "
                    "marked it KILLED" + (f"; its local record is {where}." if where else "."))
    return closed
