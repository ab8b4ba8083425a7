"""``usbench run``: one leave-one-fold-out evaluation, logged."""

from __future__ import annotations

import argparse

from usbench.cli.common import (
    add_config_arg,
    add_evaluation_args,
    evaluation_config,
    fold_list,
    positive_int,
    print_fold_plan,
    seed,
)


def add(sub) -> None:
    """Register the subcommand(s) and their arguments."""
    run = sub.add_parser("run", help="evaluate a model under leave-one-fold-out and log it")
    add_evaluation_args(run, "override a hyper-parameter (repeatable)")
    run.add_argument("--folds", type=fold_list, metavar="1,2,10",
                     help="folds to test (default: all); each is predicted by a model "
                          "trained on every other present fold")
    add_config_arg(run)
    run.add_argument("--seed", type=seed)
    run.add_argument("--save-model", action="store_true",
                     help="also fit on all present folds and log it as the run's MLflow model "
                          "(for `usbench predict` and `mlflow models serve`)")
    run.add_argument("--register", metavar="NAME",
                     help="with --save-model: also register the model under NAME in the MLflow "
                          "model registry")
    run.add_argument("--fold-jobs", type=positive_int, metavar="N",
                     help="train N test folds side by side in worker processes, with the same "
                          "results (default: one per core, at most one per fold, for the MLP, "
                          "whose fit gains little from a second core; 1 for logreg, rf and the "
                          "CNN, whose fits use every core; 1 on a GPU)")
    run.add_argument("--from-study", metavar="NAME",
                     help="the parameters were chosen by this sweep's study on the same folds: "
                          "label the run \"selected on CV\" (sweeps print this command)")
    run.add_argument("--fresh", action="store_true",
                     help="train every fold again: discard the folds a killed or interrupted "
                          "run of the same configuration kept (by default it resumes them)")
    run.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    from usbench.config import RunConfig
    from usbench.runner import run_experiment

    cfg = evaluation_config(RunConfig, "run", args)
    if cfg.register and not cfg.save_model:
        from usbench.errors import ConfigError

        raise ConfigError(f"--register {cfg.register} registers the saved model: add "
                          "--save-model.")
    if cfg.save_model and "+" in cfg.features:
        from usbench.errors import ConfigError

        raise ConfigError(f"--save-model saves a model on one feature set, and '{cfg.features}' "
                          "joins several. Evaluate the combination without --save-model, or "
                          "save a model on one of its sets.")
    out = run_experiment(cfg, fresh=args.fresh)
    print()
    print(f"{'fold':>4}  {'clips':>5}  {'accuracy':>8}  {'fit s':>7}")
    for r in out.folds:
        print(f"{r.fold:>4}  {len(r.test_index):>5}  {r.accuracy:>8.3f}  {r.fit_seconds:>7.1f}")
    s = out.scores
    print(f"accuracy {s.accuracy:.3f} ± {s.accuracy_std:.3f} (mean ± std over "
          f"{len(out.folds)} fold(s)), macro-F1 {s.macro_f1:.3f}"
          + ("  [partial dataset]" if out.partial else ""))
    print_fold_plan(out.fold_plan, out.folder)
    print(f"local record: {out.folder}")
    if out.run_id:
        from usbench.tracking import ui_command

        print(f"MLflow run {out.run_id}; open the UI with: {ui_command(out.tracking_uri)}")
    return 0
