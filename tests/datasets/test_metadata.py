"""Validation of an UrbanSound8K root: each bad input is one line naming the fix."""

import dataclasses
import os

import pandas as pd
import pytest

from usbench.config import DataConfig, fingerprint
from usbench.datasets import open_dataset
from usbench.datasets.base import CLIP_COLUMNS
from usbench.errors import DatasetError


def _csv(root):
    return root / "metadata" / "UrbanSound8K.csv"


def _edit(root, fn):
    table = pd.read_csv(_csv(root))
    table = fn(table)
    table.to_csv(_csv(root), index=False)
    return table


def _open(root, **kw):
    return open_dataset(DataConfig(root=str(root), **kw))


def test_missing_root(tmp_path):
    with pytest.raises(DatasetError) as err:
        _open(tmp_path / "nowhere")
    assert str(err.value) == (
        f"Dataset root {tmp_path / 'nowhere'} does not exist. Pass --data with a dataset root "
        "(`usbench ls datasets` shows the layouts), or set USBENCH_DATA."
    )


def test_a_root_that_is_a_file_is_named_as_one(tmp_path):
    (tmp_path / "clip.wav").write_bytes(b"RIFF")
    with pytest.raises(DatasetError, match=r"clip.wav is a file, not a folder\. Pass --data"):
        _open(tmp_path / "clip.wav")


def test_missing_metadata(tiny_root):
    _csv(tiny_root).unlink()
    with pytest.raises(DatasetError) as err:
        _open(tiny_root)
    assert str(err.value) == (
        f"Metadata table {_csv(tiny_root)} not found. A dataset root needs "
        "metadata/UrbanSound8K.csv and audio/fold<N>/; check the --data path."
    )


def test_missing_column(tiny_root):
    _edit(tiny_root, lambda t: t.drop(columns=["classID"]))
    with pytest.raises(DatasetError) as err:
        _open(tiny_root)
    assert str(err.value) == (
        f"{_csv(tiny_root)} lacks column(s) classID. "
        "Required: slice_file_name, fsID, fold, classID, class."
    )


@pytest.mark.parametrize("fold", [0, 11])
def test_fold_outside_range(tiny_root, fold):
    table = _edit(tiny_root, lambda t: t.assign(fold=t["fold"].where(t.index != 4, fold)))
    name = table.loc[4, "slice_file_name"]
    with pytest.raises(DatasetError) as err:
        _open(tiny_root)
    assert str(err.value) == (
        f"{_csv(tiny_root)} line 6 ({name}): fold {fold} is outside 1-10 (1 such row(s)). "
        "Fix the fold column."
    )


def test_class_id_not_matching_name(tiny_root):
    def swap(t):
        t.loc[7, "classID"] = (t.loc[7, "classID"] + 1) % 10
        return t

    table = _edit(tiny_root, swap)
    row = table.loc[7]
    usual = table.loc[(table["classID"] == row["classID"]) & (table.index != 7), "class"].iloc[0]
    with pytest.raises(DatasetError) as err:
        _open(tiny_root)
    assert str(err.value) == (
        f"{_csv(tiny_root)} line 9 ({row['slice_file_name']}): classID {row['classID']} is "
        f"labelled '{row['class']}', but classID {row['classID']} is '{usual}' elsewhere. "
        "Fix the classID or class column."
    )


def test_duplicate_file(tiny_root):
    table = _edit(tiny_root, lambda t: pd.concat([t, t.iloc[[3]]], ignore_index=True))
    with pytest.raises(DatasetError) as err:
        _open(tiny_root)
    assert str(err.value) == (
        f"{_csv(tiny_root)} line {len(table) + 1} ({table.loc[3, 'slice_file_name']}): the file "
        f"is listed twice (lines 5 and {len(table) + 1}). Remove the duplicate row."
    )


def test_non_integer_fold(tiny_root):
    _edit(tiny_root, lambda t: t.assign(fold=t["fold"].astype(str).where(t.index != 0, "x")))
    with pytest.raises(DatasetError, match=r"line 2 \(.*\): fold 'x' is not an integer\. "
                                           r"Fix the fold column\.$"):
        _open(tiny_root)


def test_listed_clip_missing_is_refused_then_allowed(tiny_root):
    ds = _open(tiny_root)
    gone = ds.clips.iloc[10]
    (tiny_root / "audio" / f"fold{gone['fold']}" / gone["clip_id"]).unlink()
    with pytest.raises(DatasetError) as err:
        _open(tiny_root)
    assert str(err.value) == (
        f"1 of 200 clips listed in {_csv(tiny_root)} are missing (first: "
        f"audio/fold{gone['fold']}/{gone['clip_id']}, fold {gone['fold']}). Run `usbench data "
        "check` for a per-fold table, or pass --allow-missing to use the clips present "
        "(results are marked partial)."
    )
    partial = _open(tiny_root, allow_missing=True)
    assert partial.partial and partial.n_missing == 1 and len(partial.clips) == 199
    assert gone["clip_id"] not in set(partial.clips["clip_id"])
    assert partial.fingerprint() != ds.fingerprint()


def test_fingerprint_ignores_location_but_not_labels(tiny_root_ro, tiny_root):
    a, b = _open(tiny_root_ro), _open(tiny_root)
    assert a.fingerprint() == b.fingerprint()
    _edit(tiny_root, lambda t: t.assign(fold=t["fold"].where(t.index != 0, t["fold"] % 10 + 1)))
    import shutil

    moved = _open(tiny_root, allow_missing=True)  # the moved clip is now "missing"
    assert moved.fingerprint() != a.fingerprint()
    shutil.rmtree(tiny_root)


def test_clips_and_cache_keys_are_those_of_reading_the_table_with_pandas(tiny_root):
    """The metadata table is read without pandas; the clip table (order, dtypes) and the keys
    the feature cache uses stay what reading it with pandas gives, so caches stay valid."""
    (tiny_root / "audio" / "fold2" / pd.read_csv(_csv(tiny_root)).query("fold == 2")
     ["slice_file_name"].iloc[0]).unlink()
    ds = _open(tiny_root, allow_missing=True)
    table = pd.read_csv(_csv(tiny_root))
    audio = tiny_root.resolve() / "audio"
    listed = pd.DataFrame({
        "clip_id": table["slice_file_name"].astype(str),
        "path": [os.path.join(audio, f"fold{f}", n)
                 for f, n in zip(table["fold"], table["slice_file_name"], strict=True)],
        "label": table["class"].astype(str),
        "class_id": table["classID"],
        "fold": table["fold"],
        "recording": table["fsID"],
    }).sort_values(["fold", "clip_id"], ignore_index=True)
    present = listed["path"].map(os.path.exists)
    assert 0 < ds.n_missing == int((~present).sum())
    pd.testing.assert_frame_equal(ds.listed[CLIP_COLUMNS], listed)
    clips = listed[present].reset_index(drop=True)
    pd.testing.assert_frame_equal(ds.clips[CLIP_COLUMNS], clips)
    assert ds.column("path") == clips["path"].tolist()
    sizes = [os.path.getsize(p) for p in clips["path"]]
    rows = clips[["clip_id", "class_id", "fold", "recording"]].assign(size=sizes)
    assert ds.fingerprint() == fingerprint(
        {"name": ds.name, "classes": ds.classes, "clips": rows.to_numpy().tolist()})
    mtimes = [os.stat(p).st_mtime_ns for p in clips["path"]]
    assert ds.files_stamp() == fingerprint(mtimes)


def test_blank_lines_count_in_the_line_numbers_of_messages(tiny_root):
    table = _edit(tiny_root, lambda t: t.assign(fold=t["fold"].where(t.index != 4, 11)))
    header, *rows = _csv(tiny_root).read_text().splitlines()
    _csv(tiny_root).write_text("\n".join([header, "", *rows]) + "\n")
    with pytest.raises(DatasetError) as err:
        _open(tiny_root)
    assert str(err.value).startswith(
        f"{_csv(tiny_root)} line 7 ({table.loc[4, 'slice_file_name']}): fold 11 is outside")


def test_a_row_longer_than_the_header_is_one_line(tiny_root):
    header, *rows = _csv(tiny_root).read_text().splitlines()
    rows[1] += ",extra"
    _csv(tiny_root).write_text("\n".join([header, *rows]) + "\n")
    with pytest.raises(DatasetError) as err:
        _open(tiny_root)
    assert str(err.value) == (
        f"{_csv(tiny_root)} line 3: 9 fields where the header has 8. Quote cells that hold "
        "commas, or remove the extra fields.")


def _break_entries(root, clips):
    """Replace four listed clips by a self-loop, a two-link loop, a dangling link and a
    folder; return their ids and the reasons decoding gives."""
    picked = [clips.iloc[i] for i in (3, 40, 90, 150)]
    paths = [root / "audio" / f"fold{c['fold']}" / c["clip_id"] for c in picked]
    for p in paths:
        p.unlink()
    paths[0].symlink_to(paths[0].name)
    (paths[1].parent / "partner.wav").symlink_to(paths[1].name)
    paths[1].symlink_to("partner.wav")
    paths[2].symlink_to("gone.wav")
    paths[3].mkdir()
    reasons = ["symbolic link loop", "symbolic link loop",
               "dangling symbolic link (to gone.wav, which does not exist)",
               "a folder, not a file"]
    return [c["clip_id"] for c in picked], paths, reasons


def test_unlisted_link_loops_do_not_matter(tiny_root):
    from usbench.build import build_features
    from usbench.config import BuildConfig
    from usbench.datasets.check import check

    before = _open(tiny_root)
    fold1 = tiny_root / "audio" / "fold1"
    (fold1 / "loop").symlink_to("loop")
    (fold1 / "ping.wav").symlink_to("pong.wav")
    (fold1 / "pong.wav").symlink_to("ping.wav")
    ds = _open(tiny_root)
    assert ds.fingerprint() == before.fingerprint() and not ds.partial
    assert check(ds, progress=False).ok
    built = build_features(BuildConfig(data=DataConfig(root=str(tiny_root)),
                                       features="mfcc-mean", jobs=1), progress=False)
    assert built.matrix.X.shape[0] == 200 and not built.matrix.bad


def test_listed_unreadable_entries_are_unreadable_and_follow_skip_bad(tiny_root):
    """Link loops, dangling links and folders in a clip's place are present but unreadable:
    `data check` names them, a build refuses them unless --skip-bad, which leaves them out."""
    from usbench.build import build_features
    from usbench.config import BuildConfig
    from usbench.datasets.check import check

    ids, paths, reasons = _break_entries(tiny_root, _open(tiny_root).clips)
    ds = _open(tiny_root)
    assert ds.n_missing == 0 and ds.n_clips == 200
    report = check(ds, progress=False)
    assert report.table.loc["all", "unreadable"] == 4 and report.table.loc["all", "missing"] == 0
    assert sorted(report.unreadable) == sorted(
        (ds.relative(str(p)), r) for p, r in zip(paths, reasons, strict=True))
    cfg = BuildConfig(data=DataConfig(root=str(tiny_root)), features="mfcc-mean", jobs=1)
    with pytest.raises(DatasetError, match=r"^4 of 200 clips could not be decoded .*: symbolic "
                                           r"link loop\)\. .*pass --skip-bad"):
        build_features(cfg, progress=False)
    skipped = build_features(dataclasses.replace(cfg, skip_bad=True), progress=False)
    assert skipped.matrix.X.shape[0] == 196
    assert sorted((b["clip_id"], b["reason"]) for b in skipped.matrix.bad) == sorted(
        zip(ids, reasons, strict=True))
