"""MLflow logging and reading: the only module besides ``mlflow_store`` and
``saved_model`` that imports mlflow.

The result is always written locally first (``results/runs/<run name>/``); a tracking failure
then never costs the result: the MLflow run is marked FAILED and the error names the local
record (a sweep's trials: a warning, their results are also in the Optuna storage).
The default store is ``results/mlflow.db`` (sqlite) with artifacts under
``results/mlartifacts/<experiment>``, both set explicitly (no implicit ``./mlruns``).
Creating and repairing a sqlite store is ``usbench.mlflow_store``'s.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from usbench.errors import ConfigError, TrackingError, UsbenchError
from usbench.mlflow_store import ensure_store, quiet_mlflow, short_reason
from usbench.redact import redact

log = logging.getLogger("usbench")


def default_tracking_uri(results: Path) -> str:
    return f"sqlite:///{(results / 'mlflow.db').resolve()}"


def tracking_uri(given: str | None = None) -> str:
    """The tracking URI of every command: `given` (``--tracking-uri``), else the sqlite store
    ``results/mlflow.db`` of the working directory."""
    if given:
        return given
    from usbench.paths import results_dir

    return default_tracking_uri(results_dir())


def ui_command(uri: str) -> str:
    """The command that opens the MLflow UI on `uri` (its password masked)."""
    uri = redact(uri)
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


def open_client(uri: str, *, writer: bool):
    """An MlflowClient on `uri`, its sqlite store created or mended first (see ensure_store),
    and its runs left RUNNING by dead processes of this host closed (see stale_runs)."""
    quiet_mlflow()
    ensure_store(uri, writer=writer)
    from mlflow.tracking import MlflowClient

    from usbench.stale_runs import close_dead_runs

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    close_dead_runs(client, uri)
    return client


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


def log_run(uri: str, artifact_root: Path, run: RunLog) -> str:
    """Log `run` to the tracking store at `uri`; the run is tagged with the process that logs
    it (``usbench.process``) and its local record (``usbench.local_record``).

    Returns:
        The MLflow run id.

    Raises:
        TrackingError: logging failed (the message names the local record, untouched); the
            run, if created, is marked FAILED (KILLED when the process is interrupted).
    """
    from usbench.record import Tag
    from usbench.stale_runs import this_process

    run_id = client = None
    try:
        client = open_client(uri, writer=True)
        from mlflow.entities import Metric, Param, RunTag

        exp_id = _experiment_id(client, run.experiment, artifact_root)
        tags = {**{k: redact(str(v)) for k, v in run.tags.items()},
                Tag.PROCESS: this_process(), Tag.LOCAL_RECORD: str(run.artifacts)}
        if run.parent_run_id:
            tags["mlflow.parentRunId"] = run.parent_run_id
        created = client.create_run(exp_id, run_name=run.run_name, tags=tags,
                                    start_time=run.start_ms)
        run_id = created.info.run_id
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, 0) for k, v in run.metrics.items()]
        metrics += [Metric(k, float(v), now, int(step))
                    for k, series in run.step_metrics.items() for step, v in series]
        params = [Param(k, redact(str(v))[:6000]) for k, v in sorted(run.params.items())]
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
    except BaseException as exc:  # the local result stays; the MLflow run is never left open
        if run_id is not None:
            _end_unfinished(client, run_id, exc)
        if not isinstance(exc, Exception):
            raise
        closed = f" MLflow run {run_id} is marked FAILED." if run_id else ""
        if _disk_full(exc):
            raise TrackingError(f"Could not log to MLflow at {uri}: no space left on device."
                                f"{closed} The complete result is kept in {run.artifacts}; "
                                "free space under results/ and run again to log it.") from None
        why = _could_not("log to", uri, exc)
        raise TrackingError(f"{why[0].upper()}{why[1:]}{closed} The complete result is kept in "
                            f"{run.artifacts}; check the store (--tracking-uri) and run again "
                            "to log it.") from None


def _disk_full(exc: Exception) -> bool:
    """True when `exc` says the disk (or the user's quota) is full: OSError or sqlite's."""
    import errno

    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return any(s in str(exc) for s in ("database or disk is full", "No space left on device"))


def log_run_or_warn(uri: str, artifact_root: Path, run: RunLog) -> str | None:
    """``log_run``, a failure a warning and None: for what is kept elsewhere as well (a
    sweep's trials are in its Optuna storage, the leaderboard in its files)."""
    try:
        return log_run(uri, artifact_root, run)
    except TrackingError as exc:
        log.warning(f"warning: {exc}")
        return None


def _end_unfinished(client, run_id: str, exc: BaseException) -> None:
    """Mark `run_id` FAILED (KILLED when `exc` interrupts the process), with the reason in the
    tag ``usbench.error``; if the store cannot take even that, the next process to open it
    marks the run KILLED (see stale_runs)."""
    from usbench.record import Tag

    status = "FAILED" if isinstance(exc, Exception) else "KILLED"
    try:
        client.set_tag(run_id, Tag.ERROR, short_reason(exc) if isinstance(exc, Exception)
                       else type(exc).__name__)
        client.set_terminated(run_id, status)
    except Exception as again:
        log.debug(f"could not mark MLflow run {run_id} {status}: {short_reason(again)}")


def _could_not(what: str, uri: str, exc: Exception) -> str:
    """``could not <what> MLflow at <uri> (<reason>).``, or our own one-line message as is."""
    if isinstance(exc, UsbenchError):
        return redact(f"could not {what} MLflow: {exc}")
    return redact(f"could not {what} MLflow at {uri} ({short_reason(exc)}).")


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
        return TrackingError(redact(
            f"Cannot reach the MLflow tracking server at {uri} ({short_reason(exc)}). Start the "
            "server, or pass the right --tracking-uri."
        ))
    return TrackingError(redact(
        f"Could not read the MLflow store at {uri} ({short_reason(exc)}). Check that it is an "
        "MLflow tracking store, or pass --tracking-uri for another."))


def start_parent(uri: str, artifact_root: Path, experiment: str, run_name: str,
                 params: dict, tags: dict[str, str]) -> str | None:
    """Open a parent run (a sweep) that trial runs nest under; None if tracking fails."""
    try:
        client = open_client(uri, writer=True)
        from mlflow.entities import Param, RunTag

        exp_id = _experiment_id(client, experiment, artifact_root)
        from usbench.record import Tag
        from usbench.stale_runs import this_process

        tags = {**{k: redact(str(v)) for k, v in tags.items()}, Tag.PROCESS: this_process()}
        run_id = client.create_run(exp_id, run_name=run_name, tags=tags).info.run_id
        client.log_batch(run_id, params=[Param(k, redact(str(v))[:6000])
                                         for k, v in params.items()],
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
                         tags=[RunTag(k, redact(str(v))[:5000]) for k, v in tags.items()])
        if artifacts is not None:
            client.log_artifacts(run_id, str(artifacts))
        client.set_terminated(run_id, status)
    except Exception as exc:
        log.warning(redact(f"warning: could not finish MLflow run {run_id} at {uri} "
                           f"({short_reason(exc)})."))


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
            raise ConfigError(f"Unknown experiment '{name}' in {redact(uri)}.{hint} "
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
