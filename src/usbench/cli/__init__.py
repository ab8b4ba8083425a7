"""Command line: arguments -> config -> runner; printing; errors as one line, exit code 2.

One module per subcommand, each owning its arguments (``add``) and its execution (``cmd_*``);
heavy libraries are imported inside the command functions, so ``usbench --help`` is instant.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from usbench import __version__
from usbench.errors import UsbenchError
from usbench.redact import RedactFilter, redact

log = logging.getLogger("usbench")

SUBCOMMANDS = ("data", "features", "run", "sweep", "leaderboard", "audit", "predict", "ls")


class _Parser(argparse.ArgumentParser):
    """argparse with usbench's error form: one line on stderr, exit code 2."""

    def error(self, message: str):
        sys.stderr.write(f"usbench: error: {self.prog}: {message}. See `{self.prog} --help`.\n")
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = _Parser(
        prog="usbench",
        description="Honest leave-one-fold-out benchmarks for environmental sound "
                    "classification (UrbanSound8K).",
    )
    parser.add_argument("--version", action="version", version=f"usbench {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMANDS:
        importlib.import_module(f"usbench.cli.{name}").add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(RedactFilter())
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False
    from usbench import procs

    procs.interrupt_on_sigterm()
    try:
        if getattr(args, "weights", None) is not None:
            from usbench.features import with_weights

            args.features = with_weights(args.features, args.weights)
        return args.func(args)
    except UsbenchError as exc:
        if args.debug:
            raise
        print(f"usbench: error: {redact(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if procs.terminated():
            print("usbench: terminated (SIGTERM); finished work is kept and the next run "
                  "resumes it.", file=sys.stderr)
            return 143
        print("usbench: interrupted; finished work is kept and the next run resumes it.",
              file=sys.stderr)
        return 130


def entry() -> None:
    """The ``usbench`` command: `main`, then an exit without the final garbage collection.

    A process that has imported numpy, scipy and pandas spends 0.1-0.15 s of its exit
    collecting objects the system reclaims anyway; ``gc.freeze()`` moves them out of the
    collector's reach. Not in `main`, which tests and notebooks call in their own process.
    """
    import gc

    try:
        try:
            code = main()
        except SystemExit as exc:  # argparse's --help, --version and usage errors
            code = exc.code
        sys.stdout.flush()
    except BrokenPipeError:
        if not _stdout_is_a_pipe() or "--debug" in sys.argv[1:]:
            raise
        # The reader went away (`usbench ... | head`): nothing more can be shown. Python's
        # own advice: point stdout at devnull so the exit's flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 1
    gc.freeze()
    raise SystemExit(code)


def _stdout_is_a_pipe() -> bool:
    """True when stdout is a pipe or socket, the only places a reader can go away from."""
    import stat

    try:
        mode = os.fstat(sys.stdout.fileno()).st_mode
    except (OSError, ValueError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)
