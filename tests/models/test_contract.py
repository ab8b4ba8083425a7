"""Contract tests run over every registered model family, plus parameter parsing and protocol."""

import subprocess
import sys

import numpy as np
import pytest

from usbench.errors import ConfigError
from usbench.models import MODELS, BuildContext, get_model
from usbench.models.keras_training import import_keras
from usbench.models.validation import validation_split

N_CLASSES, ABSENT = 4, 3
# Tiny versions of every family, so that the whole file runs in seconds.
TINY = {
    "logreg": {},
    "rf": {"n_estimators": 20},
    "mlp": {"hidden_units": (8,), "epochs": 3, "batch_size": 16, "validation": "fold"},
    "cnn": {"filters": (4, 4, 4), "dense_units": 8, "padding": "same", "epochs": 3,
            "batch_size": 16, "crop_frames": 16, "test_crops": 3, "time_mask_frames": 4,
            "freq_mask_bands": 4, "validation": "fold"},
}


def shape_of(spec):
    return (20,) if spec.input_kind == "vector" else (16, 20)


def tiny_data(shape, n_train=60, n_test=12, seed=0):
    """Train rows from 15 recordings of 4 rows in folds 1-3 (20 rows each), classes 0..2 only
    (class 3 is absent); test rows (fold 4) follow."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_train + n_test, *shape)).astype(np.float32)
    y = rng.integers(0, ABSENT, n_train + n_test)
    X.reshape(len(X), -1)[:, 0] += y  # some signal, so the models have something to learn
    groups = np.repeat(np.arange(n_train // 4), 4)
    return X[:n_train], y[:n_train], groups, X[n_train:]


def tiny_folds(n_train=60):
    return np.repeat([1, 2, 3], n_train // 3)


@pytest.fixture(scope="module", params=MODELS.names())
def fitted(request):
    """Two estimators of one family fitted with the same seed, and their test probabilities."""
    spec = get_model(request.param)
    ctx = BuildContext(n_classes=N_CLASSES, input_shape=shape_of(spec), seed=5, test_fold=4)
    X, y, groups, X_test = tiny_data(ctx.input_shape)
    folds = tiny_folds()
    first = spec.build(TINY[spec.name], ctx).fit(X, y, groups=groups, folds=folds)
    second = spec.build(TINY[spec.name], ctx).fit(X, y, groups=groups, folds=folds)
    return spec, first, first.predict_proba(X_test), second.predict_proba(X_test)


def test_probabilities_cover_every_class_id(fitted):
    spec, _, proba, _ = fitted
    assert proba.shape == (12, N_CLASSES) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert (proba >= 0).all()
    if spec.name in ("logreg", "rf"):
        assert (proba[:, ABSENT] == 0).all()


def test_same_seed_same_probabilities(fitted):
    _, _, proba, again = fitted
    np.testing.assert_array_equal(proba, again)


def test_history_after_fit(fitted):
    spec, est, _, _ = fitted
    if spec.name in ("logreg", "rf"):
        assert est.history_ == {}
    else:
        h = est.history_
        assert h["epochs_run"] == 3 and 1 <= h["best_epoch"] <= 3
        assert h["validation"] == "fold" and h["validation_fold"] == 1  # test 4 wraps to 1
        assert h["train_rows"] == 40 and h["validation_rows"] == 20
        assert h["refit_epochs"] == h["best_epoch"] and len(h["val_accuracy"]) == 3


def test_defaults_parse_and_are_unchanged(fitted):
    spec = fitted[0]
    assert spec.params() == dict(spec.default_params)
    assert spec.params({}) is not spec.default_params
    assert spec.input_kind in ("vector", "matrix") and spec.summary


class FakeTrial:
    """Records suggest_* calls; Optuna 5 takes step/log as keywords only."""

    def __init__(self, mode, seed=0):
        self.mode, self.rng, self.names = mode, np.random.default_rng(seed), []

    def _pick(self, name, low, high):
        self.names.append(name)
        return {"low": low, "high": high}.get(self.mode, None)

    def suggest_float(self, name, low, high, *, step=None, log=False):
        picked = self._pick(name, low, high)
        if picked is not None:
            return float(picked)
        if log:
            return float(np.exp(self.rng.uniform(np.log(low), np.log(high))))
        return float(self.rng.uniform(low, high))

    def suggest_int(self, name, low, high, *, step=1, log=False):
        picked = self._pick(name, low, high)
        return int(picked if picked is not None else self.rng.integers(low, high + 1))

    def suggest_categorical(self, name, choices):
        picked = self._pick(name, choices[0], choices[-1])
        return picked if picked is not None else choices[self.rng.integers(len(choices))]


@pytest.mark.parametrize("name", MODELS.names())
def test_search_space_gives_valid_params_only(name):
    spec = get_model(name)
    for trial in [FakeTrial("low"), FakeTrial("high")] + [FakeTrial("rand", s) for s in range(8)]:
        sampled = spec.search_space(trial)
        assert sampled and set(sampled) <= set(spec.default_params)
        assert len(trial.names) == len(set(trial.names))
        assert spec.params(sampled) == {**spec.default_params, **sampled}



class ChoiceTrial:
    """Takes the k-th choice of every categorical (wrapping) and, for k even, the low end of
    every number's range, for k odd the high end."""

    def __init__(self, k):
        self.k = k

    def suggest_float(self, name, low, high, *, step=None, log=False):
        return float(high if self.k % 2 else low)

    def suggest_int(self, name, low, high, *, step=1, log=False):
        return int(high if self.k % 2 else low)

    def suggest_categorical(self, name, choices):
        return choices[self.k % len(choices)]


@pytest.mark.parametrize("name", MODELS.names())
def test_every_parameter_has_a_documented_range(name):
    spec = get_model(name)
    for key, default in spec.default_params.items():
        allowed = spec.allowed.get(key)
        if isinstance(default, bool):
            continue
        assert allowed is not None and allowed.bounded, key
        if isinstance(default, str):
            assert default in allowed.choices, key
        else:
            assert allowed.describe().startswith("in "), key
        if isinstance(default, tuple):
            assert allowed.max_items, key
    assert [row[0] for row in spec.describe_params()] == sorted(spec.default_params,
                                                                key=str.lower)


@pytest.mark.parametrize("name", MODELS.names())
def test_search_space_lies_within_the_documented_ranges(name):
    """Both ends of every sampled range and every categorical choice are allowed values
    (search_space refuses anything outside a parameter's range)."""
    spec = get_model(name)
    for k in range(8):  # more than the longest list of choices
        sampled = spec.search_space(ChoiceTrial(k))
        for key, value in sampled.items():
            assert isinstance(value, bool) or spec.allowed[key].admits(value), (key, value)


@pytest.mark.parametrize(("model", "key", "inside", "outside"), [
    ("rf", "n_estimators", "10000", "1000000000"),
    ("rf", "max_depth", "1000", "1001"),
    ("rf", "min_samples_leaf", "10000", "10001"),
    ("logreg", "C", "1e6", "1e7"),
    ("logreg", "max_iter", "100000", "100001"),
    ("mlp", "epochs", "1000", "1000000000"),
    ("mlp", "learning_rate", "1", "5"),
    ("mlp", "batch_size", "65536", "1000000"),
    ("mlp", "hidden_units", ",".join(["8192"] * 16), ",".join(["8"] * 17)),
    ("mlp", "l2", "1", "1.5"),
    ("mlp", "patience", "1000", "1001"),
    ("cnn", "filters", "1024,1024", "2048,8"),
    ("cnn", "kernel_size", "128", "129"),
    ("cnn", "test_crops", "100", "101"),
    ("cnn", "mixup_alpha", "10", "11"),
])
def test_values_outside_a_range_are_refused_inside_accepted(model, key, inside, outside):
    spec = get_model(model)
    spec.params({key: inside})
    with pytest.raises(ConfigError, match=rf"^Parameter '{key}' of model '{model}' must be "):
        spec.params({key: outside})

def test_overrides_are_typed():
    mlp = get_model("mlp")
    got = mlp.params({"epochs": "10", "dropout": "0.25", "hidden_units": " 64, 32",
                      "learning_rate": "1e-4"})
    assert got["epochs"] == 10 and got["dropout"] == 0.25 and got["learning_rate"] == 1e-4
    assert got["hidden_units"] == (64, 32) and mlp.params({"hidden_units": "(16)"})[
        "hidden_units"] == (16,)
    assert mlp.params({"hidden_units": [64, 32], "l2": 0})["hidden_units"] == (64, 32)
    assert isinstance(mlp.params({"l2": 0})["l2"], float)
    cnn = get_model("cnn")
    for text, value in [("true", True), ("1", True), ("YES", True), ("false", False),
                        ("0", False), ("no", False)]:
        assert cnn.params({"batch_norm": text})["batch_norm"] is value
    assert get_model("logreg").params({"C": "1", "class_weight": "Balanced"}) == {
        "C": 1.0, "class_weight": "balanced", "max_iter": 2000}


@pytest.mark.parametrize(("model", "overrides", "message"), [
    ("mlp", {"dropuot": "0.3"}, "Unknown parameter 'dropuot' for model 'mlp'. Did you mean "
     "'dropout'? Valid: batch_size, dropout, epochs, hidden_units, l2, learning_rate, "
     "mixup_alpha, monitor, patience, refit, val_fold, val_fraction, validation, "
     "variant_share."),
    ("logreg", {"zzz": "1"}, "Unknown parameter 'zzz' for model 'logreg'. "
     "Valid: C, class_weight, max_iter."),
    ("mlp", {"epochs": "ten"}, "Parameter 'epochs' of model 'mlp' must be an int in "
     "[1, 1000], got 'ten'. Example: --set epochs=100"),
    ("mlp", {"epochs": "-5"}, "Parameter 'epochs' of model 'mlp' must be an int in "
     "[1, 1000], got '-5'. Example: --set epochs=100"),
    ("rf", {"n_estimators": "1000000000"}, "Parameter 'n_estimators' of model 'rf' must be "
     "an int in [1, 10000], got '1000000000'. Example: --set n_estimators=300"),
    ("mlp", {"epochs": 2.5}, "Parameter 'epochs' of model 'mlp' must be an int in "
     "[1, 1000], got 2.5. Example: --set epochs=100"),
    ("mlp", {"dropout": "1"}, "Parameter 'dropout' of model 'mlp' must be a number in [0, 1), "
     "got '1'. Example: --set dropout=0.5"),
    ("mlp", {"learning_rate": "nan"}, "Parameter 'learning_rate' of model 'mlp' must be a "
     "number in (0, 1], got 'nan'. Example: --set learning_rate=0.002"),
    ("mlp", {"val_fraction": "0.9"}, "Parameter 'val_fraction' of model 'mlp' must be a number "
     "in [0, 0.5], got '0.9'. Example: --set val_fraction=0.15"),
    ("mlp", {"hidden_units": "200,x"}, "Parameter 'hidden_units' of model 'mlp' must be "
     "1 to 16 comma-separated ints, each in [1, 8192], got '200,x'. Example: --set "
     "hidden_units=200,300"),
    ("mlp", {"hidden_units": "200,0"}, "Parameter 'hidden_units' of model 'mlp' must be "
     "1 to 16 comma-separated ints, each in [1, 8192], got '200,0'. Example: --set "
     "hidden_units=200,300"),
    ("cnn", {"batch_norm": "maybe"}, "Parameter 'batch_norm' of model 'cnn' must be true or "
     "false, got 'maybe'. Example: --set batch_norm=true"),
    ("mlp", {"validation": "test"}, "Parameter 'validation' of model 'mlp' must be 'fold', "
     "'recordings' or 'none', got 'test'. Example: --set validation=none"),
    ("cnn", {"variant_share": "1.5"}, "Parameter 'variant_share' of model 'cnn' must be a "
     "number in [0, 1], got '1.5'. Example: --set variant_share=0.5"),
    ("logreg", {"C": "0"}, "Parameter 'C' of model 'logreg' must be a number in [1e-6, 1e6], got "
     "'0'. "
     "Example: --set C=1.0"),
    ("logreg", {"class_weight": "auto"}, "Parameter 'class_weight' of model 'logreg' must be "
     "'none' or 'balanced', got 'auto'. Example: --set class_weight=none"),
    ("rf", {"max_features": "half"}, "Parameter 'max_features' of model 'rf' must be 'sqrt', "
     "'log2' or 'all', got 'half'. Example: --set max_features=sqrt"),
    ("rf", {"max_samples": "0"}, "Parameter 'max_samples' of model 'rf' must be a number in "
     "(0, 1], got '0'. Example: --set max_samples=1.0"),
])
def test_bad_overrides_are_refused_with_the_fix(model, overrides, message):
    with pytest.raises(ConfigError) as err:
        get_model(model).params(overrides)
    assert str(err.value) == message


def test_wrong_input_kind_and_too_small_inputs_are_refused():
    with pytest.raises(ConfigError) as err:
        get_model("cnn").build({}, BuildContext(n_classes=10, input_shape=(140,), seed=0))
    assert str(err.value) == ("Model 'cnn' needs matrix features, shape (bands, frames), but got "
                              "shape (140,). Use --features logmel.")
    with pytest.raises(ConfigError) as err:
        get_model("cnn").build({"crop_frames": 0, "time_mask_frames": 4},
                               BuildContext(n_classes=10, input_shape=(16, 20), seed=0))
    assert str(err.value) == (
        "Model 'cnn' with kernel_size 5 and padding 'valid' shrinks inputs of shape (16, 20) to "
        "nothing by conv layer 2 of 3. Use --set padding=same, a smaller kernel_size, or fewer "
        "filters."
    )
    with pytest.raises(ConfigError, match=r"^Model 'mlp' holds out whole recordings .* from 1 "
                       r"recording\. Use --set validation=none to train without validation\.$"):
        validation_split({"validation": "recordings", "val_fraction": 0.15},
                         groups=np.zeros(10), folds=None, test_fold=None, seed=0, model="mlp")


def test_default_networks_are_the_reference_architectures():
    keras, _ = import_keras()
    mlp = get_model("mlp").build({}, BuildContext(n_classes=10, input_shape=(140,), seed=0))
    # 140-200-300-10 dense
    assert mlp._network(keras).count_params() == 140 * 200 + 200 + 200 * 300 + 300 + 3010
    # SB-CNN itself: 5x5 convs 24/48/48, (4,2) pools, flatten 2x36x48, dense 64.
    sb = get_model("cnn").build({"batch_norm": False, "crop_frames": 0, "head": "flatten"},
                                BuildContext(n_classes=10, input_shape=(128, 173), seed=0))
    net = sb._network(keras)
    assert net.layers[-4].output.shape[1:] == (2 * 36 * 48,)
    assert net.count_params() == 624 + 28848 + 57648 + (3456 * 64 + 64) + 650
    # The default: the same layers on 128-frame windows, batch norm after each pooling, and
    # the last map (2 bands x 25 frames x 48) averaged over time instead of flattened.
    cnn = get_model("cnn").build({}, BuildContext(n_classes=10, input_shape=(128, 173), seed=0))
    net = cnn._network(keras)
    assert net.input_shape[1:] == (128, 128)
    assert net.layers[-4].output.shape[1:] == (2 * 48,)
    bn = 4 * (24 + 48 + 48)
    assert net.count_params() == 624 + 28848 + 57648 + bn + (96 * 64 + 64) + 650


def test_bad_crops_masks_and_validation_settings_are_refused_before_fitting():
    cnn, ctx = get_model("cnn"), BuildContext(n_classes=10, input_shape=(128, 173), seed=0)
    cases = [
        ({"crop_frames": 200}, "Parameter 'crop_frames' of model 'cnn' is 200, longer than the "
         "feature matrix (173 frames). Use --set crop_frames=N with N <= 173, or 0 for the "
         "whole matrix."),
        ({"time_mask_frames": 130}, "Parameter 'time_mask_frames' of model 'cnn' is 130, wider "
         "than the 128 frames it masks. Use --set time_mask_frames=N with N <= 128."),
        ({"freq_mask_bands": 129}, "Parameter 'freq_mask_bands' of model 'cnn' is 129, wider "
         "than the 128 bands it masks. Use --set freq_mask_bands=N with N <= 128."),
        ({"val_fraction": 0}, "Parameter 'val_fraction' of model 'cnn' is 0, which holds out "
         "no recordings. To train a fixed number of epochs without validation use --set "
         "validation=none."),
        ({"val_fold": 3}, "Parameter 'val_fold' of model 'cnn' applies to whole-fold "
         "validation only. Add --set validation=fold, or leave val_fold out."),
    ]
    for params, message in cases:
        with pytest.raises(ConfigError) as err:
            cnn.check_input(cnn.params(params), ctx.input_shape)
        assert str(err.value) == message
    mlp = get_model("mlp")
    protocol_cases = [
        ({"validation": "fold"}, [1, 2], [1, 2],
         "Model 'mlp' validates on a whole training fold, but only 2 fold(s) have clips: "
         "testing one and validating on another leaves no fold to train on. Use --set "
         "validation=recordings or --set validation=none."),
        ({"validation": "fold", "val_fold": 11}, [1, 2, 3], [1, 2],
         "Parameter 'val_fold' of model 'mlp' names fold 11, which has no clips. Folds with "
         "clips: 1, 2, 3. Use one of them, or --set val_fold=0 to rotate (the fold after each "
         "test fold)."),
        ({"validation": "fold", "val_fold": 2}, [1, 2, 3], [1, 2],
         "Parameter 'val_fold' of model 'mlp' names fold 2, which is also tested: a fold can't "
         "validate the model that is scored on it. Leave it out of --folds, or use --set "
         "val_fold=0 to rotate."),
    ]
    for params, present, tested, message in protocol_cases:
        with pytest.raises(ConfigError) as err:
            mlp.check_protocol(mlp.params(params), present, tested)
        assert str(err.value) == message
    # What the folds can serve passes: recordings with two folds, a fixed untested fold.
    mlp.check_protocol(mlp.params({"validation": "recordings"}), [1, 2], [1, 2])
    mlp.check_protocol(mlp.params({"validation": "fold", "val_fold": 3}), [1, 2, 3], [1, 2])
    # a final fit validates on fold 2
    mlp.check_protocol(mlp.params({"validation": "fold"}), [1, 2], None)
    mlp.check_protocol(mlp.params({}), [1], [1])  # a fixed epoch budget needs no fold


@pytest.mark.slow
def test_importing_the_registry_loads_neither_sklearn_nor_tensorflow():
    code = (
        "import sys\n"
        "from usbench.models import MODELS, get_model\n"
        "specs = [get_model(n) for n in MODELS]\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'tensorflow', 'keras'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_predict_before_fit_is_a_clear_error():
    est = get_model("logreg").build({}, BuildContext(n_classes=3, input_shape=(4,), seed=0))
    with pytest.raises(RuntimeError, match="not fitted yet; call fit first"):
        est.predict_proba(np.zeros((2, 4), dtype=np.float32))


@pytest.mark.parametrize("name", MODELS.names())
def test_a_test_clips_prediction_depends_on_nothing_else_of_the_test_fold(name):
    """Scaling, validation and everything else learn from training folds only: rewriting the
    other clips of the test fold (here by a huge offset, as a scaler fitted on the whole
    matrix would notice) leaves each test clip's probabilities unchanged."""
    from usbench.cv import leave_one_fold_out

    spec = get_model(name)
    params = spec.params(TINY[name])
    X, y, groups, X_test = tiny_data(shape_of(spec))
    X = np.concatenate([X, X_test])
    y = np.concatenate([y, np.zeros(len(X_test), int)])
    folds = np.r_[np.repeat([1, 2, 3], 20), np.full(len(X_test), 4)]
    rec = np.r_[groups, 1000 + np.arange(len(X_test))]
    ctx = BuildContext(n_classes=N_CLASSES, input_shape=X.shape[1:], seed=0, test_fold=4)

    def fold4(X):
        return leave_one_fold_out(lambda f: spec.build(params, ctx), X, y, folds, rec,
                                  N_CLASSES, test_folds=[4])[0].proba

    before = fold4(X)
    moved = X.copy()
    moved[61:] = moved[61:] * 50 + 1000  # every test clip but the first
    after = fold4(moved)
    np.testing.assert_allclose(after[0], before[0], rtol=1e-5, atol=1e-6)
    assert not np.allclose(after[1:], before[1:])  # the moved clips themselves did change


@pytest.mark.parametrize(("value", "expected"), [("1", None), ("0.5", 0.5)])
def test_rf_max_samples_reaches_the_forest(value, expected):
    spec = get_model("rf")
    est = spec.build(spec.params({"max_samples": value}),
                     BuildContext(n_classes=3, input_shape=(4,), seed=0))
    assert est.estimator.max_samples == expected
