"""10-fold wall time of the model families on an UrbanSound8K-size feature matrix.

Generates (once, into the usbench cache) a synthetic dataset of 87 clips per class per fold
(8,700 clips, close to UrbanSound8K's 8,732), builds ``mfcc-stats`` from it, then runs the
leave-one-fold-out engine over all 10 folds for each model family with its default
parameters, exactly as ``usbench run`` does but without MLflow. Reports per-fold fit and
predict seconds, accuracies, and for Keras models the epochs run and seconds per epoch, so it
is visible where the time goes.

``--models cnn`` trains the CNN on ``logmel`` of the same clips for ``--cnn-epochs`` epochs on
the folds but the first (one fold's training: 7,830 rows), reports the seconds per epoch, and
sets them against the multiply-adds of that epoch (forward and backward passes, counted from
the network's layers) at the machine's measured peak: a float32 matrix product timed in the
same script, with numpy's BLAS and with TensorFlow. The ratio says how far from the
arithmetic limit of this machine the CNN's training runs.

    python benchmarks/bench_models.py [--models logreg,rf,mlp,cnn] [--set mlp.batch_size=64]

Figures are printed and saved to ``results/benchmarks/models.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import numpy as np


def dataset_root(per_class_fold: int) -> Path:
    from usbench.datasets.synthetic import SynthConfig, generate, is_synthetic
    from usbench.paths import cache_dir

    cfg = SynthConfig(clips_per_class_per_fold=per_class_fold)
    root = cache_dir() / "datasets" / f"bench-synthetic-{per_class_fold}"
    if not is_synthetic(root):
        t = time.perf_counter()
        generate(root, cfg)
        print(f"generated {100 * per_class_fold:,} clips in {time.perf_counter() - t:.0f} s")
    return root


def load_inputs(root: Path, features: str):
    """(built features, X float32, y, folds, recordings) of the benchmark dataset."""
    from usbench.build import build_features
    from usbench.config import BuildConfig, DataConfig

    built = build_features(BuildConfig(data=DataConfig(root=str(root)), features=features))
    clips = built.dataset.clips.set_index("clip_id").loc[built.matrix.clip_ids]
    X = np.asarray(built.matrix.X, dtype=np.float32)
    y, folds, recs = (clips[c].to_numpy() for c in ("class_id", "fold", "recording"))
    return built, X, y, folds, recs


def model_params(spec, sets: list[str], **fixed: str) -> dict:
    """The model's defaults with the ``--set MODEL.KEY=VALUE`` overrides meant for it."""
    pairs = (kv.split("=", 1) for kv in sets)
    overrides = {k.split(".", 1)[1]: v for k, v in pairs if k.startswith(f"{spec.name}.")}
    return spec.params({**overrides, **fixed})


def matmul_peak(n: int = 2048, repeats: int = 5) -> dict:
    """Float32 GFLOP/s of an n x n matrix product, best of `repeats`: numpy's BLAS, and
    TensorFlow's (which the Keras models run on)."""
    from usbench.models.keras_training import import_keras

    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    flops = 2 * n**3

    def best(f) -> float:
        f()
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            f()
            times.append(time.perf_counter() - t)
        return flops / min(times) / 1e9

    _, tf = import_keras()
    ta = tf.constant(a)
    return {"n": n, "numpy_gflops": best(lambda: a @ a),
            "tensorflow_gflops": best(lambda: tf.linalg.matmul(ta, ta).numpy())}


def forward_macs(model) -> int:
    """Multiply-adds of one row's forward pass through the Conv2D and Dense layers."""
    total = 0
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "Conv2D":
            h, w, c_out = layer.output.shape[1:]
            kh, kw = layer.kernel_size
            total += h * w * c_out * kh * kw * layer.input.shape[-1]
        elif kind == "Dense":
            total += layer.input.shape[-1] * layer.units
    return int(total)


def cnn_against_peak(root, args, get_model, BuildContext) -> dict:
    """One fold's CNN training for a few epochs, against the same arithmetic at peak."""
    built, X, y, folds, recs = load_inputs(root, "logmel")
    spec = get_model("cnn")
    params = model_params(spec, args.set, epochs=str(args.cnn_epochs))
    ctx = BuildContext(n_classes=len(built.dataset.classes), input_shape=X.shape[1:], seed=0,
                       test_fold=1)
    train = folds != 1
    est = spec.build(params, ctx)
    t = time.perf_counter()
    est.fit(X[train], y[train], recs[train], folds[train])
    fit = time.perf_counter() - t
    epochs = est.history_["epochs_run"] + est.history_["refit_epochs"]
    per_epoch = fit / epochs
    macs = forward_macs(est.model_)
    # Training a row costs its forward pass and a backward pass of about twice that
    # (gradients of the inputs and of the weights).
    epoch_macs = 3 * macs * int(train.sum())
    peak = matmul_peak()
    best = max(peak["numpy_gflops"], peak["tensorflow_gflops"])
    at_peak = 2 * epoch_macs / (best * 1e9)
    print(f"cnn     {int(train.sum()):,} training rows of {est.window}, {epochs} epochs in "
          f"{fit:.1f} s: {per_epoch:.1f} s/epoch; {macs / 1e6:.1f} M multiply-adds per row "
          f"forward, {epoch_macs / 1e12:.2f} T per epoch (x3 for training)")
    print(f"        matmul peak {peak['numpy_gflops']:.0f} GFLOP/s (numpy) and "
          f"{peak['tensorflow_gflops']:.0f} GFLOP/s (TensorFlow), {peak['n']}x{peak['n']} "
          f"float32: an epoch's arithmetic takes {at_peak:.1f} s at peak, so the CNN runs at "
          f"{at_peak / per_epoch:.0%} of it ({per_epoch / at_peak:.1f}x the limit)")
    return {"train_rows": int(train.sum()), "window": list(est.window), "epochs": epochs,
            "fit_seconds": fit, "seconds_per_epoch": per_epoch,
            "forward_macs_per_row": macs, "training_macs_per_epoch": epoch_macs,
            "matmul_peak": peak, "seconds_per_epoch_at_peak": at_peak,
            "fraction_of_peak": at_peak / per_epoch, "params": params}


def main() -> None:
    from usbench.cli.common import positive_int

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="logreg,rf,mlp")
    parser.add_argument("--features", default="mfcc-stats")
    parser.add_argument("--clips-per-class-per-fold", type=int, default=87)
    parser.add_argument("--set", action="append", default=[], metavar="MODEL.KEY=VALUE",
                        help="override a model's parameter, e.g. mlp.batch_size=64")
    parser.add_argument("--cnn-epochs", type=int, default=2,
                        help="epochs of the CNN's timing fit (default 2)")
    parser.add_argument("--fold-jobs", type=positive_int, metavar="N",
                        help="train N folds side by side, as `usbench run --fold-jobs N` "
                             "(default: the family's, as `usbench run`)")
    parser.add_argument("--out", default="results/benchmarks/models.json")
    args = parser.parse_args()

    from usbench.cv import leave_one_fold_out
    from usbench.models import get_model
    from usbench.models.base import BuildContext

    root = dataset_root(args.clips_per_class_per_fold)
    built, X, y, folds, recs = load_inputs(root, args.features)
    ds, m = built.dataset, built.matrix
    print(f"{len(X):,} clips x {X.shape[1:]} {args.features}; features "
          f"{'extracted' if m.computed else 'loaded'} in {built.seconds:.1f} s")
    print(f"machine: {os.cpu_count()} CPUs, {platform.platform()}, Python "
          f"{platform.python_version()}")

    report = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "clips": len(X),
              "features": args.features, "cpus": os.cpu_count(),
              "platform": platform.platform(),
              "versions": {p: version(p) for p in ("usbench", "scikit-learn", "numpy",
                                                   "tensorflow-cpu", "keras")},
              "models": {}}
    for name in args.models.split(","):
        if name == "cnn":
            report["models"]["cnn"] = cnn_against_peak(root, args, get_model, BuildContext)
            continue
        spec = get_model(name)
        params = model_params(spec, args.set)
        ctx = BuildContext(n_classes=len(ds.classes), input_shape=X.shape[1:], seed=0)
        jobs = spec.fold_jobs(args.fold_jobs, len(np.unique(folds)))
        t = time.perf_counter()
        def make(fold, spec=spec, params=params, ctx=ctx):
            return spec.build(params, ctx)

        results = leave_one_fold_out(make, X, y, folds, recs, len(ds.classes), n_jobs=jobs)
        wall = time.perf_counter() - t
        fit = [r.fit_seconds for r in results]
        pred = [r.predict_seconds for r in results]
        acc = [r.accuracy for r in results]
        entry = {"wall_seconds": wall, "fit_seconds": fit, "predict_seconds": pred,
                 "fold_accuracy": acc, "accuracy": float(np.mean(acc)),
                 "accuracy_std": float(np.std(acc)), "params": params,
                 "fold_jobs": jobs}
        split = (f"other {wall - sum(fit) - sum(pred):4.1f} s" if jobs == 1 else
                 f"summed over {jobs} workers")
        line = (f"{name:<7} 10 folds in {wall:6.1f} s (fit {sum(fit):6.1f} s, predict "
                f"{sum(pred):5.2f} s, {split}); accuracy {np.mean(acc):.3f} ± "
                f"{np.std(acc):.3f}")
        if "epochs_run" in results[0].history:
            epochs = [r.history["epochs_run"] for r in results]
            per_epoch = sum(fit) / sum(epochs)
            entry |= {"epochs_run": epochs, "seconds_per_epoch": per_epoch,
                      "best_epoch": [r.history["best_epoch"] for r in results]}
            line += f"; epochs run {min(epochs)}-{max(epochs)}, {per_epoch:.2f} s/epoch"
        print(line, flush=True)
        report["models"][name] = entry
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"saved {out}")


if __name__ == "__main__":
    main()
