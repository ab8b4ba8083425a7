"""Every command on the new layouts, as a user types them: a CSV collection with generated
folds and an ESC-50 root with its official 5 folds."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.conftest import run_cli, run_id_of
from tests.datasets.layouts import competition_root, esc50_root

pytestmark = pytest.mark.usefixtures("in_tmp")  # results/ of its own


@pytest.fixture
def comp(tmp_path):
    return competition_root(tmp_path / "comp", classes=("cat", "dog", "owl"), per_class=8)



@pytest.mark.slow
def test_csv_collection_run_predict_sweep_audit_leaderboard(comp, in_tmp, capsys):
    data = ["--data", str(comp), "--dataset", "csv", "--n-folds", "4", "--jobs", "1"]
    assert run_cli("run", "--model", "logreg", "--features", "mfcc-mean", *data,
                   "--save-model") == 0
    captured = capsys.readouterr()
    out = captured.out
    assert "slices of one recording may straddle folds" in captured.err
    assert "folds: generated folds (StratifiedKFold, 4 folds, seed 0, clips not grouped by " \
           "recording); assignment in " in out
    assert "not an official protocol" in out
    run_id = run_id_of(out)
    folder = next((in_tmp / "results" / "runs").iterdir())
    assignment = pd.read_csv(folder / "folds.csv")
    assert len(assignment) == 24 and sorted(assignment["fold"].unique()) == [1, 2, 3, 4]
    result = json.loads((folder / "result.json").read_text())
    assert result["tags"]["usbench.folds"] == "generated"
    assert result["tags"]["usbench.fold_plan"].startswith("generated folds (StratifiedKFold")
    assert [f["fold"] for f in result["folds"]] == [1, 2, 3, 4]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{in_tmp / 'results' / 'mlflow.db'}")
    run = client.get_run(run_id)
    assert run.data.tags["usbench.folds"] == "generated"
    assert "folds.csv" in [a.path for a in client.list_artifacts(run_id)]

    clip = comp / "Train" / "1.wav"
    assert run_cli("predict", str(clip), "--run", run_id) == 0
    assert capsys.readouterr().out.startswith(f"{clip}: ")

    assert run_cli("sweep", "--model", "logreg", "--features", "mfcc-mean", "--trials", "2",
                   "--nested", "--pruner", "none", *data) == 0
    out = capsys.readouterr().out
    assert "nested estimate" in out and "folds: generated folds" in out

    assert run_cli("sweep", "--model", "logreg", "--features", "mfcc-mean", "--trials", "1",
                   *data) == 0
    out = capsys.readouterr().out
    assert "folds: generated folds (StratifiedKFold, 4 folds" in out
    best = float(out.split("best trial 0: accuracy ")[1].split()[0])
    command = out.split("reproduce with: ")[1].splitlines()[0]
    assert f"--dataset csv --data {comp} --n-folds 4" in command
    assert run_cli(*command.split()[1:], "--jobs", "1") == 0
    assert f"accuracy {best:.3f} ± " in capsys.readouterr().out

    assert run_cli("audit", "--model", "logreg", "--features", "mfcc-mean", *data) == 0
    out = capsys.readouterr().out
    assert "recording ids unknown: the folds are themselves a random stratified split" in out

    assert run_cli("leaderboard") == 0
    md = (in_tmp / "results" / "leaderboard.md").read_text()
    assert "## csv (24 clips, fingerprint" in md
    assert "tested folds 1-4, generated folds (StratifiedKFold, 4 folds, seed 0" in md
    assert "\"generated folds\": folds usbench made" in md
    assert "Published results" not in md  # no reference figures for a user's own data


def test_other_fold_counts_are_other_tables(comp, capsys):
    for n in ("3", "4"):
        assert run_cli("run", "--model", "logreg", "--features", "mfcc-mean", "--data",
                       str(comp), "--dataset", "csv", "--n-folds", n, "--jobs", "1") == 0
    assert run_cli("leaderboard") == 0
    out = capsys.readouterr().out
    titles = [line for line in out.splitlines() if line.startswith("csv (")]
    assert len(titles) == 2 and "3 folds" in titles[1] + titles[0]


def test_esc50_run_uses_five_folds_and_shows_its_references(tmp_path, capsys, in_tmp):
    root = esc50_root(tmp_path / "ESC-50", per_fold=2)
    assert run_cli("run", "--model", "rf", "--features", "mfcc-stats", "--data", str(root),
                   "--set", "n_estimators=20", "--jobs", "1") == 0
    out = capsys.readouterr().out
    assert "over 5 fold(s)" in out and "folds:" not in out  # official folds say nothing extra
    assert run_cli("leaderboard") == 0
    md = (in_tmp / "results" / "leaderboard.md").read_text()
    assert "## esc50 (60 clips" in md and "tested folds 1-5" in md
    assert "| esc50 | Piczak CNN | log-mel spectrogram + deltas | 0.645 |" in md
    assert "urbansound8k |" not in md and "| esc10 |" not in md
