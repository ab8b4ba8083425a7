"""Encoder extraction throughput: a plain one-window-at-a-time interpreter loop versus usbench.

On the same clips, in one process run:

(A) loop: what BirdNET's own analyzer does, in this one process. For each clip
    ``librosa.load(path, sr=48000)`` (soxr_hq), 3 s windows (the tail zero-padded as usbench
    pads it), and for each window ``set_tensor`` / ``invoke`` / ``get_tensor`` of the
    embedding on one ai-edge-litert interpreter with input shape (1, 144000); the clip's
    windows averaged. Timed with the interpreter on 1 thread and on ``--threads`` threads
    (the interpreter's own parallelism); one warm-up clip first, not timed.
(B) usbench: ``build_features(features="birdnet")`` from a cold, empty feature cache
    (``USBENCH_CACHE`` pointed at a fresh temp folder): threads of this process, each with
    its own interpreter on one thread, windows of many clips in batches of 8. Its wall time
    includes opening the model, decoding, resampling and writing the cache.

It checks that (A) and (B) give the same embeddings (the largest absolute difference is
printed; both resample with soxr), and sets the model's arithmetic (multiply-adds of its
convolutions and dense layers, from the model file) against the machine's float32 matrix
product peak. The clips are ``--n`` of ``--data`` (default: the embedded synthetic dataset),
the first of each class in table order, in the OS page cache for both.

    python benchmarks/bench_encoders.py --data ~/us8k-dev --n 300

Results are printed and saved to ``results/benchmarks/encoders.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import numpy as np


def model_macs(model_path: str) -> int:
    """Multiply-adds of one window through the model's CONV_2D, DEPTHWISE_CONV_2D and
    FULLY_CONNECTED ops (the elementwise ops, FFT and pooling are not counted)."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=model_path)
    it.allocate_tensors()
    shape = {d["index"]: d["shape"] for d in it.get_tensor_details()}
    total = 0
    for op in it._get_ops_details():
        out, w = shape[op["outputs"][0]], shape[op["inputs"][1]] if len(op["inputs"]) > 1 else 0
        if op["op_name"] == "CONV_2D":  # weights (c_out, kh, kw, c_in)
            total += int(np.prod(out)) * int(np.prod(w[1:]))
        elif op["op_name"] == "DEPTHWISE_CONV_2D":  # weights (1, kh, kw, c)
            total += int(np.prod(out)) * int(w[1] * w[2])
        elif op["op_name"] == "FULLY_CONNECTED":  # weights (out, in)
            total += int(np.prod(out)) * int(w[1])
    return total


def plain_loop(paths: list[str], card, threads: int) -> tuple[float, np.ndarray, int]:
    """(seconds, pooled embeddings (n, dim), windows) of the one-window-at-a-time loop."""
    import librosa
    from ai_edge_litert.interpreter import Interpreter

    from usbench.features.encoder import windows_of

    it = Interpreter(model_path=str(card.model), num_threads=threads,
                     experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    inp = next(d["index"] for d in it.get_input_details() if d["name"] == card.input)
    emb = next(d["index"] for d in it.get_tensor_details() if d["name"] == card.embedding)

    rows_seen = []

    def one(path: str) -> np.ndarray:
        y, _ = librosa.load(path, sr=card.sample_rate)
        rows = []
        for w in windows_of(y, card):
            it.set_tensor(inp, w[None])
            it.invoke()
            rows.append(it.get_tensor(emb).reshape(-1).copy())
        rows_seen.extend(range(len(rows)))
        return np.mean(rows, axis=0)

    one(paths[0])  # warm-up
    rows_seen.clear()
    t = time.perf_counter()
    out = np.stack([one(p) for p in paths])
    return time.perf_counter() - t, out, len(rows_seen)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", help="dataset root (default: the embedded synthetic dataset)")
    ap.add_argument("--n", type=int, default=300, help="clips (default 300)")
    ap.add_argument("--threads", type=int, default=os.cpu_count(),
                    help="the loop's interpreter threads for its second timing (default: cores)")
    ap.add_argument("--out", default="results/benchmarks/encoders.json")
    args = ap.parse_args()

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_models import matmul_peak

    from usbench.config import BuildConfig, DataConfig
    from usbench.datasets import open_dataset
    from usbench.features.cards import builtin_card, load_card

    data = DataConfig(root=args.data, allow_missing=True) if args.data else DataConfig()
    full = open_dataset(data)
    card = load_card(builtin_card("birdnet"))
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["USBENCH_CACHE"] = str(Path(tmp) / "cache")
        # A table of the first n clips, so the build reads exactly the loop's clips.
        root = Path(tmp) / "subset"
        (root / "metadata").mkdir(parents=True)
        (root / "audio").symlink_to(Path(full.root) / "audio")
        import pandas as pd

        # Clips present in the root, the same number of each class (class ids stay 0..k-1).
        src = pd.read_csv(full.root / "metadata" / "UrbanSound8K.csv")
        src = src[src["slice_file_name"].isin({Path(p).name for p in full.clips["path"]})]
        per_class = -(-args.n // src["classID"].nunique())
        src.groupby("classID").head(per_class).to_csv(root / "metadata" / "UrbanSound8K.csv",
                                                       index=False)
        sub = open_dataset(DataConfig(root=str(root), allow_missing=True))
        paths = list(sub.clips["path"])
        n = len(paths)
        print(f"{n} clips from {full.name}")

        from usbench.build import build_features

        t = time.perf_counter()
        built = build_features(BuildConfig(data=DataConfig(root=str(root), allow_missing=True),
                                           features="birdnet"), progress=False)
        usbench_s = time.perf_counter() - t
        X = np.asarray(built.matrix.X)
        order = [list(built.matrix.clip_ids).index(c) for c in sub.clips["clip_id"]]
        X = X[order]
        loops = {}
        for threads in sorted({1, args.threads}):
            secs, E, windows = plain_loop(paths, card, threads)
            diff = float(np.abs(E - X).max())
            loops[threads] = {"seconds": secs, "ms_per_window": 1000 * secs / windows,
                              "max_abs_difference": diff}
            print(f"(A) loop, {threads} interpreter thread(s): {secs:6.1f} s  "
                  f"({1000 * secs / windows:5.1f} ms a window); usbench is "
                  f"{secs / usbench_s:.2f}x faster; max |difference| {diff:.2e}", flush=True)
        print(f"(B) usbench build: {usbench_s:6.1f} s  ({1000 * usbench_s / windows:5.1f} ms "
              f"a window; {windows} windows of {card.window_s:g} s)")

    macs = model_macs(str(card.model))
    peak = matmul_peak()
    best = max(peak["numpy_gflops"], peak["tensorflow_gflops"])
    at_peak = windows * 2 * macs / (best * 1e9)
    print(f"model: {macs / 1e6:.1f} M multiply-adds a window (convolutions and dense layers); "
          f"matmul peak {best:.0f} GFLOP/s: {at_peak:.2f} s at peak, so the build runs at "
          f"{at_peak / usbench_s:.1%} of it")
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count()},
        "versions": {k: version(k) for k in ("usbench", "ai-edge-litert", "librosa", "soxr",
                                             "numpy")},
        "data": full.name, "clips": n, "windows": windows, "encoder": card.name,
        "usbench_seconds": usbench_s, "usbench_ms_per_window": 1000 * usbench_s / windows,
        "loop": {str(k): v for k, v in loops.items()},
        "speedup_over_loop": {str(k): v["seconds"] / usbench_s for k, v in loops.items()},
        "macs_per_window": macs, "matmul_peak": peak,
        "seconds_at_peak": at_peak, "fraction_of_peak": at_peak / usbench_s,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"saved {out}")


if __name__ == "__main__":
    main()
