"""The MLflow sqlite store: created all-or-nothing, once under concurrency, and a half-made one
(what a run killed while MLflow migrates it leaves) rebuilt or repaired, saying so."""

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli
from usbench import mlflow_store, tracking

# The revision before MLflow's batch migration of trace_tags (5b0e9adcef9c): a process killed in
# that migration leaves the store at this revision with a _alembic_tmp_trace_tags table, and
# every later run failed with "table _alembic_tmp_trace_tags already exists".
BEFORE_TRACE_TAGS_BATCH = "867495a8f9d4"


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _half_made(path: Path, runs: int = 0) -> None:
    """What a migration killed in the trace_tags batch step leaves, with `runs` older runs."""
    from alembic import command
    from mlflow.store.db import utils

    path.parent.mkdir(parents=True, exist_ok=True)
    engine = utils.create_sqlalchemy_engine(f"sqlite:///{path}")
    utils.InitialBase.metadata.create_all(engine)
    config = utils._get_alembic_config(str(engine.url))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, BEFORE_TRACE_TAGS_BATCH)
    engine.dispose()
    con = sqlite3.connect(path)
    if runs:
        con.execute("INSERT INTO experiments VALUES (1, 'old', 'file:///old', 'active', 0, 0)")
    for i in range(runs):
        con.execute("INSERT INTO runs (run_uuid, name, source_type, source_name, user_id, status, "
                    "start_time, end_time, lifecycle_stage, artifact_uri, experiment_id) VALUES "
                    f"('{i:032x}', 'old-{i}', 'LOCAL', '', 'me', 'FINISHED', 0, 1, 'active', "
                    f"'file:///old/{i}', 1)")
    con.execute("CREATE TABLE _alembic_tmp_trace_tags AS SELECT * FROM trace_tags WHERE 0")
    con.commit()
    con.close()


def _log(uri: str, folder: Path, name: str = "r") -> str | None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "note.txt").write_text(name)
    return tracking.log_run(uri, folder.parent / "mlartifacts", tracking.RunLog(
        experiment="synthetic", run_name=name, params={"model": "rf"},
        metrics={"accuracy": 0.5}, step_metrics={}, tags={}, artifacts=folder))


def _run_names(uri: str) -> set[str]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    ids = [e.experiment_id for e in client.search_experiments()]
    return {r.info.run_name for r in client.search_runs(ids)}


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "usbench"]


def test_half_made_store_is_rebuilt_and_the_next_run_is_logged(tiny_root_ro, in_tmp, capsys):
    db = in_tmp / "results" / "mlflow.db"
    _half_made(db)
    assert run_cli("run", "--model", "logreg", "--features", "mfcc-mean", "--data",
                   str(tiny_root_ro), "--folds", "1", "--jobs", "1") == 0
    out, err = capsys.readouterr()
    assert "MLflow run " in out and "could not log" not in err
    (backup,) = db.parent.glob("mlflow.db.broken-*")
    (warning,) = [line for line in err.splitlines() if line.startswith("warning:")]
    assert warning.startswith(f"warning: MLflow store {db} was half-made (leftover table "
                              "_alembic_tmp_trace_tags; schema revision "
                              f"{BEFORE_TRACE_TAGS_BATCH}, not ")
    assert warning.endswith("probably by a run killed while creating it, and held no runs: "
                            f"moved it to {backup.name} beside it and created a new one.")
    run_id = out.split("MLflow run ")[1].split(";")[0]
    from mlflow.tracking import MlflowClient

    assert MlflowClient(tracking_uri=f"sqlite:///{db}").get_run(run_id).info.status == "FINISHED"


def test_half_migrated_store_with_runs_is_repaired_keeping_them(tmp_path, caplog):
    caplog.set_level("WARNING", logger="usbench")
    db = tmp_path / "mlflow.db"
    _half_made(db, runs=2)
    original = db.read_bytes()
    uri = f"sqlite:///{db}"
    assert _log(uri, tmp_path / "art" / "new", "new") is not None
    (backup,) = tmp_path.glob("mlflow.db.before-repair-*")
    assert backup.read_bytes() == original
    (warning,) = _warnings(caplog)
    assert warning.startswith(f"warning: MLflow store {db} was half-migrated (leftover table "
                              "_alembic_tmp_trace_tags; ")
    assert warning.endswith(f"): repaired it with its 2 run(s); the original is kept as "
                            f"{backup.name} beside it.")
    assert _run_names(uri) == {"old-0", "old-1", "new"}


def test_unrepairable_runs_are_refused_by_a_reader_and_set_aside_by_a_writer(in_tmp, capsys):
    db = in_tmp / "results" / "mlflow.db"
    uri = f"sqlite:///{db}"
    assert _log(uri, in_tmp / "art" / "old", "old") is not None
    con = sqlite3.connect(db)
    con.execute("DROP TABLE alembic_version")
    con.commit()
    con.close()
    original = db.read_bytes()

    assert run_cli("leaderboard") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"usbench: error: MLflow store {db} is half-migrated (no alembic_version "
                   "table) and its 1 run(s) could not be repaired (its schema revision is "
                   f"unknown). Back it up, then run `mlflow db upgrade {uri}`, or pass "
                   "--tracking-uri for another store."]
    assert db.read_bytes() == original and not list(db.parent.glob("mlflow.db.*-*"))

    assert _log(uri, in_tmp / "art" / "new", "new") is not None
    (backup,) = db.parent.glob("mlflow.db.broken-*")
    assert backup.read_bytes() == original
    assert capsys.readouterr().err.splitlines() == [  # the CLI's handler now prints warnings
        f"warning: MLflow store {db} was half-migrated (no alembic_version table) and its 1 "
        "run(s) could not be repaired (its schema revision is unknown): moved it to "
        f"{backup.name} beside it (try `mlflow db upgrade sqlite:///{backup}`) and created a "
        "new one."]
    assert _run_names(uri) == {"new"}


def test_creation_is_all_or_nothing(tmp_path, monkeypatch, caplog):
    caplog.set_level("WARNING", logger="usbench")
    db = tmp_path / "results" / "mlflow.db"
    uri = f"sqlite:///{db}"
    migrate = mlflow_store._migrate

    def killed(path):
        sqlite3.connect(path).execute("CREATE TABLE experiments (x)").connection.commit()
        raise KeyboardInterrupt  # the process dies mid-migration

    monkeypatch.setattr(mlflow_store, "_migrate", killed)
    with pytest.raises(KeyboardInterrupt):
        mlflow_store.ensure_store(uri, writer=True)
    assert not db.exists() and not list(db.parent.glob(".mlflow.db.creating-*"))

    (db.parent / ".mlflow.db.creating-99999").write_bytes(b"left by a SIGKILL")
    monkeypatch.setattr(mlflow_store, "_migrate", migrate)
    assert _log(uri, tmp_path / "art" / "a", "a") is not None
    assert _warnings(caplog) == []
    assert sorted(p.name for p in db.parent.iterdir()) == [".mlflow.db.lock", "mlflow.db"]


CHILD = """
import sys
from pathlib import Path
from usbench import tracking
folder = Path(sys.argv[2])
folder.mkdir(parents=True)
(folder / "note.txt").write_text("x")
print(tracking.log_run(sys.argv[1], folder.parent / "mlartifacts", tracking.RunLog(
    experiment="synthetic", run_name=folder.name, params={}, metrics={"accuracy": 0.5},
    step_metrics={}, tags={}, artifacts=folder)))
"""


@pytest.mark.slow
def test_two_processes_creating_the_store_at_once_both_log(tmp_path):
    db = tmp_path / "results" / "mlflow.db"
    uri = f"sqlite:///{db}"
    src = str(Path(tracking.__file__).parents[1])
    children = [subprocess.Popen([sys.executable, "-c", CHILD, uri, str(tmp_path / "art" / n)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env={**os.environ, "PYTHONPATH": src})
                for n in ("a", "b")]
    outs = [c.communicate(timeout=120) for c in children]
    assert [o.strip().splitlines()[-1] != "None" for o, _ in outs] == [True, True], outs
    assert _run_names(uri) == {"a", "b"}
