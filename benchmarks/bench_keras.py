"""Accuracy and time of the default recipes on real audio, run as a user runs them.

Runs each command below as a subprocess (``usbench run ... --data ROOT --allow-missing``) in a
scratch folder, reads the local record each one writes, and prints a Markdown table: accuracy
(mean ± std over the tested folds), macro-F1, per-fold fit time, and for Keras models the
epochs trained per fold (validation phase + refit) and seconds per epoch. ``--ablation`` adds
the CNN with each training-only part switched off in turn, to show what each part buys.

    python benchmarks/bench_keras.py --data ~/us8k-dev [--ablation] [--only cnn,cnn-augment]

The figures that choose usbench's defaults come from the real UrbanSound8K development subset
(us8k-dev: 1,745 real clips of folds 1-3, as WAV files). Figures are saved to
``results/benchmarks/keras.json``.

``--seeds 0-9`` runs each chosen command once per seed (``--seed S``) and reports the mean
and standard deviation over seeds: one 3-fold run on us8k-dev moves by about 0.01 from seed
to seed, as much as most recipe changes, so recipes are compared over seeds. ``RECIPES``
holds the MLP's faster batch, learning-rate and epoch settings measured against the default
(``--only mlp,mlp-b128 --seeds 0-9``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

COMMANDS = {
    "logreg": "--model logreg --features mfcc-stats",
    "rf": "--model rf --features mfcc-stats",
    "mlp": "--model mlp --features mfcc-stats",
    # The tutorials' recipe: no weight decay, 100 epochs in batches of 32 with Keras's Adam
    # (learning rate 1e-3), no validation.
    "mlp-tutorial": "--model mlp --features mfcc-stats --set validation=none --set epochs=100 "
                    "--set batch_size=32 --set learning_rate=1e-3 --set l2=0",
    "cnn": "--model cnn --features logmel",
    "cnn-augment": "--model cnn --features logmel --augment",
}
ABLATION = {
    # SB-CNN as published: flatten head, no batch norm, whole clips, no masks, 50 epochs.
    "cnn-sbcnn": "--model cnn --features logmel --set head=flatten --set batch_norm=false "
                 "--set crop_frames=0 --set time_masks=0 --set freq_masks=0 --set epochs=50",
    "cnn-flatten": "--model cnn --features logmel --set head=flatten",
    "cnn-no-bn": "--model cnn --features logmel --set batch_norm=false",
    "cnn-no-crops": "--model cnn --features logmel --set crop_frames=0",
    "cnn-no-masks": "--model cnn --features logmel --set time_masks=0 --set freq_masks=0",
    "cnn-mixup": "--model cnn --features logmel --set mixup_alpha=0.2",
    "cnn-val-fold-refit": "--model cnn --features logmel --set validation=fold",
    "mlp-val-fold-refit": "--model mlp --features mfcc-stats --set validation=fold",
    "mlp-val-recordings-refit": "--model mlp --features mfcc-stats --set validation=recordings",
}
# The MLP's batch, learning-rate and epoch settings (its time is its steps): `mlp-b32` is the
# tutorials' batch and learning rate, `mlp-b128` usbench's default.
RECIPES = {
    "mlp-b32": "--model mlp --features mfcc-stats --set batch_size=32 --set learning_rate=1e-3",
    "mlp-b64": "--model mlp --features mfcc-stats --set batch_size=64 --set learning_rate=2e-3",
    "mlp-b128": "--model mlp --features mfcc-stats --set batch_size=128 --set learning_rate=2e-3",
    "mlp-b128-lr4e-3": "--model mlp --features mfcc-stats --set batch_size=128 "
                       "--set learning_rate=4e-3",
    "mlp-b128-e70": "--model mlp --features mfcc-stats --set batch_size=128 "
                    "--set learning_rate=2e-3 --set epochs=70",
    "mlp-b128-e50": "--model mlp --features mfcc-stats --set batch_size=128 "
                    "--set learning_rate=2e-3 --set epochs=50",
    "mlp-b256": "--model mlp --features mfcc-stats --set batch_size=256 --set learning_rate=4e-3",
}


def run(name: str, args: str, data: str, scratch: Path, seed: int | None = None) -> dict:
    usbench = shutil.which("usbench") or str(Path(sys.executable).with_name("usbench"))
    cmd = [usbench, "run", *args.split(), "--data", data, "--allow-missing"]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    t = time.perf_counter()
    done = subprocess.run(cmd, cwd=scratch, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(f"{name}: {' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    folder = done.stdout.split("local record: ")[1].split()[0]
    record = json.loads((scratch / folder / "result.json").read_text())
    m = record["metrics"]
    entry = {"command": f"usbench run {args} --data DIR --allow-missing",
             "accuracy": m["accuracy"], "accuracy_std": m["accuracy_std"],
             "macro_f1": m["macro_f1"], "wall_seconds": wall,
             "fold_accuracy": [f["accuracy"] for f in record["folds"]],
             "fit_seconds": [f["fit_seconds"] for f in record["folds"]],
             "history": [f["history"] for f in record["folds"]]}
    hist = entry["history"]
    if hist and "epochs_run" in hist[0]:
        epochs = [h["epochs_run"] + h.get("refit_epochs", 0) for h in hist]
        entry["epochs"] = epochs
        entry["seconds_per_epoch"] = sum(entry["fit_seconds"]) / sum(epochs)
    return entry


def table(report: dict) -> str:
    lines = ["| name | command | accuracy | macro-F1 | fit s per fold | epochs per fold | "
             "s/epoch |", "|---|---|---|---|---|---|---|"]
    for name, e in report["runs"].items():
        fit = "-".join(f"{s:.0f}" for s in (min(e["fit_seconds"]), max(e["fit_seconds"])))
        epochs = ", ".join(map(str, e.get("epochs", []))) or "-"
        per_epoch = f"{e['seconds_per_epoch']:.1f}" if "seconds_per_epoch" in e else "-"
        lines.append(f"| {name} | `{e['command']}` | {e['accuracy']:.3f} ± "
                     f"{e['accuracy_std']:.3f} | {e['macro_f1']:.3f} | {fit} | {epochs} | "
                     f"{per_epoch} |")
    return "\n".join(lines)


def add_seed(done: dict | None, command: str, seed: int, entry: dict) -> dict:
    """The stored per-seed record of one command (or None) with `seed`'s run added or
    replaced: accuracy, macro-F1 and wall time per seed, and their means. Seeds stored for
    another command line (an edited recipe) are dropped."""
    shown = f"usbench run {command} --data DIR --allow-missing --seed S"
    done = done if done and done.get("command") == shown else {}
    runs = {s: (a, f, w) for s, a, f, w in zip(done.get("seeds", []), done.get("accuracy", []),
                                               done.get("macro_f1", []),
                                               done.get("wall_seconds", []), strict=True)}
    runs[seed] = (entry["accuracy"], entry["macro_f1"], entry["wall_seconds"])
    seeds = sorted(runs)
    acc, f1, wall = (np.array([runs[s][i] for s in seeds]) for i in range(3))
    return {"command": shown, "seeds": seeds, "accuracy": acc.tolist(), "macro_f1": f1.tolist(),
            "wall_seconds": wall.tolist(), "mean_accuracy": float(acc.mean()),
            "std_accuracy": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
            "mean_macro_f1": float(f1.mean()), "median_wall_seconds": float(np.median(wall))}


def seed_table(report: dict) -> str:
    lines = ["| name | command | seeds | accuracy: mean (std over seeds) | macro-F1: mean | "
             "wall s (median) |", "|---|---|---|---|---|---|"]
    for name, e in report["seed_runs"].items():
        first, last = e["seeds"][0], e["seeds"][-1]
        seeds = (f"{first}-{last}" if e["seeds"] == list(range(first, last + 1)) and last > first
                 else ",".join(map(str, e["seeds"])))
        lines.append(f"| {name} | `{e['command']}` | {seeds} | {e['mean_accuracy']:.4f} "
                     f"({e['std_accuracy']:.4f}) | {e['mean_macro_f1']:.4f} | "
                     f"{e['median_wall_seconds']:.0f} |")
    return "\n".join(lines)


def parse_seeds(text: str) -> list[int]:
    """"0-9" or "0,3,5" -> seeds."""
    try:
        if "-" in text:
            first, last = text.split("-", 1)
            seeds = list(range(int(first), int(last) + 1))
        else:
            seeds = [int(s) for s in text.split(",")]
    except ValueError:
        seeds = []
    if not seeds:
        raise argparse.ArgumentTypeError(f"{text!r} names no seeds; give a range such as 0-9 "
                                         "or a list such as 0,3,5")
    return seeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="dataset root (expanded us8k-dev)")
    parser.add_argument("--ablation", action="store_true", help="also the CNN ablation rows")
    parser.add_argument("--only", help="comma-separated names to run (see COMMANDS, ABLATION "
                        "and RECIPES)")
    parser.add_argument("--seeds", type=parse_seeds,
                        help="run each command once per seed, e.g. 0-9 or 0,1,2")
    parser.add_argument("--out", default="results/benchmarks/keras.json")
    args = parser.parse_args()

    commands = {**COMMANDS, **(ABLATION if args.ablation else {})}
    if args.only:
        known = {**COMMANDS, **ABLATION, **RECIPES}
        unknown = [k for k in args.only.split(",") if k not in known]
        if unknown:
            parser.error(f"--only: unknown name(s) {', '.join(unknown)}; known: "
                         f"{', '.join(known)}")
        commands = {k: v for k, v in known.items() if k in args.only.split(",")}
    out = Path(args.out)
    try:
        report = json.loads(out.read_text()) if out.is_file() else {"runs": {}}
    except (OSError, ValueError) as exc:
        parser.error(f"{out} is not a readable report ({exc}); move it aside or pass --out")
    report.update({"date": datetime.now(UTC).isoformat(timespec="seconds"),
                   "data": args.data, "cpus": os.cpu_count(), "platform": platform.platform()})
    if args.seeds:
        report.setdefault("seed_runs", {})
    # Seeds outermost: a slow spell of the machine hits every command alike.
    todo = [(seed, name) for seed in (args.seeds or [None]) for name in commands]
    with tempfile.TemporaryDirectory(prefix="usbench-bench-") as tmp:
        for seed, name in todo:
            entry = run(name, commands[name], args.data, Path(tmp), seed)
            if seed is None:
                report["runs"][name] = entry
                shown = f"{entry['accuracy']:.3f} ± {entry['accuracy_std']:.3f}"
            else:
                report["seed_runs"][name] = add_seed(report["seed_runs"].get(name),
                                                     commands[name], seed, entry)
                shown = f"seed {seed}: {entry['accuracy']:.3f}"
            print(f"{name:<20} {shown}  macro-F1 {entry['macro_f1']:.3f}  "
                  f"{entry['wall_seconds']:.0f} s", flush=True)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(report, indent=2) + "\n")
    print()
    print(seed_table(report) if args.seeds else table(report))
    print(f"saved {out}")

if __name__ == "__main__":
    main()
