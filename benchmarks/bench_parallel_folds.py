"""Folds in parallel worker processes: what they would save the MLP (issue 13's 60 s).

A measurement for a decision, not usbench's code path (``usbench run`` trains its folds one
after another). The folds of the benchmark set of ``bench_models.py`` (8,700 synthetic clips,
``mfcc-stats``, 10-fold leave-one-fold-out) are trained by ``--jobs`` worker processes through
joblib, as scikit-learn's ``cross_validate(n_jobs=...)`` does, each worker's TensorFlow held
to ``--threads`` intra-op threads; the results come back in fold order. Then fold 1 is
trained once more in this process, with TensorFlow's default threads, and its probabilities
are compared with the worker's bit for bit.

    python benchmarks/bench_parallel_folds.py [--jobs 2] [--threads 1] [--set mlp.epochs=70]

Prints each fold as it arrives and the wall time, and saves
``results/benchmarks/parallel_folds.json``. Compare with ``bench_models.py --models mlp``
(the same folds one after another: ``results/benchmarks/models_mlp_default.json``).
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


def fit_fold(model: str, params: dict, fold: int, X_train, y_train, groups, folds_train,
             X_test, n_classes: int, threads: int):
    """One fold in a worker: (fold, probabilities, fit seconds, worker pid)."""
    import tensorflow as tf

    if threads and tf.config.threading.get_intra_op_parallelism_threads() != threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)  # before TF starts
    from usbench.models import get_model
    from usbench.models.base import BuildContext

    spec = get_model(model)
    ctx = BuildContext(n_classes=n_classes, input_shape=X_train.shape[1:], seed=0,
                       test_fold=fold)
    est = spec.build(params, ctx)
    start = time.perf_counter()
    est.fit(X_train, y_train, groups=groups, folds=folds_train)
    return fold, est.predict_proba(X_test), time.perf_counter() - start, os.getpid()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--threads", type=int, default=1,
                        help="TensorFlow intra-op threads per worker (default 1; 0: its own)")
    parser.add_argument("--set", action="append", default=[], metavar="MODEL.KEY=VALUE")
    parser.add_argument("--out", type=Path,
                        default=Path("results/benchmarks/parallel_folds.json"))
    args = parser.parse_args(argv)
    if args.jobs < 1 or args.threads < 0:
        parser.error("--jobs must be >= 1 and --threads >= 0")
    from joblib import Parallel, delayed

    from usbench.models import get_model

    root = bench_models.dataset_root(87)
    built, X, y, folds, recs = bench_models.load_inputs(root, "mfcc-stats")
    n_classes = len(built.dataset.classes)
    spec = get_model(args.model)
    params = bench_models.model_params(spec, args.set)
    tasks = []
    for fold in sorted(set(folds.tolist())):
        train, test = folds != fold, folds == fold
        tasks.append(delayed(fit_fold)(args.model, params, fold, X[train], y[train],
                                       recs[train], folds[train], X[test], n_classes,
                                       args.threads))
    print(f"{len(X):,} clips, {len(tasks)} folds, {args.model} {params}; {args.jobs} worker "
          f"processes x {args.threads or 'default'} TensorFlow threads", flush=True)
    start = time.perf_counter()
    rows, first = [], None
    for fold, proba, fit_s, pid in Parallel(n_jobs=args.jobs, return_as="generator")(tasks):
        acc = float((proba.argmax(axis=1) == y[folds == fold]).mean())
        rows.append({"fold": fold, "accuracy": acc, "fit_seconds": fit_s, "worker": pid,
                     "arrived_s": time.perf_counter() - start})
        first = proba if first is None else first
        print(f"  fold {fold:2d}: accuracy {acc:.4f}, fit {fit_s:5.1f} s in worker {pid}, "
              f"at {rows[-1]['arrived_s']:5.1f} s", flush=True)
    wall = time.perf_counter() - start
    mean = np.mean([r["accuracy"] for r in rows])
    print(f"{len(tasks)} folds in {wall:.1f} s; accuracy {mean:.3f}")
    print("fold 1 again in this process, TensorFlow's default threads ...", flush=True)
    _, first_args, _ = tasks[0]
    _, again, _, _ = fit_fold(*first_args[:-1], 0)
    same = bool(np.array_equal(first, again))
    print(f"fold 1 probabilities bit-identical to the worker's: {same} "
          f"(largest difference {float(np.abs(first - again).max()):.1e})")
    result = {"benchmark": "parallel-folds", "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
              "cpus": os.cpu_count(), "platform": platform.platform(), "model": args.model,
              "params": params, "jobs": args.jobs, "threads": args.threads,
              "wall_seconds": wall, "folds": rows, "fold1_bit_identical": same}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(f"Saved {args.out.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
