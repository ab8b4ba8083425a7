"""Model-family registry. Each entry is a frozen ``ModelSpec``; listing or resolving a name
never imports scikit-learn or TensorFlow (builders and ``fit`` do)."""

from __future__ import annotations

from usbench.models.base import BuildContext, ModelSpec
from usbench.registry import Registry

MODELS: Registry[ModelSpec] = Registry(
    "model",
    {
        "logreg": "usbench.models.sklearn_models:LOGREG",
        "rf": "usbench.models.sklearn_models:RF",
        "mlp": "usbench.models.keras_models:MLP",
        "cnn": "usbench.models.keras_models:CNN",
    },
)


def get_model(name: str) -> ModelSpec:
    """The registered model family `name`.

    Raises:
        ConfigError: `name` is not registered (with a did-you-mean).
    """
    return MODELS.get(name)


__all__ = ["MODELS", "BuildContext", "ModelSpec", "get_model"]
