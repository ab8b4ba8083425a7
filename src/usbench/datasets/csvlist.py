"""Dataset card: ``csv``, any table of audio files and their labels.

- Layout: a CSV table under the root with a file column (paths relative to the root, or to
  ``audio_dir``) and a label column; optional fold and group (recording id) columns. Name the
  table and columns with ``--table``, ``--file-column``, ``--label-column``,
  ``--fold-column``, ``--group-column`` (or ``--group-pattern REGEX`` on the file names), or in
  ``<root>/usbench.toml`` (keys table, file, label, fold, group, group_pattern, audio_dir,
  extension). The tutorials' competition layout, ``train.csv`` with columns ``ID,Class``
  beside ``Train/<ID>.wav``, is recognised without any of them.
- Classes: the label column's values, sorted; class ids 0..k-1 in that order.
- Fold protocol: the fold column when given; else generated stratified folds (grouped by
  recording when recordings are known), ``--n-folds`` (default 5) and ``--fold-seed``
  (default 0). Generated folds are recorded with every run and labelled "generated folds":
  they are not an official protocol.
- Licence and citation: those of your data.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd

from usbench.datasets.base import Dataset, assemble, check_root
from usbench.datasets.sidefile import SIDE_FILE, TableOptions, table_options
from usbench.datasets.spec import DatasetSpec
from usbench.datasets.tables import (
    check_duplicates,
    folds_and_recordings,
    read_columns,
    sorted_classes,
)
from usbench.errors import DatasetError

SPEC = DatasetSpec(
    name="csv",
    summary="any table of file,label (+ fold, group) under the root; folds generated if absent",
    card_module=__name__,
    own_folds=True,
    opener=f"{__name__}:open_csv",
)


def _child(folder: Path, name: str, want_dir: bool) -> Path | None:
    """The entry of `folder` named `name`, ignoring case."""
    for p in sorted(folder.iterdir()):
        if p.name.lower() == name.lower() and (p.is_dir() if want_dir else p.is_file()):
            return p
    return None


def competition_layout(root: Path, opts: TableOptions) -> TableOptions | None:
    """``train.csv`` (ID, Class) beside ``Train/<ID>.wav``, as options; None if not that."""
    csv, audio = _child(root, "train.csv", False), _child(root, "train", True)
    if csv is None or audio is None:
        return None
    try:
        columns = set(pd.read_csv(csv, nrows=0).columns)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
        return None
    if not {"ID", "Class"} <= columns:
        return None
    return replace(opts, table=csv.name, file=opts.file or "ID", label=opts.label or "Class",
                   audio_dir=opts.audio_dir or audio.name, extension=opts.extension or ".wav",
                   source=f"the competition layout ({csv.name} + {audio.name}/)")


def open_csv(root: Path, cfg) -> Dataset:
    """Open a root of the ``csv`` layout (see the module docstring)."""
    check_root(root)
    root = root.expanduser().resolve()
    opts = table_options(root, cfg)
    if opts.table is None:
        found = competition_layout(root, opts)
        if found is None:
            raise DatasetError(
                f"{root} has no {SIDE_FILE} naming its table, and is not the competition "
                "layout (train.csv with ID,Class beside Train/). Pass --table FILE.csv "
                "--file-column NAME --label-column NAME, or write them to "
                f"{root / SIDE_FILE} (table, file, label).")
        opts = found
    opts = replace(opts, file=opts.file or "file", label=opts.label or "label")
    csv = root / opts.table
    table = read_columns(csv, opts, {"file": opts.file, "label": opts.label,
                                     "fold": opts.fold, "group": opts.group})
    names = table[opts.file].astype(str).str.strip()
    if opts.extension:
        ext = opts.extension if opts.extension.startswith(".") else f".{opts.extension}"
        names = names.where(names.map(lambda n: Path(n).suffix != ""), names + ext)
    table[opts.file] = names
    check_duplicates(csv, table, opts.file)
    labels = table[opts.label].astype(str).str.strip()
    classes = sorted_classes(labels, str(csv), opts.label)
    audio = root / opts.audio_dir
    rows = pd.DataFrame({
        "clip_id": names.to_numpy(),
        "path": [str(audio / n) for n in names],
        "label": labels.to_numpy(),
        "class_id": labels.map({c: i for i, c in enumerate(classes)}).to_numpy(),
        "line": table["line"].to_numpy(),
    })
    rows, plan = folds_and_recordings(rows, table, opts, cfg, str(csv))
    return assemble("csv", root, classes, rows, table=csv, allow_missing=cfg.allow_missing,
                    fold_plan=plan, column=opts.file)
