"""`usbench sweep`: small sweeps of each family, resume, workers, nesting, bad input."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing

import numpy as np
import optuna
import pytest

from tests.conftest import alive, assert_all_end, descendants, kill_all, run_cli
from usbench import study as study_mod
from usbench import sweep as sweep_mod
from usbench.config import DataConfig, SweepConfig
from usbench.errors import ConfigError
from usbench.sweep import sweep

FAST = {  # fixed parameters that keep every family's trials to a fraction of a second
    "logreg": (),
    "rf": (("n_estimators", "20"),),
    "mlp": (("epochs", "2"), ("hidden_units", "8"), ("patience", "1")),
    "cnn": (("epochs", "1"), ("filters", "2,2,2"), ("dense_units", "4"), ("patience", "1")),
}


pytestmark = pytest.mark.usefixtures("in_tmp")  # results/ of its own


@pytest.fixture(scope="module")
def three_folds(tmp_path_factory):
    """The tiny dataset cut to folds 1-3 (60 clips): 3-fold leave-one-fold-out."""
    import shutil

    from tests.conftest import TINY
    from usbench.datasets.synthetic import generate

    root = generate(tmp_path_factory.mktemp("three") / "root", TINY)
    for fold in range(4, 11):
        shutil.rmtree(root / "audio" / f"fold{fold}")
        (root / "audio" / f"fold{fold}").mkdir()
    return root


def _cfg(root, model="logreg", **kw):
    features = "logmel" if model == "cnn" else "mfcc-mean"
    base = dict(data=DataConfig(root=str(root), allow_missing=True), model=model,
                features=features, trials=3, jobs=1, overrides=FAST[model])
    return SweepConfig(**{**base, **kw})


def _study(in_tmp, name):
    return optuna.load_study(study_name=name,
                             storage=f"sqlite:///{in_tmp / 'results' / 'optuna.db'}")


@pytest.mark.slow
@pytest.mark.parametrize("model", ["logreg", "rf", "mlp", "cnn"])
def test_small_sweep_of_each_family(three_folds, in_tmp, model):
    out = sweep(_cfg(three_folds, model, trials=2), progress=False)
    study = _study(in_tmp, out.study_name)
    assert len(study.trials) == 2 and out.n_trials == 2
    assert out.best_value == pytest.approx(max(t.value for t in study.trials
                                               if t.value is not None))
    assert sorted(out.fold_accuracy) == [1, 2, 3]
    assert out.reproduce.startswith(f"usbench run --model {model} --features ")
    assert study.user_attrs["usbench.model"] == model


@pytest.mark.slow
def test_rerun_adds_trials_and_best_run_reproduces(three_folds, in_tmp, capsys):
    first = sweep(_cfg(three_folds, trials=2), progress=False)
    second = sweep(_cfg(three_folds, trials=4), progress=False)
    assert first.study_name == second.study_name
    assert len(_study(in_tmp, second.study_name).trials) == 4
    argv = second.reproduce.split()[1:] + ["--jobs", "1"]
    assert run_cli(*argv) == 0
    printed = capsys.readouterr().out
    for fold, acc in second.fold_accuracy.items():
        assert f"{fold:>4}     20     {acc:.3f}" in printed


@pytest.mark.slow
def test_mlflow_parent_and_trial_runs(three_folds, in_tmp):
    from mlflow.tracking import MlflowClient

    out = sweep(_cfg(three_folds, trials=3), progress=False)
    client = MlflowClient(f"sqlite:///{in_tmp / 'results' / 'mlflow.db'}")
    parent = client.get_run(out.parent_run_id)
    assert parent.data.tags["usbench.kind"] == "sweep"
    assert parent.data.metrics["best_accuracy"] == pytest.approx(out.best_value)
    assert {a.path for a in client.list_artifacts(out.parent_run_id)} >= {
        "optimization_history.png"}
    exp = parent.info.experiment_id
    children = client.search_runs([exp], f"tags.mlflow.parentRunId = '{out.parent_run_id}'")
    assert len(children) == 3
    for child in children:
        assert child.data.tags["usbench.kind"] == "trial"
        assert child.data.tags["usbench.selection"] == "selected on CV"
        assert "accuracy" in child.data.metrics


def test_a_trial_that_cannot_be_logged_is_failed_in_mlflow_and_the_sweep_goes_on(
        three_folds, in_tmp, caplog):
    from mlflow.tracking import MlflowClient

    (in_tmp / "results").mkdir()
    (in_tmp / "results" / "mlartifacts").write_text("not a folder")  # no artifact is logged
    caplog.set_level("WARNING", logger="usbench")
    out = sweep(_cfg(three_folds, trials=2), progress=False)
    assert len(_study(in_tmp, out.study_name).trials) == 2  # both trials count
    client = MlflowClient(f"sqlite:///{in_tmp / 'results' / 'mlflow.db'}")
    trials = client.search_runs([e.experiment_id for e in client.search_experiments()],
                                "tags.`usbench.kind` = 'trial'")
    assert sorted(r.info.status for r in trials) == ["FAILED", "FAILED"]
    warnings = [r.getMessage() for r in caplog.records if "is marked FAILED" in r.getMessage()]
    assert len(warnings) == 2 and all(w.startswith("warning: Could not log to MLflow at ")
                                      for w in warnings)
    assert all((in_tmp / "results" / "runs" / r.info.run_name / "result.json").is_file()
               for r in trials)


@pytest.mark.slow
def test_failing_trial_is_recorded_and_the_sweep_goes_on(three_folds, in_tmp, monkeypatch):
    from mlflow.tracking import MlflowClient

    import usbench.runner

    real = usbench.runner.evaluate
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("boom")
        return real(*args, **kwargs)

    monkeypatch.setattr(usbench.runner, "evaluate", flaky)
    out = sweep(_cfg(three_folds, trials=3), progress=False)
    trials = _study(in_tmp, out.study_name).trials
    failed = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
    assert len(trials) == 3 and len(failed) == 1
    assert failed[0].user_attrs["error"] == "RuntimeError: boom"
    client = MlflowClient(f"sqlite:///{in_tmp / 'results' / 'mlflow.db'}")
    runs = client.search_runs(
        [client.get_run(out.parent_run_id).info.experiment_id],
        "tags.`usbench.trial_state` = 'failed'")
    assert len(runs) == 1 and runs[0].data.tags["usbench.error"] == "RuntimeError: boom"
    assert runs[0].data.tags["mlflow.parentRunId"] == out.parent_run_id


def test_study_for_another_model_is_refused(three_folds):
    sweep(_cfg(three_folds, trials=1, study="shared"), progress=False)
    with pytest.raises(ConfigError) as err:
        sweep(_cfg(three_folds, "rf", trials=1, study="shared"), progress=False)
    assert str(err.value) == ("Study 'shared' was created for model 'logreg', not 'rf'. Pass "
                              "another --study name (or the matching settings) to keep both.")
    from mlflow.tracking import MlflowClient

    client = MlflowClient("sqlite:///results/mlflow.db")
    sweeps = client.search_runs([e.experiment_id for e in client.search_experiments()],
                                "tags.`usbench.kind` = 'sweep'")
    assert [r.info.status for r in sweeps] == ["FINISHED"]  # the refused sweep logged nothing


@pytest.mark.slow
def test_two_workers_run_exactly_the_requested_trials(three_folds, in_tmp):
    out = sweep(_cfg(three_folds, trials=6, workers=2), progress=False)
    trials = _study(in_tmp, out.study_name).trials
    assert len(trials) == 6
    assert sorted(t.number for t in trials) == list(range(6))
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)


def _poll(path, query: str) -> list[tuple] | None:
    """Rows of `query` on the study database at `path`, read-only; None before the command
    has created it. optuna.load_study would create the schema itself, racing the command's
    own creation of it ("table study_directions already exists"), which ends the command."""
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as con:
            return con.execute(query).fetchall()
    except sqlite3.Error:
        return None


FINISHED = "SELECT count(*) FROM trials WHERE state IN ('COMPLETE', 'PRUNED', 'FAIL')"


@pytest.mark.slow
def test_killed_sweep_resumes_with_finished_trials_intact(three_folds, in_tmp):
    cmd = [sys.executable, "-m", "usbench", "sweep", "--model", "logreg", "--features",
           "mfcc-mean", "--data", str(three_folds), "--allow-missing", "--trials", "200",
           "--jobs", "1"]
    log = in_tmp / "sweep.err"
    with open(log, "w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
    path = in_tmp / "results" / "optuna.db"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.5)
        if (_poll(path, FINISHED) or [(0,)])[0][0] >= 3:
            break
    assert proc.poll() is None, f"the sweep ended before it was killed:\n{log.read_text()[-1500:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    study = optuna.load_study(study_name="synthetic-logreg-mfcc-mean", storage=f"sqlite:///{path}")
    done = [t for t in study.trials if t.state.is_finished()]
    assert len(done) >= 3, "the sweep did not finish 3 trials in time"
    before = {t.number: t.value for t in done}

    out = sweep(_cfg(three_folds, trials=len(before) + 2), progress=False)
    study = _study(in_tmp, out.study_name)
    finished = {t.number: t.value for t in study.trials if t.state.is_finished()}
    assert all(finished[n] == v for n, v in before.items())
    assert study_mod.finished_trials(study) == len(before) + 2


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="finds processes in /proc")
def test_killed_sweep_leaves_no_worker_behind(three_folds, in_tmp):
    import socket

    cmd = [sys.executable, "-m", "usbench", "sweep", "--model", "logreg", "--features",
           "mfcc-mean", "--data", str(three_folds), "--allow-missing", "--trials", "200",
           "--jobs", "1", "--workers", "2"]
    log = in_tmp / "sweep.err"
    with open(log, "w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
    path = in_tmp / "results" / "optuna.db"
    workers, busy = set(), False
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None and not busy:
            time.sleep(0.2)
            workers = descendants(proc.pid)
            rows = _poll(path, "SELECT value_json FROM trial_user_attributes "
                               "WHERE key = 'worker'") or []
            ids = {f"{socket.gethostname()}:{pid}" for pid in workers}
            busy = any(json.loads(value) in ids for (value,) in rows)
        assert proc.poll() is None, (
            f"the sweep ended before it was killed:\n{log.read_text()[-1500:]}")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert busy, "the extra worker ran no trial before the sweep ended or the time ran out"
        assert_all_end(workers)
    finally:
        kill_all(pid for pid in workers if alive(pid))


def test_nested_never_shows_the_outer_fold_to_its_study(three_folds, monkeypatch):
    seen = []
    real = sweep_mod.run_study

    def spy(cfg, inp, name, storage_url, target, test_folds, parent):
        seen.append((target.nested_outer, set(np.unique(inp.folds)), set(test_folds)))
        return real(cfg, inp, name, storage_url, target, test_folds, parent)

    monkeypatch.setattr(sweep_mod, "run_study", spy)
    out = sweep(_cfg(three_folds, trials=2, nested=True), progress=False)
    assert [s[0] for s in seen] == [1, 2, 3]
    for outer, folds_in_study, tested in seen:
        assert outer not in folds_in_study and outer not in tested
        assert folds_in_study == {1, 2, 3} - {outer}
    assert out.selection == "nested" and sorted(out.fold_accuracy) == [1, 2, 3]
    assert out.nested_run.run_id


def test_trials_must_be_positive(capsys):
    for n in ("0", "-3"):
        assert run_cli("sweep", "--model", "rf", "--features", "mfcc-stats",
                       "--trials", n) == 2
        assert capsys.readouterr().err.strip() == (
            f"usbench: error: --trials must be at least 1, got {n}.")


def test_unreachable_storage_fails_before_any_work(capsys, isolated_cache):
    assert run_cli("sweep", "--model", "rf", "--features", "mfcc-stats", "--trials", "2",
                   "--storage", "postgresql+psycopg2://u:p@127.0.0.1:9/none") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("usbench: error: Cannot open the Optuna storage "
                          "postgresql+psycopg2://u:***@127.0.0.1:9/none (")
    assert err.endswith("Check --storage: sqlite:///path.db, postgresql+psycopg2://user@host/db "
                        "(its password in PGPASSWORD or ~/.pgpass) or journal:///path.log.")
    assert not isolated_cache.exists()


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code", "said"), [
    (signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated (SIGTERM)")])
def test_ctrl_c_or_sigterm_leaves_the_study_consistent_and_resumable(three_folds, in_tmp, sig,
                                                                    code, said):
    from mlflow.tracking import MlflowClient

    cmd = [sys.executable, "-m", "usbench", "sweep", "--model", "logreg", "--features",
           "mfcc-mean", "--data", str(three_folds), "--allow-missing", "--trials", "200",
           "--jobs", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    path = in_tmp / "results" / "optuna.db"
    db = f"sqlite:///{path}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.5)
        if (_poll(path, FINISHED) or [(0,)])[0][0] >= 2:
            break
    proc.send_signal(sig)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == code, err[-1500:]
    assert f"usbench: {said}; finished work is kept and the next run resumes it." in err
    study = optuna.load_study(study_name="synthetic-logreg-mfcc-mean", storage=db)
    assert not [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
    client = MlflowClient(f"sqlite:///{in_tmp / 'results' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("synthetic").experiment_id],
                              "tags.`usbench.kind` = 'sweep'")
    assert [r.info.status for r in runs] == ["KILLED"]
    n = study_mod.finished_trials(study)
    sweep(_cfg(three_folds, trials=n + 1), progress=False)
    assert study_mod.finished_trials(study) == n + 1


@pytest.mark.slow
def test_nested_workers_train_inner_trials_without_the_outer_fold(three_folds, in_tmp):
    import json

    sweep(_cfg(three_folds, trials=2, nested=True, workers=2), progress=False)
    inner = []
    for result in (in_tmp / "results" / "runs").glob("*/result.json"):
        data = json.loads(result.read_text())
        if data["tags"]["usbench.kind"] == "inner_trial":
            inner.append(data)
            assert data["tags"]["usbench.selection"] == "nested (inner folds)"
    assert len(inner) == 6  # 3 outer folds x 2 trials, half of them run by the second worker
    for data in inner:
        outer = int(data["tags"]["usbench.study"].rsplit("outer", 1)[1])
        assert str(outer) not in data["params"]["folds"].split(",")
        # 3 folds of 20 clips: an inner fold is trained on the one other inner fold only.
        assert {f["train_clips"] for f in data["folds"]} == {20}

    # Whichever worker ran them, inner trials never reach the leaderboard: one nested row.
    from usbench import tracking
    from usbench.leaderboard import build

    board = build(tracking.fetch_runs(f"sqlite:///{in_tmp / 'results' / 'mlflow.db'}",
                                      None)[0], include_partial=True)  # folds 1-3 of 10
    assert [r.selection for r in board.rows] == ["nested"]


@pytest.mark.slow
def test_nested_config_id_depends_on_choices_and_settings(three_folds, in_tmp):
    a = sweep(_cfg(three_folds, trials=2, nested=True), progress=False).nested_run
    b = sweep(_cfg(three_folds, trials=3, nested=True, study="other"),
              progress=False).nested_run
    assert a.config_id != b.config_id


@pytest.mark.slow
def test_reproduce_keeps_fixed_sets_and_is_labelled_selected_on_cv(three_folds, in_tmp,
                                                                    capsys):
    from mlflow.tracking import MlflowClient

    out = sweep(_cfg(three_folds, trials=2, overrides=(("max_iter", "3"),)), progress=False)
    assert "--set max_iter=3" in out.reproduce
    assert out.reproduce.endswith(f"--from-study {out.study_name}")
    assert run_cli(*out.reproduce.split()[1:], "--jobs", "1") == 0
    printed = capsys.readouterr().out
    assert f"accuracy {out.best_value:.3f}" in printed
    run_id = printed.split("MLflow run ")[1].split(";")[0]
    tags = MlflowClient(f"sqlite:///{in_tmp / 'results' / 'mlflow.db'}").get_run(
        run_id).data.tags
    assert tags["usbench.selection"] == "selected on CV"
    assert tags["usbench.study"] == out.study_name


def test_study_refuses_other_fixed_sets_seed_or_pruner(three_folds):
    sweep(_cfg(three_folds, trials=1, overrides=(("max_iter", "3"),)), progress=False)
    with pytest.raises(ConfigError) as err:
        sweep(_cfg(three_folds, trials=2, overrides=(("max_iter", "5"),)), progress=False)
    assert str(err.value) == (
        "Study 'synthetic-logreg-mfcc-mean' was created for overrides 'max_iter=3', not "
        "'max_iter=5'. Pass another --study name (or the matching settings) to keep both.")
    for change in ({"seed": 1}, {"pruner": "none"}):
        with pytest.raises(ConfigError, match="was created for (seed|pruner)"):
            sweep(_cfg(three_folds, trials=2, overrides=(("max_iter", "3"),), **change),
                  progress=False)


def _draws(study):
    return [tuple(sorted(t.params.items())) for t in study.trials]


@pytest.mark.slow
def test_resumed_and_shared_sweeps_never_repeat_a_draw(three_folds, in_tmp):
    sweep(_cfg(three_folds, "rf", trials=3), progress=False)
    out = sweep(_cfg(three_folds, "rf", trials=6), progress=False)  # resumed
    draws = _draws(_study(in_tmp, out.study_name))
    assert len(draws) == 6 and len(set(draws)) == 6
    shared = sweep(_cfg(three_folds, "rf", trials=6, workers=2, study="two"), progress=False)
    draws = _draws(_study(in_tmp, shared.study_name))
    assert len(draws) == 6 and len(set(draws)) == 6
    again = sweep(_cfg(three_folds, "rf", trials=3, study="again"), progress=False)
    assert _draws(_study(in_tmp, again.study_name)) == _draws(
        _study(in_tmp, out.study_name))[:3]  # a fresh study with one seed repeats itself


@pytest.mark.slow
def test_stale_trials_and_sweep_runs_of_a_dead_process_are_failed_at_once(three_folds,
                                                                          in_tmp):
    import socket

    from mlflow.tracking import MlflowClient

    from usbench import tracking

    first = sweep(_cfg(three_folds, trials=1), progress=False)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    worker = f"{socket.gethostname()}:{dead.pid}"
    study = _study(in_tmp, first.study_name)
    stale = study.ask()
    stale.set_user_attr("worker", worker)
    uri = f"sqlite:///{in_tmp / 'results' / 'mlflow.db'}"
    parent = tracking.start_parent(uri, in_tmp / "results" / "mlartifacts", "synthetic", "k",
                                   {}, {"usbench.study": first.study_name,
                                        "usbench.kind": "sweep", "usbench.worker": worker})
    out = sweep(_cfg(three_folds, trials=2), progress=False)
    states = {t.number: t.state for t in _study(in_tmp, out.study_name).trials}
    assert states[stale.number] == optuna.trial.TrialState.FAIL
    assert study_mod.finished_trials(study) == 2  # the failed trial is not counted
    assert sum(s == optuna.trial.TrialState.COMPLETE for s in states.values()) == 2
    assert MlflowClient(uri).get_run(parent).info.status == "KILLED"


def test_timeout_must_be_positive(capsys):
    for value in ("0", "-5"):
        assert run_cli("sweep", "--model", "rf", "--features", "mfcc-stats", "--trials", "2",
                       "--timeout", value) == 2
        assert capsys.readouterr().err.strip() == (
            f"usbench: error: --timeout must be a positive number of seconds, got {value}. "
            "Leave it out to run until --trials are done.")
