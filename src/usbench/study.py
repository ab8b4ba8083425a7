"""Optuna studies of ``usbench sweep``: their storage, the target a study was made for, its
sampler, and the bookkeeping of finished and stale trials.

Storage: ``sqlite:///results/optuna.db`` by default (never MLflow's file), any RDB URL
(``postgresql+psycopg2://...`` for several hosts) or ``journal:///path/file.log``. A study
records the model, feature set, dataset, fixed ``--set`` values, seed and pruner it was made
for and refuses any other. Trials left running by a dead process of this host are failed at
once, those of other hosts through Optuna's heartbeat.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from usbench.errors import ConfigError
from usbench.record import Tag
from usbench.redact import redact

log = logging.getLogger("usbench")


# What counts toward --trials: a failed trial is retried, not counted.
FINISHED = ("COMPLETE", "PRUNED")
HEARTBEAT_S = 10


def quiet_optuna() -> None:
    import warnings

    import optuna

    # Heartbeats and the matplotlib plots are marked experimental; they are used on purpose.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def default_storage(results: Path) -> str:
    return f"sqlite:///{(results / 'optuna.db').resolve()}"


def open_storage(url: str):
    """An Optuna storage for `url`, checked to be reachable before any trial runs.

    Raises:
        ConfigError: the URL is malformed or the storage cannot be reached.
    """
    import optuna

    quiet_optuna()
    try:
        if url.startswith("journal:"):
            from optuna.storages.journal import JournalFileBackend

            path = Path(url.removeprefix("journal:").removeprefix("//"))
            path.parent.mkdir(parents=True, exist_ok=True)
            return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.RDBStorage(
            url, heartbeat_interval=HEARTBEAT_S, grace_period=3 * HEARTBEAT_S,
            engine_kwargs={"pool_pre_ping": True},
        )
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else repr(exc)
        raise ConfigError(redact(
            f"Cannot open the Optuna storage {url} ({reason}). Check --storage: "
            "sqlite:///path.db, postgresql+psycopg2://user@host/db (its password in PGPASSWORD "
            "or ~/.pgpass) or journal:///path.log."
        )) from None


@dataclass(frozen=True)
class Target:
    """What a study is for; stored as study user attributes and checked on resume."""

    model: str
    features: str
    dataset: str
    dataset_fingerprint: str
    folds: str
    nested_outer: int | None = None
    augment: str = "off"
    overrides: str = ""
    seed: int = 0
    pruner: str = "median"

    def attrs(self) -> dict:
        return {f"usbench.{k}": v for k, v in self.__dict__.items()}


def make_sampler(seed: int):
    """Optuna's TPE sampler, its random state reseeded from (seed, trial number) per trial.

    Trial numbers are unique in a study whoever runs the trial, so a resumed sweep, extra
    ``--workers`` and sweeps on other hosts never start two trials from the same draw, and a
    fresh single-process sweep with one seed repeats itself.
    """
    from optuna.samplers import TPESampler

    class TrialSeededTPE(TPESampler):
        def before_trial(self, study, trial):
            draw = int.from_bytes(hashlib.sha256(f"{seed}:{trial.number}".encode()).digest()[:4])
            self._rng.rng.seed(draw)
            self._random_sampler._rng.rng.seed(draw)
            super().before_trial(study, trial)

    return TrialSeededTPE(seed=seed)


def load_study(name: str, storage, target: Target):
    """Create or resume the study `name`, refusing one made for another target."""
    import optuna

    quiet_optuna()
    sampler = make_sampler(target.seed)
    prune = (optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2)
             if target.pruner == "median" else optuna.pruners.NopPruner())
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize",
                                sampler=sampler, pruner=prune, load_if_exists=True)
    attrs = study.user_attrs
    # Another host may be creating the same study right now: a missing attribute is set (to
    # the same value it will write), only a different one is refused.
    for k, v in target.attrs().items():
        if k not in attrs:
            study.set_user_attr(k, v)
    mismatch = {k: (attrs[k], v) for k, v in target.attrs().items()
                if k in attrs and attrs[k] != v}
    if mismatch:
        key, (was, now) = next(iter(mismatch.items()))
        raise ConfigError(
            f"Study '{name}' was created for {key.removeprefix('usbench.')} {was!r}, not "
            f"{now!r}. Pass another --study name (or the matching settings) to keep both."
        )
    return study


def fail_stale_trials(study) -> list[int]:
    """Fail the study's trials that no process runs any more; returns their numbers.

    A trial records ``host:pid`` of its process: on this host a dead pid is stale at once;
    trials of other hosts are failed by Optuna once their heartbeat is older than its grace
    period (RDB storages).
    """
    import optuna

    running = optuna.trial.TrialState.RUNNING

    def numbers() -> set[int]:
        return {t.number for t in study.get_trials(deepcopy=False, states=(running,))}

    before = numbers()
    optuna.storages.fail_stale_trials(study)  # a no-op for storages without heartbeats
    for t in study.get_trials(deepcopy=False, states=(running,)):
        if dead_here(str(t.user_attrs.get("worker", ""))):
            try:
                study.tell(t.number, state=optuna.trial.TrialState.FAIL)
            except (ValueError, RuntimeError):  # finished meanwhile by another process
                pass
    return sorted(before - numbers())


def dead_here(worker: str) -> bool:
    """True if `worker` (``host:pid``) names a process of this host that no longer runs."""
    from usbench.stale_runs import gone

    return gone(f"{worker}:")  # no start time recorded


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def finished_trials(study) -> int:
    import optuna

    states = tuple(getattr(optuna.trial.TrialState, s) for s in FINISHED)
    return len(study.get_trials(deepcopy=False, states=states))


def close_abandoned_runs(uri: str, study: str, abandoned) -> list[str]:
    """Mark KILLED the RUNNING sweep runs of `study` whose process is gone.

    Args:
        abandoned: ``worker tag -> bool``, true when the process that opened the run is dead.

    Returns:
        The run ids closed (none if the store cannot be read: a warning, not an error).
    """
    from usbench import tracking
    from usbench.errors import UsbenchError
    from usbench.mlflow_store import short_reason

    try:
        client = tracking.open_client(uri, writer=True)
        ids = [e.experiment_id for e in client.search_experiments()]
        runs = client.search_runs(ids, f"tags.`{Tag.STUDY}` = '{study}' and "
                                       "attributes.status = 'RUNNING'", max_results=1000)
        closed = []
        for r in runs:
            if abandoned(r.data.tags.get(Tag.WORKER, "")):
                client.set_terminated(r.info.run_id, "KILLED")
                closed.append(r.info.run_id)
        return closed
    except Exception as exc:
        why = str(exc) if isinstance(exc, UsbenchError) else f"at {uri} ({short_reason(exc)})."
        log.warning(redact(f"warning: could not check MLflow for abandoned sweep runs: {why}"))
        return []
