"""Reading a user's clip table (the ``csv`` layout, and the side table of ``folders``).

Labels become class ids in sorted order; folds come from a fold column or are generated
(``usbench.datasets.folds``); recording ids come from a group column, a ``group_pattern`` on
the file names, or are unknown (each clip then stands alone, and the folds say so).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from usbench.datasets.base import FoldPlan
from usbench.datasets.cells import integer_columns, read_table
from usbench.datasets.sidefile import TableOptions, recording_ids
from usbench.errors import DatasetError


def read_columns(csv: Path, opts: TableOptions, needed: dict[str, str | None]) -> pd.DataFrame:
    """Read `csv` and check that the named columns exist and have no empty cells.

    Args:
        needed: role ("file", "label", ...) -> column name (None: not used).
    """
    table = read_table(csv, "Table")
    have = [str(c) for c in table.columns if c != "line"]
    if len(have) < 2:  # not a clip table: its first line is not shown, it may be anything
        raise DatasetError(
            f"{csv} is not a table of clips: its first line is not a header of two or more "
            "comma-separated column names (file, label, ...). Check --table, or the table key "
            "in usbench.toml.")
    for role, col in needed.items():
        if col is None:
            continue
        if col not in table.columns:
            raise DatasetError(
                f"{csv} has no column '{col}' (the {role} column, from {opts.source}); it has "
                f"{', '.join(have)}. Name the right column with --{role}-column or in "
                "usbench.toml.")
        empty = table[table[col].isna() | (table[col].astype(str).str.strip() == "")]
        if len(empty):
            raise DatasetError(f"{csv} line {empty['line'].iloc[0]}: the {role} column "
                               f"'{col}' is empty ({len(empty)} such row(s)). Fill it in or "
                               "remove the row.")
    return table


def check_duplicates(csv: Path, table: pd.DataFrame, col: str) -> None:
    dup = table[table[col].astype(str).duplicated(keep=False)]
    if len(dup):
        first, second = dup.iloc[0], dup.iloc[1]
        raise DatasetError(f"{csv} line {second['line']} ({second[col]}): the file is listed "
                           f"twice (lines {first['line']} and {second['line']}). Remove the "
                           "duplicate row.")


def sorted_classes(labels: pd.Series, where: str, column: str) -> tuple[str, ...]:
    """Class names in sorted order; at least two."""
    classes = tuple(sorted(set(labels.astype(str))))
    if len(classes) < 2:
        raise DatasetError(
            f"{where}: the label column '{column}' holds one class only ('{classes[0]}'); a "
            "classifier needs at least two. Check the label column, or add clips of other "
            "classes.")
    return classes


def folds_and_recordings(rows: pd.DataFrame, table: pd.DataFrame | None, opts: TableOptions,
                         cfg, where: str) -> tuple[pd.DataFrame, FoldPlan]:
    """Fill the ``fold`` and ``recording`` columns of `rows` (aligned with `table`'s rows).

    Folds: `table`'s fold column when named (then --n-folds and --fold-seed are refused),
    else generated. Recordings: the group column, else `opts.group_pattern` on ``clip_id``,
    else the clip id itself (ungrouped).
    """
    from usbench.datasets import folds as gen

    rows = rows.copy()
    if table is not None and opts.group is not None:
        rows["recording"] = table[opts.group].astype(str).to_numpy()
        grouped = True
    else:
        ids = recording_ids(rows["clip_id"].tolist(), opts, where)
        grouped = ids is not None
        rows["recording"] = ids if grouped else rows["clip_id"].to_numpy()
    if table is not None and opts.fold is not None:
        if cfg.n_folds is not None or cfg.fold_seed is not None:
            raise DatasetError(
                f"{where} gives folds in column '{opts.fold}'; --n-folds and --fold-seed only "
                "apply to generated folds. Drop them, or drop the fold column to generate "
                "folds.")
        integer_columns(Path(where), table, [opts.fold], opts.file or "line")
        folds = table[opts.fold].to_numpy()
        if (folds < 1).any():
            line = int(table.loc[folds < 1, "line"].iloc[0])
            raise DatasetError(f"{where} line {line}: fold {int(folds[folds < 1][0])} is not a "
                               "positive integer. Number folds from 1.")
        rows["fold"] = folds.astype(np.int64)
        return rows, FoldPlan(origin="given", grouped=grouped)
    rows["fold"], plan = gen.generate(rows, n_folds=cfg.n_folds, seed=cfg.fold_seed,
                                      grouped=grouped, where=where)
    return rows, plan
