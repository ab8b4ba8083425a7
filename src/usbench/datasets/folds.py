"""Folds for collections that have none: deterministic, stratified, grouped when possible.

scikit-learn's ``StratifiedGroupKFold`` when recording ids are known (slices of one recording
then share a fold), else ``StratifiedKFold``; both shuffled with ``--fold-seed``. Clips are
ordered by id first, so the assignment depends on the clips, labels, recordings, ``n_folds``
and the seed, never on the order files were listed in. The plan enters the dataset
fingerprint and every report says "generated folds".
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from usbench.datasets.base import FoldPlan
from usbench.errors import DatasetError

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("usbench")

DEFAULT_N_FOLDS = 5


def generate(rows: pd.DataFrame, *, n_folds: int | None, seed: int | None, grouped: bool,
             where: str) -> tuple[np.ndarray, FoldPlan]:
    """Fold numbers 1..n_folds for `rows` and the plan that made them.

    Args:
        rows: columns ``clip_id``, ``label`` and ``recording`` (used only when `grouped`).
        n_folds: folds to make (None: DEFAULT_N_FOLDS).
        seed: shuffling seed (None: 0).
        grouped: keep each recording in one fold.
        where: the dataset's table or root, for messages.

    Returns:
        (folds aligned with `rows`, int64 shape (n,), the FoldPlan).

    Raises:
        DatasetError: fewer than 2 folds, more folds than clips in the rarest class (named),
            or more folds than recordings.
    """
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    n_folds = DEFAULT_N_FOLDS if n_folds is None else int(n_folds)
    seed = 0 if seed is None else int(seed)
    if n_folds < 2:
        raise DatasetError(f"--n-folds {n_folds}: leave-one-fold-out needs at least 2 folds. "
                           "Pass --n-folds 2 or more.")
    counts = rows["label"].value_counts()
    rarest, fewest = counts.index[-1], int(counts.iloc[-1])
    if fewest < n_folds:
        raise DatasetError(
            f"{where}: class '{rarest}' has {fewest} clip(s), fewer than the {n_folds} folds "
            f"asked for, so some folds would have none of it. Pass --n-folds {max(fewest, 2)} "
            f"or fewer, or add clips of '{rarest}'."
        )
    order = np.argsort(rows["clip_id"].to_numpy(dtype=str), kind="stable")
    y = rows["label"].to_numpy(dtype=str)[order]
    folds = np.zeros(len(rows), dtype=np.int64)
    if grouped:
        groups = rows["recording"].astype(str).to_numpy()[order]
        n_groups = len(np.unique(groups))
        if n_groups < n_folds:
            raise DatasetError(
                f"{where}: {n_groups} recording(s) cannot fill {n_folds} folds (each "
                f"recording stays in one fold). Pass --n-folds {max(n_groups, 2)} or fewer.")
        split = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
        parts = split.split(np.zeros(len(y)), y, groups)
        method = "StratifiedGroupKFold"
    else:
        split = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
        parts = split.split(np.zeros(len(y)), y)
        method = "StratifiedKFold"
    for k, (_, test) in enumerate(parts, start=1):
        folds[order[test]] = k
    if grouped:
        per_class = rows.groupby("label")["recording"].nunique()
        thin = per_class[per_class < n_folds]
        if len(thin):
            log.warning(f"warning: generated folds: class '{thin.index[0]}' comes from "
                        f"{int(thin.iloc[0])} recording(s), fewer than {n_folds} folds, so "
                        "some folds have none of it.")
    return folds, FoldPlan(origin="generated", method=method, n_folds=n_folds, seed=seed,
                           grouped=grouped)


def warn_ungrouped(plan: FoldPlan) -> None:
    """The one warning line for generated folds without recording ids."""
    if plan.generated and not plan.grouped:
        log.warning(
            "warning: generated folds without recording ids: slices of one recording may straddle "
            "folds and inflate accuracy. If the table or the file names carry one, pass "
            "--group-column or --group-pattern; `usbench audit` then measures the cost."
        )
