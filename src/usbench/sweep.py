"""The Optuna study and objective of ``usbench sweep``.

Each trial is one full leave-one-fold-out evaluation by the same engine as ``usbench run``;
every fold's accuracy is reported as an intermediate value (step = position of the fold), so a
pruner stops poor trials after a few folds. Features are loaded once per process.

``--trials N`` asks for N complete or pruned trials in all: a re-run adds the difference, and
a killed sweep keeps every finished trial. Each trial's random draws are seeded by the sweep
seed and the trial number, so resumed and shared sweeps never repeat a draw. Storage, the
target a study was made for and stale trials: ``usbench.study``.

Selection: a plain sweep's best value was chosen on the same folds it is scored on and is
labelled "selected on CV". ``--nested`` runs, for each outer test fold, a study on the other
folds only (inner leave-one-fold-out), refits the best parameters on all training folds and
tests on the outer fold: an unbiased estimate, labelled "nested".
"""

from __future__ import annotations

import logging
import os
import shlex
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from usbench.build import Inputs
from usbench.config import SweepConfig
from usbench.errors import ConfigError
from usbench.progress import TrialProgress
from usbench.record import RecordSpec, Tag
from usbench.redact import redact
from usbench.study import (
    FINISHED,
    Target,
    close_abandoned_runs,
    dead_here,
    default_storage,
    fail_stale_trials,
    finished_trials,
    load_study,
    open_storage,
    worker_id,
)

log = logging.getLogger("usbench")


class _Interrupt:
    """Ctrl-C during a sweep. Some numerical code (SciPy's L-BFGS loop) can absorb the
    KeyboardInterrupt that Python raises, so the request is also remembered here and checked
    after every fold and every trial."""

    requested = False

    @classmethod
    def handler(cls, signum, frame):
        cls.requested = True
        raise KeyboardInterrupt

    @classmethod
    def check(cls) -> None:
        if cls.requested:
            raise KeyboardInterrupt


@contextmanager
def _catch_ctrl_c():
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _Interrupt.requested = False
    previous = signal.signal(signal.SIGINT, _Interrupt.handler)
    term = signal.getsignal(signal.SIGTERM)
    if callable(term):  # the command line's SIGTERM-as-Ctrl-C: remembered here as well

        def on_term(signum, frame):
            _Interrupt.requested = True
            term(signum, frame)

        signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, term)


@dataclass
class Objective:
    """One trial = one leave-one-fold-out evaluation; logged as a nested MLflow run."""

    cfg: SweepConfig
    inp: Inputs
    test_folds: list[int]
    parent_run_id: str | None
    nested_outer: int | None = None

    @property
    def kind(self) -> str:
        """An inner trial of a nested sweep scores inner folds only: never a leaderboard row."""
        return "trial" if self.nested_outer is None else "inner_trial"

    @property
    def selection(self) -> str:
        return "selected on CV" if self.nested_outer is None else "nested (inner folds)"

    def _log_failure(self, trial, params: dict, tags: dict, error: str) -> None:
        """A trial that failed before any fold: its error, params and tags as an MLflow run."""
        from usbench.record import record_failure

        record_failure(name=f"trial-{trial.number}-{trial.study.study_name}-failed",
                       model=self.cfg.model, features=self.cfg.features, params=params,
                       error=error, tags={Tag.KIND: self.kind, Tag.SELECTION: self.selection,
                                          **tags},
                       experiment=self.cfg.experiment or self.inp.dataset.name,
                       tracking_uri=self.cfg.tracking_uri, parent_run_id=self.parent_run_id)

    def __call__(self, trial) -> float:
        import optuna

        from usbench.record import record
        from usbench.runner import check_model, evaluate

        trial.set_user_attr("worker", worker_id())
        spec, base = check_model(self.cfg.model, self.cfg.features)
        fixed = spec.params(dict(self.cfg.overrides))
        fixed = {k: v for k, v in fixed.items() if k in dict(self.cfg.overrides)}
        params = spec.params({**base, **spec.search_space(trial), **fixed})
        done = []

        def report(r) -> None:
            _Interrupt.check()
            done.append(r)
            trial.report(r.accuracy, step=len(done) - 1)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after fold {r.fold}")

        state, error = "complete", None
        try:
            evaluate(spec, params, self.inp, seed=self.cfg.seed, test_folds=self.test_folds,
                     on_fold=report)
        except optuna.TrialPruned:
            state = "pruned"
            raise
        except KeyboardInterrupt:
            state = "interrupted"
            raise
        except Exception as exc:
            state, error = "failed", redact(f"{type(exc).__name__}: {exc}")
            trial.set_user_attr("error", error[:2000])
            raise
        finally:
            trial.set_user_attr("fold_accuracy", {r.fold: r.accuracy for r in done})
            trial.set_user_attr("params", params)
            tags = {Tag.STUDY: trial.study.study_name, Tag.TRIAL: trial.number,
                    Tag.TRIAL_STATE: state, **({Tag.ERROR: error[:500]}
                                                     if error else {}),
                    **({Tag.NESTED_OUTER: self.nested_outer}
                       if self.nested_outer is not None else {})}
            if not done and error:
                self._log_failure(trial, params, tags, error)
            if done:
                record(model=self.cfg.model, features=self.cfg.features, params=params,
                       seed=self.cfg.seed, inp=self.inp, results=done,
                       config=self.cfg.to_dict(),
                       how=RecordSpec(tracking_uri=self.cfg.tracking_uri,
                                      experiment=self.cfg.experiment, kind=self.kind,
                                      selection=self.selection,
                                      parent_run_id=self.parent_run_id, extra_tags=tags))
            log.info(f"trial {trial.number}: {state}"
                     + (f", accuracy {np.mean([r.accuracy for r in done]):.3f} over "
                        f"{len(done)} fold(s)" if done else "") + (f" ({error})" if error else ""))
        return float(np.mean([r.accuracy for r in done]))


def optimize(study, objective: Objective, n_trials: int, timeout: float | None,
             total: int, callbacks=()) -> None:
    """Run up to `n_trials` trials; a raising trial is recorded as failed and the sweep goes
    on. Sweeps on other hosts may share the study: stop starting trials once it holds
    `total` finished trials, whoever ran them (trials running elsewhere still finish)."""
    import optuna

    if n_trials > 0:
        states = tuple(getattr(optuna.trial.TrialState, s) for s in FINISHED)
        stop = optuna.study.MaxTrialsCallback(total, states=states)
        study.optimize(objective, n_trials=n_trials, timeout=timeout, catch=(Exception,),
                       gc_after_trial=True,
                       callbacks=[stop, *callbacks, lambda *_: _Interrupt.check()])


def _worker(cfg: SweepConfig, name: str, storage_url: str, target: Target, n_trials: int,
            test_folds: list[int], parent_run_id: str | None, worker: int,
            parent_pid: int) -> None:
    """Body of an extra ``--workers`` process: load features from the cache, run trials.
    It ends with the sweep process, even a killed one; the next run fails its unfinished trial."""
    from usbench.procs import die_with_parent
    from usbench.runner import load_inputs

    die_with_parent(parent_pid)

    inp = load_inputs(cfg.data, cfg.features, jobs=cfg.jobs, progress=False,
                      augment=cfg.augment)
    if target.nested_outer is not None:  # an inner study never sees its outer test fold
        inp = inp.subset(inp.folds != target.nested_outer)
    study = load_study(name, open_storage(storage_url), target)
    optimize(study, Objective(cfg, inp, test_folds, parent_run_id, target.nested_outer),
             n_trials, cfg.timeout, cfg.trials)


def run_study(cfg: SweepConfig, inp: Inputs, name: str, storage_url: str, target: Target,
              test_folds: list[int], parent_run_id: str | None):
    """Bring study `name` to ``cfg.trials`` finished trials, with ``cfg.workers`` processes.

    Returns:
        The study.
    """
    import multiprocessing

    from usbench import tracking

    storage = open_storage(storage_url)
    study = load_study(name, storage, target)
    if parent_run_id:  # the newest sweep run of this study, for optuna-dashboard users
        study.set_user_attr(Tag.MLFLOW_PARENT_RUN_ID, parent_run_id)
        study.set_user_attr(Tag.TRACKING_URI, redact(tracking.tracking_uri(cfg.tracking_uri)))
    stale = fail_stale_trials(study)
    if stale:
        log.info(f"study '{name}': failed {len(stale)} trial(s) left running by a dead "
                 f"process: {', '.join(map(str, stale))}")
    have = finished_trials(study)
    todo = max(0, cfg.trials - have)
    log.info(f"study '{name}': {have} finished trial(s), running {todo} more"
             + (f" on {cfg.workers} workers" if cfg.workers > 1 and todo else ""))
    shares = [todo // cfg.workers + (i < todo % cfg.workers) for i in range(cfg.workers)]
    procs = []
    ctx = multiprocessing.get_context("spawn")
    for i, share in enumerate(shares[1:], start=1):
        if share:
            p = ctx.Process(target=_worker, args=(cfg, name, storage_url, target, share,
                                                  test_folds, parent_run_id, i, os.getpid()))
            p.start()
            procs.append(p)
    shown = TrialProgress(todo, lambda: finished_trials(study) - have)
    try:
        with shown:
            optimize(study, Objective(cfg, inp, test_folds, parent_run_id, target.nested_outer),
                     shares[0], cfg.timeout, cfg.trials, callbacks=[shown])
    finally:
        for p in procs:
            p.join()
    failed = [p.exitcode for p in procs if p.exitcode]
    if failed:
        log.warning(f"warning: {len(failed)} worker process(es) exited with an error; the "
                    "study keeps every trial they finished. Re-run the same command to "
                    "complete it.")
    return study


def _plots(study, folder: Path) -> list[str]:
    """Optimisation history and parameter importances as PNG files in `folder`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    made = []
    for name, plot in (("optimization_history", ovm.plot_optimization_history),
                       ("param_importances", ovm.plot_param_importances)):
        try:
            ax = plot(study)
            fig = ax.figure if hasattr(ax, "figure") else ax[0].figure
            fig.set_size_inches(8, 5)
            fig.savefig(folder / f"{name}.png", dpi=100, bbox_inches="tight")
            plt.close(fig)
            made.append(name)
        except Exception as exc:  # too few finished trials for importances, for example
            log.info(f"no {name} plot: {exc}")
    return made


@dataclass(frozen=True)
class SweepOutcome:
    """A finished sweep: the best trial (plain) or the outer-fold evaluation (nested)."""

    study_name: str
    storage: str
    best_value: float
    best_params: dict
    fold_accuracy: dict
    n_trials: int
    reproduce: str
    selection: str
    parent_run_id: str | None
    nested_run: object = None
    best_trial: int | None = None
    fold_plan: object = None


def reproduce_command(cfg: SweepConfig, params: dict, defaults: dict, study: str) -> str:
    """The ``usbench run`` command that evaluates `params` again.

    Args:
        params: the trial's resolved parameters, fixed ``--set`` values included.
        defaults: the family's own defaults (not the sweep's): every other value is set.
        study: the study the parameters were chosen in; ``--from-study`` labels the run
            "selected on CV", since they were chosen on the folds that score it.
    """
    parts = ["usbench", "run", "--model", cfg.model, "--features", cfg.features]
    if cfg.data.dataset:
        parts += ["--dataset", cfg.data.dataset]
    if cfg.data.root:
        parts += ["--data", str(cfg.data.root)]
    for flag, value in cfg.data.layout_options().items():
        parts += [flag, str(value)]
    if cfg.data.allow_missing:
        parts.append("--allow-missing")
    if cfg.data.skip_bad:
        parts.append("--skip-bad")
    if cfg.augment is not None:
        from usbench.augment import PREFIX, AudioAugment

        parts.append("--augment")
        base = AudioAugment()
        for k, v in sorted(cfg.augment.spec().items()):
            if k != "version" and getattr(base, k) != v:
                text = ",".join(map(str, v)) if isinstance(v, tuple | list) else str(v)
                parts += ["--set", f"{PREFIX}{k}={text}"]
    for k, v in sorted(params.items()):
        if defaults.get(k) != v:
            text = ",".join(map(str, v)) if isinstance(v, tuple | list) else str(v)
            parts += ["--set", f"{k}={text}"]
    parts += ["--seed", str(cfg.seed), "--from-study", study]
    return shlex.join(parts)


def sweep(cfg: SweepConfig, *, progress: bool = True) -> SweepOutcome:
    """``usbench sweep``: find the best configuration of a family on a cached feature set."""
    with _catch_ctrl_c():
        return _sweep(cfg, progress=progress)


def _sweep(cfg: SweepConfig, *, progress: bool) -> SweepOutcome:
    from usbench import cv, tracking
    from usbench.paths import results_dir, writable_results
    from usbench.runner import start

    if cfg.trials < 1:
        raise ConfigError(f"--trials must be at least 1, got {cfg.trials}.")
    if cfg.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {cfg.workers}.")
    if cfg.timeout is not None and not cfg.timeout > 0:
        raise ConfigError(f"--timeout must be a positive number of seconds, got "
                          f"{cfg.timeout:g}. Leave it out to run until --trials are done.")
    storage_url = cfg.storage or default_storage(results_dir())

    def protocol(spec, defaults, folds):
        all_folds = cv.check_folds(folds, None)
        for outer in all_folds if cfg.nested else [None]:  # every study, before any work
            present = [f for f in all_folds if f != outer]
            spec.check_protocol(defaults, present, present)

    # An unreachable storage fails before the dataset is opened (or generated).
    spec, defaults, inp = start(cfg, progress=progress, protocol=protocol,
                                ready=lambda: open_storage(storage_url))
    ds, results = inp.dataset, writable_results()
    folds = cv.check_folds(inp.folds, None)
    from usbench.features import slug

    name = cfg.study or (f"{ds.name}-{cfg.model}-{slug(cfg.features)}"
                         + ("-nested" if cfg.nested else ""))
    from usbench.config import fingerprint

    fixed = {k: defaults[k] for k in dict(cfg.overrides)}
    target = Target(cfg.model, cfg.features, ds.name, ds.fingerprint(),
                    ",".join(map(str, folds)),
                    augment="off" if cfg.augment is None else fingerprint(cfg.augment.spec()),
                    overrides=_describe(fixed), seed=cfg.seed, pruner=cfg.pruner)
    uri = tracking.tracking_uri(cfg.tracking_uri)
    closed = close_abandoned_runs(uri, name, dead_here)
    if closed:
        log.info(f"marked {len(closed)} sweep run(s) of a killed process as KILLED in MLflow")
    selection = "nested" if cfg.nested else "selected on CV"
    if not cfg.nested:  # refuse a study made for another target before anything is logged
        load_study(name, open_storage(storage_url), target)
    parent = tracking.start_parent(
        uri, results / "mlartifacts", cfg.experiment or ds.name,
        f"sweep-{name}-{time.strftime('%Y%m%d-%H%M%S')}",
        {"model": cfg.model, "features": cfg.features, "dataset": ds.name,
         "study": name, "storage": storage_url, "trials": cfg.trials, "seed": cfg.seed,
         "nested": cfg.nested, "pruner": cfg.pruner, "workers": cfg.workers},
        {Tag.KIND: "sweep", Tag.SELECTION: selection, Tag.STUDY: name,
         Tag.WORKER: worker_id(),
         Tag.PARTIAL: str(inp.partial).lower(), Tag.DATASET: ds.name})
    try:
        if cfg.nested:
            return _nested(cfg, inp, name, storage_url, target, folds, spec, uri, parent)
        return _finish(cfg, inp, name, storage_url, target, folds, spec, uri, parent)
    except BaseException as exc:
        if parent:  # never leave the sweep's MLflow run open
            status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
            tracking.finish_parent(uri, parent, {}, {}, None, status=status)
        raise


def _describe(values: dict) -> str:
    """`values` as sorted ``key=value`` text (tuples comma-joined): stable across runs."""
    return " ".join(f"{k}={','.join(map(str, v)) if isinstance(v, tuple | list) else v}"
                    for k, v in sorted(values.items()))


def _finish(cfg, inp, name, storage_url, target, folds, spec, uri, parent):
    """Run the plain study to its trial count and log its summary to the parent run."""
    from usbench import tracking

    selection = "selected on CV"
    study = run_study(cfg, inp, name, storage_url, target, folds, parent)
    best = study.best_trial
    fold_acc = {int(k): v for k, v in best.user_attrs.get("fold_accuracy", {}).items()}
    params = best.user_attrs["params"]  # the objective stores the resolved model parameters
    outcome = SweepOutcome(
        study_name=name, storage=storage_url, best_value=float(best.value),
        best_params=params, fold_accuracy=fold_acc, n_trials=finished_trials(study),
        reproduce=reproduce_command(cfg, params, spec.default_params, name),
        selection=selection,
        parent_run_id=parent, best_trial=best.number, fold_plan=inp.dataset.fold_plan)
    if parent:
        with tempfile.TemporaryDirectory(prefix="usbench-sweep-") as tmp:
            _plots(study, Path(tmp))
            tracking.finish_parent(uri, parent, {"best_accuracy": outcome.best_value,
                                                 "n_trials": outcome.n_trials},
                                   {Tag.BEST_TRIAL: best.number,
                                    Tag.BEST_PARAMS: params,
                                    Tag.REPRODUCE: outcome.reproduce}, Path(tmp))
    return outcome


def _nested(cfg, inp, name, storage_url, target, folds, spec, uri, parent):
    """For each outer fold: a study on the other folds, refit on them, test on the outer."""
    from usbench import tracking
    from usbench.record import record
    from usbench.runner import evaluate, log_fold

    outer_results, chosen = [], {}
    for outer in folds:
        inner = inp.subset(inp.folds != outer)
        inner_folds = [f for f in folds if f != outer]
        log.info(f"outer fold {outer}: selecting on folds {', '.join(map(str, inner_folds))}")
        study = run_study(cfg, inner, f"{name}-outer{outer}", storage_url,
                          replace(target, folds=",".join(map(str, inner_folds)),
                                  nested_outer=outer),
                          inner_folds, parent)
        best = study.best_trial
        params = best.user_attrs["params"]
        chosen[outer] = params
        outer_results += evaluate(spec, params, inp, seed=cfg.seed, test_folds=[outer],
                                  on_fold=log_fold)
    outcome = record(model=cfg.model, features=cfg.features, params={"chosen_per_fold": "see "
                     "nested_params.json"}, seed=cfg.seed, inp=inp, results=outer_results,
                     config=cfg.to_dict(),
                     how=RecordSpec(tracking_uri=cfg.tracking_uri, experiment=cfg.experiment,
                                    kind="run", selection="nested", parent_run_id=parent,
                                    extra_tags={Tag.STUDY: name},
                                    # Two nested sweeps are one configuration only if they
                                    # chose the same parameters with the same settings.
                                    identity={"nested": {
                                        "chosen": {str(k): v for k, v in chosen.items()},
                                        "study": name, "trials": cfg.trials,
                                        "overrides": target.overrides, "pruner": cfg.pruner,
                                    }}))
    import json

    (outcome.folder / "nested_params.json").write_text(
        json.dumps({str(k): v for k, v in chosen.items()}, indent=2, default=str) + "\n")
    acc = {r.fold: r.accuracy for r in outer_results}
    if parent:
        tracking.finish_parent(uri, parent, {"nested_accuracy": outcome.scores.accuracy,
                                             "nested_accuracy_std": outcome.scores.accuracy_std},
                               {Tag.NESTED_RUN: outcome.run_id or ""}, outcome.folder)
    return SweepOutcome(study_name=name, storage=storage_url,
                        best_value=outcome.scores.accuracy, best_params=chosen,
                        fold_accuracy=acc, n_trials=cfg.trials * len(folds), reproduce="",
                        selection="nested", parent_run_id=parent, nested_run=outcome,
                        fold_plan=inp.dataset.fold_plan)
