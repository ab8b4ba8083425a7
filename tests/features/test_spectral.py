"""Batched features equal librosa's, clip by clip: several lengths, sample rates and
loudnesses in one batch (a quiet clip beside a loud one keeps its own 80 dB floor)."""

import librosa
import numpy as np
import pytest
from scipy import stats

from usbench.features import get_feature_set
from usbench.features.mfcc import NEAR_CONSTANT_RTOL
from usbench.features.spectral import mel_power


def _batch(sr: int) -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    out = []
    for seconds, amp in [(4.0, 0.5), (4.0, 1e-4), (2.3, 0.2), (0.05, 0.3), (1.0, 1e-6),
                         (3.1, 0.9)]:
        t = np.arange(int(seconds * sr)) / sr
        y = amp * (np.sin(2 * np.pi * 440 * t) + 0.3 * rng.standard_normal(t.size))
        out.append(y.astype(np.float32))
    return out


def _close(got, want, what):
    """Within float32 rounding of the values' own scale."""
    scale = max(float(np.abs(want).max()), 1.0)
    assert np.abs(got - want).max() <= 2e-4 * scale, what


@pytest.mark.parametrize("sr", [22050, 16000, 44100])
def test_mel_power_is_librosas(sr):
    ys = _batch(sr)
    length = max(y.size for y in ys)
    batch = np.stack([np.pad(y, (0, length - y.size)) for y in ys])
    got = mel_power(batch, sr, n_fft=2048, hop_length=512, n_mels=128)
    for i, y in enumerate(batch):
        want = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=2048, hop_length=512,
                                              n_mels=128)
        assert got[i].shape == want.shape
        # Relative to each clip's own peak: the quiet clips are compared on their scale.
        np.testing.assert_allclose(got[i], want, rtol=1e-3, atol=1e-5 * want.max() + 1e-30)


def test_mfcc_sets_equal_librosa_clip_by_clip():
    sr = 22050
    ys = _batch(sr)
    mean = get_feature_set("mfcc-mean").extract_batch(ys, sr)
    st = get_feature_set("mfcc-stats").extract_batch(ys, sr)
    for i, y in enumerate(ys):
        m40 = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=40)
        _close(mean[i], m40.mean(axis=1), f"mfcc-mean clip {i}")
        m = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20).astype(np.float64)
        flat = m.std(axis=1) <= NEAR_CONSTANT_RTOL * np.abs(m).max()
        want = np.concatenate([m.min(1), m.max(1), np.median(m, 1), m.mean(1), m.var(1),
                               np.where(flat, 0, stats.skew(m, axis=1)),
                               np.where(flat, 0, stats.kurtosis(m, axis=1))])
        # Statistics of near-constant rows amplify rounding: compare each block on its scale.
        for k in range(5):
            _close(st[i, 20 * k:20 * (k + 1)], want[20 * k:20 * (k + 1)],
                   f"mfcc-stats clip {i} statistic {k}")
        # Skewness and kurtosis divide deviations by the row's spread, so the float32 rounding
        # of the MFCCs (eps x the clip's largest |MFCC|) weighs on them as that over the spread
        # (a quiet clip's rows spread by 1e-4 of their scale: 1e-3 of rounding in the moment).
        rounding = np.finfo(np.float32).eps * np.abs(m).max() / np.maximum(m.std(axis=1), 1e-30)
        for k in (5, 6):
            got, ref = st[i, 20 * k:20 * (k + 1)], want[20 * k:20 * (k + 1)]
            tol = 2e-4 * max(float(np.abs(ref).max()), 1.0) + 20 * np.where(flat, 0, rounding)
            assert (np.abs(got - ref) <= tol).all(), f"mfcc-stats clip {i} statistic {k}"


def test_logmel_equals_librosa_clip_by_clip():
    fs = get_feature_set("logmel")
    ys = _batch(fs.sr)
    got = fs.extract_batch(ys, fs.sr)
    for i, y in enumerate(ys):
        y4 = np.pad(y[:fs.n_samples], (0, max(0, fs.n_samples - y.size)))
        want = librosa.power_to_db(
            librosa.feature.melspectrogram(y=y4, sr=fs.sr, n_fft=1024, hop_length=512,
                                           n_mels=128), amin=1e-10, top_db=None)
        _close(got[i], want, f"logmel clip {i}")


def test_quiet_clip_keeps_its_own_floor():
    """The 80 dB floor of an MFCC clip is its own peak - 80 dB, whatever shares the batch."""
    sr = 22050
    ys = _batch(sr)
    fs = get_feature_set("mfcc-mean")
    alone = np.stack([fs.extract(y, sr) for y in ys])
    together = fs.extract_batch(ys, sr)
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-4)


def test_mel_basis_is_librosas_kept_in_the_cache_and_rebuilt_when_damaged(isolated_cache):
    from usbench.features.spectral import mel_basis

    want = librosa.filters.mel(sr=16000, n_fft=512, n_mels=40).T
    mel_basis.cache_clear()
    np.testing.assert_array_equal(mel_basis(16000, 512, 40), want.astype(np.float32))
    [stored] = (isolated_cache / "filterbanks").glob("mel-16000-512-40-librosa-*.npy")
    np.testing.assert_array_equal(np.load(stored), want.astype(np.float32))
    stored.write_bytes(b"\x93NUMPY garbage")
    mel_basis.cache_clear()
    np.testing.assert_array_equal(mel_basis(16000, 512, 40), want.astype(np.float32))
    np.testing.assert_array_equal(np.load(stored), want.astype(np.float32))
    mel_basis.cache_clear()


@pytest.mark.slow
def test_a_build_with_the_filterbanks_cached_never_imports_librosa(isolated_cache):
    """librosa's import and numba compilation cost a fresh process about 0.3 s."""
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "from usbench.features import get_feature_set\n"
        "y = np.random.default_rng(0).standard_normal(22050).astype(np.float32)\n"
        "for name in ('mfcc-stats', 'mfcc-mean', 'logmel'):\n"
        "    get_feature_set(name).extract_batch([y, y[:9000]], 22050)\n"
        "print('librosa' in sys.modules)\n"
    )
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True).stdout.split() for _ in range(2)]
    assert runs == [["True"], ["False"]]  # the first builds the filterbanks, the second loads
