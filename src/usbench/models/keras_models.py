"""Keras 3 (TensorFlow backend) families: ``mlp`` on vectors, ``cnn`` on log-mel matrices.

TensorFlow is imported by ``fit`` (``usbench.models.keras_training``), never at module import.
Training is bit-reproducible for a given seed on one machine (``keras.utils.set_random_seed``
plus TensorFlow op determinism, and one numpy generator for every training transform).

Training parameters of both families:
    epochs: most epochs. batch_size. learning_rate: Adam. l2: weight decay. dropout.
    validation: fold | recordings | none (``usbench.models.validation``): where the epoch
    count is chosen; never the test fold. val_fold: 0 rotates (the fold after the test fold),
    N fixes it. val_fraction: share of recordings for ``recordings``. monitor: accuracy |
    loss on the validation rows. patience: epochs without improvement before stopping (0:
    run every epoch, keep the best). refit: after choosing the epoch count, train a fresh
    network on all training rows (validation part included) for that many epochs.
    mixup_alpha: mixup's Beta parameter (0: off). variant_share: probability per row and
    epoch of training on one of the clip's cached audio variants instead (with --augment).
``mlp`` (defaults: the UrbanSound8K tutorials' network): hidden_units: widths of the ReLU
    hidden layers, e.g. 200,300; dropout after each.
``cnn`` (Salamon & Bello's SB-CNN, 2017, with additions measured on real audio):
    filters: Conv2D layers and their filters, e.g. 24,48,48; a (4, 2) max-pool (bands,
    frames) follows every layer but the last. kernel_size: square kernels. padding: valid |
    same. batch_norm: batch normalisation after each pooling (and the last convolution).
    head: time (mean over frames of the last feature map, per band and filter) | global
    (mean over bands and frames) | flatten (SB-CNN). dense_units: the ReLU layer before the
    softmax, with dropout before and after it and L2 decay ``l2``. clip_floor_db: if > 0,
    each clip's dB values are taken relative to its own peak and floored at -clip_floor_db
    (a fixed per-clip transform, applied to every row). crop_frames: train on random windows
    of this many frames (0: the whole matrix); test_crops: windows averaged at prediction.
    time_masks x time_mask_frames and freq_masks x freq_mask_bands: SpecAugment masks of
    training rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from usbench.errors import ConfigError
from usbench.models import batches
from usbench.models.base import (
    BuildContext,
    ModelSpec,
    between,
    one_of,
)

# before_unpickle: saved_model.bundle.load calls it on the module of the saved estimator.
from usbench.models.keras_training import (  # noqa: F401
    BandScaler,
    KerasClassifier,
    before_unpickle,
)
from usbench.models.validation import PROTOCOLS, check_protocol

_POOL = (4, 2)


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
    """An SB-CNN-style network on per-band standardised (bands, frames) matrices.

    With ``crop_frames`` > 0 it trains on one random window of that many frames per row and
    epoch, and predicts the mean probabilities of ``test_crops`` evenly spaced windows.
    """

    name = "cnn"

    @property
    def window(self) -> tuple[int, int]:
        """The network's input: (bands, frames of one window)."""
        bands, frames = self.ctx.input_shape
        crop = self.params["crop_frames"]
        return bands, crop if 0 < crop < frames else frames

    def _fit_scaler(self, X: np.ndarray) -> BandScaler:
        return BandScaler().fit(X)

    def _per_row(self, X: np.ndarray) -> np.ndarray:
        floor = self.params["clip_floor_db"]
        if not floor:
            return X
        # dB relative to the clip's own peak, floored: librosa's power_to_db(ref=np.max,
        # top_db=floor), so a recording's gain and its silent stretches no longer count.
        peak = X.max(axis=(-2, -1), keepdims=True)
        return np.maximum(X - peak, -floor).astype(np.float32, copy=False)

    def _scale(self, X: np.ndarray, copy: bool = True) -> np.ndarray:
        return self.scaler_.transform(X, copy=copy)

    def _draw(self, n: int, rng: np.random.Generator) -> tuple:
        """(crop start frames or None, SpecAugment masks) of an epoch's `n` rows."""
        p, (bands, width) = self.params, self.window
        starts = batches.crop_starts(n, self.ctx.input_shape[1], width, rng)
        return starts, batches.mask_plan(n, bands, width, rng, time_masks=p["time_masks"],
                                         time_width=p["time_mask_frames"],
                                         freq_masks=p["freq_masks"],
                                         freq_width=p["freq_mask_bands"])

    def _transform(self, X: np.ndarray, draws: tuple, rows: np.ndarray) -> np.ndarray:
        starts, masks = draws
        X = batches.crop_rows(X, None if starts is None else starts[rows], self.window[1])
        return batches.apply_masks(self._scale(X, copy=False), masks, rows)

    def _views(self, X: np.ndarray) -> list[np.ndarray]:
        width = self.window[1]
        scaled = self._scale(X)
        offsets = batches.crop_offsets(X.shape[-1], width, self.params["test_crops"])
        return [batches.crop(scaled, int(o), width) for o in offsets]

    def _network(self, keras: Any) -> Any:
        p, layers = self.params, keras.layers
        filters, padding, shape = p["filters"], p["padding"], self.window
        stack = [keras.Input(shape=shape), layers.Reshape((*shape, 1))]
        for i, n_filters in enumerate(filters):
            stack.append(layers.Conv2D(n_filters, p["kernel_size"], padding=padding,
                                       activation="relu"))
            if i < len(filters) - 1:
                stack.append(layers.MaxPooling2D(_POOL, padding=padding))
            if p["batch_norm"]:
                # After the pooling: the same normalisation on an 8x smaller tensor, which
                # on CPU is the difference between 1.2x and 4x the epoch time of SB-CNN.
                stack.append(layers.BatchNormalization())
        if p["head"] == "global":
            stack.append(layers.GlobalAveragePooling2D())
        elif p["head"] == "time":
            # The mean over frames of every (band, filter): invariant to where in time.
            stack += [layers.Permute((1, 3, 2)),
                      layers.TimeDistributed(layers.GlobalAveragePooling1D(
                          data_format="channels_first")),
                      layers.Flatten()]
        else:
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
    return CnnClassifier(params, ctx)


def check_training(model: str, params: dict) -> None:
    """Refuse training settings that cannot work whatever the data, and a missing TensorFlow."""
    from usbench.device import check_tensorflow

    check_tensorflow(model)
    if params["val_fraction"] == 0:
        raise ConfigError(
            f"Parameter 'val_fraction' of model '{model}' is 0, which holds out no recordings. "
            "To train a fixed number of epochs without validation use --set validation=none."
        )
    if params["val_fold"] and params["validation"] != "fold":
        raise ConfigError(
            f"Parameter 'val_fold' of model '{model}' applies to whole-fold validation only. "
            "Add --set validation=fold, or leave val_fold out."
        )


def check_mlp(params: dict, input_shape: tuple[int, ...]) -> None:
    check_training("mlp", params)


def check_cnn(params: dict, input_shape: tuple[int, ...]) -> None:
    """Refuse crops longer than the matrix, masks wider than it, and inputs that 'valid'
    convolutions and pooling would shrink to nothing."""
    check_training("cnn", params)
    bands, frames = input_shape
    crop = params["crop_frames"]
    if crop > frames:
        raise ConfigError(
            f"Parameter 'crop_frames' of model 'cnn' is {crop}, longer than the feature "
            f"matrix ({frames} frames). Use --set crop_frames=N with N <= {frames}, or 0 for "
            "the whole matrix."
        )
    window = crop if crop else frames
    for count, key, limit, what in (("time_masks", "time_mask_frames", window, "frames"),
                                    ("freq_masks", "freq_mask_bands", bands, "bands")):
        if params[count] and params[key] > limit:
            raise ConfigError(
                f"Parameter '{key}' of model 'cnn' is {params[key]}, wider than the "
                f"{limit} {what} it masks. Use --set {key}=N with N <= {limit}."
            )
    if params["padding"] == "same":
        return
    shape, k, filters = [bands, window], params["kernel_size"], params["filters"]
    for i in range(len(filters)):
        shape = [s - k + 1 for s in shape]
        if i < len(filters) - 1 and min(shape) > 0:
            shape = [s // q for s, q in zip(shape, _POOL, strict=True)]
        if min(shape) < 1:
            raise ConfigError(
                f"Model 'cnn' with kernel_size {k} and padding 'valid' shrinks inputs of shape "
                f"{(bands, window)} to nothing by conv layer {i + 1} of {len(filters)}. "
                "Use --set padding=same, a smaller kernel_size, or fewer filters."
            )


def _training_space(trial: Any) -> dict:
    return {
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 3e-3, log=True),
        "mixup_alpha": trial.suggest_categorical("mixup_alpha", [0.0, 0.2, 0.4]),
    }


def mlp_space(trial: Any) -> dict:
    n_layers = trial.suggest_int("n_layers", 1, 3)
    units = tuple(
        trial.suggest_categorical(f"units_{i + 1}", [64, 128, 256, 512]) for i in range(n_layers)
    )
    return {
        "hidden_units": units,
        "dropout": trial.suggest_float("dropout", 0.0, 0.6),
        "batch_size": trial.suggest_categorical("batch_size", [16, 32, 64, 128]),
        "l2": trial.suggest_float("l2", 1e-6, 1e-2, log=True),
        **_training_space(trial),
    }


def cnn_space(trial: Any) -> dict:
    base = trial.suggest_categorical("filters_base", [16, 24, 32])
    return {
        "filters": (base, 2 * base, 2 * base),
        "kernel_size": trial.suggest_categorical("kernel_size", [3, 5]),
        "dropout": trial.suggest_float("dropout", 0.2, 0.6),
        "batch_norm": trial.suggest_categorical("batch_norm", [False, True]),
        "head": trial.suggest_categorical("head", ["time", "global", "flatten"]),
        "crop_frames": trial.suggest_categorical("crop_frames", [0, 128]),
        "time_masks": trial.suggest_int("time_masks", 0, 2),
        "freq_masks": trial.suggest_int("freq_masks", 0, 2),
        **_training_space(trial),
    }


# tensorflow-cpu and tensorflow are one library under two distribution names.
KERAS_LIBRARIES = ("numpy", "scikit-learn", "tensorflow", "tensorflow-cpu", "keras")

_TRAINING_DEFAULTS = {
    # A fixed epoch budget won on real audio (README, "Keras training"): on the development
    # folds a validation fold leaves one fold to train on while the epoch count is chosen.
    "validation": "none",
    "val_fold": 0,
    "val_fraction": 0.15,
    "monitor": "accuracy",
    "patience": 0,
    "refit": True,
    "mixup_alpha": 0.0,
    "variant_share": 0.5,
}

# Ranges wide enough for any real sweep, so that a typo (a billion epochs) is refused at once.
_TRAINING_ALLOWED = {
    "dropout": between(0, 1, high_open=True),
    "learning_rate": between(0, 1, low_open=True),
    "batch_size": between(1, 65_536),
    "epochs": between(1, 1000),
    "patience": between(0, 1000),
    "l2": between(0, 1),
    "validation": one_of(*PROTOCOLS),
    "val_fold": between(0, 1000),
    "val_fraction": between(0, 0.5),
    "monitor": one_of("accuracy", "loss"),
    "mixup_alpha": between(0, 10),
    "variant_share": between(0, 1),
}
# Layers and widths: 16 layers of 8,192 units (or 1,024 filters) is past any audio network
# trained on one machine, and its weights still fit in memory.
_LAYERS = 16


def _protocol(name: str):
    def check(params: dict, present, tested) -> None:
        check_protocol(name, params, present, tested)
    return check


MLP = ModelSpec(
    name="mlp",
    input_kind="vector",
    summary="dense 200-300 ReLU network with dropout and weight decay (Keras)",
    default_params={
        "hidden_units": (200, 300),
        "dropout": 0.5,
        # The tutorials' 100 epochs, weight decay 3e-3 on top. Batches of 128 at twice
        # Adam's learning rate instead of their 32 at 1e-3: the same us8k-dev accuracy over
        # seeds 0-19 (0.484 against 0.483) in a quarter of the steps and half the time
        # (README, "Benchmarks", the models table).
        "learning_rate": 2e-3,
        "batch_size": 128,
        "epochs": 100,
        "l2": 3e-3,
        **_TRAINING_DEFAULTS,
    },
    builder=build_mlp,
    libraries=KERAS_LIBRARIES,
    space=mlp_space,
    allowed={"hidden_units": between(1, 8192, max_items=_LAYERS), **_TRAINING_ALLOWED},
    validate=check_mlp,
    protocol=_protocol("mlp"),
    # A fold's epoch in one TensorFlow thread took 80-88 ms, in two 96-105 ms: the network's
    # products are too small to share. Folds side by side use the second core, with the same
    # results bit for bit (README, "Benchmarks").
    parallel_folds=True,
    gpu=True,
)

CNN = ModelSpec(
    name="cnn",
    input_kind="matrix",
    summary="SB-CNN-style 3-layer CNN on log-mel spectrograms, crops, masks (Keras)",
    default_params={
        "filters": (24, 48, 48),
        "kernel_size": 5,
        "padding": "valid",
        "batch_norm": True,
        # The mean over time of the last feature map instead of SB-CNN's flatten: on us8k-dev
        # it scored 0.506 against 0.442 (README, "Keras training").
        "head": "time",
        "clip_floor_db": 0.0,
        "dense_units": 64,
        "dropout": 0.5,
        "l2": 1e-3,
        "learning_rate": 1e-3,
        # SB-CNN trains 50 epochs in mini-batches of 100. Random crops and masks make each
        # epoch a new view, so 70 epochs: with --augment 0.542 against 0.537 at 50 on us8k-dev.
        "batch_size": 100,
        "epochs": 70,
        # SB-CNN's 3 s patches: 128 frames of 512 samples at 22,050 Hz.
        "crop_frames": 128,
        "test_crops": 5,
        "time_masks": 2,
        "time_mask_frames": 16,
        "freq_masks": 2,
        "freq_mask_bands": 16,
        **_TRAINING_DEFAULTS,
    },
    builder=build_cnn,
    libraries=KERAS_LIBRARIES,
    space=cnn_space,
    allowed={
        "filters": between(1, 1024, max_items=_LAYERS),
        "kernel_size": between(1, 128),
        "padding": one_of("valid", "same"),
        "head": one_of("flatten", "global", "time"),
        # librosa's power_to_db clips at 80 dB below the peak by default.
        "clip_floor_db": between(0, 200),
        "dense_units": between(1, 8192),
        # Widths in frames and bands are also checked against the feature matrix.
        "crop_frames": between(0, 100_000),
        "test_crops": between(1, 100),
        "time_masks": between(0, 100),
        "time_mask_frames": between(0, 100_000),
        "freq_masks": between(0, 100),
        "freq_mask_bands": between(0, 100_000),
        **_TRAINING_ALLOWED,
    },
    validate=check_cnn,
    protocol=_protocol("cnn"),
    gpu=True,
)
