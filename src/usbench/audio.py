"""Audio decoding: any libsndfile format -> float32 mono at an explicit sample rate.

Decoding errors become ``AudioError`` naming the file. WAV files whose header promises more
audio than the file holds are refused (libsndfile would silently read the shorter part). A file
or the bytes of one (audio content sent to a server) can be held to a length: its header is
read first, and a clip that says it is longer is refused before anything is decoded.
"""

from __future__ import annotations

import errno
import io
import os
import re
import stat
import struct
from collections.abc import Callable

import numpy as np

from usbench.errors import AudioError

RESAMPLER = "soxr_hq"
# Bump when decoding changes its output (mix-down, resampling, padding) for the same file.
DECODER_VERSION = 1


# Headerless formats, known only by the file name's extension: no dataset gives their rate.
HEADERLESS = ("headerless audio: the file does not say its sample rate and channels; convert "
              "it to WAV or FLAC")
# Float files (unlike integer PCM) can hold samples beyond full scale. They are used as they
# are, as librosa and soundfile do, but a clip whose peak passes this is counted and warned
# about: a float file scaled like 16-bit integers (peaks near 32,768) is a wrong export, not a
# loud sound. The margin lets through the small overs of float processing (0.1 dB).
FLOAT_PEAK_LIMIT = 1.01
# Bytes of a file's start read for the RIFF check: the header and its usual chunks.
HEAD_BYTES = 4096


# The most samples (frames x channels) a clip of `max_seconds` may decode to, per second: a
# 192 kHz stereo recording. A compressed header may promise many channels at a high rate.
MAX_SAMPLES_PER_SECOND = 192_000 * 2


def _read_at(fd: int, n: int, offset: int) -> bytes:
    """Up to `n` bytes of the open descriptor `fd` from byte `offset`."""
    os.lseek(fd, offset, os.SEEK_SET)
    return os.read(fd, n)


def _wav_truncation(read_at: Callable[[int, int], bytes], size: int) -> str | None:
    """Return a reason if a RIFF/WAVE file's data chunk is shorter than its header says.

    Args:
        read_at: ``read_at(n, offset)`` gives up to `n` bytes of the file from byte `offset`.
        size: the file's size in bytes.
    """
    head = read_at(HEAD_BYTES, 0)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos = 12
    while pos + 8 <= size:
        # Chunk headers past the first bytes read (after a large chunk) are read one by one.
        chunk = head[pos:pos + 8] if pos + 8 <= len(head) else read_at(8, pos)
        if len(chunk) < 8:
            return None
        chunk_id, chunk_size = struct.unpack("<4sI", chunk)
        if chunk_id == b"data":
            available = size - pos - 8
            if chunk_size not in (0, 0xFFFFFFFF) and available < chunk_size:
                return (
                    f"truncated data (header declares {chunk_size} bytes of audio, "
                    f"file holds {available})"
                )
            return None
        pos += 8 + chunk_size + (chunk_size & 1)
    return None


FOLDER = "a folder, not a file"


def _open_failure(path: str | os.PathLike, exc: OSError) -> str:
    """Why `path` could not be opened, in words: a link loop, a dangling link, a folder."""
    if exc.errno == errno.ELOOP:
        return "symbolic link loop"
    if exc.errno == errno.EISDIR:
        return FOLDER
    if exc.errno == errno.ENOENT and os.path.islink(path):
        return f"dangling symbolic link (to {os.readlink(path)}, which does not exist)"
    return exc.strerror or "cannot be read"


def _check_file(path: str | os.PathLike) -> None:
    """Refuse what libsndfile should not be asked to read: a missing, unreadable, empty or
    truncated file, or one that is not a regular file (a folder, a FIFO, a device).

    One descriptor, opened without blocking (a FIFO would wait for a writer), for the kind,
    the size and the RIFF header: 8 us a clip, where a stat, a buffered open and seek/read
    pairs took 30 us of Python, which holds the GIL (a fifth of decoding a 4 s clip).
    """
    flags = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise AudioError(path, _open_failure(path, exc)) from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise AudioError(path, FOLDER)
        if not stat.S_ISREG(info.st_mode):
            raise AudioError(path, "not a regular file")
        if info.st_size == 0:
            raise AudioError(path, "empty file (0 bytes)")
        truncated = _wav_truncation(lambda n, offset: _read_at(fd, n, offset), info.st_size)
    except OSError as exc:
        raise AudioError(path, exc.strerror or "cannot be read") from None
    finally:
        os.close(fd)
    if truncated:
        raise AudioError(path, truncated)


CONTENT = "the audio content"


def _check_bytes(data: bytes) -> None:
    """Refuse empty or truncated audio content (the file checks, on bytes)."""
    if not data:
        raise AudioError(CONTENT, "empty file (0 bytes)")
    truncated = _wav_truncation(lambda n, offset: data[offset:offset + n], len(data))
    if truncated:
        raise AudioError(CONTENT, truncated)


def _length_refusal(fh, max_seconds: float) -> str | None:
    """A reason to refuse the clip open in `fh` (only its header read), or None."""
    seconds = fh.frames / fh.samplerate
    if seconds > max_seconds:
        return (f"{seconds:,.1f} s of audio, above the limit of {max_seconds:g} s per clip; "
                "send a shorter clip")
    if fh.frames * fh.channels > max_seconds * MAX_SAMPLES_PER_SECOND:
        return (f"{fh.channels} channels at {fh.samplerate:,} Hz decode to more samples than "
                f"{max_seconds:g} s of 192 kHz stereo, the limit per clip; send a mono or "
                "stereo clip")
    return None


def read(path: str | os.PathLike | bytes, *,
         max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """Decode a file, or the bytes of one, without resampling.

    Args:
        path: an audio file, or its bytes (named "the audio content" in errors).
        max_seconds: refuse a clip whose header says it is longer (or that holds more samples
            than this many seconds of 192 kHz stereo), before decoding it; None: no limit.

    Returns:
        (samples, sr): float32 array of shape (n_frames, n_channels), and the file's sample
        rate in Hz. Integer formats give [-1, 1); float formats give the file's values, which
        may pass full scale (see ``FLOAT_PEAK_LIMIT``).

    Raises:
        AudioError: missing, empty, unrecognised, headerless, truncated or sample-less file,
            a symbolic link loop or dangling link, a folder or other non-regular file, one
            with NaN or infinite samples, or one above `max_seconds`.
    """
    import soundfile as sf

    content = isinstance(path, bytes | bytearray)
    if content:
        _check_bytes(path)
        name, source = CONTENT, io.BytesIO(path)
    else:
        _check_file(path)
        name, source = path, path
    try:
        try:
            fh = sf.SoundFile(source)
        except TypeError:  # a .raw file: soundfile asks for its rate and channels
            raise AudioError(name, HEADERLESS) from None
        with fh:
            if fh.format == "RAW":  # .vox, .gsm: libsndfile assumes 8 kHz mono from the name
                raise AudioError(name, HEADERLESS)
            refusal = max_seconds is not None and _length_refusal(fh, max_seconds)
            if refusal:
                raise AudioError(name, refusal)
            sr = fh.samplerate
            integer = fh.subtype == "PCM_16"
            if integer:
                # Read as integers and scaled here: the very values of libsndfile's float
                # conversion (x / 32768, exact), at half its cost.
                data = np.multiply(fh.read(dtype="int16", always_2d=True),
                                   np.float32(1 / 32768), dtype=np.float32)
            else:
                data = fh.read(dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError) as exc:
        # libsndfile names the file, or the BytesIO object of content: the reason is enough.
        reason = re.sub(r"^Error opening .*?: ", "", str(exc)) if content else (
            str(exc).replace(f"Error opening {str(path)!r}: ", ""))
        raise AudioError(name, reason.strip() or "unrecognised format") from None
    if data.shape[0] == 0:
        raise AudioError(name, "no audio samples")
    # Float files can hold NaN or inf (no feature survives them); 16-bit integers cannot.
    if not integer and not np.isfinite(data).all():
        bad = int(np.count_nonzero(~np.isfinite(data).all(axis=1)))
        raise AudioError(name, f"{bad:,} of {data.shape[0]:,} frames hold NaN or infinite "
                               "samples")
    return data, int(sr)


def peak(data: np.ndarray) -> float:
    """Largest absolute sample of decoded audio (`read`'s float32 array)."""
    return max(float(data.max()), -float(data.min()))


def load(path: str | os.PathLike | bytes, sr: int, *,
         max_seconds: float | None = None) -> np.ndarray:
    """Decode, mix down to mono and resample to `sr`.

    Args:
        path: an audio file in any format libsndfile reads, or its bytes.
        sr: target sample rate in Hz (explicit: nothing is chosen silently).
        max_seconds: the longest clip decoded (see ``read``); None: no limit.

    Returns:
        float32 waveform, shape (n_samples,), at `sr` Hz.
    """
    return to_mono(*read(path, max_seconds=max_seconds), sr)


def to_mono(data: np.ndarray, file_sr: int, sr: int) -> np.ndarray:
    """`read`'s (samples, rate) mixed down to mono and resampled to `sr`: float32, shape
    (n_samples,)."""
    if data.shape[1] > 1:
        # Averaging along contiguous rows: a strided mean over axis 1 costs more than decoding.
        y = np.ascontiguousarray(data.T).mean(axis=0, dtype=np.float32)
    else:
        y = data[:, 0]
    if file_sr != sr:
        import librosa

        y = librosa.resample(y, orig_sr=file_sr, target_sr=sr, res_type=RESAMPLER)
    return np.ascontiguousarray(y, dtype=np.float32)
