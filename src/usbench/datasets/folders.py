"""Dataset card: ``folders``, one folder of audio per class.

- Layout: ``<root>/<class>/**/*.<ext>``, any format libsndfile reads (wav, flac, ogg, mp3,
  aiff, ...); other files are ignored. Kaggle-style splits, ``<root>/train/<class>/...`` and
  ``<root>/test/<class>/...`` (folders named train, test, val, valid, validation, dev, eval),
  are pooled: usbench makes its own folds over all clips.
- Classes: the class folder names, sorted; class ids 0..k-1 in that order.
- Fold protocol: generated stratified folds (grouped by recording when recordings are known),
  ``--n-folds`` (default 5) and ``--fold-seed`` (default 0), labelled "generated folds" and
  recorded with every run. A side table (``--table`` or ``table`` in ``<root>/usbench.toml``)
  with a ``file`` column (paths relative to the root) may give a fold column and a group
  column; ``--group-pattern REGEX`` takes recording ids from the file names.
- Licence and citation: those of your data.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pandas as pd

from usbench.datasets.base import Dataset, assemble, check_root
from usbench.datasets.sidefile import table_options
from usbench.datasets.spec import DatasetSpec
from usbench.datasets.tables import check_duplicates, folds_and_recordings, read_columns
from usbench.errors import DatasetError

SPEC = DatasetSpec(
    name="folders",
    summary="<root>/<class>/*.wav (any libsndfile format); folds generated unless a table "
            "gives them",
    card_module=__name__,
    own_folds=True,
    opener=f"{__name__}:open_folders",
)

SPLITS = ("dev", "eval", "test", "train", "val", "valid", "validation")
_EXTENSIONS = {"WAV": ("wav", "wave"), "FLAC": ("flac",), "OGG": ("ogg", "oga", "opus"),
               "MP3": ("mp3",), "AIFF": ("aiff", "aif", "aifc"), "AU": ("au", "snd"),
               "CAF": ("caf",), "W64": ("w64",), "RF64": ("rf64",)}


def audio_extensions() -> frozenset[str]:
    """File suffixes (lower case, no dot) of the formats this libsndfile reads."""
    import soundfile as sf

    formats = sf.available_formats()
    return frozenset(ext for fmt, exts in _EXTENSIONS.items() if fmt in formats for ext in exts)


def _visible_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def class_folders(root: Path) -> list[tuple[str, Path]]:
    """(class name, folder) pairs, pooling Kaggle-style split folders."""
    top = _visible_dirs(root)
    if top and all(p.name.lower() in SPLITS for p in top):
        return [(c.name, c) for split in top for c in _visible_dirs(split)]
    return [(p.name, p) for p in top]


def scan(root: Path) -> pd.DataFrame:
    """Every audio file under the class folders: columns clip_id (path relative to the root,
    with /), path, label.

    Raises:
        DatasetError: no class folders, fewer than two classes, or a class folder with no
            audio (named).
    """
    exts = audio_extensions()
    rows = []
    folders = class_folders(root)
    for label, folder in folders:
        found = 0
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if name.startswith(".") or name.rsplit(".", 1)[-1].lower() not in exts:
                    continue
                path = Path(dirpath) / name
                rows.append({"clip_id": path.relative_to(root).as_posix(), "path": str(path),
                             "label": label})
                found += 1
        if not found:
            raise DatasetError(
                f"Class folder {folder} holds no audio files ({', '.join(sorted(exts))}). Add "
                "clips, or move the folder out of the dataset root.")
    classes = sorted({label for label, _ in folders})
    if len(classes) < 2:
        what = f"one class folder ({classes[0]})" if classes else "no class folders"
        raise DatasetError(
            f"{root} has {what}; the folders layout needs <root>/<class>/*.wav with at least "
            "two classes. Check the --data path.")
    return pd.DataFrame(rows)


def open_folders(root: Path, cfg) -> Dataset:
    """Open a root of the ``folders`` layout (see the module docstring)."""
    check_root(root)
    root = root.expanduser().resolve()
    if cfg.label_column is not None:
        raise DatasetError("--label-column does not apply to the folders layout: the class "
                           "folders are the labels. Drop it.")
    opts = table_options(root, cfg)
    rows = scan(root)
    classes = tuple(sorted(rows["label"].unique()))
    rows["class_id"] = rows["label"].map({c: i for i, c in enumerate(classes)})
    table, where = None, str(root)
    if opts.table is not None:
        csv = root / opts.table
        where = str(csv)
        file_col = opts.file or "file"
        opts = replace(opts, file=file_col)
        table = read_columns(csv, opts, {"file": file_col, "fold": opts.fold,
                                         "group": opts.group})
        table[file_col] = table[file_col].astype(str).str.strip().map(
            lambda p: Path(p).as_posix())
        check_duplicates(csv, table, file_col)
        known = set(rows["clip_id"])
        stray = table[~table[file_col].isin(known)]
        if len(stray):
            raise DatasetError(
                f"{csv} line {stray['line'].iloc[0]}: {stray[file_col].iloc[0]} is not an "
                f"audio file under the class folders ({len(stray)} such row(s)). File paths "
                "are relative to the root, like dog/bark1.wav; fix or remove the row.")
        listed = set(table[file_col])
        unlisted = rows[~rows["clip_id"].isin(listed)]
        if len(unlisted):
            raise DatasetError(
                f"{csv} does not list {unlisted['clip_id'].iloc[0]} ({len(unlisted)} audio "
                "file(s) under the class folders are not in it). Add a row for each, or "
                "remove the table to generate folds.")
        table = table.set_index(file_col, drop=False).loc[rows["clip_id"]].reset_index(drop=True)
    rows, plan = folds_and_recordings(rows, table, opts, cfg, where)
    return assemble("folders", root, classes, rows, table=Path(where),
                    allow_missing=cfg.allow_missing, fold_plan=plan)
