"""MLflow logging: the only module that imports mlflow.

The result is always written locally first (``results/runs/<run name>/``); a tracking failure
then costs a warning, never the result. The default store is ``results/mlflow.db`` (sqlite)
with artifacts under ``results/mlartifacts/<experiment>``, both set explicitly (STACK_NOTES:
no implicit ``./mlruns``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

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
    """

    experiment: str
    run_name: str
    params: dict
    metrics: dict[str, float]
    step_metrics: dict[str, list[tuple[int, float]]]
    tags: dict[str, str]
    artifacts: Path
    parent_run_id: str | None = None


def _quiet_mlflow() -> None:
    # An unreachable server should fail in seconds, not after minutes of retries.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow  # noqa: F401  (configures its loggers on import; quiet them after)

    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)


def _experiment_id(client, name: str, artifact_root: Path) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = (artifact_root / name).resolve().as_uri()
    return client.create_experiment(name, artifact_location=location)


def log_run(uri: str, artifact_root: Path, run: RunLog) -> str | None:
    """Log `run` to the tracking store at `uri`.

    Returns:
        The MLflow run id, or None when tracking failed (a warning says why; the local copy
        of the result is untouched).
    """
    try:
        _quiet_mlflow()
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=uri)
        exp_id = _experiment_id(client, run.experiment, artifact_root)
        tags = dict(run.tags)
        if run.parent_run_id:
            tags["mlflow.parentRunId"] = run.parent_run_id
        created = client.create_run(exp_id, run_name=run.run_name, tags=tags)
        run_id = created.info.run_id
        import time

        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, 0) for k, v in run.metrics.items()]
        metrics += [Metric(k, float(v), now, int(step))
                    for k, series in run.step_metrics.items() for step, v in series]
        params = [Param(k, str(v)[:6000]) for k, v in sorted(run.params.items())]
        for i in range(0, max(len(params), len(metrics), 1), 100):
            client.log_batch(run_id, metrics=metrics[i : i + 100], params=params[i : i + 100],
                             tags=[RunTag(k, v) for k, v in tags.items()] if i == 0 else [])
        client.log_artifacts(run_id, str(run.artifacts))
        client.set_terminated(run_id, "FINISHED")
        return run_id
    except Exception as exc:  # any tracking failure must leave the local result intact
        log.warning(f"warning: could not log to MLflow at {uri} ({_reason(exc)}). "
                    f"The result is kept in {run.artifacts}.")
        return None


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


def download_model(uri: str, run_id: str, dest: Path) -> Path:
    """Download the ``model/`` artifacts of `run_id` into `dest`.

    Raises:
        ConfigError: unknown run, or a run saved without ``--save-model``.
    """
    from usbench.errors import ConfigError

    _quiet_mlflow()
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    try:
        client.get_run(run_id)
    except MlflowException:
        raise ConfigError(
            f"No MLflow run '{run_id}' in {uri}. Copy the run id printed by `usbench run`, "
            "or pass --tracking-uri for another store."
        ) from None
    names = {a.path for a in client.list_artifacts(run_id)}
    if "model" not in names:
        raise ConfigError(
            f"Run {run_id} has no saved model. Re-run it with `usbench run ... --save-model`."
        )
    return Path(client.download_artifacts(run_id, "model", str(dest)))


def start_parent(uri: str, artifact_root: Path, experiment: str, run_name: str,
                 params: dict, tags: dict[str, str]) -> str | None:
    """Open a parent run (a sweep) that trial runs nest under; None if tracking fails."""
    try:
        _quiet_mlflow()
        from mlflow.entities import Param, RunTag
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=uri)
        exp_id = _experiment_id(client, experiment, artifact_root)
        run_id = client.create_run(exp_id, run_name=run_name, tags=tags).info.run_id
        client.log_batch(run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()],
                         tags=[RunTag(k, v) for k, v in tags.items()])
        return run_id
    except Exception as exc:
        log.warning(f"warning: could not log to MLflow at {uri} ({_reason(exc)}). "
                    "Trials are still kept in the Optuna storage and under results/runs/.")
        return None


def finish_parent(uri: str, run_id: str, metrics: dict[str, float], tags: dict[str, str],
                  artifacts: Path | None, status: str = "FINISHED") -> None:
    """Log a sweep's summary to its parent run and close it."""
    try:
        _quiet_mlflow()
        import time

        from mlflow.entities import Metric, RunTag
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=uri)
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
        _quiet_mlflow()
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=uri)
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
        log.warning(f"warning: could not check MLflow at {uri} for abandoned sweep runs "
                    f"({_reason(exc)}).")
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
    """
    import difflib

    from usbench.errors import ConfigError

    _quiet_mlflow()
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
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
