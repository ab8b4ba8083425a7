"""Contract tests run over every registered feature set."""

import numpy as np
import pytest

from usbench.errors import FeatureError
from usbench.features import FEATURES, get_feature_set


def clips(sr: int) -> list[np.ndarray]:
    """4 s, 1.3 s, 0.05 s (shorter than one FFT), 5 s (longer than the fixed windows),
    silence, at `sr`."""
    rng = np.random.default_rng(3)
    return [(0.1 * rng.standard_normal(int(s * sr))).astype(np.float32)
            for s in (4.0, 1.3, 0.05, 5.0)] + [np.zeros(sr, dtype=np.float32)]


@pytest.fixture(params=FEATURES.names())
def fs(request):
    return get_feature_set(request.param)


def test_shape_dtype_and_finite(fs):
    for y in clips(fs.sr):
        out = fs.extract(y, fs.sr)
        assert out.shape == fs.shape
        assert out.dtype == np.float32
        assert np.isfinite(out).all()


def test_deterministic(fs):
    ys = clips(fs.sr)
    np.testing.assert_array_equal(fs.extract_batch(ys, fs.sr), fs.extract_batch(ys, fs.sr))


def test_batch_equals_one_by_one(fs):
    ys = clips(fs.sr)
    batch = fs.extract_batch(ys, fs.sr)
    alone = np.stack([fs.extract(y, fs.sr) for y in ys])
    assert batch.shape == (len(ys), *fs.shape)
    np.testing.assert_allclose(batch, alone, rtol=1e-4, atol=1e-3)


def test_wrong_sample_rate_is_refused(fs):
    other = 11025 if fs.sr != 11025 else 8000
    with pytest.raises(FeatureError, match=f"expects audio at {fs.sr} Hz but got {other} Hz"):
        fs.extract(clips(fs.sr)[0], other)


def test_spec_names_version_and_every_field(fs):
    spec = fs.spec()
    assert spec["name"] == fs.name and spec["version"] == fs.version and spec["sr"] == fs.sr
    assert fs.kind in ("vector", "matrix")


def test_declared_shapes():
    assert get_feature_set("mfcc-mean").shape == (40,)
    assert get_feature_set("mfcc-stats").shape == (140,)
    assert get_feature_set("logmel").shape == (128, 173)
    assert get_feature_set("stft").shape == (257, 251)
    assert get_feature_set("stft-mag").shape == (257, 251)


def test_stft_is_the_linear_spectrum_of_a_tone():
    """A 1,000 Hz tone of amplitude 0.5 at 16 kHz sits in bin 1000 / (16000 / 512) = 32, with
    magnitude 0.5 x sum(Hann window) / 2 = 64; ``stft`` is that in dB (20 log10)."""
    sr, amp = 16000, 0.5
    y = (amp * np.sin(2 * np.pi * 1000 * np.arange(4 * sr) / sr)).astype(np.float32)
    mag = get_feature_set("stft-mag").extract(y, sr)
    middle = mag[:, 10:-10]  # away from the zero-padded edges
    assert (middle.argmax(axis=0) == 32).all()
    np.testing.assert_allclose(middle[32], amp * 512 / 4, rtol=1e-3)
    db = get_feature_set("stft").extract(y, sr)
    np.testing.assert_allclose(db[32, 10:-10], 20 * np.log10(amp * 512 / 4), atol=1e-3)
