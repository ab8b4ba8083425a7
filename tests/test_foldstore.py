"""`usbench run` keeps each finished fold and resumes by fold: after a crash, Ctrl-C, SIGTERM
or SIGKILL the same command trains only the folds left, with the same record; a changed
configuration, ``--fresh`` or a damaged fold record trains again. Killed runs leave no worker."""

import logging
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.conftest import alive, assert_all_end, descendants, kill_all, run_cli
from usbench import cv
from usbench.config import DataConfig, RunConfig
from usbench.foldstore import FoldStore
from usbench.runner import run_experiment

pytestmark = pytest.mark.usefixtures("in_tmp")  # results/ of its own

FOLDS = (1, 2, 3)


def _cfg(root, **kw):
    base = dict(data=DataConfig(root=str(root)), features="mfcc-stats", model="logreg", jobs=1,
                folds=FOLDS)
    return RunConfig(**{**base, **kw})


class Crash(Exception):
    pass


@pytest.fixture
def trained(monkeypatch) -> list[int]:
    """The folds this process trains, in order."""
    seen, real = [], cv._fit_predict

    def spy(make_estimator, fold, *args):
        seen.append(fold)
        return real(make_estimator, fold, *args)

    monkeypatch.setattr(cv, "_fit_predict", spy)
    return seen


def _crash_after_first_fold(monkeypatch, cfg) -> None:
    """Run `cfg` until it has kept one fold, then crash as a killed process would."""
    real = FoldStore.save

    def save_once(self, r):
        if any(self.folder.glob("fold-*.npz")):
            raise Crash
        real(self, r)

    with monkeypatch.context() as m:
        m.setattr(FoldStore, "save", save_once)
        with pytest.raises(Crash):
            run_experiment(cfg, progress=False)


def _folds_kept(in_tmp) -> list[str]:
    return sorted(p.name for p in (in_tmp / "results" / "folds").glob("*/fold-*.npz"))


def test_crashed_run_trains_only_the_folds_left_and_records_the_same(
        tiny_root_ro, in_tmp, monkeypatch, trained, caplog):
    from mlflow.tracking import MlflowClient

    whole = run_experiment(_cfg(tiny_root_ro), progress=False)
    assert _folds_kept(in_tmp) == []  # recorded: nothing left to resume
    _crash_after_first_fold(monkeypatch, _cfg(tiny_root_ro))
    assert _folds_kept(in_tmp) == ["fold-1.npz"]
    client = MlflowClient(f"sqlite:///{in_tmp / 'results' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("synthetic")
    assert len(client.search_runs([experiment.experiment_id])) == 1  # the crash logged none

    trained.clear()
    with caplog.at_level(logging.INFO, logger="usbench"):
        resumed = run_experiment(_cfg(tiny_root_ro), progress=False)
    assert trained == [2, 3]
    lines = [r.getMessage() for r in caplog.records if "resuming" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith("resuming: fold(s) 1 already done (")
    assert lines[0].endswith("training 2, 3")
    assert resumed.config_id == whole.config_id
    assert ((resumed.folder / "predictions.csv").read_bytes()
            == (whole.folder / "predictions.csv").read_bytes())
    assert resumed.scores.accuracy == whole.scores.accuracy
    assert [f.fold for f in resumed.folds] == list(FOLDS)
    assert len(client.search_runs([experiment.experiment_id])) == 2  # one per finished run
    assert not (in_tmp / "results" / "folds").exists()


def test_a_changed_configuration_never_reuses_a_kept_fold(tiny_root_ro, in_tmp, monkeypatch,
                                                          trained, caplog):
    _crash_after_first_fold(monkeypatch, _cfg(tiny_root_ro))
    trained.clear()
    with caplog.at_level(logging.INFO, logger="usbench"):
        run_experiment(_cfg(tiny_root_ro, overrides=(("C", "0.5"),)), progress=False)
    assert trained == list(FOLDS)
    assert "resuming" not in caplog.text
    assert _folds_kept(in_tmp) == ["fold-1.npz"]  # still there for its own configuration


def test_fresh_discards_kept_folds_and_is_silent_when_there_are_none(
        tiny_root_ro, in_tmp, monkeypatch, trained, caplog):
    _crash_after_first_fold(monkeypatch, _cfg(tiny_root_ro))
    trained.clear()
    with caplog.at_level(logging.INFO, logger="usbench"):
        run_experiment(_cfg(tiny_root_ro), progress=False, fresh=True)
    assert trained == list(FOLDS)
    assert "--fresh: discarded kept fold(s) 1 (" in caplog.text
    assert "resuming" not in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="usbench"):
        assert run_cli("run", "--model", "logreg", "--features", "mfcc-stats", "--data",
                       str(tiny_root_ro), "--folds", "1,2", "--jobs", "1",
                       "--fresh") == 0
    assert "--fresh" not in caplog.text


@pytest.mark.parametrize("damage", ["truncated", "bad json", "other rows"])
def test_a_damaged_fold_record_is_dropped_with_a_warning_and_trained_again(
        tiny_root_ro, in_tmp, monkeypatch, trained, caplog, damage):
    _crash_after_first_fold(monkeypatch, _cfg(tiny_root_ro))
    path = next((in_tmp / "results" / "folds").glob("*/fold-1.npz"))
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    else:
        with np.load(path) as z:
            parts = dict(z)
        if damage == "bad json":
            parts["meta"] = np.array('{"fold": 1, "n_train"')
        else:
            parts["test_index"] = parts["test_index"][:-1]
        with open(path, "wb") as f:
            np.savez(f, **parts)
    trained.clear()
    with caplog.at_level(logging.INFO, logger="usbench"):
        out = run_experiment(_cfg(tiny_root_ro), progress=False)
    assert trained == list(FOLDS)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and f"kept fold record {path} is damaged" in warnings[0]
    assert "fold 1 is trained again" in warnings[0]
    assert "resuming" not in caplog.text
    assert [f.fold for f in out.folds] == list(FOLDS)


def test_fold_store_round_trips_a_fold_exactly(tmp_path):
    r = cv.FoldResult(fold=4, test_index=np.array([3, 7, 9]),
                      proba=np.random.default_rng(0).dirichlet(np.ones(5), size=3),
                      y_true=np.array([0, 4, 2]), n_train=11, fit_seconds=1 / 3,
                      predict_seconds=0.1, history={"epochs_run": np.int64(5),
                                                    "val_accuracy": [0.5, 0.25]},
                      started=1.7e9 + 1 / 7, ended=1.7e9 + 2.5)
    store = FoldStore(tmp_path / "abc")
    store.save(r)
    assert sorted(p.name for p in store.folder.iterdir()) == ["fold-4.npz"]  # no temp left
    back = store.load({4: np.array([3, 7, 9]), 5: np.array([1])}, 5)
    assert list(back) == [4]
    got = back[4]
    np.testing.assert_array_equal(got.proba, r.proba)
    np.testing.assert_array_equal(got.y_true, r.y_true)
    assert (got.fit_seconds, got.started, got.ended) == (r.fit_seconds, r.started, r.ended)
    assert got.history == {"epochs_run": 5, "val_accuracy": [0.5, 0.25]}
    assert store.discard() == [4] and not store.folder.exists()
    assert store.discard() == []


# -- killed processes ------------------------------------------------------------------------

# Long enough MLP folds on the tiny data to be caught in the middle of one.
SLOW_MLP = ["--model", "mlp", "--set", "epochs=1000", "--set", "patience=0",
            "--set", "hidden_units=16"]


def _start(root, in_tmp, *extra):
    cmd = [sys.executable, "-m", "usbench", "run", "--data", str(root), "--features",
           "mfcc-stats", "--jobs", "1", "--folds", "1,2,3", *SLOW_MLP, *extra]
    err = open(in_tmp / "run.err", "w")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, cwd=in_tmp)
    err.close()
    return proc


def _wait_for(what, proc, log, within: float = 240.0):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline and proc.poll() is None:
        if what():
            return
        time.sleep(0.2)
    kill_all([proc.pid])
    raise AssertionError(f"gave up waiting; the run said:\n{log.read_text()[-1500:]}")


@pytest.mark.slow
def test_sigterm_says_terminated_keeps_folds_and_the_same_command_resumes(tiny_root_ro, in_tmp):
    proc = _start(tiny_root_ro, in_tmp, "--fold-jobs", "1")
    log = in_tmp / "run.err"
    _wait_for(lambda: _folds_kept(in_tmp), proc, log)
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=60) == 143
    err = log.read_text().strip().splitlines()
    assert err[-1] == ("usbench: terminated (SIGTERM); finished work is kept and the next run "
                       "resumes it.")
    kept = _folds_kept(in_tmp)
    assert kept and "fold-3.npz" not in kept
    again = subprocess.run(proc.args, capture_output=True, text=True, cwd=in_tmp, timeout=300)
    assert again.returncode == 0, again.stderr[-1500:]
    done = ", ".join(k.removeprefix("fold-").removesuffix(".npz") for k in kept)
    assert f"resuming: fold(s) {done} already done (" in again.stderr
    assert _folds_kept(in_tmp) == []


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="finds processes in /proc")
def test_sigkill_during_folds_leaves_no_fold_worker_behind(tiny_root_ro, in_tmp):
    proc = _start(tiny_root_ro, in_tmp, "--fold-jobs", "2")
    log = in_tmp / "run.err"
    workers: set[int] = set()
    try:
        def two_workers() -> bool:
            workers.update(descendants(proc.pid))
            return "(2 at a time)" in log.read_text() and len(descendants(proc.pid)) >= 2

        _wait_for(two_workers, proc, log)
        time.sleep(3)  # the workers are in their folds
        workers.update(descendants(proc.pid))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert_all_end(workers, within=10)
    finally:
        kill_all(pid for pid in workers if alive(pid))
