"""What a saved model reads: audio content, paths only under its allowed folders (an
identical refusal for every other path), clips no longer than its limit (judged from the
header, before decoding), and no more rows than its limit."""

from __future__ import annotations

import io
import os
import struct

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import PythonModelContext
from sklearn.dummy import DummyClassifier

from usbench.errors import ConfigError
from usbench.features import get_feature_set
from usbench.saved_model import bundle
from usbench.saved_model.flavour import AudioClassifier
from usbench.saved_model.inputs import REFUSED, InputPolicy, allowed_dir

CLASSES = ("dog_bark", "siren")


def _wav(seconds: float = 0.5, sr: int = 16000) -> bytes:
    t = np.arange(int(seconds * sr)) / sr
    buffer = io.BytesIO()
    sf.write(buffer, 0.3 * np.sin(2 * np.pi * 440 * t), sr, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _sparse_hour(path) -> None:
    """A WAV of 4 kB on disk whose header (and size) claim an hour of 44.1 kHz audio."""
    n = 3600 * 44100 * 2
    header = (b"RIFF" + struct.pack("<I", 36 + n) + b"WAVE" + b"fmt "
              + struct.pack("<IHHIIHH", 16, 1, 1, 44100, 88200, 2, 16)
              + b"data" + struct.pack("<I", n))
    with open(path, "wb") as f:
        f.write(header)
        f.truncate(len(header) + n)


@pytest.fixture(scope="module")
def bundle_folder(tmp_path_factory):
    fs = get_feature_set("mfcc-mean")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, fs.extract(np.zeros(fs.sr, np.float32), fs.sr).size))
    est = DummyClassifier(strategy="prior").fit(x, [0, 0, 0, 1])
    return bundle.save(tmp_path_factory.mktemp("bundle"), est,
                       {"classes": list(CLASSES), "feature_spec": fs.spec()})


def _model(bundle_folder, **config) -> AudioClassifier:
    """The pyfunc model as MLflow loads it, with `config` as its model_config."""
    model = AudioClassifier()
    model.load_context(PythonModelContext({"bundle": str(bundle_folder)}, config))
    return model


def _errors(model, **columns) -> list[str]:
    return model.predict(None, pd.DataFrame(columns))["error"].tolist()


@pytest.fixture
def tree(tmp_path):
    """allowed/ with a clip, a symlink escaping it and a sparse hour; outside/ with a clip."""
    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    allowed.mkdir()
    outside.mkdir()
    (allowed / "clip.wav").write_bytes(_wav())
    (outside / "real.wav").write_bytes(_wav())
    (allowed / "escape.wav").symlink_to(outside / "real.wav")
    (allowed / "out").symlink_to(outside)
    _sparse_hour(allowed / "hour.wav")
    return allowed, outside


def test_content_is_decoded_and_classified(bundle_folder):
    out = _model(bundle_folder).predict(None, pd.DataFrame({"audio": [_wav(), b"not audio"]}))
    assert out["class"].tolist() == ["dog_bark", ""] and out["path"].tolist() == ["", ""]
    assert out["error"].tolist() == [
        "", "Could not decode the audio of row 1: Format not recognised."]
    assert out["proba.dog_bark"][0] == pytest.approx(0.75)


def test_every_refused_path_gets_the_same_answer(bundle_folder, tree):
    allowed, outside = tree
    model = _model(bundle_folder, allow_dirs=[str(allowed)])
    refused = ["/etc/shadow", str(outside / "missing.wav"), str(outside), "/",
               str(outside / "real.wav"), str(allowed / "escape.wav"),
               str(allowed / "out" / "real.wav"), str(allowed / ".." / "outside" / "real.wav"),
               "clip.wav", "a\0b", ""]
    assert _errors(model, path=refused) == [REFUSED] * (len(refused) - 1) + [
        "row 10 gives no audio: put the audio file's bytes in column 'audio'"]
    # Inside the folder, paths are read (and a missing one is said to be missing).
    out = model.predict(None, pd.DataFrame({"path": [
        str(allowed / "clip.wav"), str(outside / ".." / "allowed" / "clip.wav"),
        str(allowed / "nope.wav")]}))
    assert out["class"].tolist() == ["dog_bark", "dog_bark", ""]
    assert out["error"][2] == f"Could not decode {allowed / 'nope.wav'}: No such file or directory"


def test_without_allowed_folders_no_path_is_read(bundle_folder, tree):
    allowed, _ = tree
    assert _errors(_model(bundle_folder), path=[str(allowed / "clip.wav")]) == [REFUSED]


def test_a_header_claiming_too_long_is_refused_before_decoding(bundle_folder, tree,
                                                               monkeypatch):
    allowed, _ = tree
    assert os.stat(allowed / "hour.wav").st_blocks * 512 <= 8192  # sparse: 4 kB on disk
    model = _model(bundle_folder, allow_dirs=[str(allowed)], max_seconds=2)

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded a clip above the limit")

    monkeypatch.setattr(sf.SoundFile, "read", no_decoding)
    head = (allowed / "hour.wav").read_bytes()[:4096]
    assert _errors(model, path=[str(allowed / "hour.wav"), None, None],
                   audio=[None, head, _wav(seconds=3)]) == [
        f"Could not decode {allowed / 'hour.wav'}: 3,600.0 s of audio, above the limit of "
        "2 s per clip; send a shorter clip",
        "Could not decode the audio of row 1: truncated data (header declares 317520000 "
        "bytes of audio, file holds 4052)",
        "Could not decode the audio of row 2: 3.0 s of audio, above the limit of 2 s per "
        "clip; send a shorter clip"]


def test_many_channels_at_a_high_rate_are_refused_before_decoding(bundle_folder, monkeypatch):
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros((96000, 8)), 96000, format="FLAC", subtype="PCM_16")
    monkeypatch.setattr(sf.SoundFile, "read", None)  # any decoding would fail
    assert _errors(_model(bundle_folder, max_seconds=1), audio=[buffer.getvalue()]) == [
        "Could not decode the audio of row 0: 8 channels at 96,000 Hz decode to more samples "
        "than 1 s of 192 kHz stereo, the limit per clip; send a mono or stereo clip"]


def test_rows_above_the_limit_are_refused(bundle_folder):
    model = _model(bundle_folder, max_rows=2)
    assert len(model.predict(None, pd.DataFrame({"audio": [_wav()] * 2}))) == 2
    with pytest.raises(MlflowException, match="^3 rows in one request, above this model's "
                       "limit of 2; send at most 2 clips per request.$"):
        model.predict(None, pd.DataFrame({"audio": [_wav()] * 3}))


def test_defaults_and_bad_model_configs():
    assert InputPolicy.from_model_config(None) == InputPolicy(
        allow_dirs=(), max_seconds=60.0, max_rows=100)
    assert InputPolicy.from_model_config({"max_seconds": None, "max_rows": None}) == (
        InputPolicy(max_seconds=None, max_rows=None))
    with pytest.raises(ConfigError, match="allow_dirs must be a list of folders"):
        InputPolicy.from_model_config({"allow_dirs": "/tmp"})
    with pytest.raises(ConfigError, match="max_rows must be a positive number or None"):
        InputPolicy.from_model_config({"max_rows": 0})
    with pytest.raises(ConfigError, match="^--allow-dir /nope does not exist"):
        allowed_dir("/nope")

