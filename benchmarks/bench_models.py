"""10-fold wall time of the model families on an UrbanSound8K-size feature matrix.

Generates (once, into the usbench cache) a synthetic dataset of 87 clips per class per fold
(8,700 clips, close to UrbanSound8K's 8,732), builds ``mfcc-stats`` from it, then runs the
leave-one-fold-out engine over all 10 folds for each model family with its default
parameters, exactly as ``usbench run`` does but without MLflow. Reports per-fold fit and
predict seconds, accuracies, and for Keras models the epochs run and seconds per epoch, so it
is visible where the time goes.

    python benchmarks/bench_models.py [--models logreg,rf,mlp] [--set mlp.batch_size=64]

Figures are printed and saved to ``results/benchmarks/models.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="logreg,rf,mlp")
    parser.add_argument("--features", default="mfcc-stats")
    parser.add_argument("--clips-per-class-per-fold", type=int, default=87)
    parser.add_argument("--set", action="append", default=[], metavar="MODEL.KEY=VALUE",
                        help="override a model's parameter, e.g. mlp.batch_size=64")
    parser.add_argument("--out", default="results/benchmarks/models.json")
    args = parser.parse_args()

    from usbench.config import BuildConfig, DataConfig
    from usbench.cv import leave_one_fold_out
    from usbench.models import get_model
    from usbench.models.base import BuildContext
    from usbench.runner import build_features

    root = dataset_root(args.clips_per_class_per_fold)
    built = build_features(BuildConfig(data=DataConfig(root=str(root)), features=args.features))
    ds, m = built.dataset, built.matrix
    clips = ds.clips.set_index("clip_id").loc[m.clip_ids]
    X = np.asarray(m.X, dtype=np.float32)
    y, folds, recs = (clips[c].to_numpy() for c in ("class_id", "fold", "recording"))
    print(f"{len(X):,} clips x {X.shape[1:]} {args.features}; features "
          f"{'extracted' if m.computed else 'loaded'} in {built.seconds:.1f} s")
    print(f"machine: {os.cpu_count()} CPUs, {platform.platform()}, Python "
          f"{platform.python_version()}")

    report = {"clips": len(X), "features": args.features, "cpus": os.cpu_count(),
              "platform": platform.platform(),
              "versions": {p: version(p) for p in ("usbench", "scikit-learn", "numpy",
                                                   "tensorflow-cpu", "keras")},
              "models": {}}
    for name in args.models.split(","):
        spec = get_model(name)
        overrides = dict(kv.split("=", 1) for kv in args.set)
        params = spec.params({k.split(".", 1)[1]: v for k, v in overrides.items()
                              if k.startswith(f"{name}.")})
        ctx = BuildContext(n_classes=len(ds.classes), input_shape=X.shape[1:], seed=0)
        t = time.perf_counter()
        def make(fold, spec=spec, params=params, ctx=ctx):
            return spec.build(params, ctx)

        results = leave_one_fold_out(make, X, y, folds, recs,
                                     len(ds.classes))
        wall = time.perf_counter() - t
        fit = [r.fit_seconds for r in results]
        pred = [r.predict_seconds for r in results]
        acc = [r.accuracy for r in results]
        entry = {"wall_seconds": wall, "fit_seconds": fit, "predict_seconds": pred,
                 "fold_accuracy": acc, "accuracy": float(np.mean(acc)),
                 "accuracy_std": float(np.std(acc)), "params": params}
        line = (f"{name:<7} 10 folds in {wall:6.1f} s (fit {sum(fit):6.1f} s, predict "
                f"{sum(pred):5.2f} s, other {wall - sum(fit) - sum(pred):4.1f} s); accuracy "
                f"{np.mean(acc):.3f} ± {np.std(acc):.3f}")
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
