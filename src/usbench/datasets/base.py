"""What every layout shares: the opened ``Dataset`` and file lookup (reading and checking a
metadata table's cells is ``usbench.datasets.cells``).

Each layout (``urbansound8k``, ``esc50``, ``folders``, ``csv``, ...) turns its files into the
same clip table: one row per usable clip, columns ``clip_id, path, label, class_id, fold,
recording``; the class list comes from the dataset's own labels, never from the clips present.
This module also reads the UrbanSound8K layout: ``<root>/metadata/UrbanSound8K.csv`` +
``<root>/audio/fold<N>/<slice_file_name>`` (the synthetic set uses it too).

The UrbanSound8K layout is read and checked without pandas (the stdlib ``csv`` module and a
``Table`` of cell strings): importing pandas costs 0.22 s, more than the rest of a 300-clip
``features build``'s start-up. ``Dataset.clips`` and ``.listed`` are DataFrames built on first
use; the feature build reads ``Dataset.column`` instead.
"""

from __future__ import annotations

import dataclasses
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from usbench.config import fingerprint
from usbench.datasets.cells import (
    Table,
    check_class_ids,
    check_fold_range,
    check_unique,
    classes_by_id,
    integer_columns,
    read_cells,
    require_columns,
)
from usbench.errors import DatasetError

if TYPE_CHECKING:
    import pandas as pd

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
        columns: every listed clip, as columns (``CLIP_COLUMNS`` plus ``size``, ``mtime_ns``
            and ``present``) of equal-length lists, sorted by fold then id.
        table: the file the clips are listed in (for messages), or the root for class folders.
        fold_plan: where the folds come from.
    """

    name: str
    root: Path
    classes: tuple[str, ...]
    columns: dict[str, list] = field(repr=False, compare=False)
    table: Path | None = None
    fold_plan: FoldPlan = OFFICIAL

    @cached_property
    def _present(self) -> list[int]:
        return [i for i, here in enumerate(self.columns["present"]) if here]

    def column(self, name: str) -> list:
        """One column of the usable (present) clips, in ``clips`` order, without pandas."""
        values = self.columns[name]
        return [values[i] for i in self._present]

    @property
    def n_clips(self) -> int:
        """Usable clips (rows of ``clips``)."""
        return len(self._present)

    @property
    def n_listed(self) -> int:
        return len(self.columns["present"])

    @cached_property
    def listed(self) -> pd.DataFrame:
        """Every clip the dataset lists, with a boolean ``present`` column."""
        import pandas as pd

        return pd.DataFrame(self.columns)

    @cached_property
    def clips(self) -> pd.DataFrame:
        """The usable clips (present ones), columns ``CLIP_COLUMNS`` (and ``size``,
        ``mtime_ns``, ``present``), sorted by fold then id."""
        listed = self.listed
        return listed.loc[listed["present"]].reset_index(drop=True)

    @property
    def n_missing(self) -> int:
        return self.n_listed - self.n_clips

    @property
    def partial(self) -> bool:
        """True when some listed clips are absent, so results cover only part of the data."""
        return self.n_missing > 0

    def _rows(self, cols: Sequence[str], by_id: bool = False) -> list[list]:
        """The usable clips' values of `cols`, one list per clip (in id order if `by_id`)."""
        rows = [list(r) for r in zip(*(self.column(c) for c in cols), strict=True)]
        if by_id:
            ids = self.column("clip_id")
            rows = [rows[i] for i in sorted(range(len(ids)), key=ids.__getitem__)]
        return rows

    def fingerprint(self) -> str:
        """Key of the usable clips' identity, labels, folds, recordings and file sizes, and of
        how generated folds were made.

        Stable when the root is copied elsewhere; changes when a clip is added, removed,
        relabelled, moved to another fold or re-encoded to another size.
        """
        rows = self._rows(["clip_id", "class_id", "fold", "recording", "size"])
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
        return fingerprint({"name": self.name,
                            "clips": self._rows(["clip_id", "size"], by_id=True)})

    def files_stamp(self) -> str:
        """Key of the usable files' modification times: a rewritten file gets a new stamp."""
        # Official layouts keep fold order in their keys, as they always have; the user's own
        # folds use id order, whatever the folds.
        rows = self._rows(["mtime_ns"], by_id=self.fold_plan != OFFICIAL)
        return fingerprint([r[0] for r in rows])

    def relative(self, path: str) -> str:
        """`path` relative to the root, for messages."""
        return os.path.relpath(path, self.root)


def read_metadata(root: Path) -> Table:
    """Read and validate the UrbanSound8K metadata table of `root`.

    Returns:
        The table with integer ``fold``, ``classID`` and ``fsID`` columns, the others as cell
        strings, and a ``line`` column (its line number in the CSV, for messages).

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
    table = read_cells(csv)
    require_columns(csv, table, REQUIRED_COLUMNS)
    integer_columns(csv, table, ("fold", "classID", "fsID"), "slice_file_name")
    check_fold_range(csv, table, FOLDS, "slice_file_name")
    check_class_ids(csv, table, "classID", "class", "slice_file_name")
    check_unique(csv, table, "slice_file_name")
    return table


def check_root(root: Path) -> None:
    if root.exists() and not root.is_dir():
        raise DatasetError(
            f"Dataset root {root} is a file, not a folder. Pass --data the folder that holds "
            "the dataset (for UrbanSound8K, the one with metadata/ and audio/).")
    if not root.is_dir():
        raise DatasetError(
            f"Dataset root {root} does not exist. Pass --data with a dataset root (`usbench "
            "ls datasets` shows the layouts), or set USBENCH_DATA."
        )


def inside(path: str, root: Path) -> bool:
    """True when `path`, its links and ``..`` resolved, is `root` (a resolved folder) or under
    it."""
    return Path(os.path.realpath(path)).is_relative_to(root)


def _stat_all(paths: Sequence[str], root: Path
              ) -> tuple[list[int], list[int], list[bool], int | None]:
    """(sizes, mtimes in ns, present) of `paths`, and the index of the first path that leads
    outside `root` (None: none does); one scandir and one realpath per folder.

    A missing file is absent, with size and mtime -1. An entry that is there but is no
    readable regular file (a symbolic link loop, a dangling link, a folder, one that may not
    be read) is present with size and mtime -1: decoding names what is wrong with it, and
    ``--skip-bad`` leaves it out. Entries that no path names are never looked at, so an
    unlisted link loop does not matter.
    """
    listings: dict[str, dict[str, os.DirEntry] | None] = {}
    folder_inside: dict[str, bool] = {}
    sizes, mtimes, present, outside = [], [], [], None
    for i, p in enumerate(paths):
        folder, name = os.path.split(p)
        if folder not in listings:
            try:
                with os.scandir(folder) as it:
                    listings[folder] = {e.name: e for e in it}
            except (FileNotFoundError, NotADirectoryError):
                listings[folder] = {}
            except OSError:  # a folder that may not be listed: each file on its own
                listings[folder] = None
            folder_inside[folder] = inside(folder, root)
        listing = listings[folder]
        here = os.path.lexists(p) if listing is None else name in listing
        link = here and (os.path.islink(p) if listing is None else listing[name].is_symlink())
        if outside is None and not (folder_inside[folder] and name != ".."
                                    and (not link or inside(p, root))):
            outside = i
        try:
            st = (os.stat(p) if listing is None else listing[name].stat()) if here else None
        except OSError:
            st = None
        regular = st is not None and stat.S_ISREG(st.st_mode)
        sizes.append(st.st_size if regular else -1)
        mtimes.append(st.st_mtime_ns if regular else -1)
        present.append(here)
    return sizes, mtimes, present, outside


def assemble(name: str, root: Path, classes: tuple[str, ...],
             rows: pd.DataFrame | dict[str, Sequence], *, table: Path, allow_missing: bool,
             fold_plan: FoldPlan = OFFICIAL, column: str | None = None) -> Dataset:
    """Look the listed clips up on disk and build the Dataset.

    Args:
        root: the resolved root folder: every clip must resolve under it (links and ``..``
            followed).
        rows: one row per listed clip, columns ``CLIP_COLUMNS`` (``path`` absolute) and
            optionally ``line`` (the row's line in `table`, for messages): a DataFrame or a
            dict of equal-length sequences.
        table: the file that lists the clips, for messages.
        allow_missing: when False, any listed clip absent from disk raises DatasetError.
        column: the table's column of file names, for messages (None: found by a scan).

    Raises:
        DatasetError: a clip outside the root, or clips missing (unless `allow_missing`).
    """
    given = {c: list(rows[c]) for c in CLIP_COLUMNS}
    sizes, mtimes, present, outside = _stat_all(given["path"], root)
    if outside is not None:
        clip = given["clip_id"][outside]
        if column is None:
            raise DatasetError(
                f"{given['path'][outside]} is a link to a file outside the dataset root "
                f"{root}. Copy the file under the root, or remove the link.")
        where = f"{table} line {list(rows['line'])[outside]}" if "line" in rows else str(table)
        raise DatasetError(
            f"{where}: {column} '{clip}' leads outside the dataset root {root}. File names "
            "in the table must stay under the root (no absolute paths, no '..', no links out "
            "of it): fix the row, or move the audio under the root.")
    given.update(size=sizes, mtime_ns=mtimes, present=present)
    order = sorted(range(len(sizes)), key=lambda i: (given["fold"][i], given["clip_id"][i]))
    columns = {c: [values[i] for i in order] for c, values in given.items()}
    n_missing = columns["present"].count(False)
    if n_missing and not allow_missing:
        first = columns["present"].index(False)
        raise DatasetError(
            f"{n_missing:,} of {len(order):,} clips listed in {table} are missing (first: "
            f"{os.path.relpath(columns['path'][first], root)}, fold {columns['fold'][first]}). "
            "Run `usbench data check` for a per-fold table, or pass --allow-missing to use the "
            "clips present (results are marked partial)."
        )
    if n_missing == len(order):
        raise DatasetError(
            f"None of the {len(order):,} clips listed in {table} is under {root}. "
            "Check the --data path."
        )
    return Dataset(name=name, root=root, classes=classes, columns=columns, table=table,
                   fold_plan=fold_plan)


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
    rows = {
        "clip_id": table["slice_file_name"],
        # os.path.join, not pathlib: 8,732 pathlib joins cost 60 ms of every command.
        "path": [os.path.join(audio, f"fold{f}", n)
                 for f, n in zip(table["fold"], table["slice_file_name"], strict=True)],
        "label": table["class"],
        "class_id": table["classID"],
        "fold": table["fold"],
        "recording": table["fsID"],
        "line": table["line"],
    }
    return assemble(name, root, classes, rows, table=csv, allow_missing=allow_missing,
                    column="slice_file_name")
