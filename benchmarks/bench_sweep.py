"""Wall time and trials per minute of a pruned ``rf`` sweep, 1 worker versus 2.

Uses the UrbanSound8K-size synthetic set of ``bench_models.py`` (8,700 clips, mfcc-stats,
generated once into the usbench cache) and runs ``usbench.sweep.sweep`` with the median
pruner into a fresh sqlite study per setting (MLflow logging included, as a user gets it).
Reports trials finished / pruned / failed, wall time and trials per minute.

    python -m benchmarks.bench_sweep [--trials 50] [--workers 1,2] [--timeout 900]

Figures are printed and saved to ``results/benchmarks/sweep.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--timeout", type=float, help="stop starting trials after S seconds")
    parser.add_argument("--model", default="rf")
    parser.add_argument("--clips-per-class-per-fold", type=int, default=87)
    parser.add_argument("--out", default="results/benchmarks/sweep.json")
    args = parser.parse_args()

    import optuna

    from benchmarks.bench_models import dataset_root
    from usbench.config import DataConfig, SweepConfig
    from usbench.sweep import sweep

    root = dataset_root(args.clips_per_class_per_fold)
    out = Path(args.out).resolve()
    report = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "trials": args.trials,
              "timeout": args.timeout, "model": args.model,
              "cpus": os.cpu_count(),
              "platform": platform.platform(), "runs": {}}
    for workers in map(int, args.workers.split(",")):
        with tempfile.TemporaryDirectory(prefix="usbench-bench-sweep-") as tmp:
            os.chdir(tmp)  # a fresh results/ (optuna.db, mlflow.db) per setting
            cfg = SweepConfig(data=DataConfig(root=str(root)), model=args.model,
                              features="mfcc-stats", trials=args.trials, workers=workers,
                              timeout=args.timeout)
            t = time.perf_counter()
            result = sweep(cfg, progress=False)
            wall = time.perf_counter() - t
            study = optuna.load_study(study_name=result.study_name, storage=result.storage)
            states = [t.state.name for t in study.trials]
            entry = {"wall_seconds": wall, "trials_per_minute": len(states) / wall * 60,
                     "complete": states.count("COMPLETE"), "pruned": states.count("PRUNED"),
                     "failed": states.count("FAIL"), "best_accuracy": result.best_value,
                     "best_params": result.best_params}
            report["runs"][f"workers={workers}"] = entry
            print(f"{args.model} sweep, {len(states)} of {args.trials} trials, "
                  f"{workers} worker(s): {wall / 60:.1f} min, "
                  f"{entry['trials_per_minute']:.2f} trials/min "
                  f"({entry['complete']} complete, {entry['pruned']} pruned, "
                  f"{entry['failed']} failed); best {result.best_value:.3f}", flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"saved {out}")


if __name__ == "__main__":
    main()
