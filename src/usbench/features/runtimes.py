"""Runtimes that execute a frozen encoder's model file: windows in, embeddings out.

``open_runner(card)`` returns a runner with ``dim`` (embedding size) and
``embed(windows) -> embeddings``; one runner per thread (interpreters are not thread-safe),
each on one CPU thread, as the extraction workers are. Heavy imports happen here, lazily.
"""

from __future__ import annotations

import threading
from importlib.metadata import PackageNotFoundError, version

import numpy as np

from usbench.errors import FeatureError
from usbench.features.cards import EncoderCard

# Windows per interpreter call. Interpreters prepare a new batch shape once (about 1 s for
# BirdNET), so every call keeps this shape; a short last batch is zero-padded.
BATCH = 8

RUNTIME_PACKAGES = {"tflite": "ai-edge-litert", "keras": "keras", "savedmodel": "tensorflow"}


def runtime_version(fmt: str) -> str:
    """'<package> <version>' of the runtime that runs `fmt` models (part of the cache key)."""
    package = RUNTIME_PACKAGES[fmt]
    names = (package, "tensorflow-cpu") if package == "tensorflow" else (package,)
    for name in names:
        try:
            return f"{name} {version(name)}"
        except PackageNotFoundError:
            continue
    return f"{package} (not installed)"


def in_batches(windows: np.ndarray, dim: int, call) -> np.ndarray:
    """Embeddings float32 (n, dim) of windows float32 (n, window), through ``call`` in
    zero-padded batches of BATCH windows: one input shape (no retracing or reallocation), and
    a window's embedding does not depend on its batch."""
    out = np.empty((len(windows), dim), np.float32)
    batch = np.zeros((BATCH, windows.shape[1]), np.float32)
    for a in range(0, len(windows), BATCH):
        n = min(BATCH, len(windows) - a)
        batch[:n] = windows[a:a + n]
        batch[n:] = 0.0
        out[a:a + n] = np.asarray(call(batch), np.float32).reshape(BATCH, -1)[:n]
    return out


def _missing(card: EncoderCard, package: str, extra: str) -> FeatureError:
    return FeatureError(f"Encoder '{card.name}' ({card.format}) needs the package {package}, "
                        f"which is not installed. Install it: pip install 'usbench[{extra}]'")


class TfliteRunner:
    """A TFLite model run by ai-edge-litert's interpreter (one CPU thread)."""

    def __init__(self, card: EncoderCard):
        try:
            from ai_edge_litert.interpreter import Interpreter as _Interpreter
        except ImportError:
            raise _missing(card, "ai-edge-litert", "tflite") from None
        import warnings

        from usbench.native import quiet_native_stderr

        def Interpreter(**kwargs):  # noqa: N802 - stands for the class
            # The runtime announces its XNNPACK delegate on fd 2 whatever the log level.
            with quiet_native_stderr():
                return _Interpreter(**kwargs)

        self.card = card
        try:
            probe = Interpreter(model_path=card.model, num_threads=1)
        except (ValueError, RuntimeError) as exc:
            raise FeatureError(
                f"Encoder card {card.path}: {card.model} is not a TFLite model "
                f"({str(exc).splitlines()[0][:80]}). Point 'model' at a .tflite file.") from None
        inputs = probe.get_input_details()
        self.input_index = self._input(inputs)
        tensors = {d["name"]: d for d in probe.get_tensor_details()}
        outputs = probe.get_output_details()
        emb = card.embedding
        if isinstance(emb, int):
            if not 0 <= emb < len(outputs):
                raise FeatureError(
                    f"Encoder card {card.path}: field 'embedding' = {emb}, but the model has "
                    f"{len(outputs)} output(s). Use an index below {len(outputs)} or a tensor "
                    "name.")
            detail = outputs[emb]
        elif emb in tensors:
            detail = tensors[emb]
        else:
            near = [n for n in tensors if emb.split("/")[-1].lower() in n.lower()][:3]
            hint = f" Names like it: {', '.join(near)}." if near else ""
            raise FeatureError(
                f"Encoder card {card.path}: field 'embedding': no tensor named '{emb}' in "
                f"{card.model}.{hint} List them with ai_edge_litert's "
                "Interpreter(...).get_tensor_details().")
        self.embedding_index = detail["index"]
        shape = [int(s) for s in detail["shape"]]
        self.dim = int(np.prod(shape[1:])) if len(shape) > 1 else 0
        if self.dim < 1:
            raise FeatureError(
                f"Encoder card {card.path}: tensor '{detail['name']}' has shape {shape}, not "
                "(batch, size). Name the embedding tensor in 'embedding'.")
        in_shape = [int(s) for s in inputs[self._position(inputs)]["shape"]]
        if in_shape[-1] != card.window:
            raise FeatureError(
                f"Encoder card {card.path}: the model takes {in_shape[-1]:,} samples per "
                f"window, but window_s x sample_rate is {card.window:,}. Fix 'window_s' or "
                "'sample_rate'.")
        is_output = any(o["index"] == self.embedding_index for o in outputs)
        del probe
        with warnings.catch_warnings():
            # Reading an inner tensor needs every tensor kept, which the runtime warns about.
            warnings.simplefilter("ignore", UserWarning)
            self.interpreter = Interpreter(model_path=card.model, num_threads=1,
                                           experimental_preserve_all_tensors=not is_output)
        with quiet_native_stderr():
            self.interpreter.resize_tensor_input(self.input_index, [BATCH, card.window])
            self.interpreter.allocate_tensors()

    def _position(self, inputs: list[dict]) -> int:
        if not self.card.input:
            if len(inputs) != 1:
                raise FeatureError(
                    f"Encoder card {self.card.path}: the model has {len(inputs)} inputs "
                    f"({', '.join(d['name'] for d in inputs)}). Name one in 'input'.")
            return 0
        for i, d in enumerate(inputs):
            if d["name"] == self.card.input:
                return i
        raise FeatureError(
            f"Encoder card {self.card.path}: field 'input': no input named "
            f"'{self.card.input}'. Inputs: {', '.join(d['name'] for d in inputs)}.")

    def _input(self, inputs: list[dict]) -> int:
        return inputs[self._position(inputs)]["index"]

    def _call(self, batch: np.ndarray) -> np.ndarray:
        self.interpreter.set_tensor(self.input_index, batch)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.embedding_index)

    def embed(self, windows: np.ndarray) -> np.ndarray:
        """float32 (n, window) -> float32 (n, dim)."""
        return in_batches(windows, self.dim, self._call)


class KerasRunner:
    """A Keras model file (.keras, .h5), or a SavedModel folder, run by TensorFlow."""

    def __init__(self, card: EncoderCard):
        try:
            import tensorflow as tf
        except ImportError:
            raise _missing(card, "tensorflow", "dev") from None
        self.card = card
        if card.format == "savedmodel":
            self._fn, self.dim = self._savedmodel(tf)
        else:
            self._fn, self.dim = self._keras()

    def _keras(self):
        import keras

        card = self.card
        try:
            model = keras.models.load_model(card.model, compile=False)
        except Exception as exc:  # noqa: BLE001 - Keras raises many kinds for a bad file
            raise FeatureError(
                f"Encoder card {card.path}: {card.model} is not a Keras model "
                f"({str(exc).splitlines()[0][:80]}). Point 'model' at a .keras file.") from None
        emb = card.embedding
        if isinstance(emb, int):
            outs = model.outputs
            if not 0 <= emb < len(outs):
                raise FeatureError(f"Encoder card {card.path}: field 'embedding' = {emb}, but "
                                   f"the model has {len(outs)} output(s).")
            out = outs[emb]
        else:
            names = [layer.name for layer in model.layers]
            if emb not in names:
                raise FeatureError(
                    f"Encoder card {card.path}: field 'embedding': no layer named '{emb}'. "
                    f"Layers: {', '.join(names[-5:])} (last five).")
            out = model.get_layer(emb).output
        sub = keras.Model(model.inputs, out)
        dim = int(np.prod(out.shape[1:]))
        return (lambda x: np.asarray(sub(x, training=False))), dim

    def _savedmodel(self, tf):
        card = self.card
        try:
            loaded = tf.saved_model.load(card.model)
            fn = loaded.signatures["serving_default"]
        except Exception as exc:  # noqa: BLE001 - TensorFlow raises many kinds here
            raise FeatureError(
                f"Encoder card {card.path}: {card.model} is not a SavedModel with a "
                f"serving_default signature ({str(exc).splitlines()[0][:80]}).") from None
        keys = sorted(fn.structured_outputs)
        emb = card.embedding
        key = keys[emb] if isinstance(emb, int) and 0 <= emb < len(keys) else emb
        if key not in keys:
            raise FeatureError(f"Encoder card {card.path}: field 'embedding': no output "
                               f"'{emb}'. Outputs: {', '.join(keys)}.")
        [arg] = fn.structured_input_signature[1].keys() or [None]
        dim = int(np.prod(fn.structured_outputs[key].shape[1:]))
        self._loaded = loaded  # the signature needs its object alive
        return (lambda x: fn(**{arg: tf.constant(x)})[key].numpy()), dim

    def embed(self, windows: np.ndarray) -> np.ndarray:
        """float32 (n, window) -> float32 (n, dim)."""
        return in_batches(windows, self.dim, self._fn)


_local = threading.local()


def open_runner(card: EncoderCard, digest: str):
    """This thread's runner for `card` (opened once per thread and model digest)."""
    runners = _local.__dict__.setdefault("runners", {})
    key = (card, digest)
    if key not in runners:
        runners[key] = TfliteRunner(card) if card.format == "tflite" else KerasRunner(card)
    return runners[key]
