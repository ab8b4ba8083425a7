"""Leave-one-fold-out over the dataset's own folds; one fresh estimator per test fold.

Nothing here touches disk or MLflow, or tunes anything. The split is scikit-learn's
``LeaveOneGroupOut`` over the fold column: each tested fold is predicted by an estimator
fitted on every other present fold, and only on those rows. Folds run one after another, or
in ``n_jobs`` joblib worker processes, as scikit-learn's ``cross_validate(n_jobs=...)`` runs
them; either way the results come back in fold order.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from usbench.errors import FoldError
from usbench.models.base import Estimator


@dataclass(frozen=True)
class FoldResult:
    """One tested fold.

    Attributes:
        fold: the test fold number.
        test_index: row indices (into the full matrix) of the test clips.
        proba: float, shape (n_test, n_classes); column j is class id j.
        y_true: int class ids of the test clips, shape (n_test,).
        n_train: rows the estimator was fitted on.
        fit_seconds, predict_seconds: wall times.
        history: what the estimator reports about its fit (epochs run, best epoch, ...).
        started, ended: clock times (s since the epoch) just before the fit and just after
            the prediction.
    """

    fold: int
    test_index: np.ndarray = field(repr=False)
    proba: np.ndarray = field(repr=False)
    y_true: np.ndarray = field(repr=False)
    n_train: int
    fit_seconds: float
    predict_seconds: float
    history: dict
    started: float = 0.0
    ended: float = 0.0

    @property
    def y_pred(self) -> np.ndarray:
        return self.proba.argmax(axis=1)

    @property
    def accuracy(self) -> float:
        return float((self.y_pred == self.y_true).mean())


def check_folds(folds: np.ndarray, test_folds: Sequence[int] | None) -> list[int]:
    """Validate the folds to test against the folds present.

    Returns:
        The sorted test folds (all present folds when `test_folds` is None).

    Raises:
        FoldError: a requested fold has no clips, or only one fold is present.
    """
    present = sorted(int(f) for f in np.unique(folds))
    wanted = present if test_folds is None else sorted(set(int(f) for f in test_folds))
    absent = [f for f in wanted if f not in present]
    if absent:
        raise FoldError(
            f"--folds names fold {absent[0]}, which has no clips. Folds with clips: "
            f"{', '.join(map(str, present))}."
        )
    if len(present) < 2:
        raise FoldError(
            f"Testing fold {wanted[0]} leaves no training data: it is the only fold with clips. "
            "Leave-one-fold-out needs at least two folds; add data or pass --allow-missing "
            "with a root holding more folds."
        )
    return wanted


def _fit_predict(make_estimator: Callable[[int], Estimator], fold: int, X_train: np.ndarray,
                 y_train: np.ndarray, groups: np.ndarray, folds_train: np.ndarray,
                 variants_train: np.ndarray | None, X_test: np.ndarray
                 ) -> tuple[np.ndarray, dict, float, float, float]:
    """Fit a fresh estimator for test fold `fold` on the training rows, predict the test rows.

    Returns:
        (probabilities as float64, shape (n_test, n_classes), the estimator's history, clock
        time before the fit, fit seconds, predict seconds).
    """
    from usbench.procs import sigterm_checked

    est = make_estimator(fold)
    started = time.time()
    t0 = time.perf_counter()
    with sigterm_checked(getattr(est, "checks_sigterm", False)):
        est.fit(X_train, y_train, groups=groups, folds=folds_train, variants=variants_train)
    t1 = time.perf_counter()
    proba = np.asarray(est.predict_proba(X_test), dtype=np.float64)
    t2 = time.perf_counter()
    return proba, dict(getattr(est, "history_", {}) or {}), started, t1 - t0, t2 - t1


def _in_worker(parent_pid: int, threads: int, *args):
    """``_fit_predict`` in a worker process, with `threads` threads for TensorFlow; the worker
    ends with process `parent_pid` (``procs.die_with_parent``), even a killed one.

    Two workers on two cores each get one, for TensorFlow's ops and for running its graphs:
    it would otherwise start pools of a thread per core in each, whose threads then compete
    for the other worker's core (joblib already limits BLAS and OpenMP). TensorFlow reads
    the settings when it starts, so a worker that already started it keeps its first values.
    """
    from usbench.procs import die_with_parent

    die_with_parent(parent_pid)
    if "tensorflow" not in sys.modules:
        os.environ["TF_NUM_INTRAOP_THREADS"] = str(threads)
        os.environ["TF_NUM_INTEROP_THREADS"] = str(threads)
        # On a GPU, TensorFlow would map nearly all its memory in the first worker, leaving
        # none for the others: each takes what it needs instead.
        os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    return _fit_predict(*args)


def leave_one_fold_out(
    make_estimator: Callable[[int], Estimator],
    X: np.ndarray,
    y: np.ndarray,
    folds: np.ndarray,
    recordings: np.ndarray,
    n_classes: int,
    test_folds: Sequence[int] | None = None,
    on_fold: Callable[[FoldResult], None] | None = None,
    variants: np.ndarray | None = None,
    n_jobs: int = 1,
    kept: Mapping[int, FoldResult] | None = None,
) -> list[FoldResult]:
    """Evaluate one configuration under leave-one-fold-out.

    Args:
        make_estimator: returns a fresh, unfitted estimator for the given test fold.
        X: features, shape (n_clips, *feature shape).
        y: int class ids in 0..n_classes-1, shape (n_clips,).
        folds: fold number of each clip, shape (n_clips,).
        recordings: recording id (fsID) of each clip, passed to ``fit`` as groups.
        n_classes: size of the class list (from the dataset table, not from `y`).
        test_folds: folds to test (default: all present folds).
        on_fold: called after each fold, e.g. for progress or pruning.
        variants: audio-augmented variants of each clip, shape (n_clips, k, *feature shape),
            or None; ``fit`` gets those of its training rows only.
        n_jobs: worker processes training folds side by side (1: in this process, one
            after another). `make_estimator` must then be picklable by cloudpickle (a lambda
            is). Each worker gets its fold's rows only, and ``on_fold`` still runs here, in
            fold order.
        kept: results of folds finished earlier (a resumed run): those folds are not trained
            again, and ``on_fold`` is not called for them.

    Returns:
        One FoldResult per tested fold, in fold order.
    """
    from sklearn.model_selection import LeaveOneGroupOut

    wanted = check_folds(folds, test_folds)
    splits = [(int(folds[test[0]]), train, test)
              for train, test in LeaveOneGroupOut().split(X, y, groups=folds)
              if int(folds[test[0]]) in wanted]
    kept = dict(kept or {})
    todo = [split for split in splits if split[0] not in kept]

    def task(fold: int, train: np.ndarray, test: np.ndarray) -> tuple:
        # Sliced when its fold starts: a copy of the training rows per fold, not all at once.
        return (make_estimator, fold, X[train], y[train], recordings[train], folds[train],
                None if variants is None else variants[train], X[test])

    jobs = min(n_jobs, len(todo))
    if jobs > 1:
        from joblib import Parallel, cpu_count, delayed

        threads = max(1, cpu_count() // jobs)  # the cores this process may use, quotas too
        outcomes = Parallel(n_jobs=jobs, return_as="generator")(
            delayed(_in_worker)(os.getpid(), threads, *task(*split)) for split in todo)
    else:
        outcomes = (_fit_predict(*task(*split)) for split in todo)
    results = []
    try:
        for fold, train, test in splits:
            if fold in kept:
                results.append(kept[fold])
                continue
            proba, history, started, fit_s, predict_s = next(outcomes)
            if proba.shape != (len(test), n_classes):
                raise FoldError(
                    f"Fold {fold}: the model returned probabilities of shape {proba.shape}, "
                    f"expected {(len(test), n_classes)}. This is a bug in the model family."
                )
            result = FoldResult(fold=fold, test_index=test, proba=proba, y_true=y[test],
                                n_train=len(train), fit_seconds=fit_s,
                                predict_seconds=predict_s, history=history,
                                started=started, ended=started + fit_s + predict_s)
            results.append(result)
            if on_fold:
                on_fold(result)
    finally:
        # A fold that raised, or an on_fold that did (pruning, Ctrl-C), ends the others:
        # closing joblib's generator cancels the folds not yet started (and would warn so).
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*still being processed by the workers")
            getattr(outcomes, "close", lambda: None)()
    return results
