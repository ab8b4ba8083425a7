"""``usbench predict``: classify clips with the MLflow model a run saved (``--save-model``).

The model is loaded as MLflow loads it anywhere (``mlflow.pyfunc.load_model``), by run id or by
model URI (``models:/NAME/VERSION``), so ``usbench predict`` and ``mlflow models serve`` give
the same answers.
"""

from __future__ import annotations

import dataclasses

from usbench.errors import ConfigError


def feature_set_from_spec(spec: dict, name: str | None = None):
    """Rebuild the exact feature set a model was trained on.

    Args:
        spec: the feature set's spec when the model was saved.
        name: the feature name the run was given (``birdnet``, ``encoder:CARD``, ``hear:M``):
            a pretrained encoder is opened again by name, and must still give `spec` (the same
            model file, weights and runtime).
    """
    from usbench.features import get_feature_set

    if spec["name"] in ("encoder", "hear"):
        fs = get_feature_set(name or "")
        if fs.spec() != spec:
            changed = sorted(k for k in {*spec, *fs.spec()} if spec.get(k) != fs.spec().get(k))
            raise ConfigError(
                f"The model was trained on '{name}', which now differs ({', '.join(changed)} "
                "changed). Restore the encoder it was trained with, or re-run the experiment "
                "(`usbench run ... --save-model`).")
        return fs
    fs = get_feature_set(spec["name"])
    if spec.get("version") != fs.version:
        raise ConfigError(
            f"The model was trained on '{spec['name']}' version {spec.get('version')}, but this "
            f"usbench computes version {fs.version}. Re-run the experiment with this version "
            "(`usbench run ... --save-model`), or predict with the usbench that saved it."
        )
    fields = {f.name for f in dataclasses.fields(fs)}
    return dataclasses.replace(fs, **{k: v for k, v in spec.items() if k in fields})


def load_model(tracking_uri: str, *, run_id: str | None = None, model_uri: str | None = None):
    """The pyfunc model of run `run_id`, or at `model_uri`.

    Raises:
        ConfigError: unknown run, run without a saved model (or saved by an older usbench),
            unknown registered model or version, a feature version this usbench does not
            compute.
        TrackingError: the store cannot be reached or read.
    """
    from usbench import tracking

    return tracking.load_model(tracking_uri, run_id=run_id, model_uri=model_uri)


def top_classes(row: dict, k: int = 3) -> list[tuple[str, float]]:
    """The `k` most probable classes of one output row of the model, best first."""
    from usbench.serving import PROBA

    probs = [(key.removeprefix(PROBA), float(v)) for key, v in row.items()
             if key.startswith(PROBA)]
    return sorted(probs, key=lambda kv: -kv[1])[:k]
