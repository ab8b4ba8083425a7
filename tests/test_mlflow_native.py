"""What MLflow users expect of a run: true run times, dataset inputs, a model MLflow loads and
serves, the published leaderboard in the UI, Optuna studies that point at their MLflow runs,
and the runs page looked at in a real browser."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import cli_error, missing_tool, run_cli, run_id_of
from tests.datasets.layouts import esc50_root

pytestmark = pytest.mark.usefixtures("in_tmp")  # results/ of its own


@pytest.fixture(scope="module")
def esc_ro(tmp_path_factory):
    return esc50_root(tmp_path_factory.mktemp("esc") / "ESC-50")


def _client(in_tmp) -> MlflowClient:
    return MlflowClient(f"sqlite:///{in_tmp / 'results' / 'mlflow.db'}")




def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.communicate()[1][-2000:]}")
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"{url} did not answer within {within} s")


@pytest.fixture
def saved(esc_ro, in_tmp, capsys):
    """A logreg run on the ESC-50-layout root with --save-model --register pets."""
    assert run_cli("run", "--model", "logreg", "--features", "mfcc-mean", "--data",
                   str(esc_ro), "--jobs", "1", "--save-model", "--register", "pets") == 0
    return run_id_of(capsys.readouterr().out)


def test_run_times_are_the_evaluation(tiny_root_ro, in_tmp, capsys):
    t0 = time.time()
    assert run_cli("run", "--model", "rf", "--features", "mfcc-mean", "--data",
                   str(tiny_root_ro), "--folds", "1,2", "--set", "n_estimators=200",
                   "--jobs", "1") == 0
    run = _client(in_tmp).get_run(run_id_of(capsys.readouterr().out))
    m = run.data.metrics
    duration = (run.info.end_time - run.info.start_time) / 1000
    assert abs(duration - (m["fit_seconds"] + m["predict_seconds"])) < 1.0
    # The run starts when the evaluation does: after the command started (feature extraction
    # included before it), not when it was logged.
    assert t0 * 1000 < run.info.start_time < run.info.end_time


def test_dataset_inputs_name_the_data_and_features(tiny_root_ro, esc_ro, in_tmp, capsys):
    ids = []
    for root in (tiny_root_ro, esc_ro):
        assert run_cli("run", "--model", "logreg", "--features", "mfcc-mean", "--data",
                       str(root), "--folds", "1,2", "--jobs", "1") == 0
        ids.append(run_id_of(capsys.readouterr().out))
    digests = []
    for run_id, (name, root) in zip(ids, [("synthetic", tiny_root_ro), ("esc50", esc_ro)],
                                    strict=True):
        run = _client(in_tmp).get_run(run_id)
        inputs = {i.tags[0].value: i.dataset for i in run.inputs.dataset_inputs}
        assert sorted(inputs) == ["evaluation", "features"]
        data, feats = inputs["evaluation"], inputs["features"]
        assert data.name == name and data.digest == run.data.tags["usbench.dataset_fingerprint"]
        assert json.loads(data.source) == {"uri": str(root)}
        profile = json.loads(data.profile)
        assert profile["clips"] == int(run.data.tags["usbench.dataset_clips"])
        assert profile["tested_folds"] == [1, 2] and profile["fold_plan"] == "official folds"
        assert feats.digest == run.data.tags["usbench.features_key"]
        assert json.loads(feats.profile)["feature_set"]["name"] == "mfcc-mean"
        digests.append(data.digest)
    assert digests[0] != digests[1]


@pytest.mark.slow
def test_saved_model_is_an_mlflow_model(saved, esc_ro, in_tmp, capsys):
    clip = sorted((esc_ro / "audio").iterdir())[0]
    # usbench predict, by run id and by registry URI, gives what MLflow's loader gives.
    assert run_cli("predict", str(clip), "--run", saved) == 0
    by_run = capsys.readouterr().out
    assert run_cli("predict", str(clip), "--model", "models:/pets/1") == 0
    assert capsys.readouterr().out == by_run
    code = (
        "import mlflow, pandas as pd, sys\n"
        f"mlflow.set_tracking_uri({_client(in_tmp).tracking_uri!r})\n"
        # The owner allows the folder its paths are in (a model reads none by default).
        f"m = mlflow.pyfunc.load_model('runs:/{saved}/model', "
        f"model_config={{'allow_dirs': [{str(clip.parent)!r}]}})\n"
        f"out = m.predict(pd.DataFrame({{'path': [{str(clip)!r}]}}))\n"
        "print(out.to_json(orient='records'))\n"
        "print(type(m.unwrap_python_model().bundle.estimator).__name__)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=in_tmp)
    assert done.returncode == 0, done.stderr[-2000:]
    rows, native = done.stdout.strip().splitlines()[-2:]
    row = json.loads(rows)[0]
    assert row["path"] == str(clip) and row["error"] == ""
    probs = {k.removeprefix("proba."): v for k, v in row.items() if k.startswith("proba.")}
    assert abs(sum(probs.values()) - 1) < 1e-6 and row["class"] == max(probs, key=probs.get)
    assert by_run.startswith(f"{clip}: {row['class']} {probs[row['class']]:.2f}")
    assert native == "SklearnClassifier"
    client = _client(in_tmp)
    run = client.get_run(saved)
    assert len(run.outputs.model_outputs) == 1  # the UI's Models column
    model = client.get_logged_model(run.outputs.model_outputs[0].model_id)
    assert model.name == "model" and model.source_run_id == saved
    assert "estimator" in {a.path for a in client.list_artifacts(saved)}  # the native object
    assert client.get_model_version("pets", "1").run_id == saved


def _post(port: int, records: list[dict]) -> list[dict]:
    body = json.dumps({"dataframe_records": records}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                 headers={"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(req, timeout=60).read())["predictions"]


@pytest.mark.slow
def test_serving_answers_rest_requests(saved, esc_ro, in_tmp, capsys):
    from usbench.saved_model.inputs import REFUSED

    port = _free_port()
    clips = sorted((esc_ro / "audio").iterdir())
    allowed = in_tmp / "allowed"
    allowed.mkdir()
    shutil.copy(clips[0], allowed / "clip.wav")
    proc = subprocess.Popen([sys.executable, "-m", "usbench", "serve", "--run", saved,
                             "--port", str(port), "--allow-dir", str(allowed),
                             "--max-rows", "3"], cwd=in_tmp, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _wait_http(f"http://127.0.0.1:{port}/ping", proc, within=120)
        content = base64.b64encode(clips[0].read_bytes()).decode()
        [by_content] = _post(port, [{"audio": content}])
        by_path, outside = _post(port, [{"path": str(allowed / "clip.wav")},
                                        {"path": str(clips[0])}])
        assert by_content["class"] and by_content["error"] == ""
        assert by_path["class"] == by_content["class"] and by_path["error"] == ""
        assert outside == {**outside, "class": "", "error": REFUSED}
        # Too many rows: the whole request is refused.
        with pytest.raises(urllib.error.HTTPError) as refused:
            _post(port, [{"audio": content}] * 4)
        assert refused.value.code == 400
        assert "4 rows in one request, above this model's limit of 3" in json.loads(
            refused.value.read())["message"]
        # The port is taken now: a second server is refused in one line.
        assert cli_error(capsys, "serve", "--run", saved, "--port", str(port)) == (
            f"Cannot serve on 127.0.0.1:{port} (Address already in use): the port is taken, "
            "probably by another server. Pass --port N with a free port, or stop the other "
            "server.")
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)


def test_bad_model_references_are_one_line(saved, in_tmp, capsys):
    store = _client(in_tmp).tracking_uri
    assert cli_error(capsys, "predict", "x.wav", "--model", "models:/nope/1") == (
        f"No registered model 'nope' in {store}. Register one with `usbench run ... "
        "--save-model --register NAME`, or check the name.")
    assert cli_error(capsys, "predict", "x.wav", "--model", "models:/pets/7") == (
        f"Registered model 'pets' has no version '7' in {store} (versions: 1). Pass "
        "models:/pets/<version>.")


def test_model_of_another_feature_version_is_refused(saved, in_tmp, capsys):
    metas = [p for p in (in_tmp / "results" / "mlartifacts").rglob("meta.json")
             if "models" in p.parts]
    assert len(metas) == 1
    meta = json.loads(metas[0].read_text())
    meta["feature_spec"]["version"] = 0
    metas[0].write_text(json.dumps(meta))
    assert cli_error(capsys, "predict", "x.wav", "--run", saved) == (
        "The model was trained on 'mfcc-mean' version 0, but this usbench computes version 1. "
        "Re-run the experiment with this version (`usbench run ... --save-model`), or predict "
        "with the usbench that saved it.")


def test_model_that_takes_no_model_config_is_refused(saved, in_tmp, capsys):
    """A model logged without a model_config (before models took audio content) would
    silently read no path in predict, and ignore the serving settings."""
    import yaml

    files = [p for p in (in_tmp / "results" / "mlartifacts").rglob("MLmodel")
             if "models" in p.parts]
    assert len(files) == 1
    spec = yaml.safe_load(files[0].read_text())
    del spec["flavors"]["python_function"]["config"]
    files[0].write_text(yaml.safe_dump(spec))
    why = (f"The model at runs:/{saved}/model was saved by an older usbench: it takes neither "
           "audio content nor the folders and limits it may read. Re-run the experiment with "
           "this usbench (`usbench run ... --save-model`).")
    assert cli_error(capsys, "predict", "x.wav", "--run", saved) == why
    assert cli_error(capsys, "serve", "--run", saved, "--port", str(_free_port())) == why


def test_model_saved_before_mlflow_models_is_explained(in_tmp, capsys, tmp_path):
    from usbench import tracking

    old = tmp_path / "old"
    (old / "model").mkdir(parents=True)
    (old / "model" / "meta.json").write_text("{}")
    uri = f"sqlite:///{in_tmp / 'results' / 'mlflow.db'}"
    run_id = tracking.log_run(uri, in_tmp / "results" / "mlartifacts", tracking.RunLog(
        experiment="old", run_name="old", params={}, metrics={}, step_metrics={}, tags={},
        artifacts=old))
    assert cli_error(capsys, "predict", "x.wav", "--run", run_id) == (
        f"Run {run_id} saved its model with an older usbench, before models were MLflow "
        "models. Re-run it with this usbench: `usbench run ... --save-model`.")


def test_register_needs_save_model(capsys):
    assert cli_error(capsys, "run", "--model", "rf", "--features", "mfcc-mean", "--register",
                  "x") == "--register x registers the saved model: add --save-model."


def test_leaderboard_is_logged_as_a_run(tiny_root_ro, in_tmp, capsys):
    assert run_cli("run", "--model", "logreg", "--features", "mfcc-mean", "--data",
                   str(tiny_root_ro), "--folds", "1,2", "--jobs", "1") == 0
    for _ in range(2):
        assert run_cli("leaderboard") == 0
    out = capsys.readouterr().out
    assert "skipped" not in out  # the first report's run is not a crashed run
    client = _client(in_tmp)
    boards = client.search_runs([client.get_experiment_by_name("synthetic").experiment_id],
                                "tags.`usbench.kind` = 'leaderboard'")
    assert len(boards) == 2 and out.count("(tag usbench.kind=leaderboard) holds the report") == 2
    names = {a.path for a in client.list_artifacts(boards[0].info.run_id)}
    assert {"leaderboard.md", "leaderboard.html", "leaderboard.json"} <= names
    local = (in_tmp / "results" / "leaderboard.md").read_text()
    logged = client.download_artifacts(boards[0].info.run_id, "leaderboard.md", str(in_tmp))
    assert open(logged).read() == local


@pytest.mark.slow
def test_study_points_at_its_mlflow_run(tiny_root_ro, in_tmp):
    import optuna

    from usbench.config import DataConfig, SweepConfig
    from usbench.sweep import sweep

    out = sweep(SweepConfig(data=DataConfig(root=str(tiny_root_ro)), model="logreg",
                            features="mfcc-mean", trials=1, jobs=1), progress=False)
    study = optuna.load_study(study_name=out.study_name,
                              storage=f"sqlite:///{in_tmp / 'results' / 'optuna.db'}")
    attrs = study.user_attrs
    assert (attrs["usbench.model"], attrs["usbench.features"], attrs["usbench.dataset"]) == (
        "logreg", "mfcc-mean", "synthetic")
    assert attrs["usbench.mlflow_parent_run_id"] == out.parent_run_id
    dashboard = shutil.which("optuna-dashboard", path=os.path.dirname(sys.executable))
    if dashboard is None:
        missing_tool("optuna-dashboard is not installed: pip install -e '.[dev]'")
    port = _free_port()
    proc = subprocess.Popen([dashboard, f"sqlite:///{in_tmp / 'results' / 'optuna.db'}",
                             "--host", "127.0.0.1", "--port", str(port)], cwd=in_tmp,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        _wait_http(f"http://127.0.0.1:{port}/api/studies", proc, within=60)
        studies = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies",
                                                    timeout=10).read())["study_summaries"]
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
    shown = {a["key"]: a["value"] for a in studies[0]["user_attrs"]}
    assert shown["usbench.mlflow_parent_run_id"] == out.parent_run_id
    parent = _client(in_tmp).get_run(out.parent_run_id)
    trial = _client(in_tmp).search_runs([parent.info.experiment_id],
                                        "tags.`usbench.kind` = 'trial'")[0]
    # The sweep's run spans its trials.
    assert parent.info.start_time <= trial.info.start_time
    assert trial.info.end_time <= parent.info.end_time


@pytest.mark.slow
def test_runs_page_in_a_real_browser(esc_ro, in_tmp):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        missing_tool("Chromium not found: install Debian's chromium package")
    from usbench import tracking

    # Two runs as usbench logs them (the evaluations themselves are tested elsewhere).
    names, uri = ["logreg-mfcc-mean-aaa", "rf-mfcc-mean-bbb"], _client(in_tmp).tracking_uri
    for name in names:
        folder = in_tmp / name
        folder.mkdir()
        (folder / "result.json").write_text("{}")
        data = tracking.DatasetInfo(name="esc50", digest="2a3337fc980f", source=str(esc_ro),
                                    profile={"clips": 60}, context="evaluation")
        tracking.log_run(uri, in_tmp / "results" / "mlartifacts", tracking.RunLog(
            experiment="esc50", run_name=name, params={"model": name.split("-")[0]},
            metrics={"accuracy": 0.9}, step_metrics={}, tags={"usbench.kind": "run"},
            artifacts=folder, inputs=(data,), start_ms=1_790_000_000_000,
            end_ms=1_790_000_004_000))
    exp = _client(in_tmp).get_experiment_by_name("esc50").experiment_id
    port = _free_port()
    ui = subprocess.Popen([sys.executable, "-m", "mlflow", "ui", "--backend-store-uri",
                           _client(in_tmp).tracking_uri, "--host", "127.0.0.1", "--port",
                           str(port)], cwd=in_tmp, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _wait_http(f"http://127.0.0.1:{port}/health", ui, within=90)
        dom = subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update",
             f"--user-data-dir={in_tmp / 'chrome'}", "--virtual-time-budget=15000",
             "--dump-dom", f"http://127.0.0.1:{port}/#/experiments/{exp}/runs"],
            capture_output=True, text=True, timeout=120).stdout
    finally:
        os.killpg(ui.pid, 15)
        ui.wait(timeout=30)
    for name in names:
        assert name in dom, f"run {name} not on the runs page"
    assert "esc50 (" in dom  # the Dataset column
