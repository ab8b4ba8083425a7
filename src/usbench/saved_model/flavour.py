"""The MLflow model of a ``--save-model`` run: audio in, class and probabilities out.

A ``pyfunc`` model wrapping the saved bundle (the estimator fitted on every present fold, its
scaler inside, the class list, and the exact feature and decoder specs), so that
``mlflow.pyfunc.load_model("runs:/<id>/model").predict(pd.DataFrame({"audio": [wav_bytes]}))``
and ``mlflow models serve`` work with only usbench installed, and ``usbench predict`` loads the
same model. The native estimator stays reachable:
``load_model(uri).unwrap_python_model().bundle.estimator``.

Input columns (see ``inputs``): ``audio`` (the bytes of an audio file; base64 in a JSON
request) or ``path`` (a file, read only under the folders the ``model_config`` allows).
Output columns: ``path`` (as given; "" for content), ``class`` (the predicted class name, ""
when the clip could not be read), ``error`` ("" or the one-line reason) and ``proba.<class>``
for every class.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd

from usbench.errors import AudioError, ConfigError
from usbench.saved_model.inputs import AUDIO, PATH, REFUSED, InputPolicy, allowed_path

PROBA = "proba."
# Seconds of a training clip kept as the model's input example (sent as content).
EXAMPLE_SECONDS = 1.0


def output_columns(classes) -> list[str]:
    return [PATH, "class", "error", *(f"{PROBA}{c}" for c in classes)]


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


def _source(i: int, row: dict, policy: InputPolicy):
    """What row `i` asks to classify: (bytes or a resolved path, None), or (None, error)."""
    audio, path = row.get(AUDIO), row.get(PATH)
    content = isinstance(audio, bytes | bytearray)
    if content and isinstance(path, str) and path:
        return None, f"row {i} gives both 'audio' and 'path': give one"
    if content:
        return bytes(audio), None
    if not isinstance(path, str) or not path:
        return None, f"row {i} gives no audio: put the audio file's bytes in column 'audio'"
    resolved = allowed_path(path, policy)
    return (resolved, None) if resolved else (None, REFUSED)


def classify(bundle, fs, model_input: pd.DataFrame, policy: InputPolicy) -> pd.DataFrame:
    """Decode, extract and classify each row of `model_input` with `bundle` (features `fs`).

    Args:
        model_input: columns ``audio`` (bytes) and/or ``path``; one clip a row.
        policy: the folders paths may name and the length of a clip.

    Returns:
        One row per input row, columns ``output_columns(bundle.classes)``; a clip that could
        not be read has its error and NaN probabilities, and the others are classified.
    """
    from usbench.audio import load

    rows = []
    for i, row in enumerate(model_input.to_dict("records")):
        path = row.get(PATH)
        out = {PATH: path if isinstance(path, str) else "", "class": "", "error": ""}
        source, error = _source(i, row, policy)
        y = None
        if source is not None:
            try:
                y = load(source, sr=fs.sr, max_seconds=policy.max_seconds)
            except AudioError as exc:
                where = out[PATH] or f"the audio of row {i}"
                error = f"Could not decode {where}: {exc.reason}"
        if y is None:
            out["error"] = error
            proba = np.full(len(bundle.classes), np.nan)
        else:
            x = fs.extract(y, fs.sr)[None].astype(np.float32)
            proba = np.asarray(bundle.estimator.predict_proba(x), dtype=np.float64)[0]
            out["class"] = bundle.classes[int(proba.argmax())]
        rows.append({**out, **{f"{PROBA}{c}": float(p) for c, p in zip(bundle.classes, proba,
                                                                        strict=True)}})
    return pd.DataFrame(rows, columns=output_columns(bundle.classes))


class AudioClassifier(mlflow.pyfunc.PythonModel):
    """The pyfunc flavour of a usbench model (see the module docstring)."""

    def load_context(self, context) -> None:
        from usbench.saved_model import bundle

        self.policy = InputPolicy.from_model_config(context.model_config)
        self.bundle = bundle.load(Path(context.artifacts["bundle"]))
        # Refuses a model whose feature set this usbench computes differently.
        self.feature_set = feature_set_from_spec(self.bundle.feature_spec,
                                                  self.bundle.meta.get("feature_name"))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        if not isinstance(model_input, pd.DataFrame):
            model_input = pd.DataFrame({PATH: list(model_input)})
        limit = self.policy.max_rows
        if limit is not None and len(model_input) > limit:
            from mlflow.exceptions import MlflowException

            raise MlflowException.invalid_parameter_value(
                f"{len(model_input):,} rows in one request, above this model's limit of "
                f"{limit:,}; send at most {limit:,} clips per request.")
        return classify(self.bundle, self.feature_set, model_input, self.policy)


def example_content(path: str, seconds: float = EXAMPLE_SECONDS) -> bytes:
    """The first `seconds` of the audio file `path`, as the bytes of a 16-bit WAV file."""
    import io

    import soundfile as sf

    with sf.SoundFile(path) as fh:
        data = fh.read(int(seconds * fh.samplerate), dtype="int16", always_2d=True)
        sr = fh.samplerate
    buffer = io.BytesIO()
    sf.write(buffer, data, sr, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def signature(classes):
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    outputs = [ColSpec("string", PATH), ColSpec("string", "class"), ColSpec("string", "error")]
    outputs += [ColSpec("double", f"{PROBA}{c}") for c in classes]
    inputs = Schema([ColSpec("binary", AUDIO, required=False),
                     ColSpec("string", PATH, required=False)])
    return ModelSignature(inputs=inputs, outputs=Schema(outputs))


def log_model(bundle_folder: Path, classes, example: str, register: str | None):
    """Log the pyfunc model of `bundle_folder` as ``model`` of the active run.

    Args:
        example: an audio file whose start is the input example (a training clip).
        register: model registry name, or None.
    """
    from usbench import __version__

    return mlflow.pyfunc.log_model(
        name="model", python_model=AudioClassifier(),
        artifacts={"bundle": str(bundle_folder)}, signature=signature(classes),
        model_config=InputPolicy().to_model_config(),
        input_example=pd.DataFrame({AUDIO: [example_content(example)]}),
        pip_requirements=[f"usbench=={__version__}"], registered_model_name=register)
