"""Passwords in URIs are masked in everything usbench prints, logs, stores in MLflow and writes
under results/, while connections use the real URI."""

from pathlib import Path

import pytest

from tests.conftest import run_cli
from usbench import tracking
from usbench.redact import redact


@pytest.mark.parametrize("given, shown", [
    ("postgresql+psycopg2://user:pw@host/db", "postgresql+psycopg2://user:***@host/db"),
    ("http://alice:p%40ss@127.0.0.1:9/x", "http://alice:***@127.0.0.1:9/x"),
    ("error at https://u:tok3n@mlflow.example.org (401).",
     "error at https://u:***@mlflow.example.org (401)."),
    ("postgresql://u@h/db?sslmode=require&password=Zq9xW", "postgresql://u@h/db?"
     "sslmode=require&password=***"),
    ("postgresql://u@h/db", "postgresql://u@h/db"),
    ("sqlite:////tmp/results/mlflow.db", "sqlite:////tmp/results/mlflow.db"),
    ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
    ("models:/m@champion", "models:/m@champion"),
    ("journal:///tmp/optuna.log", "journal:///tmp/optuna.log"),
])
def test_the_password_of_a_uri_is_masked(given, shown):
    assert redact(given) == shown
    assert redact(shown) == shown


def test_a_password_seen_once_is_masked_on_its_own_and_in_containers():
    redact("postgresql://u:Kx7-b%40r@h/db")
    assert redact("driver said: bad password 'Kx7-b@r'") == "driver said: bad password '***'"
    assert redact({"storage": ["http://a:b0b-pw@h", ("x", 1)], 2: None}) == {
        "storage": ["http://a:***@h", ("x", 1)], 2: None}


def test_a_seen_password_inside_a_longer_word_leaves_the_word_whole():
    redact("postgresql://u:PASSWORD@h/db")
    assert redact("its password in PGPASSWORD or ~/.pgpass; PASSWORD.") == (
        "its password in PGPASSWORD or ~/.pgpass; ***.")


def test_mlflow_params_and_tags_are_masked(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'results' / 'mlflow.db'}"
    secret = "postgresql://u:Pg-Secret-77@db/optuna"
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "note.txt").write_text("x")
    run_id = tracking.log_run(uri, tmp_path / "mlartifacts", tracking.RunLog(
        experiment="e", run_name="r", params={"storage": secret}, metrics={},
        step_metrics={}, tags={"usbench.error": f"OperationalError: {secret}"},
        artifacts=folder))
    parent = tracking.start_parent(uri, tmp_path / "mlartifacts", "e", "sweep",
                                   {"storage": secret}, {"usbench.study": secret})
    tracking.finish_parent(uri, parent, {}, {"usbench.reproduce": secret}, None)
    client = MlflowClient(tracking_uri=uri)
    for rid in (run_id, parent):
        data = client.get_run(rid).data
        assert data.params["storage"] == "postgresql://u:***@db/optuna"
        assert "Pg-Secret-77" not in repr(data.params) + repr(data.tags)
    assert client.get_run(parent).data.tags["usbench.study"] == "postgresql://u:***@db/optuna"


def _files_holding(root: Path, secret: str) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


def test_no_file_under_results_nor_output_holds_the_password(tiny_root_ro, tmp_path,
                                                            monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    uri = "http://user:Tr4ck-Pw-31@127.0.0.1:9"  # nothing listens on port 9
    common = ["--model", "logreg", "--features", "mfcc-mean", "--data", str(tiny_root_ro),
              "--jobs", "1", "--tracking-uri", uri]
    assert run_cli("run", *common, "--folds", "1,2") == 2  # not logged: an error, record kept
    assert run_cli("sweep", *common, "--trials", "2") == 0
    out = capsys.readouterr()
    assert "http://user:***@127.0.0.1:9" in out.err  # the could-not-log warning, masked
    assert "Tr4ck-Pw-31" not in out.out + out.err
    assert len(list((tmp_path / "results" / "runs").glob("*/config.json"))) == 3
    assert _files_holding(tmp_path / "results", "Tr4ck-Pw-31") == []


def test_run_prints_the_ui_command_masked():
    assert tracking.ui_command("https://u:Ui-Pw-55@mlflow.example.org") == (
        "open https://u:***@mlflow.example.org")
