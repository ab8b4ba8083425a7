"""Contract tests run over every registered feature set."""

import numpy as np
import pytest

from usbench.errors import FeatureError
from usbench.features import FEATURES, get_feature_set

SR = 22050
rng = np.random.default_rng(3)
# 4 s, 1.3 s, 0.05 s (shorter than one FFT), 5 s (longer than logmel's window), silence.
CLIPS = [
    (0.1 * rng.standard_normal(int(s * SR))).astype(np.float32) for s in (4.0, 1.3, 0.05, 5.0)
] + [np.zeros(SR, dtype=np.float32)]


@pytest.fixture(params=FEATURES.names())
def fs(request):
    return get_feature_set(request.param)


def test_shape_dtype_and_finite(fs):
    for y in CLIPS:
        out = fs.extract(y, SR)
        assert out.shape == fs.shape
        assert out.dtype == np.float32
        assert np.isfinite(out).all()


def test_deterministic(fs):
    np.testing.assert_array_equal(fs.extract_batch(CLIPS, SR), fs.extract_batch(CLIPS, SR))


def test_batch_equals_one_by_one(fs):
    batch = fs.extract_batch(CLIPS, SR)
    alone = np.stack([fs.extract(y, SR) for y in CLIPS])
    assert batch.shape == (len(CLIPS), *fs.shape)
    np.testing.assert_allclose(batch, alone, rtol=1e-4, atol=1e-3)


def test_wrong_sample_rate_is_refused(fs):
    with pytest.raises(FeatureError, match=f"expects audio at {SR} Hz but got 16000 Hz"):
        fs.extract(CLIPS[0], 16000)


def test_spec_names_version_and_every_field(fs):
    spec = fs.spec()
    assert spec["name"] == fs.name and spec["version"] == fs.version and spec["sr"] == SR
    assert fs.kind in ("vector", "matrix")


def test_declared_shapes():
    assert get_feature_set("mfcc-mean").shape == (40,)
    assert get_feature_set("mfcc-stats").shape == (140,)
    assert get_feature_set("logmel").shape == (128, 173)
