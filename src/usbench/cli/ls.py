"""``usbench ls``: registered models, feature sets and datasets."""

from __future__ import annotations

import argparse


def add(sub) -> None:
    """Register the subcommand(s) and their arguments."""
    ls = sub.add_parser("ls", help="list registered names")
    ls.add_argument("what", choices=["models", "features", "datasets"])
    ls.set_defaults(func=cmd_ls)


def cmd_ls(args: argparse.Namespace) -> int:
    if args.what == "features":
        from usbench.cli.features import cmd_features_ls

        return cmd_features_ls(args)
    if args.what == "models":
        from usbench.models import MODELS, get_model

        for name in MODELS:
            spec = get_model(name)
            print(f"{name:<7} {spec.input_kind:<6} {spec.summary}")
            for key, default, allowed in spec.describe_params():
                print(f"    {key:<17} {default:<9} {allowed}")
            print()
        print("Override with --set KEY=VALUE; a value outside its range is refused.")
        return 0
    from usbench.datasets import DATASETS

    for name in DATASETS:
        spec = DATASETS.get(name)
        print(f"{name}: {spec.summary}")
        print("\n".join(f"    {line}".rstrip() for line in spec.card().splitlines()))
        print()
    return 0
