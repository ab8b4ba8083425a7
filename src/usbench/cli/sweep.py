"""``usbench sweep``: an Optuna study under the fold protocol."""

from __future__ import annotations

import argparse

from usbench.cli.common import (
    add_config_arg,
    add_evaluation_args,
    evaluation_config,
    print_fold_plan,
    seed,
)


def add(sub) -> None:
    """Register the subcommand(s) and their arguments."""
    sw = sub.add_parser("sweep", help="Optuna search of a model family under the fold protocol")
    add_evaluation_args(sw, "hold a hyper-parameter fixed in every trial")
    add_config_arg(sw)
    sw.add_argument("--trials", type=int, metavar="N",
                    help="finished trials the study should hold; a re-run adds the difference "
                         "(required, here or in --config)")
    sw.add_argument("--timeout", type=float, metavar="S", help="stop starting trials after S s")
    sw.add_argument("--study", metavar="NAME",
                    help="study name (default: <dataset>-<model>-<features>)")
    sw.add_argument("--storage", metavar="URI",
                    help="Optuna storage (default: sqlite:///results/optuna.db; also "
                         "postgresql+psycopg2://... or journal:///file.log)")
    sw.add_argument("--workers", type=int, metavar="N",
                    help="processes on this machine sharing the study (default 1)")
    sw.add_argument("--nested", action="store_true",
                    help="select on inner folds for each outer test fold (unbiased estimate)")
    sw.add_argument("--pruner", choices=["median", "none"], help="default: median")
    sw.add_argument("--seed", type=seed, help="default: 0")
    sw.set_defaults(func=cmd_sweep)


def cmd_sweep(args: argparse.Namespace) -> int:
    from usbench.config import SweepConfig, load_config_file
    from usbench.redact import redact
    from usbench.sweep import sweep

    cfg = evaluation_config(SweepConfig, "sweep", args)
    if args.trials is None and not (args.config and "trials" in load_config_file(args.config,
                                                                              "sweep")):
        from usbench.errors import ConfigError

        raise ConfigError("usbench sweep needs the number of trials: --trials N (or trials = N "
                          "in the --config file).")
    out = sweep(cfg)
    print()
    folds = "  ".join(f"{f}:{a:.3f}" for f, a in sorted(out.fold_accuracy.items()))
    if out.selection == "nested":
        s = out.nested_run.scores
        print(f"nested estimate (each outer fold tested with parameters selected on the other "
              f"folds): accuracy {s.accuracy:.3f} ± {s.accuracy_std:.3f}, macro-F1 "
              f"{s.macro_f1:.3f}")
        print(f"outer folds: {folds}")
        for fold, params in sorted(out.best_params.items()):
            print(f"  fold {fold}: {params}")
        print_fold_plan(out.nested_run.fold_plan, out.nested_run.folder)
        print(f"local record: {out.nested_run.folder}")
    else:
        print(f"study '{out.study_name}' in {redact(out.storage)}: {out.n_trials} finished "
              "trials")
        print(f"best trial {out.best_trial}: accuracy {out.best_value:.3f} (selected on CV: "
              "the same folds chose and scored it; use --nested for an unbiased estimate)")
        print(f"best parameters: {out.best_params}")
        print(f"per-fold accuracy: {folds}")
        print_fold_plan(out.fold_plan)
        print(f"reproduce with: {out.reproduce}")
    if out.parent_run_id:
        print(f"MLflow sweep run {out.parent_run_id} (trials are its nested runs)")
    return 0
