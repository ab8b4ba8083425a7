"""Metadata tables: read (the stdlib ``csv`` module into a ``Table`` of cell strings, or
pandas for other layouts) and checked, each problem one line naming the file, the line and
the fix.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from usbench.errors import DatasetError

if TYPE_CHECKING:
    import pandas as pd


class Table:
    """A CSV table as columns of cell strings, with each row's line number in the file
    (column ``line``), read by the stdlib ``csv`` module. The checks below take it or a
    DataFrame alike: ``table.columns``, ``table[col]`` (iterable) and ``table[col] = values``.
    """

    def __init__(self, columns: dict[str, list]):
        self._columns = columns

    @property
    def columns(self) -> list[str]:
        return list(self._columns)

    def __getitem__(self, col: str) -> list:
        return self._columns[col]

    def __setitem__(self, col: str, values: Iterable) -> None:
        self._columns[col] = list(values)

    def __len__(self) -> int:
        return len(self._columns["line"])


def _where(csv: Path, line: int, name: str) -> str:
    return f"{csv} line {line} ({name})"


def read_table(csv: Path, what: str) -> pd.DataFrame:
    """Read a CSV table with pandas, with a ``line`` column (its line number in the file, for
    messages).

    Args:
        what: what the table is, for the not-found message ("Metadata table", ...).
    """
    import pandas as pd

    if not csv.is_file():
        raise DatasetError(f"{what} {csv} not found.")
    try:
        table = pd.read_csv(csv)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{csv} is not a readable CSV table ({exc}).") from None
    return table.assign(line=range(2, len(table) + 2))


def read_cells(csv: Path) -> Table:
    """Read a CSV table as cell strings (no type guessing), skipping blank lines; a row
    shorter than the header is padded with empty cells.

    Raises:
        DatasetError: not UTF-8, no header row, a row longer than the header, or bad quoting.
    """
    import csv as csv_module

    try:
        with open(csv, newline="", encoding="utf-8-sig") as fh:
            reader = csv_module.reader(fh)
            header = next((row for row in reader if row), None)
            if header is None:
                raise DatasetError(f"{csv} is not a readable CSV table (it has no header row).")
            rows, lines = [], []
            for row in reader:
                if not row:
                    continue
                if len(row) > len(header):
                    raise DatasetError(
                        f"{csv} line {reader.line_num}: {len(row)} fields where the header "
                        f"has {len(header)}. Quote cells that hold commas, or remove the "
                        "extra fields.")
                rows.append(row + [""] * (len(header) - len(row)))
                lines.append(reader.line_num)
    except (csv_module.Error, UnicodeDecodeError) as exc:
        raise DatasetError(f"{csv} is not a readable CSV table ({exc}).") from None
    columns = {name: [row[i] for row in rows] for i, name in enumerate(header)}
    columns["line"] = lines
    return Table(columns)


def require_columns(csv: Path, table: Table | pd.DataFrame, required: Sequence[str]) -> None:
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise DatasetError(
            f"{csv} lacks column(s) {', '.join(missing)}. Required: {', '.join(required)}."
        )


def _integer(value: Any) -> int | None:
    """`value` (a cell string or a number) as an int, or None when it is not an integer."""
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    elif isinstance(value, int):  # numpy's integers are not, and go through float
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if math.isfinite(number) and number == round(number) else None


def _shown(value: Any) -> str:
    """A bad cell as messages show it: numbers as written, text quoted."""
    if isinstance(value, str):
        try:
            float(value)
            return value
        except ValueError:
            return repr(value)
    return repr(value)


def integer_columns(csv: Path, table: Table | pd.DataFrame, columns: Sequence[str],
                    name_col: str) -> None:
    """Make `columns` integers in place; a non-integer cell is a one-line error naming its
    line."""
    lines, names = list(table["line"]), list(table[name_col])
    for col in columns:
        cells = list(table[col])
        values = [_integer(v) for v in cells]
        if None in values:
            i = values.index(None)
            raise DatasetError(
                f"{_where(csv, lines[i], names[i])}: {col} {_shown(cells[i])} is not an "
                f"integer. Fix the {col} column."
            )
        table[col] = values


def check_fold_range(csv: Path, table: Table | pd.DataFrame, folds: Sequence[int],
                     name_col: str, fold_col: str = "fold") -> None:
    values = list(table[fold_col])
    bad = [i for i, f in enumerate(values) if f not in folds]
    if bad:
        i = bad[0]
        raise DatasetError(
            f"{_where(csv, list(table['line'])[i], list(table[name_col])[i])}: fold "
            f"{values[i]} is outside {folds[0]}-{folds[-1]} ({len(bad)} such row(s)). Fix the "
            f"{fold_col} column."
        )


def check_class_ids(csv: Path, table: Table | pd.DataFrame, id_col: str, class_col: str,
                    name_col: str) -> None:
    """Each class id has one name and each name one id (messages name the line)."""
    table[class_col] = [str(v) for v in table[class_col]]
    ids, names = list(table[id_col]), list(table[class_col])
    counts: dict[int, Counter] = {}
    for i, name in zip(ids, names, strict=True):
        counts.setdefault(i, Counter())[name] += 1
    usual = {i: c.most_common(1)[0][0] for i, c in sorted(counts.items())}
    for k, (i, name) in enumerate(zip(ids, names, strict=True)):
        if name != usual[i]:
            raise DatasetError(
                f"{_where(csv, list(table['line'])[k], list(table[name_col])[k])}: {id_col} "
                f"{i} is labelled '{name}', but {id_col} {i} is '{usual[i]}' elsewhere. Fix "
                f"the {id_col} or {class_col} column."
            )
    ids_of: dict[str, list[int]] = {}
    for i, name in usual.items():
        ids_of.setdefault(name, []).append(i)
    shared = [name for name, i in ids_of.items() if len(i) > 1]
    if shared:
        name = max(shared, key=lambda n: len(ids_of[n]))
        raise DatasetError(
            f"{csv}: class '{name}' has several {id_col}s "
            f"({', '.join(map(str, sorted(ids_of[name])))}). Give each class one {id_col}."
        )


def check_unique(csv: Path, table: Table | pd.DataFrame, name_col: str) -> None:
    first_line: dict[str, int] = {}
    for name, line in zip(table[name_col], table["line"], strict=True):
        if name in first_line:
            raise DatasetError(
                f"{_where(csv, line, name)}: the file is listed twice (lines "
                f"{first_line[name]} and {line}). Remove the duplicate row."
            )
        first_line[name] = line


def classes_by_id(csv: Path, table: Table | pd.DataFrame, id_col: str, class_col: str
                  ) -> tuple[str, ...]:
    """Class names ordered by id; ids must be 0..k-1 without gaps."""
    first: dict[int, str] = {}
    for i, name in zip(table[id_col], table[class_col], strict=True):
        first.setdefault(i, name)
    ids = sorted(first)
    if ids != list(range(len(ids))):
        raise DatasetError(
            f"{csv}: {id_col}s must be 0..{len(ids) - 1} without gaps; "
            f"got {', '.join(map(str, ids))}. Renumber the {id_col} column."
        )
    return tuple(first[i] for i in ids)
