"""Scores of a leave-one-fold-out evaluation: per fold, then mean and std over folds."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from usbench.cv import FoldResult


@dataclass(frozen=True)
class Scores:
    """Summary of tested folds.

    Attributes:
        fold_accuracy: {fold: accuracy}.
        accuracy, accuracy_std: mean and population std of fold accuracies.
        macro_f1: mean over folds of each fold's macro-F1, averaged over the classes present
            in that fold's test clips (a class absent from a fold has no F1 there; counting it
            as 0 would punish perfect predictions).
        class_recall: {class name: recall} from the confusion matrix summed over folds.
        confusion: int, shape (n_classes, n_classes), rows true, columns predicted, summed.
        fold_confusion: {fold: confusion matrix of that fold}.
    """

    fold_accuracy: dict[int, float]
    accuracy: float
    accuracy_std: float
    macro_f1: float
    class_recall: dict[str, float]
    confusion: np.ndarray = field(repr=False)
    fold_confusion: dict[int, np.ndarray] = field(repr=False)


def score(results: list[FoldResult], classes: tuple[str, ...]) -> Scores:
    """Summarise `results` over the full class list `classes` (ordered by class id)."""
    from sklearn.metrics import confusion_matrix, f1_score

    labels = list(range(len(classes)))
    acc = {r.fold: r.accuracy for r in results}
    # Predictions of an absent class still count: they are errors on the true class's recall.
    f1 = [f1_score(r.y_true, r.y_pred, labels=np.unique(r.y_true), average="macro",
                   zero_division=0) for r in results]
    per_fold = {r.fold: confusion_matrix(r.y_true, r.y_pred, labels=labels) for r in results}
    total = sum(per_fold.values())
    support = total.sum(axis=1)
    recall = {c: (float(total[i, i] / support[i]) if support[i] else float("nan"))
              for i, c in enumerate(classes)}
    values = np.array(list(acc.values()))
    return Scores(fold_accuracy=acc, accuracy=float(values.mean()),
                  accuracy_std=float(values.std()), macro_f1=float(np.mean(f1)),
                  class_recall=recall, confusion=total, fold_confusion=per_fold)
