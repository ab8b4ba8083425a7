"""HEAR-API modules as feature sets, with the module ``tests.features.hear_tiny`` made for
them: values, batching, weights in the key, runs and combined sets end to end, and each bad
module or clip as a one-line error."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from tests.conftest import cli_error, run_cli, run_id_of
from usbench.config import BuildConfig, DataConfig
from usbench.errors import ClipFeatureError, ConfigError, FeatureError
from usbench.features import get_feature_set, with_weights

MODULE = "tests.features.hear_tiny"
SR = 4000


def _expected(ys, gain=1.0):
    return np.array([[np.mean(gain * y), np.std(gain * y), np.max(np.abs(gain * y))] for y in ys],
                    np.float32)


@pytest.fixture
def weights(tmp_path):
    path = tmp_path / "gain.txt"
    path.write_text("2.0")
    return path


def test_scene_embeddings_of_clips_of_several_lengths(weights):
    fs = get_feature_set(f"hear:{MODULE}")
    assert (fs.kind, fs.sr, fs.shape, fs.pretrained) == ("vector", SR, (3,), True)
    rng = np.random.default_rng(0)
    ys = [rng.standard_normal(n).astype(np.float32) for n in (4000, 900, 4000, 2500, 900)]
    got = fs.extract_batch(ys, SR)
    np.testing.assert_allclose(got, _expected(ys), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(got, np.stack([fs.extract(y, SR) for y in ys]))
    scaled = get_feature_set(f"hear:{MODULE}@{weights}")
    np.testing.assert_allclose(scaled.extract_batch(ys, SR), _expected(ys, 2.0), rtol=1e-5,
                               atol=1e-6)


def test_the_weights_file_and_module_are_in_the_key(weights, tiny_root_ro):
    from usbench.build import store_for
    from usbench.datasets import open_dataset

    ds = open_dataset(DataConfig(root=str(tiny_root_ro)))

    def key(name):
        return store_for(ds, get_feature_set(name))[0].key

    plain, first = key(f"hear:{MODULE}"), key(f"hear:{MODULE}@{weights}")
    assert key(f"hear:{MODULE}@{weights}") == first
    weights.write_text("3.0")
    from usbench.features import hear

    hear._opened.clear()  # a new process: the module is loaded again
    assert len({plain, first, key(f"hear:{MODULE}@{weights}")}) == 3
    spec = get_feature_set(f"hear:{MODULE}@{weights}").spec()
    assert spec["module"] == MODULE and spec["module_version"] == "0.1"
    assert len(spec["weights_sha256"]) == 64 and spec["runtime"].startswith("tensorflow ")


def test_weights_flag_names_the_hear_part():
    assert with_weights("hear:m", "w.pt") == "hear:m@w.pt"
    assert with_weights("birdnet+hear:m", "w.pt") == "birdnet+hear:m@w.pt"
    assert with_weights("mfcc-stats", None) == "mfcc-stats"
    with pytest.raises(ConfigError, match="--weights is for one HEAR module"):
        with_weights("mfcc-stats", "w.pt")
    with pytest.raises(ConfigError, match="hear:MODULE@PATH"):
        with_weights("hear:a+hear:b", "w.pt")


def _module(tmp_path, monkeypatch, name, body):
    (tmp_path / f"{name}.py").write_text(body)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


GOOD_MODEL = "class M:\n    sample_rate = 4000\n    scene_embedding_size = 2\n"


@pytest.mark.parametrize("body, message", [
    ("def load_model(p=''):\n    return 1\n", "has no get_scene_embeddings()"),
    (GOOD_MODEL + "def load_model(p=''):\n    return M()\n"
     "def get_scene_embeddings(a, m):\n    return a[:, :3]\n",
     r"returned shape \(1, 3\), not \(1, 2\)"),
    ("class M:\n    sample_rate = 4000.5\n    scene_embedding_size = 2\n"
     "def load_model(p=''):\n    return M()\n"
     "def get_scene_embeddings(a, m):\n    return a[:, :2]\n",
     "no positive integer 'sample_rate'"),
    ("def load_model(p=''):\n    raise OSError('needs a checkpoint')\n"
     "def get_scene_embeddings(a, m):\n    return a\n",
     r"load_model\(''\) failed \(OSError: needs a checkpoint\)\. Pass its weights file with "
     "--weights"),
])
def test_a_bad_module_is_refused_in_one_line_before_any_clip(tmp_path, monkeypatch, body,
                                                            message):
    name = _module(tmp_path, monkeypatch, f"hear_bad_{len(body)}_{body.count('2')}", body)
    with pytest.raises(FeatureError, match=message) as info:
        get_feature_set(f"hear:{name}")
    assert name in str(info.value) and "\n" not in str(info.value)


def test_missing_module_and_weights(tmp_path):
    with pytest.raises(FeatureError, match="'no_such_hear_mod' cannot be imported"):
        get_feature_set("hear:no_such_hear_mod")
    with pytest.raises(FeatureError, match=r"Weights file .*nope.pt .* not found. Check --weights"):
        get_feature_set(f"hear:{MODULE}@{tmp_path / 'nope.pt'}")


def test_a_clip_the_module_cannot_embed_raises_a_clip_error():
    fs = get_feature_set(f"hear:{MODULE}")
    with pytest.raises(ClipFeatureError, match="shorter than 0.025 s") as info:
        fs.extract_batch([np.zeros(60, np.float32)], SR)
    assert "clips of 60 samples" in info.value.reason


def _shorten(root, clips, n=1):
    """Make the first `n` clips 0.01 s long: the test module cannot embed them."""
    ids = list(clips["clip_id"][:n])
    for path in clips["path"][:n]:
        sf.write(path, np.full(220, 0.1, np.float32), 22050)
    return ids


def test_run_build_and_combined_sets_end_to_end(tiny_root, weights, capsys, in_tmp):
    from mlflow.tracking import MlflowClient

    from usbench.build import build_features
    from usbench.datasets import open_dataset

    clips = open_dataset(DataConfig(root=str(tiny_root))).clips
    [short] = _shorten(tiny_root, clips)
    name = f"hear:{MODULE}"
    msg = cli_error(capsys, "features", "build", "--features", name, "--weights", str(weights),
                    "--data", str(tiny_root))
    assert "clips of 40 samples are shorter than 0.025 s" in msg and "--skip-bad" in msg
    # The combined set drops the clip the module cannot embed from every part, and puts each
    # part's row of a clip side by side.
    data = DataConfig(root=str(tiny_root))
    built = build_features(BuildConfig(data=data, skip_bad=True,
                                       features=f"{name}@{weights}+mfcc-mean"), progress=False)
    m = built.matrix
    assert short not in m.clip_ids and len(m.clip_ids) == len(clips) - 1
    assert [b["clip_id"] for b in m.bad] == [short]
    parts = [build_features(BuildConfig(data=data, skip_bad=True, features=f),
                            progress=False).matrix
             for f in (f"{name}@{weights}", "mfcc-mean")]
    for i in (0, len(m.clip_ids) // 2, len(m.clip_ids) - 1):
        cid = m.clip_ids[i]
        row = np.concatenate([p.X[list(p.clip_ids).index(cid)] for p in parts])
        np.testing.assert_array_equal(m.X[i], row)
    assert run_cli("run", "--model", "logreg", "--features", f"{name}+mfcc-mean", "--weights",
                   str(weights), "--data", str(tiny_root), "--skip-bad", "--folds", "1,2") == 0
    out = capsys.readouterr().out
    # An absolute URI: MLflow caches its store by URI, and later tests run in other folders.
    run = MlflowClient(f"sqlite:///{in_tmp / 'results' / 'mlflow.db'}").get_run(run_id_of(out))
    assert run.data.params["features"] == f"{name}@{weights}+mfcc-mean"
    tags = run.data.tags
    assert tags["usbench.pretrained"] == "true" and tags["usbench.encoder"] == name
    assert tags["usbench.encoder.licence"] == "MIT" and tags["usbench.partial"] == "true"
    predicted = pd.read_csv(next((in_tmp / "results").rglob("predictions.csv"))).clip_id
    assert short not in set(predicted)


@pytest.mark.usefixtures("in_tmp")
def test_a_saved_model_on_a_hear_module_predicts_and_notices_new_weights(tiny_root_ro, weights,
                                                                         capsys):
    name = f"hear:{MODULE}"
    assert run_cli("run", "--model", "logreg", "--features", name, "--weights", str(weights),
                   "--data", str(tiny_root_ro), "--folds", "1", "--save-model") == 0
    run_id = run_id_of(capsys.readouterr().out)
    clip = sorted((tiny_root_ro / "audio" / "fold2").iterdir())[0]
    assert run_cli("predict", str(clip), "--run", run_id) == 0
    assert capsys.readouterr().out.startswith(f"{clip}: ")
    weights.write_text("5.0")
    from usbench.features import hear

    hear._opened.clear()
    msg = cli_error(capsys, "predict", str(clip), "--run", run_id)
    assert f"trained on '{name}@{weights}', which now differs (weights_sha256 changed)" in msg
    msg = cli_error(capsys, "run", "--model", "logreg", "--features", f"{name}+mfcc-mean",
                    "--weights", str(weights), "--data", str(tiny_root_ro), "--save-model")
    assert "--save-model saves a model on one feature set" in msg
