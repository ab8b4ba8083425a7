"""``usbench audit``: the fold protocol against a random split."""

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
    au = sub.add_parser("audit", help="leakage audit: the fold protocol versus a random split")
    add_evaluation_args(au, "override a hyper-parameter (repeatable)")
    add_config_arg(au)
    au.add_argument("--seed", type=seed, help="default: 0")
    au.set_defaults(func=cmd_audit)


def cmd_audit(args: argparse.Namespace) -> int:
    from usbench.audit import audit
    from usbench.config import AuditConfig

    out = audit(evaluation_config(AuditConfig, "audit", args))
    f, r = out.folds, out.random
    print()
    print(f"fold protocol (leave-one-fold-out): accuracy {f.accuracy:.3f} ± {f.accuracy_std:.3f}")
    print(f"random stratified split:            accuracy {r.accuracy:.3f} ± {r.accuracy_std:.3f}")
    print(f"inflation of the random split: {100 * out.inflation:+.1f} points")
    plan = out.run.fold_plan
    print_fold_plan(plan, out.run.folder)
    if plan is not None and not plan.grouped:
        print("recording ids unknown: the folds are themselves a random stratified split, so "
              "this audit cannot see slices of one recording straddling them. Pass "
              "--group-column or --group-pattern if the data carries recording ids.")
    elif out.leaky:
        shown = ", ".join(f"{rec} (folds {','.join(map(str, fl))})"
                          for rec, fl in list(out.leaky.items())[:10])
        more = f" and {len(out.leaky) - 10} more" if len(out.leaky) > 10 else ""
        print(f"{len(out.leaky)} recording(s) have slices in more than one fold: {shown}{more}")
    else:
        print("no recording has slices in more than one fold")
    if out.run.run_id:
        print(f"MLflow run {out.run.run_id} (tag usbench.kind=audit)")
    return 0
