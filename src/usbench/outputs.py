"""A run's local record: ``results/runs/<run name>/`` with the JSON result and artifacts.

Written before anything is sent to MLflow, so the result survives any tracking failure, and
whole or not at all: into a temporary folder beside it, renamed into place when complete.
Every run gets its own folder (``-2``, ``-3``, ... when runs start in the same second).
Files: ``result.json``, ``config.json``, ``confusion_matrix.csv`` and ``.png`` (summed over
folds; the plot is row-normalised), ``confusion_matrix_fold<N>.csv``, ``predictions.csv``,
``classification_report.txt``.
"""

from __future__ import annotations

import errno
import itertools
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import numpy as np

from usbench.cv import FoldResult
from usbench.metrics import Scores


def _confusion_frame(cm: np.ndarray, classes: tuple[str, ...]):
    import pandas as pd

    return pd.DataFrame(cm, index=pd.Index(classes, name="true \\ predicted"), columns=classes)


def plot_confusion(cm: np.ndarray, classes: tuple[str, ...], path: Path, title: str) -> None:
    """Save a row-normalised confusion matrix as PNG (rows: true class)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros(cm.shape, float), where=rows > 0)
    fig, ax = plt.subplots(figsize=(7.5, 6.5), layout="constrained")
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(len(classes)):
        for j in range(len(classes)):
            if norm[i, j] >= 0.005:
                ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, label="fraction of true class")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_json(path: Path, value: dict) -> None:
    """Write `value` as indented JSON, every password in it masked (see usbench.redact)."""
    from usbench.redact import redact

    path.write_text(json.dumps(redact(value), indent=2, default=str) + "\n")


def new_folder(parent: Path, name: str) -> Path:
    """A new, empty folder ``parent/name``, or ``name-2``, ``name-3``, ... when taken (by a run
    started in the same second, in this process or another): created exclusively."""
    parent.mkdir(parents=True, exist_ok=True)
    _drop_abandoned(parent)
    for n in itertools.count(1):
        folder = parent / (name if n == 1 else f"{name}-{n}")
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue
    raise AssertionError("unreachable")


def _drop_abandoned(parent: Path) -> None:
    """Remove what a process killed while writing a record left: its temporary folder and
    the empty folder it had made for the record."""
    import glob
    import socket

    from usbench.stale_runs import gone

    host = socket.gethostname()
    for tmp in parent.glob(f".*.writing-{glob.escape(host)}-*"):  # this host's only
        name, _, pid = tmp.name[1:].rpartition(f".writing-{host}-")
        if gone(f"{host}:{pid}:"):
            shutil.rmtree(tmp, ignore_errors=True)
            with suppress(OSError):
                (parent / name).rmdir()  # only if empty


@contextmanager
def staged(folder: Path) -> Iterator[Path]:
    """Write the record `folder` (made by ``new_folder``) whole or not at all: yields a
    temporary folder beside it, renamed onto it when the block ends; when the block fails,
    neither is left.

    Raises:
        CacheError: the disk is full (or over quota): one line, the fix.
    """
    import socket

    tmp = folder.with_name(f".{folder.name}.writing-{socket.gethostname()}-{os.getpid()}")
    try:
        tmp.mkdir()
        yield tmp
        os.replace(tmp, folder)  # onto the empty folder new_folder made: atomic
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        with suppress(OSError):
            folder.rmdir()
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            from usbench.errors import CacheError

            raise CacheError(
                f"Could not write the run's record {folder.name} under {folder.parent.parent}: "
                f"{exc.strerror or 'no space left on device'} (nothing of it is kept; the "
                "cached features stay). Free space under results/ and run again."
            ) from None
        raise


def write_run(folder: Path, result: dict, config: dict, folds: list[FoldResult],
              scores: Scores, classes: tuple[str, ...], clip_ids: list[str]) -> Path:
    """Write the local record of one run and return its folder.

    Args:
        result: the JSON result (params, metrics, tags, fold table).
        config: the run configuration as a dict.
        folds: per-fold predictions; ``test_index`` indexes `clip_ids`.
        classes: class names ordered by class id.
    """
    import pandas as pd
    from sklearn.metrics import classification_report

    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "result.json", result)
    write_json(folder / "config.json", config)
    _confusion_frame(scores.confusion, classes).to_csv(folder / "confusion_matrix.csv")
    for fold, cm in scores.fold_confusion.items():
        _confusion_frame(cm, classes).to_csv(folder / f"confusion_matrix_fold{fold}.csv")
    title = (f"{result['params']['model']} on {result['params']['features']}: accuracy "
             f"{scores.accuracy:.3f} ± {scores.accuracy_std:.3f} over "
             f"{len(folds)} fold(s)")
    plot_confusion(scores.confusion, classes, folder / "confusion_matrix.png", title)
    rows = []
    for r in folds:
        for k, idx in enumerate(r.test_index):
            rows.append([clip_ids[idx], r.fold, classes[r.y_true[k]], classes[r.y_pred[k]],
                         *r.proba[k]])
    cols = ["clip_id", "fold", "true", "predicted", *[f"p_{c}" for c in classes]]
    pd.DataFrame(rows, columns=cols).to_csv(folder / "predictions.csv", index=False,
                                            float_format="%.6g")
    y_true = np.concatenate([r.y_true for r in folds])
    y_pred = np.concatenate([r.y_pred for r in folds])
    report = classification_report(y_true, y_pred, labels=list(range(len(classes))),
                                   target_names=list(classes), zero_division=0, digits=3)
    (folder / "classification_report.txt").write_text(
        "Pooled over the tested folds (the headline accuracy is the mean over folds).\n\n"
        + report)
    return folder
