"""MLflow runs left RUNNING by a dead usbench process of this host are marked KILLED by the
next process that opens the store; runs of live processes and of other hosts are untouched.
A run whose logging fails ends FAILED (KILLED when interrupted), never RUNNING."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli
from usbench import stale_runs, tracking
from usbench.errors import TrackingError


@pytest.fixture
def uri(tmp_path, monkeypatch):
    monkeypatch.setattr(stale_runs, "_checked", set())  # as in a new process
    return f"sqlite:///{tmp_path / 'results' / 'mlflow.db'}"


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _open_run(uri: str, name: str, owner: str | None) -> str:
    client = tracking.open_client(uri, writer=True)
    exp = tracking._experiment_id(client, "synthetic", Path("/tmp/unused"))
    tags = {} if owner is None else {"usbench.process": owner}
    return client.create_run(exp, run_name=name, tags=tags).info.run_id


def _statuses(uri: str) -> dict[str, str]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    ids = [e.experiment_id for e in client.search_experiments()]
    return {r.info.run_name: r.info.status for r in client.search_runs(ids)}


def test_runs_of_dead_processes_of_this_host_are_marked_killed_once(uri, caplog, monkeypatch):
    host, me = socket.gethostname(), stale_runs.this_process()
    _, pid, start = me.split(":")
    owners = {
        "dead": f"{host}:{_dead_pid()}:123",
        "pid reused": f"{host}:{pid}:{int(start) + 1}",  # our pid, another start time
        "live": me,
        "other host": f"not-{host}:{_dead_pid()}:123",
        "no tag": None,
    }
    for name, owner in owners.items():
        _open_run(uri, name, owner)
    assert set(_statuses(uri).values()) == {"RUNNING"}

    caplog.set_level("WARNING", logger="usbench")
    monkeypatch.setattr(stale_runs, "_checked", set())  # the next process
    tracking.open_client(uri, writer=False)
    assert _statuses(uri) == {"dead": "KILLED", "pid reused": "KILLED", "live": "RUNNING",
                              "other host": "RUNNING", "no tag": "RUNNING"}
    warnings = [r.getMessage() for r in caplog.records if r.name == "usbench"]
    assert len(warnings) == 2 and all(w.startswith("warning: MLflow run ") for w in warnings)
    assert any(f"(dead) was left RUNNING by usbench process {owners['dead'].rpartition(':')[0]}"
               ", which ended: marked it KILLED." in w for w in warnings), warnings


def test_a_live_process_is_not_gone_and_a_dead_one_is():
    assert not stale_runs.gone(stale_runs.this_process())
    assert stale_runs.gone(f"{socket.gethostname()}:{_dead_pid()}:")
    assert not stale_runs.gone(f"elsewhere:{_dead_pid()}:1")
    assert not stale_runs.gone("")


def test_a_failure_after_the_run_is_opened_marks_it_failed(uri, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    def refuse(self, run_id, *args, **kwargs):
        raise RuntimeError("disk I/O error")

    monkeypatch.setattr(MlflowClient, "log_artifacts", refuse)
    folder = tmp_path / "results" / "runs" / "r"
    folder.mkdir(parents=True)
    with pytest.raises(TrackingError, match=r"\(disk I/O error\)\. MLflow run \w+ is marked "
                       f"FAILED. The complete result is kept in {folder};"):
        tracking.log_run(uri, tmp_path / "mlartifacts", tracking.RunLog(
            experiment="synthetic", run_name="r", params={}, metrics={"accuracy": 0.5},
            step_metrics={}, tags={}, artifacts=folder))
    assert _statuses(uri) == {"r": "FAILED"}


def test_an_interrupted_logging_marks_the_run_killed(uri, tmp_path):
    def interrupt(run_id):
        raise KeyboardInterrupt

    folder = tmp_path / "r"
    folder.mkdir()
    with pytest.raises(KeyboardInterrupt):
        tracking.log_run(uri, tmp_path / "mlartifacts", tracking.RunLog(
            experiment="synthetic", run_name="r", params={}, metrics={}, step_metrics={},
            tags={}, artifacts=folder, before_finish=interrupt))
    assert _statuses(uri) == {"r": "KILLED"}


KILLED_WHILE_LOGGING = """
import os, signal, sys
from pathlib import Path
from usbench import tracking
folder = Path(sys.argv[2])
folder.mkdir(parents=True)
(folder / "result.json").write_text("{}")
tracking.log_run(sys.argv[1], folder.parent / "mlartifacts", tracking.RunLog(
    experiment="synthetic", run_name=folder.name, params={}, metrics={"accuracy": 0.5},
    step_metrics={}, tags={}, artifacts=folder,
    before_finish=lambda run_id: os.kill(os.getpid(), signal.SIGKILL)))  # logging the model
"""


@pytest.mark.slow
def test_a_run_killed_while_logging_is_repaired_by_the_next_command(uri, tmp_path, capsys,
                                                                     monkeypatch):
    folder = tmp_path / "results" / "runs" / "logreg-x"
    src = str(Path(tracking.__file__).parents[1])
    done = subprocess.run([sys.executable, "-c", KILLED_WHILE_LOGGING, uri, str(folder)],
                          env={**os.environ, "PYTHONPATH": src}, capture_output=True,
                          timeout=120)
    assert done.returncode == -9, done.stderr[-2000:]
    assert _statuses(uri) == {"logreg-x": "RUNNING"}
    monkeypatch.chdir(tmp_path)
    run_cli("leaderboard")
    assert _statuses(uri) == {"logreg-x": "KILLED"}
    err = capsys.readouterr().err
    assert "(logreg-x) was left RUNNING by usbench process " in err
    assert f"marked it KILLED; its local record is {folder}." in err


def test_a_full_disk_while_logging_says_to_free_space(uri, tmp_path, monkeypatch):
    import errno

    from mlflow.tracking import MlflowClient

    def full(self, run_id, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(MlflowClient, "log_artifacts", full)
    folder = tmp_path / "r"
    folder.mkdir()
    with pytest.raises(TrackingError) as error:
        tracking.log_run(uri, tmp_path / "mlartifacts", tracking.RunLog(
            experiment="synthetic", run_name="r", params={}, metrics={}, step_metrics={},
            tags={}, artifacts=folder))
    assert str(error.value).startswith(f"Could not log to MLflow at {uri}: no space left on "
                                       "device. MLflow run ")
    assert str(error.value).endswith(f"is marked FAILED. The complete result is kept in "
                                     f"{folder}; free space under results/ and run again to "
                                     "log it.")
