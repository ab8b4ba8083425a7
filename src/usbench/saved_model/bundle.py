"""A saved model for ``usbench predict``: the estimator fitted on all present folds (with its
scaler inside), the class list, and the exact feature and decoder specs it expects.

Folder layout (logged as the run's ``model/`` artifacts): ``estimator.joblib``,
``meta.json``.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path

from usbench.errors import ConfigError

ESTIMATOR = "estimator.joblib"
META = "meta.json"


@dataclass(frozen=True)
class Bundle:
    """A loaded model bundle. `estimator.predict_proba` gives (n, len(classes))."""

    estimator: object
    classes: tuple[str, ...]
    feature_spec: dict
    meta: dict


def save(folder: Path, estimator, meta: dict) -> Path:
    """Write `estimator` and `meta` (needs ``classes`` and ``feature_spec``) to `folder`."""
    import joblib

    folder.mkdir(parents=True, exist_ok=True)
    meta = {**meta, "estimator_module": type(estimator).__module__}
    joblib.dump(estimator, folder / ESTIMATOR)
    (folder / META).write_text(json.dumps(meta, indent=2, default=str) + "\n")
    return folder


def load(folder: Path) -> Bundle:
    """Read a bundle written by ``save``."""
    import joblib

    try:
        meta = json.loads((folder / META).read_text())
        # A model family may need its runtime set up before unpickling (Keras: a quiet import).
        module = importlib.import_module(meta["estimator_module"])
        if hasattr(module, "before_unpickle"):
            module.before_unpickle()
        estimator = joblib.load(folder / ESTIMATOR)
    except FileNotFoundError as exc:
        raise ConfigError(
            f"No saved model in {folder} ({Path(exc.filename).name} missing). Re-run "
            "`usbench run ... --save-model` and pass its run id."
        ) from None
    return Bundle(estimator=estimator, classes=tuple(meta["classes"]),
                  feature_spec=meta["feature_spec"], meta=meta)
