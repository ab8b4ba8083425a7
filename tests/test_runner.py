"""`usbench run` end to end on the tiny dataset: the MLflow record, reproducibility, predict,
and every bad input as a one-line error with nothing lost."""

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from tests.conftest import cli_error, run_cli, run_id_of
from usbench.config import DataConfig, RunConfig
from usbench.errors import ConfigError, DatasetError, FeatureError
from usbench.runner import check_finite, run_experiment

TINY_MLP = (("epochs", "3"), ("hidden_units", "16,16"), ("patience", "2"))
TINY_CNN = (("epochs", "2"), ("filters", "4,4,4"), ("dense_units", "8"), ("patience", "1"))


pytestmark = pytest.mark.usefixtures("in_tmp")  # results/ of its own


def _cfg(root, **kw):
    base = dict(data=DataConfig(root=str(root)), features="mfcc-stats", model="logreg", jobs=1)
    return RunConfig(**{**base, **kw})


def test_run_records_every_param_metric_artifact_and_tag(tiny_root_ro, in_tmp):
    from mlflow.tracking import MlflowClient

    out = run_experiment(_cfg(tiny_root_ro, folds=(1, 4, 10)), progress=False)
    assert out.run_id
    client = MlflowClient(f"sqlite:///{in_tmp / 'results' / 'mlflow.db'}")
    run = client.get_run(out.run_id)
    params = run.data.params
    assert params["model"] == "logreg" and params["features"] == "mfcc-stats"
    assert params["dataset"] == "synthetic" and params["folds"] == "1,4,10"
    assert params["seed"] == "0" and params["model.params.C"] == "1.0"
    assert params["features.n_mfcc"] == "20"
    metrics = run.data.metrics
    for name in ("accuracy", "accuracy_std", "macro_f1", "fit_seconds", "predict_seconds"):
        assert name in metrics
    assert metrics["accuracy"] == pytest.approx(out.scores.accuracy)
    history = client.get_metric_history(out.run_id, "fold_accuracy")
    assert sorted(m.step for m in history) == [1, 4, 10]
    assert np.mean([m.value for m in history]) == pytest.approx(metrics["accuracy"])
    artifacts = {a.path for a in client.list_artifacts(out.run_id)}
    assert {"config.json", "confusion_matrix.csv", "confusion_matrix.png", "predictions.csv",
            "classification_report.txt", "confusion_matrix_fold4.csv"} <= artifacts
    tags = run.data.tags
    assert tags["usbench.kind"] == "run" and tags["usbench.partial"] == "false"
    assert tags["usbench.config_id"] == out.config_id
    assert tags["usbench.device"].startswith("CPU (")  # a scikit-learn family
    for name in ("usbench.features_key", "usbench.dataset_fingerprint", "usbench.git_commit",
                 "usbench.version.numpy", "usbench.version.scikit-learn"):
        assert tags[name]
    local = json.loads((out.folder / "result.json").read_text())
    assert local["mlflow_run_id"] == out.run_id
    assert [f["fold"] for f in local["folds"]] == [1, 4, 10]
    predictions = pd.read_csv(out.folder / "predictions.csv")
    assert len(predictions) == 60 and set(predictions["fold"]) == {1, 4, 10}


def test_class_list_comes_from_the_dataset_table(tiny_root, in_tmp):
    table = pd.read_csv(tiny_root / "metadata" / "UrbanSound8K.csv")
    for name, fold in table.loc[table["classID"] == 3, ["slice_file_name", "fold"]].values:
        (tiny_root / "audio" / f"fold{fold}" / name).unlink()
    out = run_experiment(_cfg(tiny_root, data=DataConfig(root=str(tiny_root),
                                                         allow_missing=True), folds=(1, 2)),
                         progress=False)
    assert out.scores.confusion.shape == (10, 10) and out.partial
    assert all(r.proba.shape[1] == 10 for r in out.folds)
    columns = pd.read_csv(out.folder / "predictions.csv").columns
    assert "p_dog_bark" in columns


def test_same_seed_same_fold_accuracies_sklearn(tiny_root_ro):
    a = run_experiment(_cfg(tiny_root_ro, model="rf", folds=(2, 3),
                            overrides=(("n_estimators", "30"),)), progress=False)
    b = run_experiment(_cfg(tiny_root_ro, model="rf", folds=(2, 3),
                            overrides=(("n_estimators", "30"),)), progress=False)
    for x, y in zip(a.folds, b.folds, strict=True):
        np.testing.assert_array_equal(x.proba, y.proba)
    assert a.config_id == b.config_id


@pytest.mark.slow
def test_same_seed_same_fold_accuracies_keras(tiny_root_ro):
    runs = [run_experiment(_cfg(tiny_root_ro, model="mlp", folds=(5,), overrides=TINY_MLP),
                           progress=False) for _ in range(2)]
    np.testing.assert_array_equal(runs[0].folds[0].proba, runs[1].folds[0].proba)


@pytest.mark.slow
def test_folds_in_worker_processes_record_what_one_process_does(tiny_root_ro, monkeypatch):
    # The MLP's default on two cores: two workers, each held to one TensorFlow thread; the
    # same probabilities, bit for bit, as this process's training with TensorFlow's threads.
    import joblib

    from usbench import cv

    monkeypatch.setattr(joblib, "cpu_count", lambda: 2)
    real, jobs_seen = cv.leave_one_fold_out, []
    monkeypatch.setattr(cv, "leave_one_fold_out", lambda *a, n_jobs, **kw: (
        jobs_seen.append(n_jobs) or real(*a, n_jobs=n_jobs, **kw)))
    runs = [run_experiment(_cfg(tiny_root_ro, model="mlp", folds=(2, 5, 9), overrides=TINY_MLP,
                                fold_jobs=jobs), progress=False) for jobs in (1, None)]
    assert jobs_seen == [1, 2]
    assert json.loads((runs[1].folder / "config.json").read_text())["fold_jobs"] == 2
    assert [f.fold for f in runs[1].folds] == [2, 5, 9]
    for one, other in zip(runs[0].folds, runs[1].folds, strict=True):
        np.testing.assert_array_equal(one.proba, other.proba)
        assert one.history == other.history
    assert runs[0].config_id == runs[1].config_id
    assert runs[0].scores.accuracy == runs[1].scores.accuracy


def test_only_the_mlp_trains_folds_side_by_side_by_default(monkeypatch):
    import joblib

    from usbench.models import get_model

    monkeypatch.setattr(joblib, "cpu_count", lambda: 4)
    assert [get_model(m).fold_jobs(None, 10) for m in ("logreg", "rf", "mlp", "cnn")] == [
        1, 1, 4, 1]
    assert get_model("mlp").fold_jobs(None, 3) == 3  # no idle worker past the folds
    assert get_model("mlp").fold_jobs(1, 10) == 1 and get_model("rf").fold_jobs(3, 10) == 3
    assert get_model("rf").fold_jobs(16, 3) == 3  # what is recorded is what runs


def test_fold_jobs_above_the_cores_are_capped_with_a_notice(monkeypatch, caplog):
    import joblib

    from usbench.models import get_model

    monkeypatch.setattr(joblib, "cpu_count", lambda: 2)
    caplog.set_level("INFO", logger="usbench")
    assert get_model("mlp").fold_jobs(100, 10) == 2
    assert [r.getMessage() for r in caplog.records] == [
        "--fold-jobs 100: capped at this machine's 2 core(s) (more workers than cores only "
        "share them, and slow every fold)"]
    caplog.clear()
    assert get_model("mlp").fold_jobs(2, 10) == 2 and not caplog.records


@pytest.mark.slow
def test_cnn_runs_on_logmel(tiny_root_ro):
    out = run_experiment(_cfg(tiny_root_ro, model="cnn", features="logmel", folds=(1,),
                              overrides=TINY_CNN), progress=False)
    assert out.folds[0].proba.shape == (20, 10)
    assert out.folds[0].history["epochs_run"] >= 1


@pytest.mark.parametrize(("model", "overrides"), [("logreg", ()), ("mlp", TINY_MLP)])
def test_predict_round_trip(tiny_root_ro, capsys, in_tmp, model, overrides):
    args = ["run", "--model", model, "--features", "mfcc-mean", "--data", str(tiny_root_ro),
            "--folds", "1", "--save-model", "--jobs", "1"]
    for key, value in overrides:
        args += ["--set", f"{key}={value}"]
    assert run_cli(*args) == 0
    out = capsys.readouterr().out
    run_id = run_id_of(out)
    clip = sorted((tiny_root_ro / "audio" / "fold2").iterdir())[0]
    bad = in_tmp / "bad.wav"
    bad.write_text("not audio")
    nan = in_tmp / "nan.wav"  # a float WAV with a run of NaN samples
    samples = np.zeros(22050, np.float32)
    samples[100:200] = np.nan
    sf.write(nan, samples, 22050, subtype="FLOAT")
    assert run_cli("predict", str(bad), str(clip), str(nan), "--run", run_id) == 2
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert len(lines) == 1  # the good clip, between two bad ones
    assert lines[0].startswith(f"{clip}: ") and len(lines[0].split("  ")) == 3
    names = [part.rsplit(" ", 1)[0].split(": ")[-1] for part in lines[0].split("  ")]
    assert set(names) <= set(pd.read_csv(tiny_root_ro / "metadata" / "UrbanSound8K.csv")["class"])
    fix = ("Pass audio that libsndfile decodes (WAV, FLAC, OGG, AIFF) with finite samples; the "
           "other clips are classified.")
    assert captured.err.strip().splitlines() == [
        f"usbench: error: Could not decode {bad}: Format not recognised. {fix}",
        f"usbench: error: Could not decode {nan}: 100 of 22,050 frames hold NaN or infinite "
        f"samples. {fix}"]


def test_predict_unknown_run(capsys):
    assert run_cli("predict", "x.wav", "--run", "0123abcd") == 2
    assert "No MLflow run '0123abcd'" in capsys.readouterr().err


def test_predict_unreachable_server_is_not_an_unknown_run(capsys):
    assert run_cli("predict", "x.wav", "--run", "0123abcd", "--tracking-uri",
                   "http://127.0.0.1:9") == 2
    assert capsys.readouterr().err.splitlines() == [
        "usbench: error: Cannot reach the MLflow tracking server at http://127.0.0.1:9 "
        "(connection refused). Start the server, or pass the right --tracking-uri."]


def test_unreachable_tracking_server_is_an_error_naming_the_whole_local_record(
        tiny_root_ro, in_tmp, capsys):
    assert run_cli("run", "--model", "logreg", "--features", "mfcc-stats", "--data",
                   str(tiny_root_ro), "--folds", "1", "--jobs", "1", "--tracking-uri",
                   "http://127.0.0.1:9") == 2
    (folder,) = (in_tmp / "results" / "runs").iterdir()
    assert capsys.readouterr().err.splitlines()[-1] == (
        "usbench: error: Could not log to MLflow at http://127.0.0.1:9 (connection refused). "
        f"The complete result is kept in {folder}; check the store (--tracking-uri) and run "
        "again to log it.")
    local = json.loads((folder / "result.json").read_text())
    assert local["mlflow_run_id"] is None and 0 <= local["metrics"]["accuracy"] <= 1
    assert {"config.json", "predictions.csv", "confusion_matrix.png"} <= {
        p.name for p in folder.iterdir()}


def _runs(in_tmp):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{in_tmp / 'results' / 'mlflow.db'}")
    return client, client.search_runs([e.experiment_id for e in client.search_experiments()])


def test_a_logging_failure_marks_the_run_failed_and_exits_non_zero(tiny_root_ro, in_tmp,
                                                                   capsys):
    (in_tmp / "results").mkdir()
    (in_tmp / "results" / "mlartifacts").write_text("not a folder")  # artifacts cannot go
    assert run_cli("run", "--model", "logreg", "--features", "mfcc-stats", "--data",
                   str(tiny_root_ro), "--folds", "1", "--jobs", "1") == 2
    _, (run,) = _runs(in_tmp)
    assert run.info.status == "FAILED" and run.data.tags["usbench.error"]
    assert run.data.metrics["accuracy"] >= 0  # what was logged stays
    (folder,) = (in_tmp / "results" / "runs").iterdir()
    error = capsys.readouterr().err.splitlines()[-1]
    assert error.startswith("usbench: error: Could not log to MLflow at sqlite:///")
    assert f"MLflow run {run.info.run_id} is marked FAILED. The complete result is kept in " \
           f"{folder};" in error
    assert json.loads((folder / "result.json").read_text())["metrics"]["accuracy"] >= 0


def test_class_names_of_any_characters_reach_mlflow_and_the_leaderboard(tmp_path, in_tmp,
                                                                        capsys):
    from tests.datasets.layouts import esc50_root

    root = esc50_root(tmp_path / "esc", per_fold=1)
    table = pd.read_csv(root / "meta" / "esc50.csv")
    nasty = {"dog": "dog (bark)", "rooster": 'car, "horn"', "pig": "pig: oink!",
             "rain": "dog _bark_", "cow": "a//b/../c"}
    table["category"] = table["category"].replace(nasty)
    table.to_csv(root / "meta" / "esc50.csv", index=False)
    assert run_cli("run", "--model", "logreg", "--features", "mfcc-stats", "--data",
                   str(root), "--folds", "1,2", "--jobs", "1") == 0
    client, (run,) = _runs(in_tmp)
    assert run.info.status == "FINISHED"
    (folder,) = (in_tmp / "results" / "runs").iterdir()
    names = json.loads((folder / "result.json").read_text())["metric_names"]
    assert sorted(names.values()) == sorted([*nasty.values(), "sea_waves"])
    assert names["recall.dog _bark_"] == "dog (bark)"
    assert names["recall.dog _bark_-2"] == "dog _bark_"  # unique keys
    recall = {k: v for k, v in run.data.metrics.items() if k.startswith("recall.")}
    assert set(recall) == set(names)
    # the metric_names artifact maps the keys back to the real names
    local = client.download_artifacts(run.info.run_id, "result.json", str(tmp_path))
    assert json.loads(open(local).read())["metric_names"] == names
    capsys.readouterr()
    assert run_cli("leaderboard") == 0
    assert " logreg  mfcc-stats " in capsys.readouterr().out


def test_three_identical_runs_in_one_second_get_three_folders(tiny_root_ro, in_tmp,
                                                              monkeypatch):
    import time

    monkeypatch.setattr(time, "strftime", lambda fmt, *a: "20260101-000000")
    folders = [run_experiment(_cfg(tiny_root_ro, folds=(1,)), progress=False).folder
               for _ in range(3)]
    assert [f.name.removeprefix(folders[0].name) for f in folders] == ["", "-2", "-3"]
    assert all((f / "result.json").is_file() for f in folders)
    _, runs = _runs(in_tmp)
    assert sorted(r.info.run_name for r in runs) == sorted(f.name for f in folders)


def test_a_full_disk_under_results_is_one_line_and_leaves_no_partial_folder(
        tiny_root_ro, in_tmp, isolated_cache, monkeypatch, capsys):
    import errno

    from usbench import outputs

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(outputs, "plot_confusion", full)  # half the record is written by then
    assert run_cli("run", "--model", "logreg", "--features", "mfcc-stats", "--data",
                   str(tiny_root_ro), "--folds", "1", "--jobs", "1") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert [line for line in err if "error" in line] == err[-1:]  # the last line, the only one
    assert err[-1].startswith("usbench: error: Could not write the run's record logreg-")
    assert err[-1].endswith(f"under {in_tmp / 'results'}: No space left on device (nothing of "
                           "it is kept; the cached features stay). Free space under results/ "
                           "and run again.")
    assert list((in_tmp / "results" / "runs").iterdir()) == []
    assert list(isolated_cache.glob("features/mfcc-stats/*/features.npy"))  # features stay


def test_unknown_model(capsys):
    assert cli_error(capsys, "run", "--model", "mpl", "--features", "mfcc-stats") == (
        "Unknown model 'mpl'. Did you mean 'mlp'? Available: cnn, logreg, mlp, rf.")


def test_model_feature_mismatch_is_refused_before_any_work(capsys, isolated_cache):
    assert cli_error(capsys, "run", "--model", "cnn", "--features", "mfcc-stats") == (
        "Model 'cnn' needs matrix features but 'mfcc-stats' gives one vector per clip. Use "
        "--features logmel, stft or stft-mag.")
    assert not isolated_cache.exists()  # nothing generated, nothing extracted


def test_fold_without_clips(capsys, tiny_root_ro):
    msg = cli_error(capsys, "run", "--model", "logreg", "--features", "mfcc-mean", "--data",
                 str(tiny_root_ro), "--folds", "3,11")
    assert msg == ("--folds names fold 11, which has no clips. Folds with clips: "
                   "1, 2, 3, 4, 5, 6, 7, 8, 9, 10.")


def test_test_fold_with_empty_training_set(capsys, tiny_root):
    for fold in range(1, 11):
        if fold != 3:
            for f in (tiny_root / "audio" / f"fold{fold}").iterdir():
                f.unlink()
    msg = cli_error(capsys, "run", "--model", "logreg", "--features", "mfcc-mean", "--data",
                 str(tiny_root), "--allow-missing", "--folds", "3")
    assert msg.startswith("Testing fold 3 leaves no training data: it is the only fold with "
                          "clips.")


def test_set_unknown_key(capsys):
    msg = cli_error(capsys, "run", "--model", "logreg", "--features", "mfcc-stats", "--set",
                 "class_wieght=balanced")
    assert msg == ("Unknown parameter 'class_wieght' for model 'logreg'. Did you mean "
                   "'class_weight'? Valid: C, class_weight, max_iter.")


def test_set_wrong_type(capsys):
    msg = cli_error(capsys, "run", "--model", "mlp", "--features", "mfcc-stats", "--set",
                 "epochs=ten")
    assert msg == ("Parameter 'epochs' of model 'mlp' must be an int in [1, 1000], got 'ten'. "
                   "Example: --set epochs=100")


def test_non_finite_features_name_the_clips():
    X = np.ones((4, 3), np.float32)
    X[1, 2], X[3, 0] = np.nan, np.inf
    with pytest.raises(FeatureError) as err:
        check_finite(X, ["a.wav", "b.wav", "c.wav", "d.wav"])
    assert str(err.value) == ("2 clip(s) have NaN or infinite feature values (first: b.wav, "
                              "d.wav). Check those files, or rebuild the cache entry.")


def test_config_file_then_flags(tiny_root_ro, tmp_path, capsys):
    cfg = tmp_path / "run.toml"
    cfg.write_text(f'data = "{tiny_root_ro}"\nfolds = [2]\nseed = 3\n[params]\nC = 0.5\n')
    assert run_cli("run", "--model", "logreg", "--features", "mfcc-mean", "--config", str(cfg),
                   "--set", "C=0.25", "--jobs", "1") == 0
    folder = capsys.readouterr().out.split("local record: ")[1].split()[0]
    config = json.loads((tmp_path / folder / "result.json").read_text())
    assert config["params"]["model.params.C"] == 0.25
    assert config["params"]["seed"] == 3 and config["params"]["folds"] == "2"


def test_sweep_and_audit_take_a_config_file_too(tiny_root_ro, tmp_path, capsys):
    """Defaults < --config < flags for sweep and audit as for run; each refuses another
    command's keys, and a sweep needs its trials from one or the other."""
    import optuna

    sweep_file = tmp_path / "sweep.toml"
    sweep_file.write_text(f'data = "{tiny_root_ro}"\ntrials = 1\nseed = 4\npruner = "none"\n'
                          'study = "from-file"\n[params]\nmax_iter = 50\n')
    assert run_cli("sweep", "--model", "logreg", "--features", "mfcc-mean", "--config",
                   str(sweep_file), "--seed", "5", "--jobs", "1") == 0
    study = optuna.load_study(study_name="from-file",
                              storage=f"sqlite:///{tmp_path / 'results' / 'optuna.db'}")
    assert len(study.trials) == 1
    attrs = study.user_attrs
    assert (attrs["usbench.seed"], attrs["usbench.pruner"]) == (5, "none")
    assert "max_iter=50" in attrs["usbench.overrides"]
    audit_file = tmp_path / "audit.toml"
    audit_file.write_text(f'data = "{tiny_root_ro}"\nseed = 2\n')
    assert run_cli("audit", "--model", "logreg", "--features", "mfcc-mean", "--config",
                   str(audit_file), "--jobs", "1") == 0
    capsys.readouterr()
    [audit_run] = (tmp_path / "results" / "runs").glob("logreg-mfcc-mean-*")
    assert json.loads((audit_run / "result.json").read_text())["params"]["seed"] == 2
    audit_file.write_text("trials = 3\n")
    assert "unknown key 'trials'" in cli_error(
        capsys, "audit", "--model", "logreg", "--features", "mfcc-mean", "--config",
        str(audit_file))
    assert "needs the number of trials: --trials N" in cli_error(
        capsys, "sweep", "--model", "logreg", "--features", "mfcc-mean")


@pytest.mark.parametrize("line, message", [
    ('seed = "abc"', "'seed' must be an integer from 0 to 4,294,967,295, got 'abc'"),
    ("seed = -1", "'seed' must be an integer from 0 to 4,294,967,295, got -1"),
    ('folds = "12"', "'folds' must be a list of positive fold numbers"),
    ("folds = [1.5, 2]", "'folds' must be a list of positive fold numbers"),
    ('save_model = "false"', "'save_model' must be true or false, got 'false'"),
    ("trials = 0", "'trials' must be a positive integer, got 0"),
])
def test_config_values_are_checked_as_the_flags_are(tmp_path, capsys, line, message):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(line + "\n")
    command = "sweep" if line.startswith("trials") else "run"
    err = cli_error(capsys, command, "--model", "logreg", "--features", "mfcc-mean", "--config",
                    str(cfg))
    assert err == f"Config file {cfg}: {message}" + err.split(message)[1]
    assert err.endswith("Fix it in the file.")


@pytest.mark.parametrize("command", ["run", "sweep", "audit"])
@pytest.mark.parametrize("value", ["-5", "abc", str(2**32)])
def test_a_seed_numpy_refuses_is_a_one_line_error(capsys, command, value):
    extra = ["--trials", "1"] if command == "sweep" else []
    with pytest.raises(SystemExit) as exit_:
        run_cli(command, "--model", "logreg", "--features", "mfcc-mean", "--seed", value, *extra)
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1
    assert "argument --seed: expected" in err[0] and value.lstrip("-") in err[0]


@pytest.mark.parametrize("name", ["../../x", "a/b", "..", ".hidden", ""])
def test_an_experiment_is_a_name_not_a_path(capsys, name):
    err = cli_error(capsys, "run", "--model", "logreg", "--features", "mfcc-mean",
                    "--experiment", name)
    assert err.startswith(f"--experiment {name!r} is not an experiment name.")


def test_bad_config_file():
    from usbench.config import load_config_file

    with pytest.raises(ConfigError, match=r"^Config file nope\.toml not found\."):
        load_config_file("nope.toml")


def _another(value, allowed):
    """A different value of the same type that `allowed` admits."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, str):
        return next(c for c in allowed.choices if c != value)
    if isinstance(value, tuple):
        return (*value, value[-1])
    for other in (value + 1, value * 2, value / 2, value - 1):
        other = type(value)(other)
        if other != value and (allowed is None or allowed.admits(other)):
            return other
    raise AssertionError(f"no other value for {value!r}")


@pytest.mark.parametrize("model", ["logreg", "rf", "mlp", "cnn"])
def test_config_id_changes_with_every_parameter_and_setting(model, monkeypatch):
    from usbench import record as rec
    from usbench.models import get_model

    spec = get_model(model)
    base = dict(dataset="fp", features_key="fk", model=model, params=dict(spec.default_params),
                folds=[1, 2], seed=0)
    first = rec.make_config_id(**base)
    assert rec.make_config_id(**base) == first
    ids = {first}
    for key, value in spec.default_params.items():
        changed = {**spec.default_params, key: _another(value, spec.allowed.get(key))}
        spec.params(changed)  # still a valid configuration
        ids.add(rec.make_config_id(**{**base, "params": changed}))
    for key, value in (("dataset", "fp2"), ("features_key", "fk2"), ("folds", [1, 3]),
                       ("seed", 1)):
        ids.add(rec.make_config_id(**{**base, key: value}))
    ids.add(rec.make_config_id(**base, augment={"variants": 4}))
    ids.add(rec.make_config_id(**base, extra={"nested": {"trials": 3}}))
    assert len(ids) == len(spec.default_params) + 7
    library = "keras" if model in ("mlp", "cnn") else "scikit-learn"
    real = rec._versions
    monkeypatch.setattr(rec, "_versions", lambda names=rec.ALL_LIBRARIES: {
        **real(names), library: "0.0.1"})
    assert rec.make_config_id(**base) != first  # another release of the family's library


def test_recording_ids_reach_the_model_as_groups(tiny_root_ro, monkeypatch):
    from usbench.datasets import open_dataset
    from usbench.models.sklearn_models import SklearnClassifier

    seen = []
    real_fit = SklearnClassifier.fit

    def spy(self, X, y, groups=None, folds=None, variants=None):
        seen.append((groups.copy(), folds.copy()))
        return real_fit(self, X, y, groups=groups, folds=folds, variants=variants)

    monkeypatch.setattr(SklearnClassifier, "fit", spy)
    run_experiment(_cfg(tiny_root_ro, folds=(2, 5)), progress=False)
    table = open_dataset(DataConfig(root=str(tiny_root_ro))).clips
    assert len(seen) == 2
    for test_fold, (groups, folds) in zip((2, 5), seen, strict=True):
        train = table[table["fold"] != test_fold]
        assert groups.tolist() == train["recording"].tolist()  # the metadata's fsID, in order
        assert folds.tolist() == train["fold"].tolist()


def test_runs_on_features_built_with_skip_bad_are_tagged_partial(tiny_root, in_tmp):
    from mlflow.tracking import MlflowClient

    from tests.test_cache import _break_three
    from tests.test_cache import _cfg as build_cfg
    from usbench.build import build_features

    clips = build_features(build_cfg(tiny_root), progress=False).dataset.clips
    ids, _ = _break_three(tiny_root, clips)
    with pytest.raises(DatasetError, match="or pass --skip-bad to leave them out"):
        run_experiment(_cfg(tiny_root, folds=(1,)), progress=False)
    data = DataConfig(root=str(tiny_root), skip_bad=True)
    out = run_experiment(_cfg(tiny_root, folds=(1,), data=data), progress=False)
    assert out.partial
    client = MlflowClient(f"sqlite:///{in_tmp / 'results' / 'mlflow.db'}")
    assert client.get_run(out.run_id).data.tags["usbench.partial"] == "true"
    predicted = pd.read_csv(out.folder / "predictions.csv")["clip_id"]
    assert not set(ids) & set(predicted)


def test_what_a_process_killed_while_writing_a_record_left_is_removed(tiny_root_ro, in_tmp):
    import os
    import socket
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # a pid no process has
    runs, host = in_tmp / "results" / "runs", socket.gethostname()
    (runs / "rf-x-20260101-000000").mkdir(parents=True)
    (runs / f".rf-x-20260101-000000.writing-{host}-{child.pid}").mkdir()
    (runs / f".rf-x-20260101-000000.writing-{host}-{child.pid}" / "result.json").write_text("{")
    kept = ["kept", f".kept.writing-{host}-{os.getpid()}",  # a live process's
            f".y.writing-elsewhere-{child.pid}"]  # another host's
    for name in kept:
        (runs / name).mkdir()
    out = run_experiment(_cfg(tiny_root_ro, folds=(1,)), progress=False)
    assert sorted(p.name for p in runs.iterdir()) == sorted([*kept, out.folder.name])
