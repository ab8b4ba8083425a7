"""The Keras training loop that the ``mlp`` and ``cnn`` families share.

TensorFlow is imported by ``fit`` (through ``import_keras``), never at module import. Each
epoch is a few compiled calls of Keras's own ``train_step`` (one per chunk of whole batches)
over batches prepared in NumPy (crops, masks, variants, mixup), in the order and with the
weights of ``fit``; the epoch count
is chosen on validation rows of the training folds only (``usbench.models.validation``), then
a fresh network is refit on every training row for that many epochs. Training is
bit-reproducible for a given seed on one machine.

Memory: an epoch's random choices are drawn up front, and its rows are gathered by index and
transformed a chunk of whole batches at a time (``CHUNK_VALUES``), never copied whole.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import numpy as np

from usbench import progress
from usbench.models import batches
from usbench.models.base import BuildContext, check_fit_inputs, check_predict_inputs
from usbench.models.validation import validation_split

# Input values per prediction call (256 log-mel windows of 128 x 128).
PREDICT_VALUES = 256 * 128 * 128
# Input values per training call: whole batches, about 64 MB of float32 (ten CNN batches of
# 100 windows of 128 x 128; a whole epoch of the MLP).
CHUNK_VALUES = 2**24


def import_keras() -> tuple[Any, Any]:
    """Import Keras on TensorFlow quietly: returns (keras, tensorflow)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # oneDNN halves CNN epoch time on CPU and stays bit-reproducible run to run on one machine.
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    os.environ["KERAS_BACKEND"] = "tensorflow"
    from usbench.native import quiet_native_stderr

    # TensorFlow prints its oneDNN notice before absl logging starts, so TF_CPP_MIN_LOG_LEVEL
    # cannot hide it.
    with quiet_native_stderr(os.environ["TF_CPP_MIN_LOG_LEVEL"] >= "3"):
        import keras
        import tensorflow as tf

    # One new network per fold trips TensorFlow's "retracing" warning, which is harmless here.
    tf.get_logger().setLevel("ERROR")
    return keras, tf


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
    """Called by ``usbench.saved_model.bundle.load`` before a saved Keras estimator is unpickled."""
    import_keras()


def _epoch_function(tf: Any, model: Any, batch_size: int) -> Any:
    """One compiled call that trains a chunk of an epoch: Keras's own ``train_step`` on each
    batch.

    The returned function takes rows (n, *input shape) and one-hot targets (n, n_classes)
    in training order and steps through them `batch_size` rows at a time (the last batch
    may be short): the batches, order and weights of ``fit`` on the same rows (checked
    bit-identical), without a ``tf.data`` iterator between steps, whose hand-offs between
    threads cost the MLP a quarter of its epoch and kept two worker processes from using
    two cores (README, "Benchmarks"). Chunks of any length share one trace.
    """
    signature = (tf.TensorSpec((None, *model.input_shape[1:]), tf.float32),
                 tf.TensorSpec((None, model.output_shape[-1]), tf.float32))

    @tf.function(input_signature=signature)
    def train_epoch(x: Any, y: Any) -> None:
        for start in tf.range(0, tf.shape(x)[0], batch_size):
            model.train_step((x[start:start + batch_size], y[start:start + batch_size]))

    return train_epoch


class KerasClassifier:
    """The usbench estimator contract around a Keras network; subclasses define the network.

    Training runs epoch by epoch. Each epoch's rows are the training part's rows, each one
    replaced by one of its own audio variants with probability ``variant_share`` (when
    variants are given), then the family's transforms (``_draw`` / ``_transform``: crops,
    masks), then mixup, in an order shuffled by the seed. After each epoch the validation
    part (if any) is predicted exactly as test rows are, and the best epoch is kept by ``monitor``
    (validation accuracy or loss); ``patience`` epochs without improvement stop training.
    With ``refit``, a fresh network is then trained on all fit rows for the chosen number
    of epochs (scikit-learn's ``refit`` idea); otherwise the best epoch's weights are kept.

    Attributes (after ``fit``):
        model_: the fitted ``keras.Model`` (softmax over all ``ctx.n_classes`` classes).
        scaler_: the input standardisation, fitted on the rows the final network trained on.
        train_index_, validation_index_: rows of the fit data used to train and to validate.
        history_: validation protocol, epochs_run, best_epoch (1-based), best_val_accuracy,
            best_val_loss (None without validation), val_accuracy per epoch, refit_epochs
            (0 without refit), train_rows, validation_rows, variant_rows (rows drawn from
            audio variants over all epochs, refit included).
    """

    name: ClassVar[str]
    # Each epoch ends in ``progress.epoch_done``, which acts on a SIGTERM (``usbench.cv``).
    checks_sigterm: ClassVar[bool] = True

    def __init__(self, params: dict, ctx: BuildContext):
        self.params = dict(params)
        self.ctx = ctx
        self.history_: dict = {}

    # -- hooks of the families ---------------------------------------------------------
    def _network(self, keras: Any) -> Any:
        raise NotImplementedError

    def _fit_scaler(self, X: np.ndarray) -> Any:
        raise NotImplementedError

    def _scale(self, X: np.ndarray, copy: bool = True) -> np.ndarray:
        raise NotImplementedError

    def _draw(self, n: int, rng: np.random.Generator) -> Any:
        """The random choices of the training-only transforms of one epoch's `n` rows."""
        return None

    def _transform(self, X: np.ndarray, draws: Any, rows: np.ndarray) -> np.ndarray:
        """Training-only transforms of raw rows X, rows `rows` of the epoch's `draws` (X may
        be changed); returns standardised rows."""
        return self._scale(X, copy=False)

    def _views(self, X: np.ndarray) -> list[np.ndarray]:
        """The standardised views of prediction rows whose probabilities are averaged."""
        return [self._scale(X)]

    def _per_row(self, X: np.ndarray) -> np.ndarray:
        """A fixed transform of each row on its own (nothing fitted), applied to every row
        before anything else: training, validation and test rows alike."""
        return X

    # -- training ----------------------------------------------------------------------
    def fit(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None,
            folds: np.ndarray | None = None, variants: np.ndarray | None = None):
        """Train on (X, y), choosing the epoch count on a validation part of these rows.

        Args:
            X: float32, shape (n, *ctx.input_shape).
            y: int class ids in 0..n_classes-1, shape (n,).
            groups: recording id of each row, shape (n,); None treats every row as its own
                recording.
            folds: fold of each row, shape (n,); needed by ``validation=fold``.
            variants: float32, shape (n, k, *ctx.input_shape): k audio-augmented variants of
                each row, used in training only (never for validation), or None.
        """
        p, ctx = self.params, self.ctx
        X, y, groups = check_fit_inputs(self.name, ctx, X, y, groups)
        groups = np.arange(len(X)) if groups is None else groups
        if variants is not None:
            variants = np.asarray(variants, dtype=np.float32)
            if variants.shape[0] != len(X) or variants.shape[2:] != ctx.input_shape:
                raise ValueError(f"variants must have shape ({len(X)}, k, "
                                 f"{', '.join(map(str, ctx.input_shape))}), got {variants.shape}")
            variants = self._per_row(variants)
        X = self._per_row(X)
        split = validation_split(p, groups=groups, folds=folds, test_fold=ctx.test_fold,
                                 seed=ctx.seed, model=self.name)
        self.train_index_, self.validation_index_ = split.train, split.val
        keras, tf = import_keras()
        train, val = split.train, split.val
        curve = self._train(keras, tf, X, y, train, val, variants, p["epochs"])
        refit_epochs, variant_rows = 0, curve["variant_rows"]
        if p["refit"] and len(val):
            refit_epochs = curve["best_epoch"]
            everything = np.arange(len(X))
            again = self._train(keras, tf, X, y, everything, np.arange(0), variants,
                                refit_epochs)
            variant_rows += again["variant_rows"]
        self.history_ = {
            **split.info,
            "epochs_run": curve["epochs_run"],
            "best_epoch": curve["best_epoch"],
            "best_val_accuracy": curve["best_val_accuracy"],
            "best_val_loss": curve["best_val_loss"],
            "val_accuracy": curve["val_accuracy"],
            "refit_epochs": refit_epochs,
            "train_rows": len(train),
            "validation_rows": len(val),
            "variant_rows": variant_rows,
        }
        return self

    def _train(self, keras: Any, tf: Any, X: np.ndarray, y: np.ndarray, train: np.ndarray,
               val: np.ndarray, variants: np.ndarray | None, epochs: int) -> dict:
        """Fit a fresh network on rows `train` for up to `epochs` epochs; keep the best."""
        p, ctx = self.params, self.ctx
        # Every row in order (no validation part, or the refit): X itself, not a copy.
        every = len(train) == len(X) and np.array_equal(train, np.arange(len(X)))
        self.scaler_ = self._fit_scaler(X if every else X[train])
        keras.backend.clear_session()
        keras.utils.set_random_seed(ctx.seed)
        tf.config.experimental.enable_op_determinism()
        model = self._network(keras)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=p["learning_rate"]),
                      loss="categorical_crossentropy")
        model.optimizer.build(model.trainable_variables)
        train_epoch = _epoch_function(tf, model, p["batch_size"])
        self.model_ = model
        rng = np.random.default_rng(ctx.seed)
        onehot = np.eye(ctx.n_classes, dtype=np.float32)[y[train]]
        k = 0 if variants is None else variants.shape[1]
        # Whole batches per training call, at most about CHUNK_VALUES input values.
        per_row = int(np.prod(X.shape[1:]))
        chunk = p["batch_size"] * max(1, CHUNK_VALUES // (per_row * p["batch_size"]))
        X_val = X[val]
        val_acc: list[float] = []
        best = {"epoch": 0, "accuracy": -1.0, "loss": np.inf, "weights": None}
        variant_rows = 0
        for epoch in range(epochs):
            # Every draw of the epoch first, in a fixed order; then its rows a chunk at a time.
            choice = batches.variant_choice(len(train), k, p["variant_share"], rng)
            variant_rows += int((choice >= 0).sum())
            draws = self._draw(len(train), rng)
            mixing = batches.mixup_plan(len(train), p["mixup_alpha"], rng)

            def rows_of(at, choice=choice, draws=draws):
                raw = batches.gather(X, variants, train[at], choice[at])
                return self._transform(raw, draws, at)

            order = rng.permutation(len(train))
            for start in range(0, len(order), chunk):
                at = order[start:start + chunk]
                rows, targets = rows_of(at), onehot[at]
                if mixing is not None:
                    lam, partner = mixing
                    rows, targets = batches.mix(rows, rows_of(partner[at]), targets,
                                                onehot[partner[at]], lam[at])
                train_epoch(tf.constant(rows), tf.constant(targets))
            progress.epoch_done(epoch + 1, epochs)
            if not len(val):
                continue
            proba = self._predict(X_val)
            acc = float((proba.argmax(axis=1) == y[val]).mean())
            loss = float(-np.mean(np.log(np.clip(proba[np.arange(len(val)), y[val]],
                                                 1e-7, 1.0))))
            val_acc.append(round(acc, 4))
            better = (acc > best["accuracy"] or (acc == best["accuracy"] and loss < best["loss"])
                      if p["monitor"] == "accuracy" else loss < best["loss"])
            if better:
                best.update(epoch=epoch + 1, accuracy=acc, loss=loss,
                            weights=None if p["refit"] else model.get_weights())
            elif p["patience"] and epoch + 1 - best["epoch"] >= p["patience"]:
                break
        epochs_run = epoch + 1 if epochs else 0
        if len(val) and best["weights"] is not None:
            model.set_weights(best["weights"])
        has_val = bool(len(val))
        return {
            "epochs_run": epochs_run,
            "best_epoch": best["epoch"] if has_val else epochs_run,
            "best_val_accuracy": best["accuracy"] if has_val else None,
            "best_val_loss": best["loss"] if has_val else None,
            "val_accuracy": val_acc,
            "variant_rows": variant_rows,
        }

    def _predict(self, X: np.ndarray) -> np.ndarray:
        """Mean probabilities over the views: float64, shape (n, n_classes)."""
        views = self._views(X)
        # predict_on_batch in fixed chunks: no per-call pipeline, bounded memory.
        chunk = max(1, PREDICT_VALUES // max(1, int(np.prod(views[0].shape[1:]))))
        total = np.zeros((len(X), self.ctx.n_classes), dtype=np.float64)
        for view in views:
            for start in range(0, len(X), chunk):
                part = self.model_.predict_on_batch(view[start:start + chunk])
                total[start:start + chunk] += np.asarray(part, dtype=np.float64)
        return total / len(views)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities: float64, shape (n, n_classes); column j is class id j.

        No training transform (variants, random crops, masks, mixup) is applied; a family
        that crops averages the probabilities of fixed, evenly spaced windows.
        """
        X = check_predict_inputs(self.name, self.ctx, X, hasattr(self, "model_"))
        return self._predict(self._per_row(X))
