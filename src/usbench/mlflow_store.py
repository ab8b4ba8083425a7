"""The sqlite MLflow store: created atomically, and repaired when found half-made.

A sqlite store is never seen half-made: a new one is created and migrated in a temporary file
beside the target and renamed into place, under a lock file so that concurrent processes
create it once. MLflow migrates a database in place and not atomically, so a process killed
while creating one would leave it broken for good; a store found half-made (leftover
``_alembic_tmp_*`` tables, no or an old schema revision, missing tables) is rebuilt when it
holds no runs, else repaired on a copy; the original is always kept beside it under a named
backup, and a one-line warning says what was done.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from usbench.errors import TrackingError, UsbenchError

log = logging.getLogger("usbench")


def quiet_mlflow() -> None:
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


def _store_lock(path: Path):
    """An exclusive lock on ``<store>.lock`` (processes that create or mend `path`)."""
    from usbench.locks import exclusive

    return exclusive(path.with_name(f".{path.name}.lock"))


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
        why = (exc.strerror or str(exc)) if isinstance(exc, OSError) else short_reason(exc)
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
        why = str(exc) if isinstance(exc, TrackingError) else short_reason(exc)
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


def short_reason(exc: Exception) -> str:
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
