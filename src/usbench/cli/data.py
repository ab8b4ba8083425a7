"""``usbench data synth`` and ``usbench data check``."""

from __future__ import annotations

import argparse

from usbench.cli.common import add_data_args, data_config, positive_int, seed


def add(sub) -> None:
    """Register the subcommand(s) and their arguments."""
    data = sub.add_parser("data", help="generate or check a dataset root")
    data_sub = data.add_subparsers(dest="action", metavar="ACTION", required=True)
    synth = data_sub.add_parser("synth", help="write an UrbanSound8K-shaped synthetic dataset")
    synth.add_argument("--out", default="synthetic-us8k", metavar="DIR",
                       help="output root (default: ./synthetic-us8k)")
    synth.add_argument("--seed", type=seed, help="default: 0")
    synth.add_argument("--clips-per-class-per-fold", type=positive_int,
                       metavar="K", help="slices per class per fold (default 10: 1,000 clips)")
    synth.add_argument("--uniform-format", action="store_true",
                       help="write 22,050 Hz mono 16-bit only (default: mixed formats)")
    synth.set_defaults(func=cmd_data_synth)
    check = data_sub.add_parser("check", help="per-fold table: listed/present/missing/unreadable")
    add_data_args(check, allow_missing=False)
    check.set_defaults(func=cmd_data_check)


def cmd_data_synth(args: argparse.Namespace) -> int:
    from usbench.datasets.synthetic import SynthConfig, generate

    given = {"seed": args.seed, "clips_per_class_per_fold": args.clips_per_class_per_fold,
             "mixed_formats": False if args.uniform_format else None}
    cfg = SynthConfig(**{k: v for k, v in given.items() if v is not None})  # its defaults
    root = generate(args.out, cfg)
    n = 100 * cfg.clips_per_class_per_fold
    print(f"Wrote {n:,} clips (10 classes x 10 folds, seed {cfg.seed}) to {root}")
    return 0


def cmd_data_check(args: argparse.Namespace) -> int:
    from usbench.datasets import open_dataset
    from usbench.datasets.check import check

    ds = open_dataset(data_config(args, allow_missing=True))
    report = check(ds)
    print(f"Dataset {ds.name} at {ds.root}: {len(ds.classes)} classes, "
          f"{ds.fold_plan.describe()}")
    print(report.table.to_string())
    total = report.table.loc["all"]
    print(f"{total['present']:,} of {total['listed']:,} listed clips present, "
          f"{total['missing']:,} missing, {total['unreadable']:,} unreadable.")
    if total["silent"] or total["short"]:
        print(f"{total['silent']:,} silent (peak below -140 dBFS) and {total['short']:,} "
              "shorter than one analysis window (93 ms): valid, kept, worth a listen.")
    if report.loud:
        name, top = max(report.loud, key=lambda item: item[1])
        print(f"{len(report.loud):,} clip(s) have float samples outside [-1, 1] (largest |x| "
              f"{top:g}, in {name}): valid, used as they are; rescale them if they were "
              "exported at the wrong scale.")
    for rel, reason in report.unreadable[:10]:
        print(f"  unreadable: {rel}: {reason}")
    if len(report.unreadable) > 10:
        print(f"  ... and {len(report.unreadable) - 10} more")
    if not report.ok:
        print("Incomplete or broken: commands that read audio refuse it unless given "
              "--allow-missing (missing clips) or --skip-bad (unreadable clips).")
    return 0 if report.ok else 1
