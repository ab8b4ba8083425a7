"""`usbench audit`: fold protocol versus a random split, and recordings straddling folds."""

import numpy as np
import pandas as pd
import pytest

from tests.conftest import run_cli
from usbench.audit import audit, leaky_recordings, random_folds
from usbench.config import AuditConfig, DataConfig

pytestmark = pytest.mark.usefixtures("in_tmp")  # results/ of its own


def test_leaky_recordings_lists_each_recording_in_several_folds():
    recordings = np.array([7, 7, 8, 8, 9, 9, 9])
    folds = np.array([1, 1, 2, 3, 4, 5, 4])
    assert leaky_recordings(recordings, folds) == {8: [2, 3], 9: [4, 5]}


def test_random_folds_are_stratified_shuffled_and_seeded():
    y = np.repeat(np.arange(4), 25)
    a, b = random_folds(y, 5, seed=1), random_folds(y, 5, seed=1)
    np.testing.assert_array_equal(a, b)
    assert set(a) == {1, 2, 3, 4, 5}
    for k in range(1, 6):
        assert np.bincount(y[a == k], minlength=4).tolist() == [5, 5, 5, 5]
    assert not np.array_equal(a, random_folds(y, 5, seed=2))


def test_audit_reports_both_protocols_and_logs_them(tiny_root_ro, in_tmp):
    from mlflow.tracking import MlflowClient

    out = audit(AuditConfig(model="logreg", features="mfcc-mean",
                            data=DataConfig(root=str(tiny_root_ro)), jobs=1), progress=False)
    assert sorted(out.folds.fold_accuracy) == list(range(1, 11))
    assert len(out.random.fold_accuracy) == 10
    assert out.inflation == pytest.approx(out.random.accuracy - out.folds.accuracy)
    assert out.leaky == {}  # the generator keeps every recording in one fold
    run = MlflowClient(f"sqlite:///{in_tmp / 'results' / 'mlflow.db'}").get_run(out.run.run_id)
    assert run.data.tags["usbench.kind"] == "audit"
    assert run.data.metrics["random_split_accuracy"] == pytest.approx(out.random.accuracy)
    assert run.data.metrics["inflation"] == pytest.approx(out.inflation)
    assert run.data.metrics["accuracy"] == pytest.approx(out.folds.accuracy)


def test_audit_names_a_recording_that_straddles_folds(tiny_root, capsys):
    csv = tiny_root / "metadata" / "UrbanSound8K.csv"
    table = pd.read_csv(csv)
    rec = table.groupby("fsID").filter(lambda g: len(g) >= 2)["fsID"].iloc[0]
    row = table.index[table["fsID"] == rec][0]
    old, new = int(table.loc[row, "fold"]), int(table.loc[row, "fold"]) % 10 + 1
    name = table.loc[row, "slice_file_name"]
    (tiny_root / "audio" / f"fold{old}" / name).rename(tiny_root / "audio" / f"fold{new}" / name)
    table.loc[row, "fold"] = new
    table.to_csv(csv, index=False)

    assert run_cli("audit", "--model", "logreg", "--features", "mfcc-mean", "--data",
                   str(tiny_root), "--jobs", "1") == 0
    out = capsys.readouterr().out
    assert "fold protocol (leave-one-fold-out): accuracy " in out
    assert "random stratified split:            accuracy " in out
    assert "inflation of the random split: " in out
    assert (f"1 recording(s) have slices in more than one fold: {rec} (folds "
            f"{','.join(map(str, sorted({old, new})))})") in out
