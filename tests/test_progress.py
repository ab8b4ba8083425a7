"""Progress off a terminal: a line per fold or trial as ever, epoch lines of a long Keras fold
at most every ``QUIET_LINE_S`` seconds, trials done and time left after each sweep trial."""

import logging

import pytest

from usbench import progress
from usbench.progress import FoldProgress, TrialProgress

pytestmark = pytest.mark.usefixtures("in_tmp")


def _lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records]


def test_epoch_lines_off_a_terminal_are_rate_limited(monkeypatch, caplog):
    with caplog.at_level(logging.INFO, logger="usbench"):
        with FoldProgress([3, 7], epochs=10, bar=False):
            progress.epoch_done(1, 10)
            monkeypatch.setattr(progress, "QUIET_LINE_S", 0.0)
            progress.epoch_done(2, 10)
            progress.epoch_done(1, 2)  # the count starts again: a refit
        progress.epoch_done(3, 10)  # no listener once the run's progress is closed
    lines = _lines(caplog)
    assert len(lines) == 2
    assert lines[0].startswith("fold 3: epoch 2/10, ") and "left in this fold" in lines[0]
    assert lines[1].startswith("fold 3: refit epoch 1/2, ")


def test_folds_in_workers_report_no_epochs(monkeypatch, caplog):
    monkeypatch.setattr(progress, "QUIET_LINE_S", 0.0)
    with caplog.at_level(logging.INFO, logger="usbench"):
        with FoldProgress([1, 2], epochs=10, bar=False, in_workers=True) as shown:
            progress.epoch_done(1, 10)
            shown.fold_done()
    assert _lines(caplog) == []


def test_trials_off_a_terminal_say_how_many_are_done_and_the_time_left(caplog):
    counts = iter([2, 3, 4])
    with caplog.at_level(logging.INFO, logger="usbench"):
        with TrialProgress(4, lambda: next(counts), bar=False) as shown:
            for _ in range(3):
                shown()
    lines = _lines(caplog)
    assert [line.split(" trials done")[0] for line in lines] == ["2/4", "3/4"]
    assert all("left" in line for line in lines)


def test_a_keras_run_off_a_terminal_logs_its_epochs(tiny_root_ro, monkeypatch, caplog):
    from usbench.config import DataConfig, RunConfig
    from usbench.runner import run_experiment

    monkeypatch.setattr(progress, "QUIET_LINE_S", 0.0)
    cfg = RunConfig(data=DataConfig(root=str(tiny_root_ro)), features="mfcc-stats", model="mlp",
                    jobs=1, folds=(1, 2), fold_jobs=1,
                    overrides=(("epochs", "3"), ("hidden_units", "8"), ("patience", "0")))
    with caplog.at_level(logging.INFO, logger="usbench"):
        run_experiment(cfg, progress=False)
    epochs = [line for line in _lines(caplog) if ": epoch " in line]
    assert [line.split(",")[0] for line in epochs] == [
        "fold 1: epoch 1/3", "fold 1: epoch 2/3", "fold 1: epoch 3/3",
        "fold 2: epoch 1/3", "fold 2: epoch 2/3", "fold 2: epoch 3/3"]
