"""Logging a saved model as its run's MLflow model ``model``, and loading it back."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from usbench.errors import ConfigError, UsbenchError
from usbench.redact import redact
from usbench.tracking import open_client, read_error

log = logging.getLogger("usbench")


@dataclass(frozen=True)
class ModelLog:
    """A saved model to log as its run's MLflow model ``model`` (see ``flavour``).

    Attributes:
        bundle: the saved bundle folder. classes: class names by id. example: an audio file
            for the input example. register: model registry name, or None.
    """

    bundle: Path
    classes: tuple[str, ...]
    example: str
    register: str | None = None


def log_model(uri: str, run_id: str, model: ModelLog) -> None:
    """Log `model` into the run `run_id` (registered under ``model.register`` if given)."""
    import mlflow

    from usbench.saved_model import flavour

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)  # the registry is the tracking store's
    with mlflow.start_run(run_id=run_id):
        flavour.log_model(model.bundle, model.classes, model.example, model.register)
    if model.register:
        log.info(f"registered the model as '{model.register}' in the MLflow model registry")


def load_model(uri: str, *, run_id: str | None = None, model_uri: str | None = None,
               model_config: dict | None = None):
    """A usbench pyfunc model by run id or model URI (``usbench predict``, ``usbench serve``),
    loaded with `model_config` (what it reads: see ``inputs.InputPolicy``)."""
    client = open_client(uri, writer=False)
    import mlflow
    from mlflow.exceptions import MlflowException

    if run_id is not None:
        try:
            client.get_run(run_id)
        except MlflowException as exc:
            if exc.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                raise read_error(uri, exc) from None
            raise ConfigError(
                f"No MLflow run '{run_id}' in {redact(uri)}. Copy the run id printed by `usbench "
                "run`, or pass --tracking-uri for another store."
            ) from None
        except Exception as exc:
            raise read_error(uri, exc) from None
        model_uri = f"runs:/{run_id}/model"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        if model_config is not None:
            _check_takes_config(model_uri)
        return mlflow.pyfunc.load_model(model_uri, model_config=model_config)
    except UsbenchError:
        raise
    except MlflowException as exc:
        if exc.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise read_error(uri, exc) from None
        raise ConfigError(_no_model(client, uri, run_id, model_uri)) from None
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("usbench"):
            raise
        raise ConfigError(
            f"The model at {model_uri} was saved by another usbench (its code, "
            f"{exc.name}, is not in this one). Re-run the experiment with this usbench "
            "(`usbench run ... --save-model`), or load it with the usbench that saved it."
        ) from None
    except OSError as exc:
        raise ConfigError(_no_model(client, uri, run_id, model_uri)
                          + f" ({type(exc).__name__})") from None


def _check_takes_config(model_uri: str) -> None:
    """Refuse a model logged without a model_config: MLflow would drop the one given, and the
    model would read no path and take no setting (one saved before models took content)."""
    from mlflow.models import get_model_info

    if not get_model_info(model_uri).flavors.get("python_function", {}).get("config"):
        raise ConfigError(
            f"The model at {model_uri} was saved by an older usbench: it takes neither audio "
            "content nor the folders and limits it may read. Re-run the experiment with this "
            "usbench (`usbench run ... --save-model`).")


def _no_model(client, uri: str, run_id: str | None, model_uri: str) -> str:
    """Why `model_uri` has no usbench model, and the fix."""
    if run_id is not None:
        names = {a.path for a in client.list_artifacts(run_id)}
        if "model" in names:
            return (f"Run {run_id} saved its model with an older usbench, before models were "
                    "MLflow models. Re-run it with this usbench: `usbench run ... "
                    "--save-model`.")
        return (f"Run {run_id} has no saved model. Re-run it with `usbench run ... "
                "--save-model`.")
    if model_uri.startswith("models:/"):
        name, _, version = model_uri.removeprefix("models:/").partition("/")
        try:
            versions = sorted(int(v.version) for v in
                              client.search_model_versions(f"name = '{name}'"))
        except Exception as exc:
            raise read_error(uri, exc) from None
        if not versions:
            return (f"No registered model '{name}' in {redact(uri)}. Register one with `usbench "
                    "run ... --save-model --register NAME`, or check the name.")
        return (f"Registered model '{name}' has no version '{version}' in {redact(uri)} "
                f"(versions: {', '.join(map(str, versions))}). Pass models:/{name}/<version>.")
    return f"No MLflow model at {model_uri} in {redact(uri)}. Check the model URI."


