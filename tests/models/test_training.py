"""The Keras families' training protocol: validation rows, refit, training-only transforms.

Rows carry their id in band 0 (constant over frames, so it survives crops and time masks) and
audio variants carry a marker in band 1, so spies on every training transform can tell which
rows reached them.
"""

import numpy as np
import pytest

from usbench import cv
from usbench.models import BuildContext, batches, get_model
from usbench.models.validation import rotation_fold, validation_split

BANDS, FRAMES, K = 8, 24, 2
TINY_CNN = {"validation": "fold", "filters": (4, 4, 4), "dense_units": 8, "padding": "same",
            "epochs": 3,
            "batch_size": 16, "crop_frames": 12, "test_crops": 3, "time_masks": 1,
            "time_mask_frames": 3, "freq_masks": 0, "mixup_alpha": 0.4, "variant_share": 0.5}


def id_rows(n_per_fold=12, n_folds=4, seed=0):
    """(X, y, folds, groups, variants): ids 1000+i in band 0, variant k marked 500+k in band 1."""
    rng = np.random.default_rng(seed)
    n = n_per_fold * n_folds
    X = rng.standard_normal((n, BANDS, FRAMES)).astype(np.float32)
    y = rng.integers(0, 3, n)
    X[:, 2, :] += y[:, None]
    X[:, 0, :] = (1000 + np.arange(n))[:, None]
    X[:, 1, :] = 0
    folds = np.repeat(np.arange(1, n_folds + 1), n_per_fold)
    groups = np.repeat(np.arange(n // 3), 3)  # recordings of 3 rows, never across folds
    variants = np.repeat(X[:, None], K, axis=1) + 0.01
    variants[:, :, 0, :] = X[:, None, 0, :]
    variants[:, :, 1, :] = (500 + np.arange(K))[None, :, None]
    return X, y, folds, groups, variants


def ids_of(rows, est=None):
    """Row ids in band 0: raw rows, or standardised rows inverted with est.scaler_."""
    rows = np.asarray(rows)
    if est is not None:
        rows = est.scaler_.inverse_transform(rows.reshape(len(rows), BANDS, -1))
    return np.rint(np.median(rows[:, 0, :], axis=-1)).astype(int) - 1000


class Spy:
    """Wraps the training transforms and records the row ids each one receives."""

    def __init__(self, monkeypatch, est):
        self.calls = {"pick_variants": [], "random_crops": [], "spec_masks": [], "mixup": []}
        self.variant_ids, self.picked = [], []
        for name in self.calls:
            real = getattr(batches, name)
            monkeypatch.setattr(batches, name, self._wrap(name, real, est))

    def _wrap(self, name, real, est):
        def spy(X, *args, **kwargs):
            scaled = name in ("spec_masks", "mixup")
            self.calls[name].append(ids_of(X, est if scaled else None))
            if name == "pick_variants" and args[0] is not None:
                self.variant_ids.append(ids_of(args[0].reshape(-1, BANDS, FRAMES)))
            out = real(X, *args, **kwargs)
            if name == "pick_variants":
                self.picked.append(out)
            return out
        return spy


def test_every_training_transform_sees_training_rows_only(monkeypatch):
    X, y, folds, groups, variants = id_rows()
    train = folds != 4  # fold 4 is the test fold: none of its rows or variants may appear
    ctx = BuildContext(n_classes=4, input_shape=(BANDS, FRAMES), seed=1, test_fold=4)
    est = get_model("cnn").build(TINY_CNN, ctx)
    spy = Spy(monkeypatch, est)
    est.fit(X[train], y[train], groups=groups[train], folds=folds[train],
            variants=variants[train])
    fit_ids = np.flatnonzero(train)
    part = fit_ids[est.train_index_]  # training part: folds 2 and 3 (fold 1 validates)
    assert set(folds[fit_ids[est.validation_index_]]) == {1}
    epochs, refit = est.history_["epochs_run"], est.history_["refit_epochs"]
    assert refit == est.history_["best_epoch"] >= 1
    for name, calls in spy.calls.items():
        assert len(calls) == epochs + refit, name
        for i, ids in enumerate(calls):
            expected = part if i < epochs else fit_ids  # refit: every training-fold row
            assert sorted(ids) == sorted(expected), (name, i)
    for ids in spy.variant_ids:  # the variants offered are those of the same rows
        assert set(ids) <= set(fit_ids)
    picked_from_variants = 0
    for rows, choice in spy.picked:
        marker = rows[:, 1, 0]
        used = choice >= 0
        np.testing.assert_array_equal(marker[used], 500 + choice[used])
        picked_from_variants += int(used.sum())
    assert picked_from_variants == est.history_["variant_rows"] > 0


def test_cv_hands_fit_the_training_folds_and_their_variants_only():
    X, y, folds, groups, variants = id_rows()
    seen = []

    class SpyEstimator:
        history_: dict = {}

        def fit(self, X, y, groups=None, folds=None, variants=None):
            seen.append((ids_of(X), folds, ids_of(variants.reshape(-1, BANDS, FRAMES))))
            return self

        def predict_proba(self, X):
            return np.full((len(X), 4), 0.25)

    cv.leave_one_fold_out(lambda fold: SpyEstimator(), X, y, folds, groups, 4,
                          variants=variants)
    for test_fold, (ids, fit_folds, variant_ids) in zip([1, 2, 3, 4], seen, strict=True):
        expected = np.flatnonzero(folds != test_fold)
        assert sorted(ids) == sorted(expected) and test_fold not in set(fit_folds)
        assert set(variant_ids) == set(expected)


def test_validation_rows_never_come_from_the_test_fold_and_keep_recordings_whole():
    X, y, folds, groups, _ = id_rows()
    for test_fold in (1, 2, 3, 4):
        fit = folds != test_fold
        split = validation_split({"validation": "fold", "val_fold": 0}, groups=groups[fit],
                                 folds=folds[fit], test_fold=test_fold, seed=0, model="cnn")
        val_folds = set(folds[fit][split.val])
        assert val_folds == {rotation_fold([1, 2, 3, 4], test_fold)} == {test_fold % 4 + 1}
        assert len(split.train) + len(split.val) == fit.sum()
        split = validation_split({"validation": "recordings", "val_fraction": 0.3},
                                 groups=groups[fit], folds=folds[fit], test_fold=test_fold,
                                 seed=0, model="cnn")
        assert len(split.val) and not set(groups[fit][split.train]) & set(groups[fit][split.val])
        assert sorted([*split.train, *split.val]) == list(range(fit.sum()))
    assert rotation_fold([1, 2, 3], None) == 3  # a final fit validates on the last fold


def test_no_refit_keeps_the_best_epoch_and_none_trains_every_epoch(monkeypatch):
    X, y, folds, groups, _ = id_rows()
    ctx = BuildContext(n_classes=4, input_shape=(BANDS, FRAMES), seed=0, test_fold=4)
    fit = folds != 4
    est = get_model("cnn").build({**TINY_CNN, "refit": False, "epochs": 4, "patience": 1}, ctx)
    est.fit(X[fit], y[fit], groups=groups[fit], folds=folds[fit])
    h = est.history_
    assert h["refit_epochs"] == 0 and h["validation_rows"] == 12
    assert h["epochs_run"] <= 4
    assert h["best_val_accuracy"] == pytest.approx(max(h["val_accuracy"]), abs=1e-4)
    assert h["epochs_run"] == 4 or h["epochs_run"] == h["best_epoch"] + 1  # patience 1
    est = get_model("mlp").build({"hidden_units": (8,), "epochs": 2, "validation": "none"},
                                 BuildContext(n_classes=4, input_shape=(5,), seed=0))
    est.fit(X[:, 2, :5], y)
    assert est.history_ == {"validation": "none", "epochs_run": 2, "best_epoch": 2,
                            "best_val_accuracy": None, "best_val_loss": None,
                            "val_accuracy": [], "refit_epochs": 0, "train_rows": len(X),
                            "validation_rows": 0, "variant_rows": 0}
    assert est.scaler_.n_samples_seen_ == len(X)


def test_prediction_uses_no_training_transform_and_averages_the_crops(monkeypatch):
    X, y, folds, groups, variants = id_rows()
    ctx = BuildContext(n_classes=4, input_shape=(BANDS, FRAMES), seed=0, test_fold=4)
    fit = folds != 4
    est = get_model("cnn").build(TINY_CNN, ctx).fit(X[fit], y[fit], groups=groups[fit],
                                                   folds=folds[fit], variants=variants[fit])

    def forbidden(*args, **kwargs):
        raise AssertionError("a training transform ran at prediction time")

    for name in ("pick_variants", "random_crops", "spec_masks", "mixup"):
        monkeypatch.setattr(batches, name, forbidden)
    proba = est.predict_proba(X[~fit])
    assert proba.shape == (12, 4) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(proba, est.predict_proba(X[~fit]))
    scaled = est.scaler_.transform(X[~fit])
    offsets = batches.crop_offsets(FRAMES, 12, 3)
    assert list(offsets) == [0, 6, 12]
    by_hand = np.mean([est.model_.predict(scaled[..., o:o + 12], verbose=0) for o in offsets],
                      axis=0)
    np.testing.assert_allclose(proba, by_hand, rtol=1e-5, atol=1e-6)


def test_transforms_do_what_they_say():
    rng = np.random.default_rng(0)
    X = np.ones((50, 8, 24), dtype=np.float32)
    masked = batches.spec_masks(X.copy(), rng, time_masks=2, time_width=5, freq_masks=1,
                                freq_width=3)
    zero_frames = (masked == 0).all(axis=1).sum(axis=1)
    zero_bands = (masked == 0).all(axis=2).sum(axis=1)
    assert zero_frames.max() <= 10 and zero_bands.max() <= 3 and zero_frames.sum() > 0
    crops = batches.random_crops(np.arange(24, dtype=np.float32)[None, None].repeat(5, 0), 10,
                                 rng)
    assert crops.shape == (5, 1, 10) and (np.diff(crops, axis=-1) == 1).all()
    Y = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 50)]
    Xm, Ym = batches.mixup(rng.standard_normal((50, 3)).astype(np.float32), Y, 0.4, rng)
    np.testing.assert_allclose(Ym.sum(axis=1), 1.0, rtol=1e-6)
    assert (Ym.max(axis=1) < 1).any()
    same = batches.mixup(X, Y, 0.0, rng)
    assert same[0] is X and same[1] is Y


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_fold_validation_needs_fold_numbers(model):
    from usbench.errors import ConfigError

    shape = (5,) if model == "mlp" else (BANDS, FRAMES)
    X = np.zeros((12, *shape), dtype=np.float32)
    params = {"epochs": 1, "validation": "fold"} if model == "mlp" else {**TINY_CNN, "epochs": 1}
    est = get_model(model).build(params, BuildContext(n_classes=2, input_shape=shape, seed=0))
    with pytest.raises(ConfigError, match="was given no fold numbers"):
        est.fit(X, np.zeros(12, dtype=int))


def _fit_each_epoch(tf, model, batch_size):
    """The training before compiled epochs: Keras's fit on a tf.data pipeline per epoch."""
    def train_epoch(x, y):
        data = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)
        model.fit(data, epochs=1, shuffle=False, verbose=0)
    return train_epoch


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_compiled_epochs_train_as_keras_fit_does(monkeypatch, model):
    """The shipped training (one compiled call an epoch) against fit on each epoch's batches:
    the same weights and probabilities, bit for bit, with weight decay, dropout, mixup,
    audio variants, crops, masks, batch normalisation and a short last batch."""
    from usbench.models import keras_training

    X, y, folds, groups, variants = id_rows()
    if model == "mlp":
        X, variants = X.mean(axis=2), variants.mean(axis=3)
        params = {"hidden_units": (8, 8), "epochs": 3, "batch_size": 10, "l2": 1e-3,
                  "dropout": 0.3, "mixup_alpha": 0.4, "validation": "fold"}
    else:
        params = TINY_CNN
    ctx = BuildContext(n_classes=3, input_shape=X.shape[1:], seed=0, test_fold=4)
    train = folds != 4

    def trained():
        est = get_model(model).build(params, ctx)
        est.fit(X[train], y[train], groups=groups[train], folds=folds[train],
                variants=variants[train])
        return est.model_.get_weights(), est.predict_proba(X[~train]), est.history_

    shipped = trained()
    monkeypatch.setattr(keras_training, "_epoch_function", _fit_each_epoch)
    by_fit = trained()
    assert shipped[2] == by_fit[2] and shipped[2]["train_rows"] % params["batch_size"]
    np.testing.assert_array_equal(shipped[1], by_fit[1])
    assert all(np.array_equal(a, b) for a, b in zip(shipped[0], by_fit[0], strict=True))
