"""The UrbanSound8K layout: reading and validating a root, and the clip table.

A root is ``<root>/metadata/UrbanSound8K.csv`` + ``<root>/audio/fold<N>/<slice_file_name>``.
The clip table has one row per usable clip, columns ``clip_id, path, label, class_id, fold,
recording``; the class list comes from the metadata table, never from the clips present.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from usbench.config import fingerprint
from usbench.errors import DatasetError

METADATA = Path("metadata") / "UrbanSound8K.csv"
REQUIRED_COLUMNS = ("slice_file_name", "fsID", "fold", "classID", "class")
FOLDS = tuple(range(1, 11))
CLIP_COLUMNS = ["clip_id", "path", "label", "class_id", "fold", "recording"]


@dataclass(frozen=True)
class Dataset:
    """An opened dataset root.

    Attributes:
        name: registry name (``urbansound8k`` or ``synthetic``).
        root: absolute root folder.
        classes: class names ordered by class id, from the metadata table.
        listed: every clip the metadata lists, with a boolean ``present`` column.
        clips: the usable clips (present ones), columns ``CLIP_COLUMNS``, sorted by fold then id.
    """

    name: str
    root: Path
    classes: tuple[str, ...]
    listed: pd.DataFrame = field(repr=False)
    clips: pd.DataFrame = field(repr=False)

    @property
    def n_missing(self) -> int:
        return int((~self.listed["present"]).sum())

    @property
    def partial(self) -> bool:
        """True when some listed clips are absent, so results cover only part of the data."""
        return self.n_missing > 0

    def fingerprint(self) -> str:
        """Key of the usable clips' identity, labels, folds, recordings and file sizes.

        Stable when the root is copied elsewhere; changes when a clip is added, removed,
        relabelled, moved to another fold or re-encoded to another size.
        """
        cols = ["clip_id", "class_id", "fold", "recording", "size"]
        rows = self.clips[cols].to_numpy().tolist()
        return fingerprint({"name": self.name, "classes": self.classes, "clips": rows})

    def files_stamp(self) -> str:
        """Key of the usable files' modification times: a rewritten file gets a new stamp."""
        return fingerprint(self.clips["mtime_ns"].tolist())


def _where(csv: Path, line: int, name: str) -> str:
    return f"{csv} line {line} ({name})"


def read_metadata(root: Path) -> pd.DataFrame:
    """Read and validate the metadata table of `root`.

    Returns:
        The table with integer ``fold``, ``classID`` and ``fsID`` columns and a ``line``
        column (its line number in the CSV, for messages).

    Raises:
        DatasetError: missing root or table, missing column, fold outside 1-10, a class id
            that disagrees with its name, or a file listed twice.
    """
    if not root.is_dir():
        raise DatasetError(
            f"Dataset root {root} does not exist. Pass --data with a folder holding "
            f"{METADATA} and audio/fold1..fold10/, or set USBENCH_DATA."
        )
    csv = root / METADATA
    if not csv.is_file():
        raise DatasetError(
            f"Metadata table {csv} not found. A dataset root needs {METADATA} and "
            "audio/fold<N>/; check the --data path."
        )
    try:
        table = pd.read_csv(csv)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{csv} is not a readable CSV table ({exc}).") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise DatasetError(
            f"{csv} lacks column(s) {', '.join(missing)}. "
            f"Required: {', '.join(REQUIRED_COLUMNS)}."
        )
    table = table.assign(line=range(2, len(table) + 2))
    for col in ("fold", "classID", "fsID"):
        values = pd.to_numeric(table[col], errors="coerce")
        bad = table[values.isna() | (values != values.round())]
        if len(bad):
            row = bad.iloc[0]
            raise DatasetError(
                f"{_where(csv, row['line'], row['slice_file_name'])}: {col} "
                f"{row[col]!r} is not an integer. Fix the {col} column."
            )
        table[col] = values.astype("int64")
    bad = table[~table["fold"].isin(FOLDS)]
    if len(bad):
        row = bad.iloc[0]
        raise DatasetError(
            f"{_where(csv, row['line'], row['slice_file_name'])}: fold {row['fold']} is "
            f"outside 1-10 ({len(bad)} such row(s)). Fix the fold column."
        )
    table["class"] = table["class"].astype(str)
    usual = table.groupby("classID")["class"].agg(lambda s: s.value_counts().index[0])
    wrong = table[table["class"] != table["classID"].map(usual)]
    if len(wrong):
        row = wrong.iloc[0]
        raise DatasetError(
            f"{_where(csv, row['line'], row['slice_file_name'])}: classID {row['classID']} "
            f"is labelled '{row['class']}', but classID {row['classID']} is "
            f"'{usual[row['classID']]}' elsewhere. Fix the classID or class column."
        )
    names = usual.value_counts()
    if (names > 1).any():
        name = names[names > 1].index[0]
        ids = sorted(usual[usual == name].index)
        raise DatasetError(
            f"{csv}: class '{name}' has several classIDs ({', '.join(map(str, ids))}). "
            "Give each class one classID."
        )
    dup = table[table["slice_file_name"].duplicated(keep=False)]
    if len(dup):
        first, second = dup.iloc[0], dup.iloc[1]
        raise DatasetError(
            f"{_where(csv, second['line'], second['slice_file_name'])}: the file is listed "
            f"twice (lines {first['line']} and {second['line']}). Remove the duplicate row."
        )
    return table


def open_root(name: str, root: Path, *, allow_missing: bool) -> Dataset:
    """Open an UrbanSound8K-layout root and build its clip table.

    Args:
        name: the dataset name to report.
        root: the root folder.
        allow_missing: when False, any listed clip absent from disk raises DatasetError.
    """
    root = root.expanduser().resolve()
    table = read_metadata(root)
    classes_by_id = table.groupby("classID")["class"].first().sort_index()
    classes = tuple(classes_by_id.tolist())
    if list(classes_by_id.index) != list(range(len(classes))):
        raise DatasetError(
            f"{root / METADATA}: classIDs must be 0..{len(classes) - 1} without gaps; "
            f"got {', '.join(map(str, classes_by_id.index))}. Renumber the classID column."
        )
    audio = root / "audio"
    paths, sizes, mtimes = [], [], []
    entries: dict[int, dict[str, os.stat_result]] = {}
    for fold in sorted(table["fold"].unique()):
        folder = audio / f"fold{fold}"
        try:
            entries[fold] = {e.name: e.stat() for e in os.scandir(folder) if e.is_file()}
        except FileNotFoundError:
            entries[fold] = {}
    for fold, name_ in zip(table["fold"], table["slice_file_name"], strict=True):
        st = entries[fold].get(name_)
        paths.append(str(audio / f"fold{fold}" / name_))
        sizes.append(st.st_size if st else -1)
        mtimes.append(st.st_mtime_ns if st else -1)
    listed = pd.DataFrame(
        {
            "clip_id": table["slice_file_name"].astype(str),
            "path": paths,
            "label": table["class"].astype(str),
            "class_id": table["classID"],
            "fold": table["fold"],
            "recording": table["fsID"],
            "size": sizes,
            "mtime_ns": mtimes,
        }
    )
    listed["present"] = listed["size"] >= 0
    listed = listed.sort_values(["fold", "clip_id"], ignore_index=True)
    n_missing = int((~listed["present"]).sum())
    if n_missing and not allow_missing:
        first = listed.loc[~listed["present"]].iloc[0]
        raise DatasetError(
            f"{n_missing:,} of {len(listed):,} listed clips are missing from {audio} "
            f"(first: fold{first['fold']}/{first['clip_id']}). Run `usbench data check` for a "
            "per-fold table, or pass --allow-missing to use the clips present (results are "
            "marked partial)."
        )
    clips = listed.loc[listed["present"]].reset_index(drop=True)
    if clips.empty:
        raise DatasetError(
            f"None of the {len(listed):,} clips listed in {root / METADATA} is under {audio}. "
            "Check the --data path."
        )
    return Dataset(name=name, root=root, classes=classes, listed=listed, clips=clips)
