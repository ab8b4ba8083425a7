"""Real-audio mode of ``bench_features.py --data DIR``: whole process against whole process.

For each feature set and each size (all present clips of an UrbanSound8K-layout root, and a
300-clip subset), on the same files. A size above the clips present (``--sizes all,300,2985``:
a run at 2,985 clips) repeats them, each repeat under a new name and
recording id, so both sides decode and extract every listed file; the row says how many clips
are distinct.

(A) serial: a fresh ``python`` process running the tutorials' loop over the files:
    ``librosa.load(path)`` (22,050 Hz mono, soxr_hq) and the feature set's librosa
    equivalent (``mfcc-stats``: ``librosa.feature.mfcc(n_mfcc=20)`` + 7 statistics;
    ``mfcc-mean``: 40 MFCCs averaged over frames; ``logmel``: ``melspectrogram(n_fft=1024,
    hop_length=512, n_mels=128)`` of the first 4 s, zero-padded, in dB with no top_db).
(B) usbench: a fresh ``usbench features build --features NAME --data SUBSET --allow-missing``
    process with an empty feature cache: imports, decoding, extraction and cache writes. The
    cache folder holds only librosa's mel filterbanks, which the first build after installing
    stores there once per librosa version (about 0.3 s, data-independent): a user pays them
    once, not per build.

Both are timed from process start to exit (interpreter start-up and imports included). Each
row runs the pair ``--repeat`` times (default 3), serial and usbench alternately, and reports
each one's median and the ratio of the medians: this machine's speed drifts by 10-20 % within
minutes, and alternating exposes both to the same drift. The ratio of each back-to-back pair is
reported too (median and range), which shows how far one pass can be trusted. The largest
difference between the two feature matrices, row-matched by clip, is reported (|diff| /
max(|reference|, 1)). Files are read once before timing so both find them in the page cache.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

FEATURES = ("mfcc-stats", "mfcc-mean", "logmel")

SERIAL = r'''
import sys, numpy as np, librosa
from scipy import stats
feature, listing, out = sys.argv[1:4]
paths = open(listing).read().split("\n")
def one(path):
    y, sr = librosa.load(path)
    if feature == "mfcc-stats":
        m = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20)
        return np.concatenate([m.min(1), m.max(1), np.median(m, 1), m.mean(1), m.var(1),
                               stats.skew(m, axis=1), stats.kurtosis(m, axis=1)])
    if feature == "mfcc-mean":
        return librosa.feature.mfcc(y=y, sr=sr, n_mfcc=40).mean(axis=1)
    n = 4 * sr
    y = np.pad(y[:n], (0, max(0, n - len(y[:n]))))
    S = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=1024, hop_length=512, n_mels=128)
    return librosa.power_to_db(S, amin=1e-10, top_db=None)
np.save(out, np.stack([one(p) for p in paths]).astype(np.float32))
'''


# Added to the fsID of a clip's k-th repeat: a repeat is a recording of its own.
REPEAT_FSID = 10_000_000


def sized(clips: pd.DataFrame, n: int | None) -> pd.DataFrame:
    """`n` of `clips` (None: all), with a ``source`` column naming each row's clip in the
    root's table and ``repeat``, 0 for a first appearance. Below the clips present, every
    k-th clip, so a subset spans the folds and formats of the whole; above, the clips
    again under new names (``r1-<name>``, ...)."""
    if n is None or n <= len(clips):
        picked = clips if n is None or n == len(clips) else \
            clips.iloc[np.linspace(0, len(clips) - 1, n).astype(int)]
        return picked.assign(source=picked["clip_id"], repeat=0).reset_index(drop=True)
    index = np.arange(n) % len(clips)
    repeat = np.arange(n) // len(clips)
    picked = clips.iloc[index].reset_index(drop=True)
    names = [c if k == 0 else f"r{k}-{c}" for c, k in zip(picked["clip_id"], repeat,
                                                          strict=True)]
    return picked.assign(source=picked["clip_id"], clip_id=names, repeat=repeat)


def subset_root(root: Path, clips: pd.DataFrame, dest: Path) -> Path:
    """An UrbanSound8K-layout root holding `clips` only (symlinks to the audio)."""
    meta = pd.read_csv(root / "metadata" / "UrbanSound8K.csv").set_index("slice_file_name")
    meta = meta.loc[clips["source"]].reset_index()
    meta["slice_file_name"] = clips["clip_id"].to_numpy()
    meta["fsID"] += clips["repeat"].to_numpy() * REPEAT_FSID
    (dest / "metadata").mkdir(parents=True)
    meta.to_csv(dest / "metadata" / "UrbanSound8K.csv", index=False)
    for fold, name, path in zip(clips["fold"], clips["clip_id"], clips["path"], strict=True):
        (dest / "audio" / f"fold{fold}").mkdir(parents=True, exist_ok=True)
        os.symlink(path, dest / "audio" / f"fold{fold}" / name)
    return dest


def _timed(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd[:4])} ... failed:\n{done.stderr[-3000:]}")
    return seconds


def _built_matrix(cache: Path) -> tuple[list[str], np.ndarray]:
    manifest = next(cache.rglob("manifest.json"))
    ids = json.loads(manifest.read_text())["clip_ids"]
    return ids, np.load(manifest.parent / "features.npy")


def measure(root: Path, clips: pd.DataFrame, feature: str, scratch: Path,
            repeat: int = 3) -> dict:
    """One feature set on `clips`: serial and usbench wall times (medians of `repeat`
    alternating runs) and their agreement."""
    sub = subset_root(root, clips, Path(tempfile.mkdtemp(prefix="root-", dir=scratch)) / "r")
    listing = scratch / "paths.txt"
    listing.write_text("\n".join(clips["path"]))
    for p in clips["path"]:  # page cache, for both
        Path(p).read_bytes()
    env = dict(os.environ)
    ref = scratch / "serial.npy"
    exe = str(Path(sys.executable).parent / "usbench")
    serial, usb = [], []
    for _ in range(repeat):
        serial.append(_timed([sys.executable, "-c", SERIAL, feature, str(listing), str(ref)],
                             env))
        cache = Path(tempfile.mkdtemp(prefix="cache-", dir=scratch))
        shutil.copytree(scratch / "filterbanks", cache / "filterbanks")
        usb.append(_timed([exe, "features", "build", "--features", feature, "--data",
                           str(sub), "--allow-missing"], {**env, "USBENCH_CACHE": str(cache)}))
        ids, built = _built_matrix(cache)
        shutil.rmtree(cache, ignore_errors=True)
        if len(ids) != len(clips):
            raise SystemExit(f"usbench built {len(ids):,} of {len(clips):,} clips ({feature})")
    serial_s, usb_s = statistics.median(serial), statistics.median(usb)
    serial_X = np.load(ref)
    order = {c: i for i, c in enumerate(clips["clip_id"])}
    reference = serial_X[[order[c] for c in ids]].astype(np.float64)
    diff = np.abs(built.astype(np.float64) - reference)
    shutil.rmtree(sub.parent, ignore_errors=True)
    # Each pair ran back to back, so its ratio is spared most of the machine's drift.
    pairs = [a / b for a, b in zip(serial, usb, strict=True)]  # in run order
    return {"feature": feature, "n_clips": len(clips), "serial_s": serial_s,
            "distinct_clips": int(clips["source"].nunique()),
            "usbench_s": usb_s, "speed_up": serial_s / usb_s, "serial_runs_s": serial,
            "usbench_runs_s": usb, "pair_speed_ups": pairs,
            "pair_speed_up_median": statistics.median(pairs),
            "max_abs_diff": float(diff.max()),
            "max_rel_diff": float((diff / np.maximum(np.abs(reference), 1.0)).max())}


def _filterbanks(features: list[str], scratch: Path) -> None:
    """Store the feature sets' mel filterbanks in ``scratch/filterbanks``, as a user's first
    build does once."""
    from usbench.features import get_feature_set

    saved = os.environ.get("USBENCH_CACHE")
    os.environ["USBENCH_CACHE"] = str(scratch)
    try:
        for feature in features:
            fs = get_feature_set(feature)
            fs.extract_batch([np.zeros(fs.sr, dtype=np.float32)], fs.sr)
    finally:
        if saved is None:
            os.environ.pop("USBENCH_CACHE")
        else:
            os.environ["USBENCH_CACHE"] = saved
    (scratch / "filterbanks").mkdir(exist_ok=True)


def main(data: Path, sizes: list[int | None], features: list[str], out: Path, env: dict,
         repeat: int = 3) -> int:
    from usbench.config import DataConfig
    from usbench.datasets import open_dataset

    ds = open_dataset(DataConfig(root=str(data), allow_missing=True))
    all_clips = ds.clips[["clip_id", "path", "fold"]]
    print(f"{ds.name} at {ds.root}: {len(all_clips):,} clips present. Whole processes: the "
          "serial tutorials' loop vs `usbench features build`, cold cache; medians of "
          f"{repeat} alternating runs each.\n")
    rows = []
    scratch = Path(tempfile.mkdtemp(prefix="usbench-bench-real-"))
    try:
        _filterbanks(features, scratch)
        for n in sizes:
            clips = sized(all_clips, n)
            distinct = clips["source"].nunique()
            for feature in features:
                row = measure(ds.root, clips, feature, scratch, repeat)
                rows.append(row)
                note = "" if distinct == len(clips) else f" ({distinct:,} distinct)"
                print(f"{feature:<11} {row['n_clips']:>6,} clips{note}  serial "
                      f"{row['serial_s']:7.1f} s"
                      f"  usbench {row['usbench_s']:6.1f} s  {row['speed_up']:5.2f}x  (pairs: "
                      f"median {row['pair_speed_up_median']:.2f}x, {min(row['pair_speed_ups']):.2f}"
                      f"-{max(row['pair_speed_ups']):.2f}x)  largest difference "
                      f"{row['max_rel_diff']:.1e}", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    result = {"benchmark": "features-real-audio", "data": str(ds.root),
              "created": time.strftime("%Y-%m-%dT%H:%M:%S"), **env,
              "method": __doc__, "results": rows}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nSaved {out.resolve()}")
    return 0
