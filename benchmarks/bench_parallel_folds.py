"""Folds in parallel worker processes (``usbench run --fold-jobs``): time and bit-identity.

The folds of the benchmark set of ``bench_models.py`` (8,700 synthetic clips, ``mfcc-stats``,
10-fold leave-one-fold-out) are trained by ``--jobs`` worker processes through
``usbench.cv.leave_one_fold_out(n_jobs=...)``, as ``usbench run --fold-jobs`` does (joblib, as
scikit-learn's ``cross_validate(n_jobs=...)``; each worker's TensorFlow held to its share of
the cores). Then the first fold is trained once more in this process, one fold after another
with TensorFlow's own threads, and its probabilities are compared with the worker's bit for
bit.

    python benchmarks/bench_parallel_folds.py [--jobs 2] [--set mlp.epochs=70]

Prints each fold as it arrives and the wall time, and saves
``results/benchmarks/parallel_folds.json``. ``bench_models.py --models mlp [--fold-jobs 2]``
times the same two ways without the comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import bench_models  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--set", action="append", default=[], metavar="MODEL.KEY=VALUE")
    parser.add_argument("--out", type=Path,
                        default=Path("results/benchmarks/parallel_folds.json"))
    args = parser.parse_args(argv)
    if args.jobs < 2:
        parser.error("--jobs must be >= 2")
    from usbench.cv import leave_one_fold_out
    from usbench.models import get_model
    from usbench.models.base import BuildContext

    root = bench_models.dataset_root(87)
    built, X, y, folds, recs = bench_models.load_inputs(root, "mfcc-stats")
    n_classes = len(built.dataset.classes)
    spec = get_model(args.model)
    params = bench_models.model_params(spec, args.set)
    ctx = BuildContext(n_classes=n_classes, input_shape=X.shape[1:], seed=0)

    def make(fold: int):
        return spec.build(params, ctx)

    print(f"{len(X):,} clips, {args.model} {params}; {args.jobs} worker processes",
          flush=True)
    start = time.perf_counter()
    rows = []

    def arrived(r) -> None:
        rows.append({"fold": r.fold, "accuracy": r.accuracy, "fit_seconds": r.fit_seconds,
                     "arrived_s": time.perf_counter() - start})
        print(f"  fold {r.fold:2d}: accuracy {r.accuracy:.4f}, fit {r.fit_seconds:5.1f} s, "
              f"at {rows[-1]['arrived_s']:5.1f} s", flush=True)

    results = leave_one_fold_out(make, X, y, folds, recs, n_classes, on_fold=arrived,
                                 n_jobs=args.jobs)
    wall = time.perf_counter() - start
    mean = np.mean([r.accuracy for r in results])
    print(f"{len(results)} folds in {wall:.1f} s; accuracy {mean:.3f}")
    first = results[0]
    print(f"fold {first.fold} again in this process, TensorFlow's own threads ...", flush=True)
    again = leave_one_fold_out(make, X, y, folds, recs, n_classes,
                               test_folds=[first.fold])[0]
    same = bool(np.array_equal(first.proba, again.proba))
    print(f"fold {first.fold} probabilities bit-identical to the worker's: {same} "
          f"(largest difference {float(np.abs(first.proba - again.proba).max()):.1e})")
    result = {"benchmark": "parallel-folds", "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
              "cpus": os.cpu_count(), "platform": platform.platform(), "model": args.model,
              "params": params, "jobs": args.jobs, "wall_seconds": wall, "folds": rows,
              "fold1_bit_identical": same}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(f"Saved {args.out.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
