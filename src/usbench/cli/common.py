"""What several subcommands share: data and evaluation arguments, argument types, the
--set pairs and the augmentation switch, and how a fold plan is printed."""

from __future__ import annotations

import argparse


def add_data_args(p: argparse.ArgumentParser, allow_missing: bool = True) -> None:
    p.add_argument("--dataset", metavar="NAME",
                   help="dataset layout (default: detected from the root's metadata files; "
                        "`usbench ls datasets`)")
    p.add_argument("--data", metavar="DIR",
                   help="dataset root (default: $USBENCH_DATA, else the embedded synthetic set)")
    if allow_missing:
        p.add_argument("--allow-missing", action="store_true",
                       help="use the clips present when some listed clips are missing "
                            "(results are marked partial)")
    own = p.add_argument_group(
        "your own data (--dataset folders or csv; flags override <root>/usbench.toml)")
    own.add_argument("--n-folds", type=positive_int, metavar="N",
                     help="folds to generate when the data gives none (default 5)")
    own.add_argument("--fold-seed", type=int, metavar="N",
                     help="seed of the generated folds (default 0)")
    own.add_argument("--table", metavar="FILE.csv",
                     help="csv: the clip table; folders: a table of folds/recordings "
                          "(relative to the root)")
    own.add_argument("--file-column", metavar="NAME", help="column of file paths")
    own.add_argument("--label-column", metavar="NAME", help="csv: column of class names")
    own.add_argument("--fold-column", metavar="NAME",
                     help="column of fold numbers (else folds are generated)")
    own.add_argument("--group-column", metavar="NAME", help="column of recording ids")
    own.add_argument("--group-pattern", metavar="REGEX",
                     help="regular expression whose first group in a file name is its "
                          "recording id, e.g. '^(\\d+)-'")


def data_config(args: argparse.Namespace, file: dict | None = None, **extra):
    """The DataConfig of the data flags; `file` (a --config file) fills what flags leave out."""
    from usbench.config import DataConfig

    file = file or {}
    names = ("dataset", "n_folds", "fold_seed", "table", "file_column", "label_column",
             "fold_column", "group_column", "group_pattern")
    values = {n: getattr(args, n) if getattr(args, n) is not None else file.get(n)
              for n in names}
    flags = {n: bool(getattr(args, n, False)) or bool(file.get(n, False))
             for n in ("allow_missing", "skip_bad")}
    return DataConfig(root=args.data or file.get("data"), **values, **{**flags, **extra})


def seed(text: str) -> int:
    """A random seed as numpy takes it: an integer from 0 to 2**32 - 1."""
    from usbench.config import SEED_MAX

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer seed, got {text!r}") from None
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"expected a seed from 0 to {SEED_MAX:,}, got {value}")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def fold_list(text: str) -> tuple[int, ...]:
    """``1,2,10`` (spaces around the commas allowed) as (1, 2, 10); no empty or repeated item."""
    items = [f.strip() for f in text.split(",")]
    if not any(items):
        raise argparse.ArgumentTypeError("expected at least one fold number, like 1,2,10")
    if not all(items):
        raise argparse.ArgumentTypeError(
            f"expected fold numbers like 1,2,10, got {text!r} (an empty item)")
    try:
        folds = tuple(int(f) for f in items)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected fold numbers like 1,2,10, got {text!r}") from None
    twice = sorted({f for f in folds if folds.count(f) > 1})
    if twice:
        raise argparse.ArgumentTypeError(
            f"fold {twice[0]} is named twice in {text!r}; name each fold once")
    return folds


def key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value.strip()


def add_weights_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", metavar="PATH",
                   help="the model file a hear:MODULE feature set's load_model takes "
                        "(recorded as hear:MODULE@PATH)")


def add_evaluation_args(p: argparse.ArgumentParser, set_help: str) -> None:
    """What run, sweep and audit share: model, features, data, --set, tracking, workers."""
    p.add_argument("--model", required=True, metavar="NAME", help="`usbench ls models`")
    p.add_argument("--features", required=True, metavar="NAME")
    add_weights_arg(p)
    add_data_args(p)
    p.add_argument("--set", action="append", default=[], type=key_value, metavar="KEY=VALUE",
                   dest="overrides", help=set_help + "; `usbench ls models` lists each family's "
                   "parameters and their ranges; augment.KEY=VALUE tunes --augment")
    p.add_argument("--skip-bad", action="store_true",
                   help="leave out clips that fail to decode (results are marked partial)")
    p.add_argument("--augment", action="store_true",
                   help="also train on cached audio-augmented copies of the training clips "
                        "(SB-CNN's time stretch, pitch shift, compression, noise)")
    p.add_argument("--experiment", metavar="NAME", help="MLflow experiment (default: dataset)")
    p.add_argument("--tracking-uri", metavar="URI",
                   help="MLflow tracking URI (default: sqlite:///results/mlflow.db)")
    p.add_argument("--jobs", type=positive_int, metavar="N",
                   help="feature-extraction worker processes (default: one thread per core "
                        "in this process)")


def set_pairs(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """The --set pairs as a dict, refusing a key given twice (which value would win is a
    guess)."""
    from usbench.errors import ConfigError

    out: dict[str, str] = {}
    for key, value in pairs:
        if key in out:
            raise ConfigError(f"--set {key} is given twice ({key}={out[key]}, {key}={value}). "
                              "Keep one.")
        out[key] = value
    return out


def augmentation(on: bool, overrides: dict[str, str]):
    """(model overrides, AudioAugment or None) from --augment and the --set pairs."""
    from usbench.augment import PREFIX, parse, split_overrides
    from usbench.errors import ConfigError

    model, aug = split_overrides(overrides)
    if aug and not on:
        first = next(iter(aug))
        raise ConfigError(
            f"--set {PREFIX}{first} tunes the audio augmentation, which is off. Add --augment."
        )
    return model, (parse(aug) if on else None)


def print_fold_plan(plan, folder=None) -> None:
    """Say where the folds came from, unless they are the dataset's official ones."""
    if plan is None or plan.origin == "official":
        return
    where = f"; assignment in {folder / 'folds.csv'}" if folder is not None else ""
    print(f"folds: {plan.describe()}{where}")
    if plan.generated:
        print("generated folds are not an official protocol: compare only with runs on the "
              "same folds")


def add_config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE.toml",
                   help="TOML file of this command's settings (keys as its flags, and a "
                        "[params] table); flags override it")


def evaluation_config(cls, command: str, args: argparse.Namespace, **fixed):
    """The config of run, sweep or audit: `cls`'s defaults < the --config file < explicit
    flags < --set (``usbench.config.layered``)."""
    from usbench.config import layered, load_config_file

    file = load_config_file(args.config, command) if args.config else {}
    overrides = {**{k: str(v) for k, v in file.get("params", {}).items()},
                 **set_pairs(args.overrides)}
    overrides, augment = augmentation(args.augment or bool(file.get("augment", False)),
                                      overrides)
    settings = {k: v for k, v in file.items() if k not in ("params", "augment")}
    if "folds" in settings:
        settings["folds"] = tuple(settings["folds"])
    cfg = layered(cls, settings, vars(args), data=data_config(args, file),
                  overrides=tuple(sorted(overrides.items())), augment=augment, **fixed)
    check_experiment(cfg.experiment)
    return cfg


def check_experiment(name: str | None) -> None:
    """An MLflow experiment name is a name: its artifacts go to ``results/mlartifacts/<name>``,
    so a path (``../x``, ``a/b``) is refused in one line."""
    import re

    from usbench.errors import ConfigError

    if name is not None and not re.fullmatch(r"[A-Za-z0-9_+-][A-Za-z0-9 ._+-]{0,99}", name):
        raise ConfigError(f"--experiment {name!r} is not an experiment name. Use letters, "
                          "digits, spaces and ._+- (at most 100, not starting with a dot), "
                          "e.g. us8k-probes.")

