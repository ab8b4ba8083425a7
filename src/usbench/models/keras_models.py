"""Keras 3 (TensorFlow backend) families: ``mlp`` on vectors, ``cnn`` on log-mel matrices.

TensorFlow is imported by ``fit`` (through ``_import_keras``), never at module import.

Both families hold out whole recordings of the training rows (``GroupShuffleSplit`` on the
recording ids, ``val_fraction`` of them) for early stopping on the validation loss, restoring
the best epoch's weights; ``val_fraction=0`` trains for exactly ``epochs`` epochs instead.
Inputs are standardised with statistics of the remaining training part only. Training is
bit-reproducible for a given seed on one machine (``keras.utils.set_random_seed`` plus
TensorFlow op determinism).

``mlp`` parameters (defaults: the UrbanSound8K tutorials' network):
    hidden_units: widths of the ReLU hidden layers, e.g. 200,300. dropout: after each hidden
    layer. l2: weight decay of the hidden layers. learning_rate: Adam. batch_size. epochs:
    most epochs. patience: epochs without a better validation loss before stopping.
    val_fraction: share of recordings held out for early stopping.
``cnn`` parameters (defaults: Salamon & Bello's SB-CNN, 2017):
    filters: Conv2D layers and their filters, e.g. 24,48,48; a (4, 2) max-pool (bands,
    frames) follows every layer but the last. kernel_size: square kernels. padding: valid |
    same (same keeps small inputs usable). dense_units: the ReLU layer before the softmax,
    with dropout before and after it and L2 weight decay ``l2``. augment: add one shifted
    copy of every training row (random circular time shift up to 1/8 of the frames and a gain
    change of up to +-6 dB, which assumes dB features such as logmel); validation and test
    rows are never augmented. Other parameters as for ``mlp``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import numpy as np

from usbench.errors import ConfigError
from usbench.models.base import (
    BuildContext,
    ModelSpec,
    at_least,
    between,
    check_fit_inputs,
    check_predict_inputs,
    one_of,
    positive,
)

_POOL = (4, 2)
_AUG_MAX_SHIFT = 1 / 8
_AUG_MAX_GAIN_DB = 6.0
STEPS_PER_EXECUTION = 16


@contextmanager
def _quiet_native_stderr(quiet: bool) -> Iterator[None]:
    """Hide what native code writes to fd 2 while TensorFlow loads.

    TensorFlow prints its oneDNN notice before absl logging starts, so TF_CPP_MIN_LOG_LEVEL
    cannot hide it. Python exceptions are unaffected: they propagate as usual.
    """
    if not quiet:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _import_keras() -> tuple[Any, Any]:
    """Import Keras on TensorFlow quietly: returns (keras, tensorflow)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # oneDNN halves CNN epoch time on CPU and stays bit-reproducible run to run on one machine.
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    os.environ["KERAS_BACKEND"] = "tensorflow"
    with _quiet_native_stderr(os.environ["TF_CPP_MIN_LOG_LEVEL"] >= "3"):
        import keras
        import tensorflow as tf

    # One new network per fold trips TensorFlow's "retracing" warning, which is harmless here.
    tf.get_logger().setLevel("ERROR")
    return keras, tf


def grouped_validation_split(
    groups: np.ndarray, fraction: float, seed: int, model: str
) -> tuple[np.ndarray, np.ndarray]:
    """Split training rows into a training and a validation part by whole recordings.

    Args:
        groups: recording id of each training row, shape (n,).
        fraction: share of recordings for validation; 0 gives an empty validation part.
        seed: random_state of the split.
        model: family name, for messages.

    Returns:
        (train_index, validation_index): sorted int arrays that partition 0..n-1, with no
        recording in both.

    Raises:
        ConfigError: `fraction` > 0 but the rows come from fewer than two recordings.
    """
    n = len(groups)
    if fraction == 0:
        return np.arange(n), np.arange(0)
    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise ConfigError(
            f"Model '{model}' holds out whole recordings for early stopping, but its training "
            f"rows come from {n_groups} recording. Use --set val_fraction=0 to train without "
            "early stopping."
        )
    from sklearn.model_selection import GroupShuffleSplit

    splitter = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
    train, val = next(splitter.split(np.zeros((n, 1)), groups=groups))
    return np.sort(train), np.sort(val)


class BandScaler:
    """Per-band standardisation of (n, bands, frames) inputs.

    Attributes:
        mean_, scale_: float32, shape (bands, 1), from the rows given to ``fit``.
    """

    def fit(self, X: np.ndarray) -> BandScaler:
        self.mean_ = X.mean(axis=(0, 2), dtype=np.float64)[:, None].astype(np.float32)
        std = X.std(axis=(0, 2), dtype=np.float64)[:, None]
        self.scale_ = np.where(std > 0, std, 1.0).astype(np.float32)
        return self

    def transform(self, X: np.ndarray, copy: bool = True) -> np.ndarray:
        X = np.array(X, dtype=np.float32) if copy else np.asarray(X, dtype=np.float32)
        X -= self.mean_
        X /= self.scale_
        return X

    def inverse_transform(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X, dtype=np.float32) * self.scale_ + self.mean_


def before_unpickle() -> None:
    """Called by ``usbench.bundle.load`` before a saved Keras estimator is unpickled."""
    _import_keras()


class KerasClassifier:
    """The usbench estimator contract around a Keras network; subclasses define the network.

    Attributes (after ``fit``):
        model_: the fitted ``keras.Model`` (softmax over all ``ctx.n_classes`` classes).
        scaler_: the input standardisation, fitted on the training part only.
        train_index_, validation_index_: rows of the fit data used to train and to stop early.
        history_: epochs_run, best_epoch (1-based), best_val_loss (None without validation),
            train_rows, validation_rows.
    """

    name: ClassVar[str]

    def __init__(self, params: dict, ctx: BuildContext):
        self.params = dict(params)
        self.ctx = ctx
        self.history_: dict = {}

    def _network(self, keras: Any) -> Any:
        raise NotImplementedError

    def _fit_scaler(self, X: np.ndarray) -> Any:
        raise NotImplementedError

    def _scale(self, X: np.ndarray, copy: bool = True) -> np.ndarray:
        raise NotImplementedError

    def _training_rows(self, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Hook for augmentation of the training part (raw units)."""
        return X, y

    def fit(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None):
        """Train on (X, y), stopping early on a validation part of these rows.

        Args:
            X: float32, shape (n, *ctx.input_shape).
            y: int class ids in 0..n_classes-1, shape (n,).
            groups: recording id of each row, shape (n,); None treats every row as its own
                recording.
        """
        p, ctx = self.params, self.ctx
        X, y, groups = check_fit_inputs(self.name, ctx, X, y, groups)
        groups = np.arange(len(X)) if groups is None else groups
        train, val = grouped_validation_split(groups, p["val_fraction"], ctx.seed, self.name)
        self.train_index_, self.validation_index_ = train, val
        self.scaler_ = self._fit_scaler(X[train])
        X_train, y_train = self._training_rows(X[train], y[train])
        X_train = self._scale(X_train, copy=False)

        keras, tf = _import_keras()
        keras.backend.clear_session()
        keras.utils.set_random_seed(ctx.seed)
        tf.config.experimental.enable_op_determinism()
        model = self._network(keras)
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate=p["learning_rate"]),
            loss="sparse_categorical_crossentropy",
            # Several batches per compiled call: same batches, same order, same weights
            # (checked bit-identical), far less Python overhead per step for small networks.
            steps_per_execution=STEPS_PER_EXECUTION,
        )
        callbacks, validation = [], None
        if len(val):
            callbacks.append(keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=p["patience"], restore_best_weights=True
            ))
            validation = (self._scale(X[val]), y[val])
        hist = model.fit(
            X_train, y_train, validation_data=validation, epochs=p["epochs"],
            batch_size=p["batch_size"], shuffle=True, callbacks=callbacks, verbose=0,
        )
        self.model_ = model
        epochs_run = len(hist.history["loss"])
        val_loss = hist.history.get("val_loss")
        best = int(np.argmin(val_loss)) if val_loss else epochs_run - 1
        self.history_ = {
            "epochs_run": epochs_run,
            "best_epoch": best + 1,
            "best_val_loss": float(val_loss[best]) if val_loss else None,
            "train_rows": len(train),
            "validation_rows": len(val),
        }
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities: float64, shape (n, n_classes); column j is class id j."""
        X = check_predict_inputs(self.name, self.ctx, X, hasattr(self, "model_"))
        batch = max(self.params["batch_size"], 256)
        proba = self.model_.predict(self._scale(X), batch_size=batch, verbose=0)
        return np.asarray(proba, dtype=np.float64)


class MlpClassifier(KerasClassifier):
    """Dense ReLU layers with dropout on standardised feature vectors."""

    name = "mlp"

    def _fit_scaler(self, X: np.ndarray) -> Any:
        from sklearn.preprocessing import StandardScaler

        return StandardScaler().fit(X)

    def _scale(self, X: np.ndarray, copy: bool = True) -> np.ndarray:
        return self.scaler_.transform(X, copy=copy).astype(np.float32, copy=False)

    def _network(self, keras: Any) -> Any:
        p, layers = self.params, keras.layers
        l2 = keras.regularizers.L2(p["l2"]) if p["l2"] > 0 else None
        stack = [keras.Input(shape=self.ctx.input_shape)]
        for units in p["hidden_units"]:
            stack.append(layers.Dense(units, activation="relu", kernel_regularizer=l2))
            if p["dropout"] > 0:
                stack.append(layers.Dropout(p["dropout"]))
        stack.append(layers.Dense(self.ctx.n_classes, activation="softmax"))
        return keras.Sequential(stack, name="mlp")


class CnnClassifier(KerasClassifier):
    """An SB-CNN-style network on per-band standardised (bands, frames) matrices."""

    name = "cnn"

    def _fit_scaler(self, X: np.ndarray) -> BandScaler:
        return BandScaler().fit(X)

    def _scale(self, X: np.ndarray, copy: bool = True) -> np.ndarray:
        return self.scaler_.transform(X, copy=copy)

    def _training_rows(self, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not self.params["augment"]:
            return X, y
        rng = np.random.default_rng(self.ctx.seed)
        max_shift = max(1, int(X.shape[2] * _AUG_MAX_SHIFT))
        shifts = rng.integers(-max_shift, max_shift + 1, size=len(X))
        gains = rng.uniform(-_AUG_MAX_GAIN_DB, _AUG_MAX_GAIN_DB, size=len(X)).astype(np.float32)
        copies = np.empty_like(X)
        for i in range(len(X)):
            copies[i] = np.roll(X[i], shifts[i], axis=-1) + gains[i]
        return np.concatenate([X, copies]), np.concatenate([y, y])

    def _network(self, keras: Any) -> Any:
        p, layers = self.params, keras.layers
        filters, padding, shape = p["filters"], p["padding"], self.ctx.input_shape
        stack = [keras.Input(shape=shape), layers.Reshape((*shape, 1))]
        for i, n_filters in enumerate(filters):
            stack.append(layers.Conv2D(n_filters, p["kernel_size"], padding=padding,
                                       activation="relu"))
            if i < len(filters) - 1:
                stack.append(layers.MaxPooling2D(_POOL, padding=padding))
        stack.append(layers.Flatten())
        l2 = keras.regularizers.L2(p["l2"]) if p["l2"] > 0 else None
        if p["dropout"] > 0:
            stack.append(layers.Dropout(p["dropout"]))
        stack.append(layers.Dense(p["dense_units"], activation="relu", kernel_regularizer=l2))
        if p["dropout"] > 0:
            stack.append(layers.Dropout(p["dropout"]))
        stack.append(layers.Dense(self.ctx.n_classes, activation="softmax", kernel_regularizer=l2))
        return keras.Sequential(stack, name="cnn")


def build_mlp(params: dict, ctx: BuildContext) -> MlpClassifier:
    return MlpClassifier(params, ctx)


def build_cnn(params: dict, ctx: BuildContext) -> CnnClassifier:
    _check_cnn_shape(params, ctx.input_shape)
    return CnnClassifier(params, ctx)


def _check_cnn_shape(params: dict, input_shape: tuple[int, ...]) -> None:
    """Refuse inputs that 'valid' convolutions and pooling would shrink to nothing."""
    if params["padding"] == "same":
        return
    shape, k, filters = list(input_shape), params["kernel_size"], params["filters"]
    for i in range(len(filters)):
        shape = [s - k + 1 for s in shape]
        if i < len(filters) - 1 and min(shape) > 0:
            shape = [s // q for s, q in zip(shape, _POOL, strict=True)]
        if min(shape) < 1:
            raise ConfigError(
                f"Model 'cnn' with kernel_size {k} and padding 'valid' shrinks inputs of shape "
                f"{tuple(input_shape)} to nothing by conv layer {i + 1} of {len(filters)}. "
                "Use --set padding=same, a smaller kernel_size, or fewer filters."
            )


def mlp_space(trial: Any) -> dict:
    n_layers = trial.suggest_int("n_layers", 1, 3)
    units = tuple(
        trial.suggest_categorical(f"units_{i + 1}", [64, 128, 256, 512]) for i in range(n_layers)
    )
    return {
        "hidden_units": units,
        "dropout": trial.suggest_float("dropout", 0.0, 0.6),
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True),
        "batch_size": trial.suggest_categorical("batch_size", [16, 32, 64, 128]),
        "l2": trial.suggest_float("l2", 1e-6, 1e-2, log=True),
    }


def cnn_space(trial: Any) -> dict:
    base = trial.suggest_categorical("filters_base", [16, 24, 32])
    return {
        "filters": (base, 2 * base, 2 * base),
        "kernel_size": trial.suggest_categorical("kernel_size", [3, 5]),
        "dropout": trial.suggest_float("dropout", 0.2, 0.6),
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 3e-3, log=True),
        "augment": trial.suggest_categorical("augment", [False, True]),
    }


_TRAINING_ALLOWED = {
    "dropout": between(0, 1, high_open=True),
    "learning_rate": positive(),
    "batch_size": at_least(1),
    "epochs": at_least(1),
    "patience": at_least(0),
    "l2": at_least(0),
    "val_fraction": between(0, 0.5),
}

MLP = ModelSpec(
    name="mlp",
    input_kind="vector",
    summary="dense 200-300 ReLU network with dropout, early stopping (Keras)",
    default_params={
        "hidden_units": (200, 300),
        "dropout": 0.5,
        "learning_rate": 1e-3,
        # The tutorials train at 32; 128 gives the same accuracy 1.4x faster on UrbanSound8K-size
        # data (benchmarks/bench_models.py). --set batch_size=32 for the tutorials' setting.
        "batch_size": 128,
        "epochs": 100,
        "patience": 10,
        "l2": 0.0,
        "val_fraction": 0.15,
    },
    builder=build_mlp,
    space=mlp_space,
    allowed={"hidden_units": at_least(1), **_TRAINING_ALLOWED},
)

CNN = ModelSpec(
    name="cnn",
    input_kind="matrix",
    summary="SB-CNN-style 3-layer CNN on log-mel spectrograms, early stopping (Keras)",
    default_params={
        "filters": (24, 48, 48),
        "kernel_size": 5,
        "padding": "valid",
        "dense_units": 64,
        "dropout": 0.5,
        "l2": 1e-3,
        "learning_rate": 1e-3,
        # Salamon & Bello (2017) train SB-CNN for 50 epochs in mini-batches of 100.
        "batch_size": 100,
        "epochs": 50,
        "patience": 10,
        "augment": False,
        "val_fraction": 0.15,
    },
    builder=build_cnn,
    space=cnn_space,
    allowed={
        "filters": at_least(1),
        "kernel_size": at_least(1),
        "padding": one_of("valid", "same"),
        "dense_units": at_least(1),
        **_TRAINING_ALLOWED,
    },
)
