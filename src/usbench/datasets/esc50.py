"""Dataset card: ``esc50``.

- Source: K. J. Piczak, "ESC: Dataset for Environmental Sound Classification", ACM
  Multimedia 2015. https://github.com/karolpiczak/ESC-50
- Content: 2,000 clips of 5 s (44.1 kHz mono) cut from freesound.org field recordings,
  50 classes of 40 clips, in 5 major categories (animals, natural soundscapes, human
  non-speech, interior/domestic, exterior/urban).
- Fold protocol: the 5 predefined folds, evaluated leave-one-fold-out; clips cut from one
  source recording (``src_file``) are kept in one fold, and usbench uses ``src_file`` as the
  recording id.
- Layout: ``meta/esc50.csv`` (filename, fold, target, category, esc10, src_file, take) and
  ``audio/<filename>``.
- Licence: CC BY-NC 3.0 (the ESC-10 subset: CC BY). Cite the paper above.
- Feature sets cover the first 4 s of a clip (``logmel``, ``stft``), or all of it (MFCCs).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from usbench.datasets.base import Dataset, assemble, check_root
from usbench.datasets.cells import (
    check_class_ids,
    check_fold_range,
    check_unique,
    classes_by_id,
    integer_columns,
    read_table,
    require_columns,
)
from usbench.datasets.spec import DatasetSpec
from usbench.errors import DatasetError

META = Path("meta") / "esc50.csv"
COLUMNS = ("filename", "fold", "target", "category", "esc10", "src_file", "take")
FOLDS = (1, 2, 3, 4, 5)

SPEC = DatasetSpec(
    name="esc50",
    summary="ESC-50: 2,000 environmental sound clips of 5 s, 50 classes, 5 official folds",
    card_module=__name__,
    opener=f"{__name__}:open_esc50",
    marker=str(META),
)


def read_meta(root: Path) -> pd.DataFrame:
    """Read and validate ``meta/esc50.csv``: integer fold 1-5 and target, one category per
    target, boolean esc10, no file listed twice (each a one-line error naming the line)."""
    check_root(root)
    csv = root / META
    if not csv.is_file():
        raise DatasetError(f"ESC-50 table {csv} not found. An ESC-50 root holds {META} and "
                           "audio/; check the --data path.")
    table = read_table(csv, "ESC-50 table")
    require_columns(csv, table, COLUMNS)
    integer_columns(csv, table, ("fold", "target"), "filename")
    check_fold_range(csv, table, FOLDS, "filename")
    check_class_ids(csv, table, "target", "category", "filename")
    check_unique(csv, table, "filename")
    flags = table["esc10"].astype(str).str.strip().str.lower()
    bad = table[~flags.isin(("true", "false", "1", "0"))]
    if len(bad):
        row = bad.iloc[0]
        raise DatasetError(f"{csv} line {row['line']} ({row['filename']}): esc10 "
                           f"{row['esc10']!r} is not True or False. Fix the esc10 column.")
    table["esc10"] = flags.isin(("true", "1"))
    return table


def _open(name: str, root: Path, table: pd.DataFrame, classes: tuple[str, ...],
          class_ids: pd.Series, allow_missing: bool) -> Dataset:
    root = root.expanduser().resolve()
    rows = pd.DataFrame({
        "clip_id": table["filename"].astype(str),
        "path": [str(root / "audio" / f) for f in table["filename"]],
        "label": table["category"].astype(str),
        "class_id": class_ids.to_numpy(),
        "fold": table["fold"],
        "recording": table["src_file"].astype(str),
        "line": table["line"].to_numpy(),
    })
    return assemble(name, root, classes, rows, table=root / META, allow_missing=allow_missing,
                    column="filename")


def open_esc50(root: Path, cfg) -> Dataset:
    """ESC-50: all 50 classes, class id = ``target``."""
    table = read_meta(root)
    classes = classes_by_id(root / META, table, "target", "category")
    return _open("esc50", root, table, classes, table["target"], cfg.allow_missing)


def open_esc10(root: Path, cfg) -> Dataset:
    """ESC-10: the rows with ``esc10 == True``, class ids renumbered 0-9 by ESC-50 target."""
    table = read_meta(root)
    table = table[table["esc10"]].reset_index(drop=True)
    if table.empty:
        raise DatasetError(f"{root / META} marks no clip as esc10 (the column is all False). "
                           "Use --dataset esc50, or a complete ESC-50 table.")
    targets = sorted(table["target"].unique())
    names = table.groupby("target")["category"].first()
    classes = tuple(names[t] for t in targets)
    ids = table["target"].map({t: i for i, t in enumerate(targets)})
    return _open("esc10", root, table, classes, ids, cfg.allow_missing)
