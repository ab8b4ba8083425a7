"""What every layout shares: the opened ``Dataset``, table validation and file lookup.

Each layout (``urbansound8k``, ``esc50``, ``folders``, ``csv``, ...) turns its files into the
same clip table: one row per usable clip, columns ``clip_id, path, label, class_id, fold,
recording``; the class list comes from the dataset's own labels, never from the clips present.
This module also reads the UrbanSound8K layout: ``<root>/metadata/UrbanSound8K.csv`` +
``<root>/audio/fold<N>/<slice_file_name>`` (the synthetic set uses it too).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
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
class FoldPlan:
    """Where a dataset's folds come from.

    Attributes:
        origin: ``official`` (the dataset's published folds), ``given`` (a fold column of the
            user's table) or ``generated`` (made by usbench, see ``usbench.datasets.folds``).
        method: the scikit-learn splitter that generated them (generated folds only).
        n_folds, seed: its ``n_splits`` and ``random_state`` (generated folds only).
        grouped: recording ids are known, so slices of one recording share a fold.
    """

    origin: str = "official"
    method: str | None = None
    n_folds: int | None = None
    seed: int | None = None
    grouped: bool = True

    @property
    def generated(self) -> bool:
        return self.origin == "generated"

    def describe(self) -> str:
        """One phrase for reports: "official folds", "generated folds (...)", ..."""
        if self.origin == "official":
            return "official folds"
        if self.origin == "given":
            return "folds from the user's table"
        grouping = "grouped by recording" if self.grouped else "clips not grouped by recording"
        return (f"generated folds ({self.method}, {self.n_folds} folds, seed {self.seed}, "
                f"{grouping})")


OFFICIAL = FoldPlan()


@dataclass(frozen=True)
class Dataset:
    """An opened dataset root.

    Attributes:
        name: registry name (``urbansound8k``, ``esc50``, ``csv``, ...).
        root: absolute root folder.
        classes: class names ordered by class id, from the dataset's labels.
        listed: every clip the dataset lists, with a boolean ``present`` column.
        clips: the usable clips (present ones), columns ``CLIP_COLUMNS``, sorted by fold then id.
        table: the file the clips are listed in (for messages), or the root for class folders.
        fold_plan: where the folds come from.
    """

    name: str
    root: Path
    classes: tuple[str, ...]
    listed: pd.DataFrame = field(repr=False)
    clips: pd.DataFrame = field(repr=False)
    table: Path | None = None
    fold_plan: FoldPlan = OFFICIAL

    @property
    def n_missing(self) -> int:
        return int((~self.listed["present"]).sum())

    @property
    def partial(self) -> bool:
        """True when some listed clips are absent, so results cover only part of the data."""
        return self.n_missing > 0

    def fingerprint(self) -> str:
        """Key of the usable clips' identity, labels, folds, recordings and file sizes, and of
        how generated folds were made.

        Stable when the root is copied elsewhere; changes when a clip is added, removed,
        relabelled, moved to another fold or re-encoded to another size.
        """
        cols = ["clip_id", "class_id", "fold", "recording", "size"]
        rows = self.clips[cols].to_numpy().tolist()
        key = {"name": self.name, "classes": self.classes, "clips": rows}
        if self.fold_plan != OFFICIAL:
            key["fold_plan"] = dataclasses.asdict(self.fold_plan)
        return fingerprint(key)

    def content_fingerprint(self) -> str:
        """The key feature caches use: what decides the audio, not the labels or folds.

        Datasets with official folds use ``fingerprint()`` (as they always have); for the
        user's own folds it is the usable clips' identity and file sizes only, so another
        ``--n-folds`` or ``--fold-seed`` reuses the features already extracted.
        """
        if self.fold_plan == OFFICIAL:
            return self.fingerprint()
        rows = self._by_id()[["clip_id", "size"]].to_numpy().tolist()
        return fingerprint({"name": self.name, "clips": rows})

    def files_stamp(self) -> str:
        """Key of the usable files' modification times: a rewritten file gets a new stamp."""
        clips = self.clips if self.fold_plan == OFFICIAL else self._by_id()
        return fingerprint(clips["mtime_ns"].tolist())

    def _by_id(self) -> pd.DataFrame:
        """The clips in id order, whatever their folds (official layouts keep fold order in
        their keys, as they always have)."""
        return self.clips.sort_values("clip_id", kind="stable")

    def relative(self, path: str) -> str:
        """`path` relative to the root, for messages."""
        return os.path.relpath(path, self.root)


def _where(csv: Path, line: int, name: str) -> str:
    return f"{csv} line {line} ({name})"


def read_table(csv: Path, what: str) -> pd.DataFrame:
    """Read a CSV table with a ``line`` column (its line number in the file, for messages).

    Args:
        what: what the table is, for the not-found message ("Metadata table", ...).
    """
    if not csv.is_file():
        raise DatasetError(f"{what} {csv} not found.")
    try:
        table = pd.read_csv(csv)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{csv} is not a readable CSV table ({exc}).") from None
    return table.assign(line=range(2, len(table) + 2))


def require_columns(csv: Path, table: pd.DataFrame, required: Sequence[str]) -> None:
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise DatasetError(
            f"{csv} lacks column(s) {', '.join(missing)}. Required: {', '.join(required)}."
        )


def integer_columns(csv: Path, table: pd.DataFrame, columns: Sequence[str], name_col: str) -> None:
    """Make `columns` int64 in place; a non-integer cell is a one-line error naming its line."""
    for col in columns:
        values = pd.to_numeric(table[col], errors="coerce")
        bad = table[values.isna() | (values != values.round())]
        if len(bad):
            row = bad.iloc[0]
            raise DatasetError(
                f"{_where(csv, row['line'], row[name_col])}: {col} "
                f"{row[col]!r} is not an integer. Fix the {col} column."
            )
        table[col] = values.astype("int64")


def check_fold_range(csv: Path, table: pd.DataFrame, folds: Sequence[int], name_col: str,
                     fold_col: str = "fold") -> None:
    bad = table[~table[fold_col].isin(folds)]
    if len(bad):
        row = bad.iloc[0]
        raise DatasetError(
            f"{_where(csv, row['line'], row[name_col])}: fold {row[fold_col]} is "
            f"outside {folds[0]}-{folds[-1]} ({len(bad)} such row(s)). Fix the {fold_col} "
            "column."
        )


def check_class_ids(csv: Path, table: pd.DataFrame, id_col: str, class_col: str,
                    name_col: str) -> None:
    """Each class id has one name and each name one id (messages name the line)."""
    table[class_col] = table[class_col].astype(str)
    usual = table.groupby(id_col)[class_col].agg(lambda s: s.value_counts().index[0])
    wrong = table[table[class_col] != table[id_col].map(usual)]
    if len(wrong):
        row = wrong.iloc[0]
        raise DatasetError(
            f"{_where(csv, row['line'], row[name_col])}: {id_col} {row[id_col]} "
            f"is labelled '{row[class_col]}', but {id_col} {row[id_col]} is "
            f"'{usual[row[id_col]]}' elsewhere. Fix the {id_col} or {class_col} column."
        )
    names = usual.value_counts()
    if (names > 1).any():
        name = names[names > 1].index[0]
        ids = sorted(usual[usual == name].index)
        raise DatasetError(
            f"{csv}: class '{name}' has several {id_col}s ({', '.join(map(str, ids))}). "
            f"Give each class one {id_col}."
        )


def check_unique(csv: Path, table: pd.DataFrame, name_col: str) -> None:
    dup = table[table[name_col].duplicated(keep=False)]
    if len(dup):
        first, second = dup.iloc[0], dup.iloc[1]
        raise DatasetError(
            f"{_where(csv, second['line'], second[name_col])}: the file is listed "
            f"twice (lines {first['line']} and {second['line']}). Remove the duplicate row."
        )


def classes_by_id(csv: Path, table: pd.DataFrame, id_col: str, class_col: str
                  ) -> tuple[str, ...]:
    """Class names ordered by id; ids must be 0..k-1 without gaps."""
    by_id = table.groupby(id_col)[class_col].first().sort_index()
    if list(by_id.index) != list(range(len(by_id))):
        raise DatasetError(
            f"{csv}: {id_col}s must be 0..{len(by_id) - 1} without gaps; "
            f"got {', '.join(map(str, by_id.index))}. Renumber the {id_col} column."
        )
    return tuple(by_id.tolist())


def read_metadata(root: Path) -> pd.DataFrame:
    """Read and validate the UrbanSound8K metadata table of `root`.

    Returns:
        The table with integer ``fold``, ``classID`` and ``fsID`` columns and a ``line``
        column (its line number in the CSV, for messages).

    Raises:
        DatasetError: missing root or table, missing column, fold outside 1-10, a class id
            that disagrees with its name, or a file listed twice.
    """
    check_root(root)
    csv = root / METADATA
    if not csv.is_file():
        raise DatasetError(
            f"Metadata table {csv} not found. A dataset root needs {METADATA} and "
            "audio/fold<N>/; check the --data path."
        )
    table = read_table(csv, "Metadata table")
    require_columns(csv, table, REQUIRED_COLUMNS)
    integer_columns(csv, table, ("fold", "classID", "fsID"), "slice_file_name")
    check_fold_range(csv, table, FOLDS, "slice_file_name")
    check_class_ids(csv, table, "classID", "class", "slice_file_name")
    check_unique(csv, table, "slice_file_name")
    return table


def check_root(root: Path) -> None:
    if not root.is_dir():
        raise DatasetError(
            f"Dataset root {root} does not exist. Pass --data with a dataset root (`usbench "
            "ls datasets` shows the layouts), or set USBENCH_DATA."
        )


def _stat_all(paths: Sequence[str]) -> tuple[list[int], list[int]]:
    """(sizes, mtimes in ns) of `paths`, -1 for a missing file; one scandir per folder."""
    entries: dict[str, dict[str, os.stat_result]] = {}
    sizes, mtimes = [], []
    for p in paths:
        folder, name = os.path.split(p)
        if folder not in entries:
            try:
                entries[folder] = {e.name: e.stat() for e in os.scandir(folder) if e.is_file()}
            except (FileNotFoundError, NotADirectoryError):
                entries[folder] = {}
        st = entries[folder].get(name)
        sizes.append(st.st_size if st else -1)
        mtimes.append(st.st_mtime_ns if st else -1)
    return sizes, mtimes


def assemble(name: str, root: Path, classes: tuple[str, ...], rows: pd.DataFrame, *,
             table: Path, allow_missing: bool, fold_plan: FoldPlan = OFFICIAL) -> Dataset:
    """Look the listed clips up on disk and build the Dataset.

    Args:
        rows: one row per listed clip, columns ``CLIP_COLUMNS`` (``path`` absolute).
        table: the file that lists the clips, for messages.
        allow_missing: when False, any listed clip absent from disk raises DatasetError.
    """
    sizes, mtimes = _stat_all(rows["path"].tolist())
    listed = rows[CLIP_COLUMNS].assign(size=sizes, mtime_ns=mtimes)
    listed["present"] = listed["size"] >= 0
    listed = listed.sort_values(["fold", "clip_id"], ignore_index=True)
    n_missing = int((~listed["present"]).sum())
    if n_missing and not allow_missing:
        first = listed.loc[~listed["present"]].iloc[0]
        raise DatasetError(
            f"{n_missing:,} of {len(listed):,} clips listed in {table} are missing (first: "
            f"{os.path.relpath(first['path'], root)}, fold {first['fold']}). Run `usbench data "
            "check` for a per-fold table, or pass --allow-missing to use the clips present "
            "(results are marked partial)."
        )
    clips = listed.loc[listed["present"]].reset_index(drop=True)
    if clips.empty:
        raise DatasetError(
            f"None of the {len(listed):,} clips listed in {table} is under {root}. "
            "Check the --data path."
        )
    return Dataset(name=name, root=root, classes=classes, listed=listed, clips=clips,
                   table=table, fold_plan=fold_plan)


def open_root(name: str, root: Path, *, allow_missing: bool) -> Dataset:
    """Open an UrbanSound8K-layout root and build its clip table.

    Args:
        name: the dataset name to report.
        root: the root folder.
        allow_missing: when False, any listed clip absent from disk raises DatasetError.
    """
    root = root.expanduser().resolve()
    table = read_metadata(root)
    csv = root / METADATA
    classes = classes_by_id(csv, table, "classID", "class")
    audio = str(root / "audio")
    rows = pd.DataFrame({
        "clip_id": table["slice_file_name"].astype(str),
        # os.path.join, not pathlib: 8,732 pathlib joins cost 60 ms of every command.
        "path": [os.path.join(audio, f"fold{f}", n)
                 for f, n in zip(table["fold"], table["slice_file_name"], strict=True)],
        "label": table["class"].astype(str),
        "class_id": table["classID"],
        "fold": table["fold"],
        "recording": table["fsID"],
    })
    return assemble(name, root, classes, rows, table=csv, allow_missing=allow_missing)
