"""The MFCC features equal the tutorials' librosa/scipy computation."""

import librosa
import numpy as np
from scipy import stats

from usbench.features import get_feature_set

SR = 22050


def _clips():
    rng = np.random.default_rng(11)
    t = np.arange(3 * SR) / SR
    return [
        (0.3 * np.sin(2 * np.pi * 600 * t) + 0.05 * rng.standard_normal(t.size)).astype("f4"),
        (0.2 * rng.standard_normal(int(0.7 * SR))).astype("f4"),
    ]


def test_mfcc_mean_is_the_tutorial_feature():
    fs = get_feature_set("mfcc-mean")
    for y in _clips():
        expected = np.mean(librosa.feature.mfcc(y=y, sr=SR, n_mfcc=40).T, axis=0)
        np.testing.assert_allclose(fs.extract(y, SR), expected, rtol=1e-4, atol=1e-3)


def test_mfcc_stats_layout_is_statistic_major():
    fs = get_feature_set("mfcc-stats")
    for y in _clips():
        m = librosa.feature.mfcc(y=y, sr=SR, n_mfcc=20).astype(np.float64)
        expected = np.concatenate([
            m.min(1), m.max(1), np.median(m, 1), m.mean(1), m.var(1),
            stats.skew(m, axis=1), stats.kurtosis(m, axis=1),
        ])
        np.testing.assert_allclose(fs.extract(y, SR), expected, rtol=1e-3, atol=1e-3)


def test_constant_coefficients_get_zero_skew_and_kurtosis():
    out = get_feature_set("mfcc-stats").extract(np.zeros(SR, np.float32), SR)
    np.testing.assert_array_equal(out[100:], 0.0)


def test_moments_of_rounding_noise_are_zero_and_of_real_variation_are_scipys():
    """A coefficient constant up to float32 rounding of its clip's scale gets skewness and
    kurtosis 0 whatever the noise looks like; one that really varies gets scipy's moments."""
    from usbench.features.mfcc import NEAR_CONSTANT_RTOL, frame_stats

    rng = np.random.default_rng(0)
    scale = 1131.0  # a silent clip's c0, in dB-like units
    noise = scale * np.finfo(np.float32).eps * rng.standard_normal(40) ** 3  # skewed noise
    real = 0.01 * scale * rng.standard_normal(40) ** 3
    m = np.stack([np.full(40, -scale), noise, real])[None]  # (1 clip, 3 coefficients, frames)
    assert noise.std() < NEAR_CONSTANT_RTOL * scale < real.std()
    *_, skew, kurt = frame_stats(m)
    np.testing.assert_array_equal(skew[0, :2], 0.0)
    np.testing.assert_array_equal(kurt[0, :2], 0.0)
    np.testing.assert_allclose(skew[0, 2], stats.skew(real), rtol=1e-9)
    np.testing.assert_allclose(kurt[0, 2], stats.kurtosis(real), rtol=1e-9)
