"""Parallel feature extraction into a ``FeatureStore``, resumable chunk by chunk.

Threads of this process (the default: decoding, FFTs and matrix products release the GIL) or
worker processes (``--jobs N``, and audio augmentation; spawned, reused for the whole build)
decode and extract one chunk of clips at a time, each with one BLAS/OpenMP thread; this process
alone writes shards, atomically, so an interrupted build keeps every finished chunk and resumes
with the rest. Workers end with the parent, even a killed one (``usbench.procs``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, as_completed, wait
from contextlib import contextmanager

import numpy as np

from usbench.augment import AudioAugment
from usbench.cache import FeatureStore
from usbench.features.base import FeatureSet

# Valid clips counted in the build summary (the same limits as `usbench data check`).
SILENT_PEAK = 1e-7  # -140 dBFS
SHORT_SAMPLES = 2048  # one analysis window of the feature sets

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
               "NUMBA_NUM_THREADS")


def extract_chunk(fs: FeatureSet, clip_ids: list[str], paths: list[str],
                  augment: AudioAugment | None = None
                  ) -> tuple[list[str], np.ndarray, list[dict], list[dict]]:
    """Decode and extract one chunk (or, with `augment`, the features of its variants).

    Returns:
        (good clip ids, float32 features of shape (n_good, *fs.shape), or
        (n_good, augment.variants, *fs.shape) with `augment`, bad clips as
        {clip_id, path, reason}, valid clips worth a look as {clip_id, note}: "silent"
        (peak below -140 dBFS), "short" (fewer samples than one 2,048-sample window) or
        "loud" (float samples beyond ``audio.FLOAT_PEAK_LIMIT``, with the file's ``peak``)).
    """
    from usbench.audio import FLOAT_PEAK_LIMIT, peak, read, to_mono
    from usbench.errors import AudioError

    good, waves, bad, notes = [], [], [], []
    for clip_id, path in zip(clip_ids, paths, strict=True):
        try:
            data, file_sr = read(path)
        except AudioError as exc:
            bad.append({"clip_id": clip_id, "path": path, "reason": exc.reason})
            continue
        # The file's own samples: resampling a full-scale clip overshoots a little.
        loudest = peak(data)
        if loudest > FLOAT_PEAK_LIMIT:
            notes.append({"clip_id": clip_id, "note": "loud", "peak": round(loudest, 4)})
        y = to_mono(data, file_sr, fs.sr)
        waves.append(y)
        good.append(clip_id)
        if not len(y) or max(float(y.max()), -float(y.min())) < SILENT_PEAK:
            notes.append({"clip_id": clip_id, "note": "silent"})
        if len(y) < SHORT_SAMPLES:
            notes.append({"clip_id": clip_id, "note": "short"})
    if augment is None:
        paths_of = dict(zip(clip_ids, paths, strict=True))
        X, good, waves = _embed_or_drop(fs, good, waves, paths_of=paths_of, bad=bad)
        kept = set(good)
        return good, X, bad, [n for n in notes if n["clip_id"] in kept]
    k = augment.variants
    deformed = [v for clip_id, y in zip(good, waves, strict=True)
                for v in augment.make(y, fs.sr, clip_id)]
    X = (fs.extract_batch(deformed, fs.sr) if deformed
         else np.empty((0, *fs.shape), np.float32))
    return good, X.reshape(len(good), k, *fs.shape), bad, notes


def _embed_or_drop(fs: FeatureSet, good: list[str], waves: list[np.ndarray], *,
                   paths_of: dict[str, str], bad: list[dict]):
    """Features of `waves`; if the feature set cannot embed some of them (ClipFeatureError),
    each clip alone, the failing ones moved to `bad`. Returns (X, good ids, waves)."""
    from usbench.errors import ClipFeatureError

    if not waves:
        return np.empty((0, *fs.shape), np.float32), good, waves
    try:
        return fs.extract_batch(waves, fs.sr), good, waves
    except ClipFeatureError:
        rows, kept, kept_waves = [], [], []
        for clip_id, y in zip(good, waves, strict=True):
            try:
                rows.append(fs.extract_batch([y], fs.sr)[0])
            except ClipFeatureError as exc:
                bad.append({"clip_id": clip_id, "path": paths_of[clip_id],
                            "reason": exc.reason})
                continue
            kept.append(clip_id)
            kept_waves.append(y)
        X = np.stack(rows) if rows else np.empty((0, *fs.shape), np.float32)
        return X, kept, kept_waves


def keep_freed_memory() -> bool:
    """Let this process reuse the memory it frees instead of faulting it in again.

    glibc hands every freed block above a threshold (128 KB to 32 MB, moving) back to the
    system, so each chunk faults in its waveforms, frames and spectra afresh: a quarter of a
    clip's extraction time on us8k-dev (570,000 page faults per 580 clips of ``mfcc-mean``,
    19,000 with this). Here blocks below 32 MB come from the heap, which keeps up to 64 MB
    free, for the rest of the process's life (a few tens of MB more resident after a build).
    Linux with glibc only; elsewhere a no-op that returns False.
    """
    import ctypes
    import platform

    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    # M_MMAP_THRESHOLD (-3), M_TRIM_THRESHOLD (-1) from <malloc.h>; both return 1 when set.
    return bool(mallopt(-3, 32 << 20) and mallopt(-1, 64 << 20))


def _worker_init(parent_pid: int) -> None:
    from usbench.procs import die_with_parent

    die_with_parent(parent_pid)
    keep_freed_memory()


@contextmanager
def _one_thread_per_worker() -> Iterator[None]:
    """Spawned workers inherit these: two cores, two workers, no BLAS threads fighting."""
    saved = {k: os.environ.get(k) for k in THREAD_VARS}
    os.environ.update({k: "1" for k in THREAD_VARS})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def default_jobs() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def run_chunks(store: FeatureStore, fs: FeatureSet, chunks: list[tuple[list[str], list[str]]],
               todo: list[int], jobs: int,
               on_chunk: Callable[[int, int], None] | None = None,
               augment: AudioAugment | None = None, threads: bool = False) -> None:
    """Extract the chunks whose indices are in `todo` and write each as a shard.

    Args:
        chunks: (clip ids, paths) per chunk index.
        todo: chunk indices still missing from the store.
        jobs: worker processes; 1 runs in this process.
        on_chunk: called with (chunk index, clips in it) after each shard is written.
        augment: extract the features of each clip's audio variants instead.
    """
    def done(i: int, result) -> None:
        store.write_shard(i, *result)
        if on_chunk:
            on_chunk(i, len(chunks[i][0]))

    keep_freed_memory()
    if threads and jobs > 1 and len(todo) > 1:
        from concurrent.futures import ThreadPoolExecutor

        from scipy import fft
        from threadpoolctl import threadpool_limits

        # Threads in this process: decoding, FFTs and matrix products release the GIL, and
        # nothing is spawned or imported twice. One BLAS and FFT thread each, as in workers.
        with threadpool_limits(limits=1), fft.set_workers(1), \
                ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = {pool.submit(extract_chunk, fs, *chunks[i], augment): i for i in todo}
            for fut in as_completed(futures):
                done(futures[fut], fut.result())
        return
    if jobs <= 1 or len(todo) <= 1:
        from scipy import fft
        from threadpoolctl import threadpool_limits

        # One BLAS thread, as in the workers: the matrix is bit-identical whatever --jobs is.
        # The FFTs of a batch are independent transforms, so spreading them over the cores
        # changes no bit: a small build in this process still uses every core for them.
        with threadpool_limits(limits=1), fft.set_workers(default_jobs()):
            for i in todo:
                done(i, extract_chunk(fs, *chunks[i], augment))
        return
    import multiprocessing

    # Workers are spawned on demand while submitting, so the variables stay set throughout.
    with _one_thread_per_worker(), ProcessPoolExecutor(
        max_workers=min(jobs, len(todo)), mp_context=multiprocessing.get_context("spawn"),
        initializer=_worker_init, initargs=(os.getpid(),)
    ) as pool:
        # Keep a bounded queue so an interrupt loses little queued work and memory stays flat.
        pending, queue = {}, list(todo)
        while queue or pending:
            while queue and len(pending) < 2 * jobs:
                i = queue.pop(0)
                pending[pool.submit(extract_chunk, fs, *chunks[i], augment)] = i
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                done(pending.pop(fut), fut.result())
