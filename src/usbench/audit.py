"""``usbench audit``: how much a random clip split inflates accuracy, and which recordings
break the fold protocol.

The same configuration is evaluated twice by the same engine: under the dataset's folds, and
under a stratified random split of the same clips into as many parts (scikit-learn's
``StratifiedKFold``, shuffled), which is what the blog tutorials do. Slices of one recording
then land on both sides of a split, so the random number is inflated. The audit also lists
recordings (fsID) whose slices sit in more than one fold of the dataset itself.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from usbench.config import AuditConfig

log = logging.getLogger("usbench")


def leaky_recordings(recordings: np.ndarray, folds: np.ndarray) -> dict:
    """Recordings whose clips lie in more than one fold: {recording id: sorted folds}."""
    out: dict = {}
    for rec, fold in zip(recordings.tolist(), folds.tolist(), strict=True):
        out.setdefault(rec, set()).add(int(fold))
    return {rec: sorted(f) for rec, f in sorted(out.items())
            if len(f) > 1}


def random_folds(y: np.ndarray, n_splits: int, seed: int) -> np.ndarray:
    """Pseudo-fold numbers 1..n_splits of a shuffled stratified split of the clips."""
    from sklearn.model_selection import StratifiedKFold

    folds = np.zeros(len(y), dtype=np.int64)
    split = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    for k, (_, test) in enumerate(split.split(np.zeros(len(y)), y), start=1):
        folds[test] = k
    return folds


@dataclass(frozen=True)
class AuditOutcome:
    """Fold-protocol and random-split scores of one configuration, and the leaky recordings."""

    folds: object
    random: object
    leaky: dict
    run: object

    @property
    def inflation(self) -> float:
        """Random-split accuracy minus fold accuracy (fraction, not points)."""
        return self.random.accuracy - self.folds.accuracy


def audit(cfg: AuditConfig, *, progress: bool = True) -> AuditOutcome:
    """Evaluate one configuration under the folds and under a random split; log both."""
    from dataclasses import replace

    from usbench import metrics
    from usbench.record import RecordSpec, Tag, record
    from usbench.runner import check_protocol, evaluate, log_fold, start

    spec, params, inp = start(cfg, progress=progress, protocol=check_protocol)
    model, features, seed = cfg.model, cfg.features, cfg.seed
    n_folds = len(np.unique(inp.folds))
    log.info(f"audit of {model} on {features}: leave-one-fold-out over the {n_folds} folds")
    fold_results = evaluate(spec, params, inp, seed=seed, on_fold=log_fold)
    log.info(f"audit: the same clips in a random stratified {n_folds}-way split")
    shuffled = replace(inp, folds=random_folds(inp.y, n_folds, seed))
    random_results = evaluate(spec, params, shuffled, seed=seed, on_fold=log_fold)
    classes = inp.dataset.classes
    fold_scores = metrics.score(fold_results, classes)
    random_scores = metrics.score(random_results, classes)
    leaky = leaky_recordings(inp.recordings, inp.folds)
    run = record(
        model=model, features=features, params=params, seed=seed, inp=inp,
        results=fold_results, config={"model": model, "features": features, "seed": seed},
        how=RecordSpec(
            tracking_uri=cfg.tracking_uri, experiment=cfg.experiment, kind="audit",
            extra_metrics={"random_split_accuracy": random_scores.accuracy,
                           "random_split_accuracy_std": random_scores.accuracy_std,
                           "inflation": random_scores.accuracy - fold_scores.accuracy,
                           "leaky_recordings": len(leaky)},
            extra_tags={Tag.LEAKY_RECORDINGS: ",".join(map(str, list(leaky)[:50]))}))
    return AuditOutcome(folds=fold_scores, random=random_scores, leaky=leaky, run=run)
