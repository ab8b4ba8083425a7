"""The default CNN on this machine's training device (GPU or CPU): epoch time, the time of a
full run, peak memory.

Synthetic log-mel matrices of UrbanSound8K's size (8,732 clips of 128 x 173, ten folds, ten
classes; random values: the point is time and memory, not accuracy) train the default CNN
(``usbench run --model cnn --features logmel``) on one fold's training rows, nine tenths of
the clips, as one fold of a run does, on the device a run would use (``usbench.device``).

Method: after a warm-up fit on two batches of rows (TensorFlow's one-time start-up), one fit
of 1 epoch, then one of 1 + ``--epochs`` epochs; the difference gives the seconds per epoch,
the rest of the first fit the fixed cost of a fit (tracing, the scaler).
The time of a full default run (``--folds`` folds x the default epochs, plus predicting each
test fold) is EXTRAPOLATED from those figures, not run. Peak memory: the process's peak
resident set (RSS, which includes the synthetic features: see ``rss_before_fit_mb``) and, on
a GPU, TensorFlow's peak GPU memory during the fits. ``--memory`` makes one fit of one epoch
and no warm-up: the peak of one fold, as a run has it.

    python benchmarks/bench_gpu.py [--epochs 2] [--mixed-precision] [--xla]
    python benchmarks/bench_gpu.py --memory     # one fit of one epoch: peak memory only
    python benchmarks/bench_gpu.py --quick      # tiny sizes, seconds: checks the script works

Mixed precision (``--mixed-precision``: Keras's ``mixed_float16`` policy) and XLA (``--xla``:
TensorFlow's auto-clustering) are off in usbench; these flags time them on the device here.
On random features only time can be compared, not accuracy. Saves
``results/benchmarks/gpu.json`` (``--memory``: ``gpu_memory.json``; ``--quick``:
``gpu_quick.json``).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

US8K_CLIPS = 8732
QUICK = {"clips": 120, "shape": (128, 64), "set": {"crop_frames": 48}}


def rss_mb() -> float:
    """This process's resident set now, in MB (Linux /proc; 0 elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def peak_rss_mb() -> float:
    """This process's peak resident set so far, in MB (ru_maxrss: KB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthetic(clips: int, shape: tuple[int, ...], seed: int = 0):
    """Log-mel-shaped float32 features, labels, folds 1-10 and one recording per clip."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((clips, *shape), dtype=np.float32)
    X *= 20
    X -= 40  # dB-like values around -40
    y = rng.integers(0, 10, size=clips)
    folds = np.arange(clips) % 10 + 1
    return X, y, folds, np.arange(clips)


def gpu_peak_mb(tf, reset: bool = False) -> float | None:
    """TensorFlow's peak memory on the first GPU in MB (None without a GPU)."""
    if not tf.config.list_physical_devices("GPU"):
        return None
    if reset:
        tf.config.experimental.reset_memory_stats("GPU:0")
        return 0.0
    return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20


def parse_shape(text: str) -> tuple[int, int]:
    bands, frames = text.lower().split("x")
    return int(bands), int(frames)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=US8K_CLIPS)
    parser.add_argument("--shape", type=parse_shape, default=(128, 173), metavar="BANDSxFRAMES")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs (default 2)")
    parser.add_argument("--folds", type=int, default=10, help="folds of the extrapolated run")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a CNN parameter, as usbench run --set")
    parser.add_argument("--memory", action="store_true",
                        help="one fit of one epoch, for its peak memory only")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK['clips']} clips of {QUICK['shape']}: a smoke test")
    parser.add_argument("--mixed-precision", action="store_true",
                        help="Keras's mixed_float16 policy (off in usbench)")
    parser.add_argument("--xla", action="store_true",
                        help="TensorFlow's XLA auto-clustering (off in usbench)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    overrides = dict(s.split("=", 1) for s in args.set)
    if args.quick:
        args.clips, args.shape = QUICK["clips"], QUICK["shape"]
        overrides = {**QUICK["set"], **overrides}
    name = "gpu_quick" if args.quick else "gpu_memory" if args.memory else "gpu"
    out = args.out or Path(f"results/benchmarks/{name}.json")

    from usbench.device import training_device
    from usbench.models import get_model
    from usbench.models.base import BuildContext
    from usbench.models.keras_training import import_keras

    spec = get_model("cnn")
    device = training_device(spec)
    keras, tf = import_keras()
    if args.mixed_precision:
        # Each fit starts with keras.backend.clear_session(), which resets the policy.
        clear = keras.backend.clear_session

        def clear_keeping_policy(*a, **kw):
            clear(*a, **kw)
            keras.mixed_precision.set_global_policy("mixed_float16")

        keras.backend.clear_session = clear_keeping_policy
    if args.xla:
        tf.config.optimizer.set_jit(True)
    default_epochs = spec.params()["epochs"]
    X, y, folds, recs = synthetic(args.clips, args.shape)
    test = folds == 1
    X_train, X_test = X[~test], X[test]  # one fold's rows, as usbench.cv slices them
    ctx = BuildContext(n_classes=10, input_shape=X.shape[1:], seed=0, test_fold=1)
    print(f"{device.label}; {args.clips:,} clips of {args.shape[0]} x {args.shape[1]}, "
          f"training on {len(X_train):,} (one fold of {args.folds})", flush=True)
    rss_before = rss_mb()
    gpu_peak_mb(tf, reset=True)

    def fit(epochs: int, rows: int | None = None) -> tuple[object, float]:
        params = spec.params({**overrides, "epochs": epochs})
        est = spec.build(params, ctx)
        part = slice(None, rows)
        t0 = time.perf_counter()
        est.fit(X_train[part], y[~test][part], groups=recs[~test][part],
                folds=folds[~test][part])
        return est, time.perf_counter() - t0

    if not args.memory:
        _, warm_s = fit(1, rows=2 * spec.params(overrides)["batch_size"])
        print(f"warm-up fit on two batches: {warm_s:.1f} s", flush=True)

    result = {"benchmark": "gpu", "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
              "device": device.label, "platform": platform.platform(),
              "tensorflow": tf.__version__, "clips": args.clips, "shape": list(args.shape),
              "train_rows": int(len(X_train)), "overrides": overrides,
              "mixed_precision": args.mixed_precision, "xla": args.xla,
              "rss_before_fit_mb": round(rss_before, 1)}
    _, first_s = fit(1)
    print(f"fit of 1 epoch: {first_s:.1f} s", flush=True)
    result["fit_1_epoch_seconds"] = round(first_s, 2)
    if not args.memory:
        est, more_s = fit(1 + args.epochs)
        result |= {"dtype_policy": est.model_.dtype_policy.name,
                   "xla_jit": bool(tf.config.optimizer.get_jit())}
        print(f"trained with dtype policy {result['dtype_policy']}, XLA auto-clustering "
              f"{'on' if result['xla_jit'] else 'off'}")
        epoch_s = (more_s - first_s) / args.epochs
        fixed_s = max(0.0, first_s - epoch_s)
        t0 = time.perf_counter()
        est.predict_proba(X_test)
        predict_s = time.perf_counter() - t0
        run_s = args.folds * (fixed_s + default_epochs * epoch_s + predict_s)
        print(f"fit of {1 + args.epochs} epochs: {more_s:.1f} s -> {epoch_s:.2f} s per epoch, "
              f"{fixed_s:.1f} s fixed per fit; predicting {len(X_test):,} clips "
              f"{predict_s:.1f} s")
        print(f"full default run, EXTRAPOLATED: {args.folds} folds x ({fixed_s:.1f} s + "
              f"{default_epochs} epochs x {epoch_s:.2f} s + {predict_s:.1f} s) = "
              f"{run_s / 60:.1f} min")
        result |= {"timed_epochs": args.epochs, "fit_more_seconds": round(more_s, 2),
                   "epoch_seconds": round(epoch_s, 3), "fixed_seconds_per_fit": round(fixed_s, 2),
                   "predict_seconds": round(predict_s, 2), "default_epochs": default_epochs,
                   "folds": args.folds, "full_run_seconds_extrapolated": round(run_s, 1)}
    peak, gpu_peak = peak_rss_mb(), gpu_peak_mb(tf)
    gpu_text = f", GPU peak {gpu_peak:,.0f} MB" if gpu_peak is not None else ""
    print(f"memory: RSS {rss_before:,.0f} MB before training, peak {peak:,.0f} MB{gpu_text}")
    result |= {"peak_rss_mb": round(peak, 1),
               "gpu_peak_mb": None if gpu_peak is None else round(gpu_peak, 1)}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"Saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
