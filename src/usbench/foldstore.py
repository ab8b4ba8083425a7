"""Finished test folds of a ``usbench run``, kept until the run is recorded: a run that is
killed, interrupted or crashes resumes with the folds it had not finished.

One file per fold, ``results/folds/<config_id>/fold-<k>.npz``: the test rows, the predicted
probabilities and the true classes as arrays, and the fold's fit and predict seconds, start
and end times and training history as JSON. Each is written under a temporary name and then
renamed into place, so a kill never leaves half a fold. The folder is named by the run's
config id, which covers the dataset, features, model, parameters, tested folds, seed and
augmentation: a changed configuration never finds another's folds. A damaged file is dropped
with a warning and its fold trained again.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np

from usbench.cache import atomic_write
from usbench.cv import FoldResult

log = logging.getLogger("usbench")

META_FIELDS = ("fold", "n_train", "fit_seconds", "predict_seconds", "history", "started",
               "ended")


class FoldStore:
    """The kept folds of one configuration, in `folder`."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    @classmethod
    def for_config(cls, config_id: str) -> FoldStore:
        """The store of configuration `config_id` under ``results/folds/``."""
        from usbench.paths import results_dir

        return cls(results_dir() / "folds" / config_id)

    def path(self, fold: int) -> Path:
        return self.folder / f"fold-{fold}.npz"

    def save(self, r: FoldResult) -> None:
        """Keep one finished fold: written whole, or not at all."""
        self.folder.mkdir(parents=True, exist_ok=True)
        meta = json.dumps({k: getattr(r, k) for k in META_FIELDS}, default=_plain)

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                np.savez(f, test_index=r.test_index, proba=r.proba, y_true=r.y_true,
                         meta=np.array(meta))
                f.flush()
                os.fsync(f.fileno())

        atomic_write(self.path(r.fold), write)

    def load(self, test_rows: dict[int, np.ndarray], n_classes: int) -> dict[int, FoldResult]:
        """The kept folds among `test_rows` ({fold: its test row indices}).

        A file that cannot be read, or that does not match its fold's test rows and class
        count, is deleted with a warning: that fold is trained again.
        """
        kept = {}
        for fold, rows in test_rows.items():
            path = self.path(fold)
            if not path.exists():
                continue
            try:
                kept[fold] = _read(path, fold, rows, n_classes)
            except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:
                log.warning(f"warning: kept fold record {path} is damaged ({exc}); fold "
                            f"{fold} is trained again.")
                path.unlink(missing_ok=True)
        return kept

    def discard(self) -> list[int]:
        """Remove every kept fold; returns the folds that were kept."""
        if not self.folder.is_dir():
            return []
        folds = sorted(int(p.stem.removeprefix("fold-")) for p in self.folder.glob("fold-*.npz")
                       if p.stem.removeprefix("fold-").isdigit())
        shutil.rmtree(self.folder, ignore_errors=True)
        try:
            self.folder.parent.rmdir()  # results/folds/ itself, once empty
        except OSError:
            pass
        return folds


def _plain(value):
    """JSON for the numpy scalars and arrays a training history may hold."""
    return value.tolist() if hasattr(value, "tolist") else str(value)


def _read(path: Path, fold: int, rows: np.ndarray, n_classes: int) -> FoldResult:
    with np.load(path, allow_pickle=False) as z:
        test_index, proba, y_true = z["test_index"], z["proba"], z["y_true"]
        meta = json.loads(str(z["meta"]))
    if not isinstance(meta, dict) or set(meta) != set(META_FIELDS):
        raise ValueError("its JSON part lacks the fold's fields")
    if meta["fold"] != fold or not np.array_equal(test_index, rows):
        raise ValueError(f"it holds other test rows than fold {fold}'s")
    if proba.shape != (len(rows), n_classes) or y_true.shape != (len(rows),):
        raise ValueError(f"its probabilities have shape {proba.shape}, expected "
                         f"{(len(rows), n_classes)}")
    return FoldResult(test_index=test_index, proba=proba, y_true=y_true, **meta)
