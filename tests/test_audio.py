"""Decoding: every format in the synthetic mix reads to float32 mono at the asked rate."""

import os
import struct
import threading

import numpy as np
import pytest
import soundfile as sf

from usbench.audio import load, peak, read
from usbench.errors import AudioError

FORMATS = [(sr, st, ch) for sr in (8000, 11025, 44100, 48000, 96000)
           for st in ("PCM_U8", "PCM_16", "PCM_24", "FLOAT") for ch in (1, 2)]


@pytest.mark.parametrize(("sr", "subtype", "channels"), FORMATS)
def test_every_format_decodes_to_mono_at_target_rate(tmp_path, sr, subtype, channels):
    t = np.arange(int(0.5 * sr)) / sr
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    data = np.stack([tone] * channels, axis=1)
    path = tmp_path / f"x-{sr}-{subtype}-{channels}.wav"
    sf.write(path, data, sr, subtype=subtype)

    y = load(path, sr=22050)

    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(y.size - 11025) <= 2
    spectrum = np.abs(np.fft.rfft(y))
    peak_hz = np.argmax(spectrum) * 22050 / y.size
    assert abs(peak_hz - 440) < 5
    assert 0.3 < np.abs(y).max() < 0.6


@pytest.mark.parametrize("fmt", ["WAV", "FLAC", "AIFF"])
def test_16_bit_pcm_reads_as_libsndfiles_own_float_conversion(tmp_path, fmt):
    """16-bit files are read as integers and scaled by usbench: bit for bit libsndfile's."""
    from usbench.audio import read

    noise = np.random.default_rng(1).uniform(-1, 1, (5000, 2))
    noise[:4] = [[-1, 1], [1, -1], [0, 0], [-1 / 32768, 1 / 32768]]  # the extremes
    path = tmp_path / f"x.{fmt.lower()}"
    sf.write(path, noise, 22050, subtype="PCM_16", format=fmt)
    data, sr = read(path)
    want, _ = sf.read(path, dtype="float32", always_2d=True)
    assert sr == 22050 and data.dtype == np.float32
    np.testing.assert_array_equal(data, want)


def test_stereo_is_mixed_down_by_mean(tmp_path):
    left = np.full(1000, 0.5)
    right = np.full(1000, -0.1)
    sf.write(tmp_path / "s.wav", np.stack([left, right], 1), 22050, subtype="FLOAT")
    np.testing.assert_allclose(load(tmp_path / "s.wav", sr=22050), 0.2, atol=1e-6)


def test_very_short_clip_decodes(tmp_path):
    sf.write(tmp_path / "short.wav", np.zeros(400), 8000, subtype="PCM_16")  # 0.05 s
    assert load(tmp_path / "short.wav", sr=22050).size == 1103  # ceil(400 * 22050 / 8000)


def _good_wav(path):
    sf.write(path, np.random.default_rng(0).uniform(-0.5, 0.5, 4410), 44100, subtype="PCM_24")
    return path


def test_zero_byte_file(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioError) as err:
        load(tmp_path / "empty.wav", sr=22050)
    assert str(err.value) == f"Could not decode {tmp_path / 'empty.wav'}: empty file (0 bytes)"


def test_truncated_file(tmp_path):
    raw = _good_wav(tmp_path / "full.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(AudioError) as err:
        load(tmp_path / "cut.wav", sr=22050)
    assert err.value.reason == (
        f"truncated data (header declares {len(raw) - 44} bytes of audio, "
        f"file holds {len(raw) // 2 - 44})"
    )


@pytest.mark.parametrize("extra_bytes", [4044, 4046, 4052, 10_000])
def test_truncation_is_found_past_a_large_chunk(tmp_path, extra_bytes):
    """The data chunk's header ends at, straddles, starts at or lies far past byte 4,096 (the
    bytes read at first), behind a LIST chunk of `extra_bytes`."""
    samples = np.arange(-2000, 2000, dtype=np.int16).tobytes()
    fmt = struct.pack("<4sIHHIIHH", b"fmt ", 16, 1, 1, 22050, 44100, 2, 16)
    extra = b"LIST" + struct.pack("<I", extra_bytes) + bytes(extra_bytes)
    body = b"WAVE" + fmt + extra + b"data" + struct.pack("<I", len(samples))
    whole = b"RIFF" + struct.pack("<I", len(body) + len(samples)) + body + samples
    (tmp_path / "long.wav").write_bytes(whole)
    assert np.array_equal(read(tmp_path / "long.wav")[0][:, 0] * 32768,
                          np.arange(-2000, 2000))
    (tmp_path / "cut.wav").write_bytes(whole[:-1000])
    with pytest.raises(AudioError) as err:
        load(tmp_path / "cut.wav", sr=22050)
    assert err.value.reason == (f"truncated data (header declares {len(samples)} bytes of "
                                f"audio, file holds {len(samples) - 1000})")


def test_a_folder_is_refused_by_name(tmp_path):
    with pytest.raises(AudioError) as err:
        load(tmp_path, sr=22050)
    assert (err.value.path, err.value.reason) == (str(tmp_path), "a folder, not a file")


def test_link_loops_and_dangling_links_are_refused_by_name(tmp_path):
    (tmp_path / "self.wav").symlink_to("self.wav")
    (tmp_path / "a.wav").symlink_to("b.wav")
    (tmp_path / "b.wav").symlink_to("a.wav")
    (tmp_path / "dangling.wav").symlink_to("gone.wav")
    reasons = {}
    for name in ("self.wav", "a.wav", "dangling.wav"):
        with pytest.raises(AudioError) as err:
            read(tmp_path / name)
        reasons[name] = err.value.reason
    assert reasons == {"self.wav": "symbolic link loop", "a.wav": "symbolic link loop",
                       "dangling.wav": "dangling symbolic link (to gone.wav, which does not "
                                       "exist)"}


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this system")
def test_a_named_pipe_is_refused_without_waiting_for_a_writer(tmp_path):
    os.mkfifo(tmp_path / "clip.wav")
    outcome = []

    def decode():
        try:
            load(tmp_path / "clip.wav", sr=22050)
        except AudioError as exc:
            outcome.append(exc.reason)

    worker = threading.Thread(target=decode, daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert outcome == ["not a regular file"]


def test_a_headerless_file_is_refused_by_name(tmp_path):
    """libsndfile asks for the rate and channels of .raw/.vox/.gsm files, which a dataset
    cannot give: a one-line refusal, not soundfile's TypeError or ValueError."""
    for name in ("clip.raw", "clip.vox", "clip.gsm"):
        (tmp_path / name).write_bytes(np.arange(4000, dtype=np.int16).tobytes())
        with pytest.raises(AudioError) as err:
            load(tmp_path / name, sr=22050)
        assert err.value.path == str(tmp_path / name)
        assert err.value.reason.startswith("headerless audio: the file does not say its "
                                           "sample rate and channels")


def test_text_file_named_wav(tmp_path):
    (tmp_path / "notes.wav").write_text("this is not audio\n" * 20)
    with pytest.raises(AudioError) as err:
        load(tmp_path / "notes.wav", sr=22050)
    assert str(err.value) == f"Could not decode {tmp_path / 'notes.wav'}: Format not recognised."


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match="No such file or directory"):
        load(tmp_path / "gone.wav", sr=22050)


def test_float_samples_beyond_full_scale_are_read_as_they_are(tmp_path):
    samples = np.linspace(-37.2, 2.0, 22050, dtype=np.float32)
    sf.write(tmp_path / "loud.wav", samples, 22050, subtype="FLOAT", format="WAV")
    data, sr = read(tmp_path / "loud.wav")
    np.testing.assert_array_equal(data[:, 0], samples)
    assert peak(data) == pytest.approx(37.2)
    assert float(np.abs(load(tmp_path / "loud.wav", sr=22050)).max()) == pytest.approx(37.2)
