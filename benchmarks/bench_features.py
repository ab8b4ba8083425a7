"""Feature-extraction throughput: the tutorials' serial librosa loop versus usbench.

What it measures, for each audio format on the same generated files:

(A) serial: the blog tutorials' loop in this one process. For each file
    ``librosa.load(path)`` (22,050 Hz mono, librosa's default soxr_hq resampler), then
    ``librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20)`` and 7 statistics per coefficient (min,
    max, median, mean, var, skew, kurtosis) concatenated. One warm-up file is processed first
    and not timed, so numba/librosa first-call costs are excluded.
(B) usbench: ``build_features(... features="mfcc-stats", jobs=--jobs)`` from a cold, empty
    feature cache (``USBENCH_CACHE`` pointed at a fresh temp folder). Its wall time includes
    spawning the worker processes (``--jobs 0``: the default build's threads of this process
    instead), importing librosa in them and writing the cache.

It then profiles ``usbench.extract.extract_chunk`` in this process (cProfile, one BLAS thread
as in the workers, cache-sized chunks, after a warm-up) and splits the time per clip into
decoding, resampling, STFT + mel, dB + DCT (MFCC), statistics and other.

The benchmark audio (noise plus tones, 4.0 s clips, UrbanSound8K layout) is generated into a
temporary folder and removed at the end; the files are in the OS page cache for both (A) and
(B). Formats: 22,050 Hz mono 16-bit; 44,100 Hz stereo 24-bit; 48,000 Hz stereo 24-bit.

Run from the repository root (the spawned workers need the ``__main__`` guard below):

    python benchmarks/bench_features.py [--n 1000] [--jobs 2]
    python benchmarks/bench_features.py --data ~/us8k-dev     # real audio, whole processes

Results are printed and saved to ``results/benchmarks/features.json`` in the working directory.
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import json
import os
import platform
import pstats
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import numpy as np

DURATION_S = 4.0
FORMATS = {
    "22050-mono-16": {"sr": 22050, "channels": 1, "subtype": "PCM_16",
                      "label": "22,050 Hz mono 16-bit"},
    "44100-stereo-24": {"sr": 44100, "channels": 2, "subtype": "PCM_24",
                        "label": "44,100 Hz stereo 24-bit"},
    "48000-stereo-24": {"sr": 48000, "channels": 2, "subtype": "PCM_24",
                        "label": "48,000 Hz stereo 24-bit"},
}
VERSIONED = ("usbench", "librosa", "numpy", "scipy", "soundfile", "soxr")
CSV_COLUMNS = ("slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class")
# Profile buckets, in print order.
BUCKETS = ("decoding", "mixdown", "resampling", "stft_mel", "db_dct_mfcc", "statistics",
           "other")
BUCKET_LABELS = {
    "decoding": "decoding (usbench.audio.read / libsndfile)",
    "mixdown": "stereo mix-down (ndarray.mean in audio.load)",
    "resampling": "resampling (librosa.resample, soxr_hq)",
    "stft_mel": "STFT + mel (features.spectral.mel_power)",
    "db_dct_mfcc": "dB + DCT (power_db, the DCT matrix scipy.fft.dct makes)",
    "statistics": "statistics (min..kurtosis)",
    "other": "other (padding, checks, loop, profiler)",
}


# ---------------------------------------------------------------------------- audio generation


def write_root(root: Path, fmt: dict, n: int, seed: int) -> tuple[list[str], list[str]]:
    """Write `n` clips of `fmt` as an UrbanSound8K root.

    Returns:
        (clip ids, absolute paths), in generation order.
    """
    import soundfile as sf

    from usbench.datasets.synthetic import CLASSES

    rng = np.random.default_rng(seed)
    sr, channels = fmt["sr"], fmt["channels"]
    t = np.arange(int(round(DURATION_S * sr))) / sr
    (root / "metadata").mkdir(parents=True)
    rows, ids, paths = [], [], []
    for i in range(n):
        class_id, fold, fs_id = i % len(CLASSES), 1 + i * 10 // n, 100000 + i
        name = f"{fs_id}-{class_id}-0-0.wav"
        tones = sum(rng.uniform(0.1, 0.5) * np.sin(2 * np.pi * rng.uniform(80, 6000) * t
                                                   + rng.uniform(0, 2 * np.pi))
                    for _ in range(rng.integers(1, 4)))
        noise = rng.standard_normal((t.size, channels)) * rng.uniform(0.02, 0.3)
        y = noise + tones[:, None]
        y *= 0.9 / np.abs(y).max()
        folder = root / "audio" / f"fold{fold}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / name
        sf.write(path, y if channels > 1 else y[:, 0], sr, subtype=fmt["subtype"])
        rows.append((name, fs_id, 0.0, DURATION_S, 1, fold, class_id, CLASSES[class_id]))
        ids.append(name)
        paths.append(str(path))
    with open(root / "metadata" / "UrbanSound8K.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_COLUMNS)
        writer.writerows(rows)
    return ids, paths


# ---------------------------------------------------------------------------- (A) serial loop


def tutorial_features(path: str) -> np.ndarray:
    """The tutorials' per-file features: 20 MFCCs x 7 statistics, statistic-major."""
    import librosa
    from scipy import stats

    y, sr = librosa.load(path)
    m = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20)
    return np.concatenate([np.min(m, axis=1), np.max(m, axis=1), np.median(m, axis=1),
                           np.mean(m, axis=1), np.var(m, axis=1), stats.skew(m, axis=1),
                           stats.kurtosis(m, axis=1)])


def time_serial(paths: list[str]) -> tuple[float, np.ndarray]:
    """Seconds for the serial loop over `paths` (after an untimed warm-up file)."""
    tutorial_features(paths[0])
    start = time.perf_counter()
    X = np.stack([tutorial_features(p) for p in paths])
    return time.perf_counter() - start, X


# ---------------------------------------------------------------------------- (B) usbench build


def time_usbench(root: Path, jobs: int, scratch: Path) -> tuple[float, list[str], np.ndarray]:
    """Seconds for a cold-cache ``build_features`` of `root`, its clip ids and matrix."""
    from usbench.build import build_features
    from usbench.config import BuildConfig, DataConfig

    cache = Path(tempfile.mkdtemp(prefix="cache-", dir=scratch))
    saved = os.environ.get("USBENCH_CACHE")
    os.environ["USBENCH_CACHE"] = str(cache)
    try:
        cfg = BuildConfig(data=DataConfig(root=str(root)), features="mfcc-stats", jobs=jobs or None)
        start = time.perf_counter()
        built = build_features(cfg, progress=False)
        seconds = time.perf_counter() - start
        X = np.array(built.matrix.X)  # copy out of the memory map before the cache goes
        ids = list(built.matrix.clip_ids)
    finally:
        if saved is None:
            os.environ.pop("USBENCH_CACHE", None)
        else:
            os.environ["USBENCH_CACHE"] = saved
        shutil.rmtree(cache, ignore_errors=True)
    return seconds, ids, X


def agreement(ids: list[str], serial: np.ndarray, built_ids: list[str], built: np.ndarray
              ) -> dict:
    """How far usbench's matrix is from the serial loop's, row-matched by clip id."""
    order = {clip: i for i, clip in enumerate(ids)}
    ref = serial[[order[c] for c in built_ids]].astype(np.float64)
    diff = np.abs(built.astype(np.float64) - ref)
    return {"max_abs_diff": float(diff.max()),
            "max_rel_diff": float((diff / np.maximum(np.abs(ref), 1.0)).max())}


# ---------------------------------------------------------------------------- profile


def _cumtime(st: pstats.Stats, file_suffix: str, func: str) -> float:
    """Cumulative seconds of `func` defined in a file ending with `file_suffix`."""
    total = 0.0
    for (filename, _line, name), (_cc, _nc, _tt, ct, _callers) in st.stats.items():
        if name == func and filename.replace(os.sep, "/").endswith(file_suffix):
            total += ct
    return total


def _cumtime_from(st: pstats.Stats, callee: str, file_suffix: str, caller: str) -> float:
    """Cumulative seconds of `callee` (e.g. a builtin method) when called by `caller`."""
    total = 0.0
    for (_filename, _line, name), (*_, callers) in st.stats.items():
        if name != callee:
            continue
        for (filename, _line, caller_name), (_cc, _nc, _tt, ct) in callers.items():
            if caller_name == caller and filename.replace(os.sep, "/").endswith(file_suffix):
                total += ct
    return total


PROFILED = {
    "extract_chunk": ("usbench/extract.py", "extract_chunk"),
    "read": ("usbench/audio.py", "read"),
    "resample": ("librosa/core/audio.py", "resample"),
    "mfcc_frames": ("usbench/features/mfcc.py", "mfcc_frames"),
    "pad_stack": ("usbench/features/base.py", "pad_stack"),
    "mel_power": ("usbench/features/spectral.py", "mel_power"),
    "extract_batch": ("usbench/features/mfcc.py", "extract_batch"),
}


def profile_format(ids: list[str], paths: list[str], chunk_size: int) -> dict:
    """Profile ``extract_chunk`` over `paths` in cache-sized chunks; seconds per bucket."""
    from threadpoolctl import threadpool_limits

    from usbench.extract import extract_chunk
    from usbench.features import get_feature_set

    fs = get_feature_set("mfcc-stats")
    prof = cProfile.Profile()
    with threadpool_limits(limits=1):  # as in the build's workers
        extract_chunk(fs, ids[:1], paths[:1])  # warm-up, not profiled
        start = time.perf_counter()
        prof.enable()
        for a in range(0, len(paths), chunk_size):
            extract_chunk(fs, ids[a : a + chunk_size], paths[a : a + chunk_size])
        prof.disable()
        wall = time.perf_counter() - start
    st = pstats.Stats(prof)
    cum = {key: _cumtime(st, *where) for key, where in PROFILED.items()}
    cum["mixdown"] = _cumtime_from(st, "<method 'mean' of 'numpy.ndarray' objects>",
                                   "usbench/audio.py", "load")
    total = cum["extract_chunk"]
    buckets = {
        "decoding": cum["read"],
        "mixdown": cum["mixdown"],
        "resampling": cum["resample"],
        "stft_mel": cum["mel_power"],
        "db_dct_mfcc": cum["mfcc_frames"] - cum["mel_power"] - cum["pad_stack"],
        "statistics": cum["extract_batch"] - cum["mfcc_frames"],
    }
    buckets["other"] = total - sum(buckets.values())
    n = len(paths)
    return {
        "n_clips": n,
        "chunk_size": chunk_size,
        "profiled_wall_s": wall,
        "total_s": total,
        "buckets_s": buckets,
        "buckets_ms_per_clip": {k: 1000 * v / n for k, v in buckets.items()},
        "buckets_percent": {k: 100 * v / total for k, v in buckets.items()},
        "functions_cumulative_s": cum,
    }


# ---------------------------------------------------------------------------- report


def environment() -> dict:
    from threadpoolctl import threadpool_info

    return {
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "python": sys.version.split()[0],
        },
        "versions": {lib: version(lib) for lib in VERSIONED},
        "serial_thread_pools": [
            {"api": p.get("internal_api"), "num_threads": p.get("num_threads")}
            for p in threadpool_info()
        ],
    }


def usbench_workers(n: int, chunk_size: int, jobs: int) -> int:
    """Worker processes the build spawns (0: it runs in this process, as ``run_chunks``)."""
    n_chunks = -(-n // chunk_size)
    return 0 if jobs <= 1 or n_chunks <= 1 else min(jobs, n_chunks)


def print_throughput(rows: list[dict], jobs: int) -> None:
    head = (f"{'format':<26}{'files':>7}{'serial files/s':>16}"
            f"{f'usbench (jobs={jobs}) files/s':>30}{'speed-up':>10}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['label']:<26}{r['n_files']:>7}{r['serial_files_per_s']:>16.1f}"
              f"{r['usbench_files_per_s']:>30.1f}{r['speed_up']:>9.2f}x")
    if jobs == 0:
        print("note: jobs=0 is the default build: threads of this process, nothing spawned.")
    elif any(r["usbench_workers"] == 0 for r in rows):
        print(f"note: with jobs={jobs} and {rows[0]['n_files']} files (one cache chunk or "
              "fewer), usbench ran in this process without spawning workers.")


def print_profile(label: str, prof: dict) -> None:
    n = prof["n_clips"]
    print(f"\n{label}: extract_chunk on {n} clips, chunks of {prof['chunk_size']}, "
          f"{prof['total_s']:.2f} s profiled ({1000 * prof['total_s'] / n:.1f} ms/clip)")
    for key in BUCKETS:
        print(f"  {BUCKET_LABELS[key]:<44}{prof['buckets_s'][key]:>8.3f} s"
              f"{prof['buckets_ms_per_clip'][key]:>8.2f} ms/clip"
              f"{prof['buckets_percent'][key]:>7.1f} %")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="clips per format (default 1000)")
    parser.add_argument("--jobs", type=int, default=2,
                        help="usbench workers (default 2; 0: the default build's threads)")
    parser.add_argument("--formats", nargs="+", choices=list(FORMATS), default=list(FORMATS),
                        metavar="FORMAT",
                        help=f"formats to run (default all: {', '.join(FORMATS)})")
    parser.add_argument("--profile-n", type=int, default=200,
                        help="clips per format to profile (default 200, at most --n)")
    parser.add_argument("--seed", type=int, default=0, help="audio generator seed")
    parser.add_argument("--out", type=Path, default=Path("results/benchmarks/features.json"),
                        help="JSON output (default results/benchmarks/features.json)")
    parser.add_argument("--data", type=Path,
                        help="an UrbanSound8K-layout root of real audio: time whole processes "
                             "on its clips instead (see benchmarks/real_audio.py); results in "
                             "results/benchmarks/features_real.json")
    parser.add_argument("--sizes", default="all,300",
                        help="with --data: clip counts to time, 'all' for every clip")
    parser.add_argument("--features", default="mfcc-stats,mfcc-mean,logmel",
                        help="with --data: feature sets to time")
    parser.add_argument("--repeat", type=int, default=3,
                        help="with --data: serial/usbench pairs per row, run alternately; "
                             "medians reported (default 3)")
    args = parser.parse_args(argv)
    if args.data is not None:
        sys.path.insert(0, str(Path(__file__).parent))
        import real_audio

        try:
            sizes = [None if s == "all" else int(s) for s in args.sizes.split(",")]
        except ValueError:
            parser.error(f"--sizes: expected 'all' or clip counts, comma-separated (all,300), "
                         f"got {args.sizes!r}")
        if any(n is not None and n < 1 for n in sizes):
            parser.error(f"--sizes: clip counts must be >= 1, got {args.sizes!r}")
        out = args.out.with_name("features_real.json")
        return real_audio.main(args.data.expanduser(), sizes, args.features.split(","), out,
                               environment(), repeat=max(1, args.repeat))
    if args.n < 2 or args.jobs < 0 or args.profile_n < 1:
        parser.error("--n must be >= 2, --jobs >= 0 and --profile-n >= 1")

    from usbench.config import BuildConfig

    env = environment()
    m = env["machine"]
    print(f"machine: {m['cpu_count']} CPUs, {m['platform']}, Python {m['python']}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()))
    print(f"{args.n} clips of {DURATION_S} s per format; serial = librosa.load + "
          "librosa.feature.mfcc(n_mfcc=20) + 7 stats, one process, after 1 untimed warm-up "
          f"file; usbench = build_features(mfcc-stats, jobs={args.jobs}) from a cold cache, "
          "worker spawn and import included.\n")

    chunk_size = BuildConfig().chunk_size
    scratch = Path(tempfile.mkdtemp(prefix="usbench-bench-"))
    rows, profiles = [], {}
    try:
        for i, name in enumerate(args.formats):
            fmt = FORMATS[name]
            root = scratch / name
            t0 = time.perf_counter()
            ids, paths = write_root(root, fmt, args.n, seed=args.seed + i)
            print(f"[{name}] wrote {args.n} files in {time.perf_counter() - t0:.1f} s; "
                  "timing serial ...", flush=True)
            serial_s, serial_X = time_serial(paths)
            print(f"[{name}] serial {serial_s:.1f} s; timing usbench ...", flush=True)
            usb_s, usb_ids, usb_X = time_usbench(root, args.jobs, scratch)
            print(f"[{name}] usbench {usb_s:.1f} s; profiling ...", flush=True)
            n_prof = min(args.profile_n, args.n)
            profiles[name] = profile_format(ids[:n_prof], paths[:n_prof], chunk_size)
            rows.append({
                "format": name, "label": fmt["label"], "sr": fmt["sr"],
                "channels": fmt["channels"], "subtype": fmt["subtype"],
                "duration_s": DURATION_S, "n_files": args.n,
                "serial_s": serial_s, "usbench_s": usb_s,
                "serial_files_per_s": args.n / serial_s,
                "usbench_files_per_s": len(usb_ids) / usb_s,
                "speed_up": (len(usb_ids) / usb_s) / (args.n / serial_s),
                "usbench_workers": usbench_workers(args.n, chunk_size, args.jobs),
                "features_vs_serial": agreement(ids, serial_X, usb_ids, usb_X),
            })
            shutil.rmtree(root, ignore_errors=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    print()
    print_throughput(rows, args.jobs)
    print("speed-up = usbench files/s / serial files/s. Largest feature difference, usbench "
          "vs serial (|diff| / max(|serial|, 1)): "
          + ", ".join(f"{r['format']} {r['features_vs_serial']['max_rel_diff']:.1e}"
                      for r in rows))
    print("\nWhere usbench's time goes (one process, one BLAS thread, cProfile, after a "
          "warm-up; percentages of extract_chunk):")
    for r in rows:
        print_profile(r["label"], profiles[r["format"]])

    result = {
        "benchmark": "features",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        **env,
        "config": {"n": args.n, "jobs": args.jobs, "formats": args.formats,
                   "duration_s": DURATION_S, "seed": args.seed, "profile_n": args.profile_n,
                   "features": "mfcc-stats"},
        "method": {
            "serial": "librosa.load(path) (sr=22050, mono, soxr_hq) + "
                      "librosa.feature.mfcc(n_mfcc=20) + min/max/median/mean/var/skew/kurtosis "
                      "per coefficient, in this process; 1 untimed warm-up file first",
            "usbench": "usbench.runner.build_features(features='mfcc-stats', jobs=N) into an "
                       "empty USBENCH_CACHE; includes worker spawn, imports and cache writes",
            "profile": "cProfile of usbench.extract.extract_chunk in this process, one BLAS "
                       "thread, chunks of the cache chunk size, after a warm-up clip",
            "page_cache": "files were just written, so both timings read them from RAM",
        },
        "results": rows,
        "profile": profiles,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nSaved {args.out.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
