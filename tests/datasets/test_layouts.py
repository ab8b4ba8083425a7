"""ESC-50, ESC-10, class folders and CSV tables: read correctly, detected, folds generated
honestly, and bad input refused in one line that names the file and the fix."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from tests.datasets.layouts import (
    ESC10_TARGETS,
    ESC_CLASSES,
    competition_root,
    esc50_root,
    folders_root,
    tone,
)
from usbench.config import DataConfig
from usbench.datasets import detect, open_dataset
from usbench.errors import ConfigError, DatasetError


def _open(root, **kw):
    return open_dataset(DataConfig(root=str(root), **kw))


@pytest.fixture(scope="module")
def esc_ro(tmp_path_factory):
    return esc50_root(tmp_path_factory.mktemp("esc") / "ESC-50")


@pytest.fixture
def esc(esc_ro, tmp_path):
    return shutil.copytree(esc_ro, tmp_path / "ESC-50")


# --- ESC-50 and ESC-10 ------------------------------------------------------------------------

def test_esc50_classes_folds_and_recordings(esc_ro):
    ds = _open(esc_ro)  # detected by meta/esc50.csv
    assert ds.name == "esc50" and ds.fold_plan.origin == "official"
    assert ds.classes == tuple(ESC_CLASSES[t] for t in sorted(ESC_CLASSES))
    assert sorted(ds.clips["fold"].unique()) == [1, 2, 3, 4, 5]
    meta = pd.read_csv(esc_ro / "meta" / "esc50.csv").set_index("filename")
    clips = ds.clips.set_index("clip_id")
    assert (clips["recording"] == meta.loc[clips.index, "src_file"].astype(str)).all()
    assert (clips["class_id"] == meta.loc[clips.index, "target"]).all()
    assert (clips["fold"] == meta.loc[clips.index, "fold"]).all()
    # Both takes of a source file are one recording, in one fold.
    assert ds.clips.groupby("recording")["fold"].nunique().max() == 1
    assert ds.clips.groupby("recording").size().max() == 2


def test_esc10_is_the_subset_renumbered_by_target(esc_ro):
    ds = _open(esc_ro, dataset="esc10")
    meta = pd.read_csv(esc_ro / "meta" / "esc50.csv")
    sub = meta[meta["esc10"]]
    # Targets of the ESC-10 classes in the test root, in ascending order, become 0..k-1.
    names = sub.groupby("target")["category"].first().sort_index()
    assert ds.classes == tuple(names) == tuple(ESC_CLASSES[t] for t in sorted(ESC10_TARGETS))
    assert set(ds.clips["clip_id"]) == set(sub["filename"])
    for cid, name in enumerate(ds.classes):
        assert (ds.clips.loc[ds.clips["class_id"] == cid, "label"] == name).all()


def test_esc50_fold_6_is_refused(esc):
    csv = esc / "meta" / "esc50.csv"
    table = pd.read_csv(csv)
    table.loc[3, "fold"] = 6
    table.to_csv(csv, index=False)
    with pytest.raises(DatasetError) as err:
        _open(esc)
    assert str(err.value) == (f"{csv} line 5 ({table.loc[3, 'filename']}): fold 6 is outside "
                              "1-5 (1 such row(s)). Fix the fold column.")


def test_esc50_missing_clip_is_listed_per_fold(esc, capsys):
    from tests.conftest import run_cli

    gone = sorted((esc / "audio").iterdir())[0]
    gone.unlink()
    with pytest.raises(DatasetError, match=r"^1 of 60 clips listed in .*esc50\.csv are missing "
                                           rf"\(first: audio/{gone.name}, fold 1\)\."):
        _open(esc)
    assert run_cli("data", "check", "--data", str(esc)) == 1
    out = capsys.readouterr().out
    assert "Dataset esc50 at" in out and "official folds" in out
    table = out.splitlines()[1:8]
    assert table[2].split() == ["1", "12", "11", "1", "0", "0", "0", "0"]


def test_official_layouts_refuse_generated_fold_flags(esc_ro):
    with pytest.raises(ConfigError, match=r"^--n-folds applies to the folders and csv layouts "
                                          r"only; esc50 has its own folds"):
        _open(esc_ro, n_folds=3)


# --- detection ----------------------------------------------------------------------------------

def test_detection_picks_each_layout_by_its_metadata(esc_ro, tiny_root, tmp_path):
    assert detect(esc_ro) == "esc50"
    assert detect(tiny_root) == "synthetic"
    (tiny_root / "usbench-synthetic.json").unlink()
    assert detect(tiny_root) == "urbansound8k"
    folders = folders_root(tmp_path / "pets")
    with pytest.raises(DatasetError) as err:
        detect(folders)
    assert str(err.value) == (
        f"Cannot tell the layout of {folders}: it holds none of metadata/UrbanSound8K.csv "
        "(urbansound8k), meta/esc50.csv (esc50). Pass --dataset with one of: urbansound8k, "
        "esc50, esc10, folders (<root>/<class>/*.wav), csv (a table of file,label); "
        "`usbench ls datasets` describes each.")


# --- class folders ------------------------------------------------------------------------------

def test_folders_classes_paths_and_generated_folds(tmp_path):
    root = folders_root(tmp_path / "pets", classes=("owl", "cat", "dog"), per_class=10)
    (root / "cat" / "notes.txt").write_text("not audio")
    (root / ".hidden").mkdir()
    ds = _open(root, dataset="folders")
    assert ds.classes == ("cat", "dog", "owl")  # sorted folder names
    assert len(ds.clips) == 30 and set(ds.clips["clip_id"]) >= {"cat/200_0.wav", "owl/100_1.wav"}
    assert (ds.clips["label"] == ds.clips["clip_id"].str.split("/").str[0]).all()
    plan = ds.fold_plan
    assert (plan.origin, plan.method, plan.n_folds, plan.seed, plan.grouped) == (
        "generated", "StratifiedKFold", 5, 0, False)
    # Stratified: every fold holds 2 clips of each class.
    counts = ds.clips.groupby(["fold", "label"]).size()
    assert set(counts) == {2} and len(counts) == 15


def test_folders_pool_kaggle_splits(tmp_path):
    root = folders_root(tmp_path / "kaggle", classes=("cat", "dog"), per_class=8,
                        splits=("train", "test"))
    ds = _open(root, dataset="folders", n_folds=4)
    assert ds.classes == ("cat", "dog") and len(ds.clips) == 16
    assert {c.split("/")[0] for c in ds.clips["clip_id"]} == {"train", "test"}
    assert sorted(ds.clips["fold"].unique()) == [1, 2, 3, 4]


def test_group_pattern_keeps_recordings_in_one_fold(tmp_path):
    root = folders_root(tmp_path / "pets", per_class=12)
    ds = _open(root, dataset="folders", group_pattern=r"^(\d+)_", n_folds=3)
    assert ds.fold_plan.grouped and ds.fold_plan.method == "StratifiedGroupKFold"
    assert ds.clips["recording"].nunique() == 18  # 3 classes x 6 recordings of 2 slices
    assert ds.clips.groupby("recording")["fold"].nunique().max() == 1
    assert (ds.clips.groupby(["fold", "label"]).size() > 0).all()
    with pytest.raises(DatasetError, match=r"file cat/100_0\.wav does not match group_pattern "
                                           r"'\^x' \(from flags\)\. Fix the pattern"):
        _open(root, dataset="folders", group_pattern="^x")


def test_generated_folds_are_deterministic_and_in_the_fingerprint(tmp_path):
    root = folders_root(tmp_path / "pets", per_class=10)
    base = _open(root, dataset="folders")
    again = _open(root, dataset="folders")
    assert (base.clips["fold"] == again.clips["fold"]).all()
    assert base.fingerprint() == again.fingerprint()
    other_seed = _open(root, dataset="folders", fold_seed=1)
    other_n = _open(root, dataset="folders", n_folds=2)
    a = base.clips.set_index("clip_id")["fold"]
    assert not (other_seed.clips.set_index("clip_id")["fold"].loc[a.index] == a).all()
    assert len({base.fingerprint(), other_seed.fingerprint(), other_n.fingerprint()}) == 3
    # The listing order on disk does not matter: a copy under another name gives the same.
    copy = shutil.copytree(root, tmp_path / "elsewhere")
    assert _open(copy, dataset="folders").fingerprint() == base.fingerprint()


def test_folders_side_table_gives_folds_and_recordings(tmp_path):
    root = folders_root(tmp_path / "pets", classes=("cat", "dog"), per_class=6)
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.wav"))
    table = pd.DataFrame({"file": files, "fold": [1 + i % 3 for i in range(len(files))],
                          "rec": [f"r{i // 2}" for i in range(len(files))]})
    table.to_csv(root / "split.csv", index=False)
    (root / "usbench.toml").write_text('table = "split.csv"\nfold = "fold"\ngroup = "rec"\n')
    ds = _open(root, dataset="folders")
    assert ds.fold_plan.origin == "given" and ds.fold_plan.grouped
    got = ds.clips.set_index("clip_id")
    want = table.set_index("file")
    assert (got["fold"] == want.loc[got.index, "fold"]).all()
    assert (got["recording"] == want.loc[got.index, "rec"]).all()
    with pytest.raises(DatasetError, match=r"gives folds in column 'fold'; --n-folds and "
                                           r"--fold-seed only apply to generated folds"):
        _open(root, dataset="folders", n_folds=3)


def test_class_folder_without_audio_is_refused(tmp_path):
    root = folders_root(tmp_path / "pets", classes=("cat", "dog"))
    (root / "bird").mkdir()
    (root / "bird" / "readme.txt").write_text("todo")
    with pytest.raises(DatasetError) as err:
        _open(root, dataset="folders")
    assert str(err.value).startswith(f"Class folder {root / 'bird'} holds no audio files (")
    assert str(err.value).endswith("). Add clips, or move the folder out of the dataset root.")


def test_more_folds_than_clips_in_the_rarest_class_names_it(tmp_path):
    root = folders_root(tmp_path / "pets", classes=("cat", "dog"), per_class=10)
    for p in sorted((root / "dog").iterdir())[3:]:
        p.unlink()
    with pytest.raises(DatasetError) as err:
        _open(root, dataset="folders")
    assert str(err.value) == (
        f"{root}: class 'dog' has 3 clip(s), fewer than the 5 folds asked for, so some folds "
        "would have none of it. Pass --n-folds 3 or fewer, or add clips of 'dog'.")
    assert _open(root, dataset="folders", n_folds=3).clips["fold"].nunique() == 3


# --- CSV tables ---------------------------------------------------------------------------------

def test_competition_layout_needs_no_side_file(tmp_path):
    root = competition_root(tmp_path / "comp", classes=("dog", "cat"), per_class=10)
    ds = _open(root, dataset="csv")
    assert ds.classes == ("cat", "dog")
    table = pd.read_csv(root / "train.csv")
    assert sorted(ds.clips["clip_id"]) == sorted(f"{i}.wav" for i in table["ID"])
    assert all(p.startswith(str(root / "Train")) for p in ds.clips["path"])
    assert ds.table == root / "train.csv" and ds.fold_plan.generated


def test_csv_columns_from_usbench_toml_and_flags(tmp_path):
    root = tmp_path / "mine"
    rows = []
    for i in range(12):
        label = ("rain", "wind", "bird")[i % 3]
        path = f"clips/{label}-{i}.flac"
        tone(root / path, i % 3, i // 2, subtype="PCM_16")
        rows.append({"path": path, "what": label, "split": 1 + i % 2, "take": f"t{i // 2}"})
    pd.DataFrame(rows).to_csv(root / "list.csv", index=False)
    (root / "usbench.toml").write_text('table = "list.csv"\nfile = "path"\nlabel = "what"\n'
                                       'fold = "split"\ngroup = "take"\n')
    ds = _open(root, dataset="csv")
    assert ds.classes == ("bird", "rain", "wind") and ds.fold_plan.origin == "given"
    assert sorted(ds.clips["fold"].unique()) == [1, 2]
    assert set(ds.clips["recording"]) == {f"t{i}" for i in range(6)}
    # Flags win over the side file.
    flags = _open(root, dataset="csv", label_column="take")
    assert flags.classes == tuple(f"t{i}" for i in range(6))
    with pytest.raises(DatasetError, match=r"gives folds in column 'split'; --n-folds"):
        _open(root, dataset="csv", n_folds=2)
    # Without a fold column, folds are generated, grouped by the group column.
    (root / "usbench.toml").write_text('table = "list.csv"\nfile = "path"\nlabel = "what"\n')
    gen = _open(root, dataset="csv", group_column="take", n_folds=2)
    assert gen.fold_plan.generated and gen.fold_plan.grouped
    assert gen.clips.groupby("recording")["fold"].nunique().max() == 1


def test_csv_naming_absent_files_lists_them_per_fold(tmp_path, capsys):
    from tests.conftest import run_cli

    root = competition_root(tmp_path / "comp", per_class=10)
    (root / "Train" / "3.wav").unlink()
    (root / "Train" / "14.wav").unlink()
    with pytest.raises(DatasetError, match=r"^2 of 20 clips listed in .*train\.csv are missing "
                                           r"\(first: Train/"):
        _open(root, dataset="csv")
    assert run_cli("data", "check", "--data", str(root), "--dataset", "csv") == 1
    out = capsys.readouterr().out
    assert "generated folds (StratifiedKFold, 5 folds, seed 0" in out
    assert "20 listed clips present, 2 missing" in out.replace("18 of ", "")


def test_label_column_with_one_class_is_refused(tmp_path):
    root = competition_root(tmp_path / "comp", classes=("dog",), per_class=6)
    with pytest.raises(DatasetError) as err:
        _open(root, dataset="csv")
    assert str(err.value) == (
        f"{root / 'train.csv'}: the label column 'Class' holds one class only ('dog'); a "
        "classifier needs at least two. Check the label column, or add clips of other classes.")


@pytest.mark.parametrize("text, message", [
    ('table = "train.csv"\nfile = ', "is not valid TOML"),
    ('table = "train.csv"\nlabels = "Class"\n', "has an unknown key 'labels'. Did you mean "
                                                "'label'?"),
    ('table = 3\n', "'table' must be a non-empty string, got 3."),
])
def test_malformed_side_file_is_one_line_naming_it(tmp_path, text, message):
    root = competition_root(tmp_path / "comp")
    (root / "usbench.toml").write_text(text)
    with pytest.raises(DatasetError) as err:
        _open(root, dataset="csv")
    assert str(err.value).startswith(f"{root / 'usbench.toml'}")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_csv_column_that_does_not_exist_names_the_columns_present(tmp_path):
    root = competition_root(tmp_path / "comp")
    with pytest.raises(DatasetError) as err:
        _open(root, dataset="csv", label_column="label")
    assert str(err.value) == (
        f"{root / 'train.csv'} has no column 'label' (the label column, from the competition "
        "layout (train.csv + Train/)); it has ID, Class. Name the right column with "
        "--label-column or in usbench.toml.")


def test_csv_without_table_or_known_layout(tmp_path):
    root = tmp_path / "empty"
    root.mkdir()
    with pytest.raises(DatasetError, match=r"has no usbench\.toml naming its table, and is not "
                                           r"the competition layout"):
        _open(root, dataset="csv")


def test_generated_folds_use_every_listed_clip_so_a_missing_one_moves_nothing(tmp_path):
    root = competition_root(tmp_path / "comp", per_class=10)
    full = _open(root, dataset="csv").clips.set_index("clip_id")["fold"]
    (root / "Train" / "5.wav").unlink()
    part = _open(root, dataset="csv", allow_missing=True)
    assert part.partial
    np.testing.assert_array_equal(part.clips.set_index("clip_id")["fold"],
                                  full.drop("5.wav").loc[part.clips["clip_id"]])


def test_other_generated_folds_reuse_the_cached_features(tmp_path, capsys):
    from tests.conftest import run_cli

    root = folders_root(tmp_path / "pets", per_class=6)
    args = ["features", "build", "--features", "mfcc-mean", "--data", str(root), "--dataset",
            "folders", "--jobs", "1"]
    assert run_cli(*args, "--n-folds", "3") == 0
    assert "extracted 18 clips" in capsys.readouterr().out
    assert run_cli(*args, "--n-folds", "2", "--fold-seed", "4") == 0
    assert "loaded from cache" in capsys.readouterr().out
    # ... while the dataset fingerprint (labels, folds) tells the two apart.
    a = _open(root, dataset="folders", n_folds=3)
    b = _open(root, dataset="folders", n_folds=2, fold_seed=4)
    assert a.fingerprint() != b.fingerprint()
    assert a.content_fingerprint() == b.content_fingerprint()


# --- paths stay under the root -----------------------------------------------------------------

def _side(root, text):
    (root / "usbench.toml").write_text(text)


@pytest.mark.parametrize("key, value, fix", [
    ("table", "/etc/os-release", "pass --table for one elsewhere"),
    ("table", "../elsewhere/train.csv", "pass --table for one elsewhere"),
    ("audio_dir", "../elsewhere", "point --data at the folder that holds both"),
])
def test_usbench_toml_paths_outside_the_root_are_refused(tmp_path, key, value, fix):
    root = competition_root(tmp_path / "comp")
    shutil.copytree(root, tmp_path / "elsewhere")
    keys = {"table": "train.csv", "audio_dir": "Train", key: value}
    _side(root, 'file = "ID"\nlabel = "Class"\nextension = ".wav"\n'
          + "".join(f'{k} = "{v}"\n' for k, v in keys.items()))
    with pytest.raises(DatasetError) as err:
        _open(root, dataset="csv")
    assert str(err.value).startswith(f"{root / 'usbench.toml'}: {key} {value!r} leads outside "
                                     f"the dataset root {root}.")
    assert fix in str(err.value) and "\n" not in str(err.value)


def test_a_link_out_of_the_root_named_by_usbench_toml_is_refused(tmp_path):
    root = competition_root(tmp_path / "comp")
    (tmp_path / "secret.csv").write_text("ID,Class\n1,cat\n")
    (root / "list.csv").symlink_to(tmp_path / "secret.csv")
    _side(root, 'table = "list.csv"\nfile = "ID"\nlabel = "Class"\naudio_dir = "Train"\n')
    with pytest.raises(DatasetError, match=r"usbench\.toml: table 'list\.csv' leads outside"):
        _open(root, dataset="csv")


def test_the_table_flag_may_name_a_table_elsewhere(tmp_path):
    root = competition_root(tmp_path / "comp")
    outside = tmp_path / "lists" / "mine.csv"
    outside.parent.mkdir()
    shutil.copy(root / "train.csv", outside)
    _side(root, 'file = "ID"\nlabel = "Class"\naudio_dir = "Train"\nextension = ".wav"\n')
    ds = _open(root, dataset="csv", table=str(outside))
    assert ds.table == outside and len(ds.clips) == 20


@pytest.mark.parametrize("cell", ["{elsewhere}/1.wav", "../elsewhere/Train/1.wav", "link.wav"])
def test_file_column_entries_outside_the_root_are_refused(tmp_path, cell):
    root = competition_root(tmp_path / "comp")
    elsewhere = shutil.copytree(root, tmp_path / "elsewhere")
    (root / "link.wav").symlink_to(elsewhere / "Train" / "1.wav")
    table = pd.read_csv(root / "train.csv")
    table["ID"] = "Train/" + table["ID"].astype(str) + ".wav"
    table.loc[3, "ID"] = cell.format(elsewhere=elsewhere / "Train")
    table.to_csv(root / "list.csv", index=False)
    _side(root, 'table = "list.csv"\nfile = "ID"\nlabel = "Class"\n')
    with pytest.raises(DatasetError) as err:
        _open(root, dataset="csv")
    assert str(err.value).startswith(
        f"{root / 'list.csv'} line 5: ID '{table.loc[3, 'ID']}' leads outside the dataset root "
        f"{root}.")


def test_urbansound8k_file_names_outside_the_root_are_refused(tiny_root, tmp_path):
    csv = tiny_root / "metadata" / "UrbanSound8K.csv"
    table = pd.read_csv(csv)
    table.loc[2, "slice_file_name"] = "../../../../etc/os-release"
    table.to_csv(csv, index=False)
    with pytest.raises(DatasetError, match=r"UrbanSound8K\.csv line 4: slice_file_name "
                                           r"'\.\./\.\./\.\./\.\./etc/os-release' leads outside"):
        _open(tiny_root, allow_missing=True)


def test_a_class_folder_link_out_of_the_root_is_refused(tmp_path):
    root = folders_root(tmp_path / "pets", classes=("cat", "dog"), per_class=4)
    tone(tmp_path / "private.wav", 0, 1)
    (root / "cat" / "x.wav").symlink_to(tmp_path / "private.wav")
    with pytest.raises(DatasetError, match=r"cat/x\.wav is a link to a file outside the dataset "
                                           r"root"):
        _open(root, dataset="folders", n_folds=2)


def test_links_inside_the_root_are_kept(tmp_path):
    root = folders_root(tmp_path / "pets", classes=("cat", "dog"), per_class=4)
    (root / "cat" / "alias.wav").symlink_to(root / "dog" / "200_0.wav")
    assert "cat/alias.wav" in set(_open(root, dataset="folders", n_folds=2).clips["clip_id"])


def test_a_table_that_is_not_a_csv_is_not_quoted(tmp_path):
    root = competition_root(tmp_path / "comp")
    (root / "notes.txt").write_text('PRETTY_NAME="private text"\nMORE=1\n')
    _side(root, 'table = "notes.txt"\nfile = "ID"\nlabel = "Class"\n')
    with pytest.raises(DatasetError) as err:
        _open(root, dataset="csv")
    assert "private" not in str(err.value)
    assert str(err.value).startswith(f"{root / 'notes.txt'} is not a table of clips")
