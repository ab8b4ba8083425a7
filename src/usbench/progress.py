"""Progress of a leave-one-fold-out evaluation and of a sweep, with elapsed time and time left.

On a terminal: a tqdm bar on stderr, over epochs for the Keras families (every fold's epoch
budget) or over folds for scikit-learn's, over trials for a sweep; log lines are printed
above it (``logging_redirect_tqdm``). Off a terminal (a log file, CI): no bar; each fold or
trial still logs its line, and a Keras fold also logs ``epoch k/n`` at most every
``QUIET_LINE_S`` seconds. Folds trained in worker processes (``--fold-jobs`` above 1) report
when they end only: the bar then counts folds.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack

log = logging.getLogger("usbench")

QUIET_LINE_S = 150.0  # off a terminal: an epoch line at most this often

_epoch_listener: Callable[[int, int], None] | None = None


def epoch_done(epoch: int, epochs: int) -> None:
    """Called by the Keras training loop after each epoch: `epoch` (1-based) of `epochs`.

    Also where a SIGTERM swallowed during the epoch is raised again.
    """
    from usbench.procs import check_terminated

    check_terminated()
    if _epoch_listener is not None:
        _epoch_listener(epoch, epochs)


def on_terminal() -> bool:
    return sys.stderr.isatty()


def minutes(seconds: float) -> str:
    """`seconds` as ``42 s``, ``3.5 min`` or ``2.1 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _open_bar(stack: ExitStack, **kw):
    """A tqdm bar on stderr, with usbench's log lines printed above it, until `stack` closes."""
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    stack.enter_context(logging_redirect_tqdm(loggers=[log]))
    return stack.enter_context(tqdm(dynamic_ncols=True, file=sys.stderr, **kw))


class FoldProgress:
    """Progress over the folds a run trains (a context manager).

    Args:
        folds: the folds to train, in the order they are trained.
        epochs: each fold's epoch budget (the Keras families' ``epochs``), or None.
        bar: show a bar when stderr is a terminal (False: never).
        in_workers: folds train in worker processes, whose epochs are not seen here.
    """

    def __init__(self, folds: list[int], epochs: int | None, *, bar: bool = True,
                 in_workers: bool = False):
        self.folds = list(folds)
        self.epochs = None if in_workers else epochs
        self.show_bar = bar and on_terminal() and bool(self.folds)
        self.done = 0
        self.bar = None
        self._stack = ExitStack()
        self._refit, self._last_epoch = False, 0
        self._fold_start = self._last_line = time.monotonic()

    @property
    def _per_fold(self) -> int:
        return self.epochs or 1

    def __enter__(self) -> FoldProgress:
        global _epoch_listener
        if self.show_bar:
            self.bar = _open_bar(self._stack, total=len(self.folds) * self._per_fold,
                                 unit="epoch" if self.epochs else "fold", desc=self._desc())
        if self.epochs:
            _epoch_listener = self.epoch
        self._fold_start = self._last_line = time.monotonic()
        return self

    def __exit__(self, *exc) -> None:
        global _epoch_listener
        _epoch_listener = None
        self._stack.close()

    def _desc(self) -> str:
        if self.done >= len(self.folds):
            return "folds done"
        return f"fold {self.folds[self.done]} ({self.done + 1}/{len(self.folds)})"

    def epoch(self, epoch: int, epochs: int) -> None:
        """One epoch of the fold in training (a refit's epochs count past the budget only
        up to it)."""
        if self.done >= len(self.folds):
            return
        # The count starting again within a fold: the refit on all training rows.
        self._refit = self._refit or epoch <= self._last_epoch
        self._last_epoch = epoch
        what = f"{'refit ' if self._refit else ''}epoch {epoch}/{epochs}"
        now = time.monotonic()
        if self.bar is not None:
            self.bar.set_postfix_str(what, refresh=False)
            target = self.done * self._per_fold + min(epoch, self._per_fold)
            self.bar.update(max(0, target - self.bar.n))  # 0: redraws the postfix only
        elif now - self._last_line >= QUIET_LINE_S:
            self._last_line = now
            spent = now - self._fold_start
            left = spent / epoch * (epochs - epoch)
            log.info(f"fold {self.folds[self.done]}: {what}, "
                     f"{minutes(spent)} in, at most {minutes(left)} left in this fold")

    def fold_done(self) -> None:
        """A fold ended (its own line is logged by the caller)."""
        self.done += 1
        self._refit, self._last_epoch = False, 0
        self._fold_start = self._last_line = time.monotonic()
        if self.bar is not None:
            self.bar.update(min(self.done, len(self.folds)) * self._per_fold - self.bar.n)
            self.bar.set_description_str(self._desc(), refresh=False)
            self.bar.set_postfix_str("", refresh=True)


class TrialProgress:
    """Progress over the trials a sweep runs (a context manager): a bar on a terminal, a line
    with the count and the time left after each trial off it.

    Args:
        total: trials to run.
        count: trials finished so far (those of other worker processes too); None counts
            the callback's calls.
        bar: show a bar when stderr is a terminal (False: never).
    """

    def __init__(self, total: int, count: Callable[[], int] | None = None, *,
                 bar: bool = True):
        self.total = total
        self.count = count
        self.show_bar = bar and on_terminal() and total > 0
        self.done = 0
        self.bar = None
        self._stack = ExitStack()
        self._start = time.monotonic()

    def __enter__(self) -> TrialProgress:
        if self.show_bar:
            self.bar = _open_bar(self._stack, total=self.total, unit="trial", desc="trials")
        self._start = time.monotonic()
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def __call__(self, study=None, trial=None) -> None:
        """An Optuna callback: a trial finished here."""
        done = self.done + 1 if self.count is None else self.count()
        self.done = min(max(done, self.done), self.total)
        if self.bar is not None:
            self.bar.update(self.done - self.bar.n)
        elif 0 < self.done < self.total:
            spent = time.monotonic() - self._start
            left = spent / self.done * (self.total - self.done)
            log.info(f"{self.done}/{self.total} trials done in {minutes(spent)}, about "
                     f"{minutes(left)} left")
