"""Where a Keras family gets its validation rows: never from the test fold.

Three protocols (the ``validation`` parameter), all drawn from the rows given to ``fit``,
which are the training folds only:

- ``fold``: one whole training fold. By default the fold after the test fold, rotating
  (test fold k validates on fold k+1, the last on the first: Piczak 2015, HEAR); ``val_fold=N``
  fixes it to fold N, which must then never be a tested fold.
- ``recordings``: ``val_fraction`` of the training recordings (fsID), whole recordings only
  (scikit-learn's ``GroupShuffleSplit``).
- ``none``: no validation rows; the network trains for exactly ``epochs`` epochs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from usbench.errors import ConfigError

PROTOCOLS = ("fold", "recordings", "none")


@dataclass(frozen=True)
class Split:
    """Training and validation rows of one fit.

    Attributes:
        train, val: sorted int indices into the fit rows; they partition 0..n-1.
        info: JSON-able description for the run record (protocol, fold or fraction).
    """

    train: np.ndarray = field(repr=False)
    val: np.ndarray = field(repr=False)
    info: dict


def rotation_fold(training_folds: Sequence[int], test_fold: int | None) -> int:
    """The validation fold of the rotation: the first training fold after `test_fold`,
    wrapping round to the first; with no test fold (a final fit on every fold), the last."""
    folds = sorted(int(f) for f in training_folds)
    if test_fold is None:
        return folds[-1]
    later = [f for f in folds if f > test_fold]
    return later[0] if later else folds[0]


def check_protocol(model: str, params: dict, present: Sequence[int],
                   tested: Sequence[int] | None) -> None:
    """Refuse a validation protocol the folds cannot serve, before any work starts.

    Args:
        present: folds with clips. tested: the folds to be tested (None: a final fit on all).

    Raises:
        ConfigError: ``fold`` validation with too few folds, or a ``val_fold`` that has no
            clips or is itself tested.
    """
    if params.get("validation") != "fold":
        return
    present = sorted(int(f) for f in present)
    needed = 2 if tested is None else 3
    if len(present) < needed:
        raise ConfigError(
            f"Model '{model}' validates on a whole training fold, but only "
            f"{len(present)} fold(s) have clips: testing one and validating on another leaves "
            "no fold to train on. Use --set validation=recordings or --set validation=none."
        )
    val_fold = params.get("val_fold", 0)
    if val_fold and val_fold not in present:
        raise ConfigError(
            f"Parameter 'val_fold' of model '{model}' names fold {val_fold}, which has no "
            f"clips. Folds with clips: {', '.join(map(str, present))}. Use one of them, or "
            "--set val_fold=0 to rotate (the fold after each test fold)."
        )
    if val_fold and tested is not None and val_fold in tested:
        raise ConfigError(
            f"Parameter 'val_fold' of model '{model}' names fold {val_fold}, which is also "
            "tested: a fold can't validate the model that is scored on it. Leave it out of "
            "--folds, or use --set val_fold=0 to rotate."
        )


def validation_split(params: dict, *, groups: np.ndarray, folds: np.ndarray | None,
                     test_fold: int | None, seed: int, model: str) -> Split:
    """Split the fit rows into a training and a validation part.

    Args:
        params: the family's parameters (``validation``, ``val_fraction``, ``val_fold``).
        groups: recording id of each fit row, shape (n,).
        folds: fold of each fit row, shape (n,); needed by ``fold`` validation.
        test_fold: the fold this fit will be tested on (None for a final fit on every fold).
        seed: random_state of the ``recordings`` split.
        model: family name, for messages.

    Raises:
        ConfigError: the rows cannot be split as asked (one recording, one fold).
    """
    n, how = len(groups), params["validation"]
    if how == "none":
        return Split(np.arange(n), np.arange(0), {"validation": "none"})
    if how == "fold":
        if folds is None:
            raise ConfigError(
                f"Model '{model}' validates on a whole training fold, but fit was given no "
                "fold numbers. Use --set validation=recordings."
            )
        present = np.unique(folds)
        if len(present) < 2:
            raise ConfigError(
                f"Model '{model}' validates on a whole training fold, but its training rows "
                f"come from {len(present)} fold. Use --set validation=recordings or "
                "--set validation=none."
            )
        val_fold = params.get("val_fold") or rotation_fold(present.tolist(), test_fold)
        if val_fold not in present:
            raise ConfigError(
                f"Parameter 'val_fold' of model '{model}' names fold {val_fold}, which is not "
                f"among the training folds ({', '.join(map(str, present.tolist()))})."
            )
        is_val = folds == val_fold
        return Split(np.flatnonzero(~is_val), np.flatnonzero(is_val),
                     {"validation": "fold", "validation_fold": int(val_fold)})
    fraction = params["val_fraction"]
    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise ConfigError(
            f"Model '{model}' holds out whole recordings for validation, but its training "
            f"rows come from {n_groups} recording. Use --set validation=none to train "
            "without validation."
        )
    from sklearn.model_selection import GroupShuffleSplit

    splitter = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
    train, val = next(splitter.split(np.zeros((n, 1)), groups=groups))
    return Split(np.sort(train), np.sort(val),
                 {"validation": "recordings", "val_fraction": fraction})
