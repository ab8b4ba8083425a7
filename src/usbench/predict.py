"""``usbench predict``: classify clips with the MLflow model a run saved (``--save-model``).

The model is loaded as MLflow loads it anywhere (``mlflow.pyfunc.load_model``), by run id or by
model URI (``models:/NAME/VERSION``), so ``usbench predict`` and ``mlflow models serve`` give
the same answers.
"""

from __future__ import annotations


def load_model(tracking_uri: str, *, run_id: str | None = None, model_uri: str | None = None,
               model_config: dict | None = None):
    """The pyfunc model of run `run_id`, or at `model_uri`, loaded with `model_config` (the
    folders it reads files from and its limits: ``saved_model.inputs.InputPolicy``).

    Raises:
        ConfigError: unknown run, run without a saved model (or saved by an older usbench),
            unknown registered model or version, a feature version this usbench does not
            compute.
        TrackingError: the store cannot be reached or read.
    """
    from usbench.saved_model import store

    return store.load_model(tracking_uri, run_id=run_id, model_uri=model_uri,
                            model_config=model_config)


def top_classes(row: dict, k: int = 3) -> list[tuple[str, float]]:
    """The `k` most probable classes of one output row of the model, best first."""
    from usbench.saved_model.flavour import PROBA

    probs = [(key.removeprefix(PROBA), float(v)) for key, v in row.items()
             if key.startswith(PROBA)]
    return sorted(probs, key=lambda kv: -kv[1])[:k]
