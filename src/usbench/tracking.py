"""MLflow logging: the only module that imports mlflow.

The result is always written locally first (``results/runs/<run name>/``); a tracking failure
then costs a warning, never the result. The default store is ``results/mlflow.db`` (sqlite)
with artifacts under ``results/mlartifacts/<experiment>``, both set explicitly (STACK_NOTES:
no implicit ``./mlruns``).

A sqlite store is never seen half-made: a new one is created and migrated in a temporary file
beside the target and renamed into place, under a lock file so that concurrent processes
create it once. MLflow migrates a database in place and not atomically, so a process killed
while creating one used to leave it broken for good; a store found half-made (leftover
``_alembic_tmp_*`` tables, no or an old schema revision, missing tables) is rebuilt when it
holds no runs, else repaired on a copy; the original is always kept beside it under a named
backup, and a one-line warning says what was done.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from usbench.errors import ConfigError, TrackingError, UsbenchError

log = logging.getLogger("usbench")


def default_tracking_uri(results: Path) -> str:
    return f"sqlite:///{(results / 'mlflow.db').resolve()}"


def ui_command(uri: str) -> str:
    """The command that opens the MLflow UI on `uri`."""
    if uri.startswith(("http://", "https://")):
        return f"open {uri}"
    import shutil
    import sys

    beside = Path(sys.executable).parent / "mlflow"  # the venv's mlflow, activated or not
    exe = str(beside) if beside.exists() else (shutil.which("mlflow") or "mlflow")
    return f"{exe} ui --backend-store-uri {uri} --port 5000"


@dataclass(frozen=True)
class RunLog:
    """What one run sends to MLflow.

    Attributes:
        experiment: experiment name (one per dataset by default).
        run_name: display name.
        params: flat, dotted names -> values (logged as strings).
        metrics: name -> value.
        step_metrics: name -> [(step, value)], e.g. ``fold_accuracy`` with step = fold.
        tags: name -> string.
        artifacts: local folder whose files are logged as the run's artifacts.
        parent_run_id: for nested runs (sweep trials).
        start_ms, end_ms: the run's start and end (ms since the epoch): those of the work it
            records, not of the logging (None: now).
        inputs: dataset inputs (``DatasetInfo``), shown in the UI's Dataset column.
        artifact_files: when given, only these files and folders of ``artifacts`` are logged
            (at the top of the run's artifacts).
        before_finish: called with the run id once everything else is logged and before the
            run is marked FINISHED (the saved model is logged there), or None.
    """

    experiment: str
    run_name: str
    params: dict
    metrics: dict[str, float]
    step_metrics: dict[str, list[tuple[int, float]]]
    tags: dict[str, str]
    artifacts: Path
    parent_run_id: str | None = None
    start_ms: int | None = None
    end_ms: int | None = None
    inputs: tuple = ()
    artifact_files: tuple = ()
    before_finish: Callable[[str], None] | None = None


@dataclass(frozen=True)
class DatasetInfo:
    """One MLflow dataset input of a run (``mlflow.entities.Dataset``).

    Attributes:
        name: the dataset's name. digest: its key (usbench's dataset fingerprint, or the
            features key). source: the folder it was read from. profile: JSON-able summary
            (clip count, folds, classes, ...). context: the input tag
            ``mlflow.data.context``.
    """

    name: str
    digest: str
    source: str
    profile: dict
    context: str

    def entity(self):
        import json

        from mlflow.entities import Dataset, DatasetInput, InputTag

        return DatasetInput(
            Dataset(name=self.name, digest=self.digest, source_type="local",
                    source=json.dumps({"uri": self.source}),
                    profile=json.dumps(self.profile, default=str)),
            tags=[InputTag("mlflow.data.context", self.context)])


def _quiet_mlflow() -> None:
    # An unreachable server should fail in seconds, not after minutes of retries.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow  # noqa: F401  (configures its loggers on import; quiet them after)

    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)


def _sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI; None for other stores and in-memory ones."""
    if not uri.startswith("sqlite:///"):
        return None
    name = uri.removeprefix("sqlite:///").split("?", 1)[0]
    if not name or name == ":memory:":
        return None
    return Path(name).absolute()  # a relative name is relative to the working directory


@lru_cache(maxsize=1)
def _revisions() -> tuple[str, frozenset[str]]:
    """(head, every revision) of the schema migrations this MLflow ships."""
    from alembic.script import ScriptDirectory
    from mlflow.store.db import utils

    script = ScriptDirectory.from_config(utils._get_alembic_config(db_url=""))
    return utils._get_latest_schema_revision(), frozenset(
        r.revision for r in script.walk_revisions())


@dataclass(frozen=True)
class _StoreState:
    """What a sqlite file holds: `problem` says why it is not a whole MLflow store ('' if it is)."""

    empty: bool
    problem: str
    runs: int
    interrupted: bool = False  # signs of a killed migration, not merely an older schema

    @property
    def kind(self) -> str:
        return "half-migrated" if self.interrupted else "out of date"


def _inspect(path: Path) -> _StoreState:
    """Read `path` (read-only) and judge it as an MLflow store.

    Raises:
        TrackingError: not a database, not MLflow's, or of a schema this MLflow does not know.
    """
    import sqlite3

    import mlflow
    from mlflow.store.db import utils

    try:
        con = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
        try:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master "
                                                "WHERE type = 'table'")}
            revision = (con.execute("SELECT version_num FROM alembic_version").fetchall()
                        if "alembic_version" in tables else None)
            runs = con.execute("SELECT COUNT(*) FROM runs").fetchone()[0] if "runs" in tables else 0
        finally:
            con.close()
    except sqlite3.OperationalError as exc:  # locked, or no permission to open it
        raise TrackingError(
            f"Could not open the MLflow store {path} ({exc}). Check its permissions and that "
            "no other program holds it locked, or pass --tracking-uri for another store."
        ) from None
    except sqlite3.DatabaseError as exc:  # "file is not a database", "... image is malformed"
        raise TrackingError(
            f"MLflow store {path} is not a readable SQLite database ({exc}). Move it aside or "
            "restore it from a backup (a new store is then created), or pass --tracking-uri "
            "for another store."
        ) from None
    if not tables:
        return _StoreState(empty=True, problem="empty", runs=0)
    ours = set(utils.Base.metadata.tables) | set(utils.InitialBase.metadata.tables)
    leftovers = sorted(t for t in tables if t.startswith("_alembic_tmp_"))
    if not tables & ours and not leftovers and revision is None:
        raise TrackingError(
            f"{path} is not an MLflow store (its tables: {', '.join(sorted(tables)[:5])}). "
            "Pass --tracking-uri for an MLflow store."
        )
    head, known = _revisions()
    found = [r[0] for r in revision or []]
    if any(r not in known for r in found):
        raise TrackingError(
            f"MLflow store {path} has schema revision {', '.join(found)}, which MLflow "
            f"{mlflow.__version__} does not know (an Optuna storage, or a newer MLflow's "
            "store?). Pass --tracking-uri for this MLflow's store, or upgrade MLflow."
        )
    problems = [f"leftover table {t}" for t in leftovers]
    if revision is None:
        problems.append("no alembic_version table")
    elif found != [head]:
        problems.append(f"schema revision {', '.join(found) or 'none'}, not {head}")
    missing = set(utils.Base.metadata.tables) - tables
    if missing:
        problems.append(f"{len(missing)} of {len(utils.Base.metadata.tables)} tables missing")
    return _StoreState(empty=False, problem="; ".join(problems), runs=runs,
                       interrupted=bool(leftovers) or revision is None)


@contextmanager
def _store_lock(path: Path):
    """Hold an exclusive lock on ``<store>.lock`` (processes that create or mend `path`)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: os.replace alone still never shows a half-made store
        yield
        return
    with open(path.with_name(f".{path.name}.lock"), "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _migrate(path: Path) -> None:
    """Create MLflow's tables in `path` and upgrade them to the head revision, in place."""
    from mlflow.store.db import utils

    engine = utils.create_sqlalchemy_engine(f"sqlite:///{path}")
    try:
        utils._initialize_tables(engine)
    finally:
        engine.dispose()


def _temporary(path: Path, what: str) -> Path:
    return path.with_name(f".{path.name}.{what}-{os.getpid()}")


def _fresh(path: Path) -> Path:
    """A new, whole store in a temporary file beside `path` (removed again if this fails)."""
    tmp = _temporary(path, "creating")
    try:
        _migrate(tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _repaired(path: Path) -> Path:
    """A copy of the half-migrated store `path`, mended and migrated to the head revision.

    Leftover ``_alembic_tmp_X`` tables are what a killed batch migration leaves: a partial copy
    when X still exists (dropped), else the whole copy made before X was dropped (renamed).
    """
    import sqlite3

    tmp = _temporary(path, "repairing")
    try:
        src = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
        dst = sqlite3.connect(tmp)
        try:
            src.backup(dst)
            tables = {r[0] for r in dst.execute("SELECT name FROM sqlite_master "
                                                "WHERE type = 'table'")}
            if "alembic_version" not in tables:
                raise TrackingError("its schema revision is unknown")
            for t in sorted(tables):
                if t.startswith("_alembic_tmp_"):
                    orig = t.removeprefix("_alembic_tmp_")
                    dst.execute(f'DROP TABLE "{t}"' if orig in tables
                                else f'ALTER TABLE "{t}" RENAME TO "{orig}"')
            dst.commit()
        finally:
            src.close()
            dst.close()
        _migrate(tmp)
        left = _inspect(tmp).problem
        if left:
            raise TrackingError(left)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _replace(path: Path, new: Path, backup_tag: str) -> Path:
    """Put `new` in place of `path` atomically, keeping the old file as a named backup."""
    backup = path.with_name(f"{path.name}.{backup_tag}-{time.strftime('%Y%m%d-%H%M%S')}")
    if backup.exists():
        backup = backup.with_name(f"{backup.name}-{os.getpid()}")
    try:
        os.link(path, backup)  # the store stays in place until the rename below
    except OSError:
        import shutil

        shutil.copy2(path, backup)
    os.replace(new, path)
    _forget_connections(path)
    return backup


def _forget_connections(path: Path) -> None:
    """Close MLflow's pooled connections to `path`: they still point at the file replaced."""
    try:
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        for uri, engine in list(SqlAlchemyStore._engine_map.items()):
            if _sqlite_path(uri) == path:
                engine.dispose()  # the engine stays usable; new connections open the new file
    except Exception:  # noqa: S110  (a private cache of MLflow's: nothing to close if it moved)
        pass


def ensure_store(uri: str, *, writer: bool) -> None:
    """Make sure the sqlite store at `uri` is whole before MLflow opens it (others: nothing).

    A missing (or empty) store is created atomically; a half-made or out-of-date one is rebuilt
    when it holds no runs, else repaired (or upgraded) on a copy, keeping the original as a
    named backup and saying so.
    When a store with runs cannot be repaired, a writer (`writer`) moves it aside and starts a
    new one; a reader raises rather than move the user's runs.

    Raises:
        TrackingError: the file is not an MLflow sqlite store, cannot be written, or (reader)
            holds runs that could not be repaired.
    """
    path = _sqlite_path(uri)
    if path is None or (path.exists() and not _inspect(path).problem):
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with _store_lock(path):
            for stale in path.parent.iterdir():  # temporary files of killed processes
                if stale.name.startswith((f".{path.name}.creating-",
                                          f".{path.name}.repairing-")):
                    stale.unlink(missing_ok=True)
            _mend(path, writer)
    except UsbenchError:
        raise
    except Exception as exc:
        why = (exc.strerror or str(exc)) if isinstance(exc, OSError) else _reason(exc)
        raise TrackingError(
            f"Could not create or repair the MLflow store {path} ({why}). Make its folder "
            "writable, or pass --tracking-uri for another store."
        ) from None


def _mend(path: Path, writer: bool) -> None:
    """Create or mend `path` (the caller holds the store lock)."""
    state = _inspect(path) if path.exists() else None  # another process may have mended it
    if state is None or state.empty:
        os.replace(_fresh(path), path)
        _forget_connections(path)
        return
    if not state.problem:
        return
    if state.runs == 0:
        backup = _replace(path, _fresh(path), "broken")
        log.warning(f"warning: MLflow store {path} was half-made ({state.problem}), probably "
                    "by a run killed while creating it, and held no runs: moved it to "
                    f"{backup.name} beside it and created a new one.")
        return
    try:
        repaired = _repaired(path)
    except Exception as exc:
        why = str(exc) if isinstance(exc, TrackingError) else _reason(exc)
        if not writer:
            raise TrackingError(
                f"MLflow store {path} is {state.kind} ({state.problem}) and its {state.runs} "
                f"run(s) could not be repaired ({why}). Back it up, then run `mlflow db upgrade "
                f"sqlite:///{path}`, or pass --tracking-uri for another store."
            ) from None
        backup = _replace(path, _fresh(path), "broken")
        log.warning(f"warning: MLflow store {path} was {state.kind} ({state.problem}) and its "
                    f"{state.runs} run(s) could not be repaired ({why}): moved it to "
                    f"{backup.name} beside it (try `mlflow db upgrade sqlite:///{backup}`) and "
                    "created a new one.")
        return
    backup = _replace(path, repaired, "before-repair")
    done = "repaired" if state.interrupted else "upgraded"
    log.warning(f"warning: MLflow store {path} was {state.kind} ({state.problem}): {done} it "
                f"with its {state.runs} run(s); the original is kept as {backup.name} beside it.")


def open_client(uri: str, *, writer: bool):
    """An MlflowClient on `uri`, its sqlite store created or mended first (see ensure_store)."""
    _quiet_mlflow()
    ensure_store(uri, writer=writer)
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _experiment_id(client, name: str, artifact_root: Path) -> str:
    from mlflow.exceptions import MlflowException

    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = (artifact_root / name).resolve().as_uri()
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException:
        exp = client.get_experiment_by_name(name)  # another process created it meanwhile
        if exp is None:
            raise
        return exp.experiment_id


def log_run(uri: str, artifact_root: Path, run: RunLog) -> str | None:
    """Log `run` to the tracking store at `uri`.

    Returns:
        The MLflow run id, or None when tracking failed (a warning says why; the local copy
        of the result is untouched).
    """
    try:
        client = open_client(uri, writer=True)
        from mlflow.entities import Metric, Param, RunTag

        exp_id = _experiment_id(client, run.experiment, artifact_root)
        tags = dict(run.tags)
        if run.parent_run_id:
            tags["mlflow.parentRunId"] = run.parent_run_id
        created = client.create_run(exp_id, run_name=run.run_name, tags=tags,
                                    start_time=run.start_ms)
        run_id = created.info.run_id
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, 0) for k, v in run.metrics.items()]
        metrics += [Metric(k, float(v), now, int(step))
                    for k, series in run.step_metrics.items() for step, v in series]
        params = [Param(k, str(v)[:6000]) for k, v in sorted(run.params.items())]
        for i in range(0, max(len(params), len(metrics), 1), 100):
            client.log_batch(run_id, metrics=metrics[i : i + 100], params=params[i : i + 100],
                             tags=[RunTag(k, v) for k, v in tags.items()] if i == 0 else [])
        if run.inputs:
            client.log_inputs(run_id, datasets=[d.entity() for d in run.inputs])
        for path in run.artifact_files:
            if Path(path).is_dir():
                client.log_artifacts(run_id, str(path), artifact_path=Path(path).name)
            else:
                client.log_artifact(run_id, str(path))
        if not run.artifact_files:
            client.log_artifacts(run_id, str(run.artifacts))
        if run.before_finish is not None:
            run.before_finish(run_id)
        # Last: the end time is that of the work recorded, not of the logging.
        client.set_terminated(run_id, "FINISHED", end_time=run.end_ms)
        return run_id
    except Exception as exc:  # any tracking failure must leave the local result intact
        log.warning(f"warning: {_could_not('log to', uri, exc)} "
                    f"The result is kept in {run.artifacts}.")
        return None


def _could_not(what: str, uri: str, exc: Exception) -> str:
    """``could not <what> MLflow at <uri> (<reason>).``, or our own one-line message as is."""
    if isinstance(exc, UsbenchError):
        return f"could not {what} MLflow: {exc}"
    return f"could not {what} MLflow at {uri} ({_reason(exc)})."


def _reason(exc: Exception) -> str:
    """A short reason for a tracking failure (MLflow's own messages run to many lines)."""
    text = str(exc)
    for needle, short in (("Connection refused", "connection refused"),
                          ("Name or service not known", "unknown host"),
                          ("Temporary failure in name resolution", "unknown host"),
                          ("timed out", "timed out")):
        if needle in text:
            return short
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return first[:200]


def _unreachable(exc: BaseException) -> bool:
    """True when `exc` (or what it wraps) is a failure to connect to an HTTP server."""
    import requests

    seen: BaseException | None = exc
    for _ in range(10):  # MLflow re-raises requests' errors inside its own
        if seen is None:
            return False
        if isinstance(seen, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def read_error(uri: str, exc: Exception) -> TrackingError:
    """The one-line error for a store that cannot be read: unreachable server or other."""
    if uri.startswith(("http://", "https://")) and _unreachable(exc):
        return TrackingError(
            f"Cannot reach the MLflow tracking server at {uri} ({_reason(exc)}). Start the "
            "server, or pass the right --tracking-uri."
        )
    return TrackingError(f"Could not read the MLflow store at {uri} ({_reason(exc)}). Check "
                         "that it is an MLflow tracking store, or pass --tracking-uri for another.")


def start_parent(uri: str, artifact_root: Path, experiment: str, run_name: str,
                 params: dict, tags: dict[str, str]) -> str | None:
    """Open a parent run (a sweep) that trial runs nest under; None if tracking fails."""
    try:
        client = open_client(uri, writer=True)
        from mlflow.entities import Param, RunTag

        exp_id = _experiment_id(client, experiment, artifact_root)
        run_id = client.create_run(exp_id, run_name=run_name, tags=tags).info.run_id
        client.log_batch(run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()],
                         tags=[RunTag(k, v) for k, v in tags.items()])
        return run_id
    except Exception as exc:
        log.warning(f"warning: {_could_not('log to', uri, exc)} "
                    "Trials are still kept in the Optuna storage and under results/runs/.")
        return None


def finish_parent(uri: str, run_id: str, metrics: dict[str, float], tags: dict[str, str],
                  artifacts: Path | None, status: str = "FINISHED") -> None:
    """Log a sweep's summary to its parent run and close it."""
    try:
        client = open_client(uri, writer=True)
        from mlflow.entities import Metric, RunTag

        now = int(time.time() * 1000)
        client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
                         tags=[RunTag(k, str(v)[:5000]) for k, v in tags.items()])
        if artifacts is not None:
            client.log_artifacts(run_id, str(artifacts))
        client.set_terminated(run_id, status)
    except Exception as exc:
        log.warning(f"warning: could not finish MLflow run {run_id} at {uri} ({_reason(exc)}).")


def close_abandoned(uri: str, study: str, abandoned) -> list[str]:
    """Mark KILLED the RUNNING sweep runs of `study` whose process is gone.

    Args:
        abandoned: ``worker tag -> bool``, true when the process that opened the run is dead.

    Returns:
        The run ids closed (none if the store cannot be read: a warning, not an error).
    """
    try:
        client = open_client(uri, writer=True)
        ids = [e.experiment_id for e in client.search_experiments()]
        runs = client.search_runs(ids, f"tags.`usbench.study` = '{study}' and "
                                       "attributes.status = 'RUNNING'", max_results=1000)
        closed = []
        for r in runs:
            if abandoned(r.data.tags.get("usbench.worker", "")):
                client.set_terminated(r.info.run_id, "KILLED")
                closed.append(r.info.run_id)
        return closed
    except Exception as exc:
        why = str(exc) if isinstance(exc, UsbenchError) else f"at {uri} ({_reason(exc)})."
        log.warning(f"warning: could not check MLflow for abandoned sweep runs: {why}")
        return []


# Per-fold metrics (step = fold) that the leaderboard reads back.
FOLD_SERIES = ("fold_accuracy", "fold_test_clips", "fold_train_clips")


def fetch_runs(uri: str, experiments: list[str] | None) -> tuple[list[dict], list[str]]:
    """Finished runs of the named experiments (all experiments when None).

    Returns:
        (runs, names): each run as {run_id, experiment, params, metrics, tags, artifact_uri,
        and per FOLD_SERIES name {fold: value}}; names: every experiment in the store.

    Raises:
        ConfigError: an unknown experiment name (with a did-you-mean).
        TrackingError: the store cannot be reached, read or mended.
    """
    client = open_client(uri, writer=False)
    try:
        return _fetch_runs(client, uri, experiments)
    except UsbenchError:
        raise
    except Exception as exc:
        raise read_error(uri, exc) from None


def _fetch_runs(client, uri: str, experiments: list[str] | None) -> tuple[list[dict], list[str]]:
    import difflib

    from mlflow.entities import ViewType

    known = {e.name: e for e in client.search_experiments(view_type=ViewType.ACTIVE_ONLY)}
    names = sorted(known)
    wanted = experiments or [n for n in names if n != "Default"]
    for name in wanted:
        if name not in known:
            close = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"Unknown experiment '{name}' in {uri}.{hint} "
                              f"Available: {', '.join(names) or 'none'}.")
    runs = []
    for name in wanted:
        for r in client.search_runs([known[name].experiment_id],
                                    "attributes.status = 'FINISHED'", max_results=50000):
            series = {key: {int(m.step): float(m.value)
                            for m in client.get_metric_history(r.info.run_id, key)}
                      for key in FOLD_SERIES if key in r.data.metrics}
            runs.append({"run_id": r.info.run_id, "experiment": name,
                         "params": dict(r.data.params), "metrics": dict(r.data.metrics),
                         "tags": dict(r.data.tags), "artifact_uri": r.info.artifact_uri,
                         **{key: series.get(key, {}) for key in FOLD_SERIES}})
    return runs, names
