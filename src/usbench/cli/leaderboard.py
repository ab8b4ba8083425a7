"""``usbench leaderboard``: the report of the finished runs."""

from __future__ import annotations

import argparse


def add(sub) -> None:
    """Register the subcommand(s) and their arguments."""
    lb = sub.add_parser("leaderboard", help="write leaderboard.md and .html from MLflow runs")
    lb.add_argument("--experiment", action="append", metavar="NAME",
                    help="experiment(s) to read (repeatable; default: all)")
    lb.add_argument("--out", default="results", metavar="DIR", help="output folder (results/)")
    lb.add_argument("--include-partial", action="store_true",
                    help="also show runs on incomplete datasets")
    lb.add_argument("--tracking-uri", metavar="URI",
                    help="MLflow tracking URI (default: sqlite:///results/mlflow.db)")
    lb.set_defaults(func=cmd_leaderboard)


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from pathlib import Path

    from usbench.leaderboard import leaderboard
    from usbench.tracking import tracking_uri

    uri = tracking_uri(args.tracking_uri)
    board, md, page = leaderboard(uri, args.experiment, Path(args.out),
                                  include_partial=args.include_partial)
    for group in board.groups:
        print(group.title)
        for i, r in enumerate(group.rows, start=1):
            print(f"{i:>2}. {r.model:<7} {r.features:<11} {r.accuracy:.3f} ± "
                  f"{r.accuracy_std:.3f}  ({r.selection})")
    if board.skipped_crashed:
        print(f"skipped {board.skipped_crashed} run(s) without metrics (crashed)")
    print(f"wrote {md} and {page}")
    if board.run_id:
        print(f"MLflow run {board.run_id} (tag usbench.kind=leaderboard) holds the report")
    return 0
