"""The Keras families' training protocol: validation rows, refit, training-only transforms.

Rows carry their id in band 0 (constant over frames, so it survives crops and time masks) and
audio variants carry a marker in band 1, so spies on every training transform can tell which
rows reached them. An epoch's rows are gathered by index a few batches at a time; chunked
training is checked bit-identical to epoch-sized arrays.
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
    """Wraps the training transforms and records, per epoch, the row ids each one receives.

    An epoch starts at its draw of variants (``variant_choice``); its rows are then gathered
    and transformed a chunk at a time (mixup partners too), so each transform's ids are
    collected over the epoch.
    """

    NAMES = ("gather", "crop_rows", "apply_masks", "mix")

    def __init__(self, monkeypatch, est):
        self.epochs: list[dict] = []
        self.choices, self.gathered = [], []
        real_choice = batches.variant_choice

        def choice(*args, **kwargs):
            out = real_choice(*args, **kwargs)
            self.epochs.append({name: set() for name in self.NAMES})
            self.choices.append(out)
            return out

        monkeypatch.setattr(batches, "variant_choice", choice)
        for name in self.NAMES:
            monkeypatch.setattr(batches, name, self._wrap(name, getattr(batches, name), est))

    def _wrap(self, name, real, est):
        def spy(X, *args, **kwargs):
            seen = self.epochs[-1][name]
            if name in ("apply_masks", "mix"):  # standardised rows
                seen.update(ids_of(X, est))
                if name == "mix":
                    seen.update(ids_of(args[0], est))
            elif name == "crop_rows":
                seen.update(ids_of(X))
            out = real(X, *args, **kwargs)
            if name == "gather":
                seen.update(ids_of(out))
                self.gathered.append((out, args[2]))
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
    assert len(spy.epochs) == epochs + refit
    for i, seen in enumerate(spy.epochs):
        expected = part if i < epochs else fit_ids  # refit: every training-fold row
        for name, ids in seen.items():
            assert ids == set(expected), (name, i)
    for rows, picked in spy.gathered:  # a variant row is the chosen variant of its clip
        marker = rows[:, 1, 0]
        used = picked >= 0
        np.testing.assert_array_equal(marker[used], 500 + picked[used])
        np.testing.assert_array_equal(marker[~used], 0)
    assert sum(int((c >= 0).sum()) for c in spy.choices) == est.history_["variant_rows"] > 0


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_training_a_few_batches_at_a_time_is_training_whole_epochs(monkeypatch, model):
    """Rows gathered and transformed a chunk at a time (here: one batch, then three) train
    the network bit for bit as one epoch-sized array did (CHUNK_VALUES large)."""
    from usbench.models import keras_training

    X, y, folds, groups, variants = id_rows()
    if model == "mlp":
        X, variants = X.mean(axis=2), variants.mean(axis=3)
        params = {"hidden_units": (8,), "epochs": 2, "batch_size": 5, "mixup_alpha": 0.4,
                  "validation": "fold"}
    else:
        params = {**TINY_CNN, "freq_masks": 1, "freq_mask_bands": 2}
    ctx = BuildContext(n_classes=3, input_shape=X.shape[1:], seed=0, test_fold=4)
    train = folds != 4
    values = int(np.prod(X.shape[1:])) * params["batch_size"]

    def trained(chunk_values):
        monkeypatch.setattr(keras_training, "CHUNK_VALUES", chunk_values)
        est = get_model(model).build(params, ctx)
        est.fit(X[train], y[train], groups=groups[train], folds=folds[train],
                variants=variants[train])
        return est.predict_proba(X[~train]), est.history_

    whole = trained(10**9)
    for chunk_values in (1, 3 * values):
        chunked = trained(chunk_values)
        np.testing.assert_array_equal(whole[0], chunked[0])
        assert whole[1] == chunked[1]


def test_the_whole_array_transforms_are_the_chunked_ones():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 6, 20)).astype(np.float32)
    variants = rng.standard_normal((30, 2, 6, 20)).astype(np.float32)
    Y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 30)]
    whole = np.random.default_rng(1)
    rows, choice = batches.pick_variants(X, variants, 0.5, whole)
    rows = batches.spec_masks(batches.random_crops(rows, 12, whole), whole, time_masks=2,
                              time_width=4, freq_masks=1, freq_width=2)
    rows, targets = batches.mixup(rows, Y, 0.4, whole)
    drawn = np.random.default_rng(1)
    picked = batches.variant_choice(30, 2, 0.5, drawn)
    starts = batches.crop_starts(30, 20, 12, drawn)
    masks = batches.mask_plan(30, 6, 12, drawn, time_masks=2, time_width=4, freq_masks=1,
                              freq_width=2)
    lam, partner = batches.mixup_plan(30, 0.4, drawn)
    np.testing.assert_array_equal(picked, choice)

    def rows_of(at):
        raw = batches.gather(X, variants, at, picked[at])
        return batches.apply_masks(batches.crop_rows(raw, starts[at], 12), masks, at)

    for at in (np.arange(0, 7), np.arange(7, 30)):
        part, part_y = batches.mix(rows_of(at), rows_of(partner[at]), Y[at], Y[partner[at]],
                                   lam[at])
        np.testing.assert_array_equal(part, rows[at])
        np.testing.assert_array_equal(part_y, targets[at])


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

    for name in ("pick_variants", "random_crops", "spec_masks", "mixup", "variant_choice",
                 "gather", "crop_starts", "crop_rows", "mask_plan", "apply_masks",
                 "mixup_plan", "mix"):
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
