"""Command line: arguments -> config -> runner; printing; errors as one line, exit code 2.

Heavy libraries are imported inside the command functions, so ``usbench --help`` is instant.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from usbench import __version__
from usbench.errors import UsbenchError

log = logging.getLogger("usbench")


def _add_data_args(p: argparse.ArgumentParser, allow_missing: bool = True) -> None:
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
    own.add_argument("--n-folds", type=_positive_int, metavar="N",
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


def _data_config(args: argparse.Namespace, file: dict | None = None, **extra):
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


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _fold_list(text: str) -> tuple[int, ...]:
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


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value.strip()


def _add_weights_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", metavar="PATH",
                   help="the model file a hear:MODULE feature set's load_model takes "
                        "(recorded as hear:MODULE@PATH)")


def _add_evaluation_args(p: argparse.ArgumentParser, set_help: str) -> None:
    """What run, sweep and audit share: model, features, data, --set, tracking, workers."""
    p.add_argument("--model", required=True, metavar="NAME", help="`usbench ls models`")
    p.add_argument("--features", required=True, metavar="NAME")
    _add_weights_arg(p)
    _add_data_args(p)
    p.add_argument("--set", action="append", default=[], type=_key_value, metavar="KEY=VALUE",
                   dest="overrides", help=set_help + "; augment.KEY=VALUE tunes --augment")
    p.add_argument("--skip-bad", action="store_true",
                   help="leave out clips that fail to decode (results are marked partial)")
    p.add_argument("--augment", action="store_true",
                   help="also train on cached audio-augmented copies of the training clips "
                        "(SB-CNN's time stretch, pitch shift, compression, noise)")
    p.add_argument("--experiment", metavar="NAME", help="MLflow experiment (default: dataset)")
    p.add_argument("--tracking-uri", metavar="URI",
                   help="MLflow tracking URI (default: sqlite:///results/mlflow.db)")
    p.add_argument("--jobs", type=_positive_int, metavar="N",
                   help="feature-extraction worker processes (default: one thread per core "
                        "in this process)")


class _Parser(argparse.ArgumentParser):
    """argparse with usbench's error form: one line on stderr, exit code 2."""

    def error(self, message: str):
        sys.stderr.write(f"usbench: error: {self.prog}: {message}. See `{self.prog} --help`.\n")
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="usbench",
        description="Honest leave-one-fold-out benchmarks for environmental sound "
                    "classification (UrbanSound8K).",
    )
    parser.add_argument("--version", action="version", version=f"usbench {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    data = sub.add_parser("data", help="generate or check a dataset root")
    data_sub = data.add_subparsers(dest="action", metavar="ACTION", required=True)
    synth = data_sub.add_parser("synth", help="write an UrbanSound8K-shaped synthetic dataset")
    synth.add_argument("--out", default="synthetic-us8k", metavar="DIR",
                       help="output root (default: ./synthetic-us8k)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--clips-per-class-per-fold", type=_positive_int, default=10,
                       metavar="K", help="slices per class per fold (default 10: 1,000 clips)")
    synth.add_argument("--uniform-format", action="store_true",
                       help="write 22,050 Hz mono 16-bit only (default: mixed formats)")
    synth.set_defaults(func=cmd_data_synth)
    check = data_sub.add_parser("check", help="per-fold table: listed/present/missing/unreadable")
    _add_data_args(check, allow_missing=False)
    check.set_defaults(func=cmd_data_check)

    feats = sub.add_parser("features", help="list or build cached feature sets")
    feats_sub = feats.add_subparsers(dest="action", metavar="ACTION", required=True)
    feats_sub.add_parser("ls", help="list feature sets").set_defaults(func=cmd_features_ls)
    build = feats_sub.add_parser("build", help="extract a feature set into the cache")
    build.add_argument("--features", required=True, metavar="NAME")
    _add_weights_arg(build)
    _add_data_args(build)
    build.add_argument("--jobs", type=_positive_int, metavar="N",
                       help="worker processes (default: one thread per core in this process; "
                            "processes with --augment)")
    build.add_argument("--skip-bad", action="store_true",
                       help="leave out clips that fail to decode (listed in the manifest)")
    build.add_argument("--chunk-size", type=_positive_int, default=64, metavar="N",
                       help="clips per cache shard, the unit of resumption (default 64)")
    build.set_defaults(func=cmd_features_build)

    run = sub.add_parser("run", help="evaluate a model under leave-one-fold-out and log it")
    _add_evaluation_args(run, "override a hyper-parameter (repeatable)")
    run.add_argument("--folds", type=_fold_list, metavar="1,2,10",
                     help="folds to test (default: all); each is predicted by a model "
                          "trained on every other present fold")
    run.add_argument("--config", metavar="FILE.toml",
                     help="TOML file with run settings; flags override it")
    run.add_argument("--seed", type=int)
    run.add_argument("--save-model", action="store_true",
                     help="also fit on all present folds and log it as the run's MLflow model "
                          "(for `usbench predict` and `mlflow models serve`)")
    run.add_argument("--register", metavar="NAME",
                     help="with --save-model: also register the model under NAME in the MLflow "
                          "model registry")
    run.add_argument("--fold-jobs", type=_positive_int, metavar="N",
                     help="train N test folds side by side in worker processes, with the same "
                          "results (default: one per core, at most one per fold, for the MLP, "
                          "whose fit gains little from a second core; 1 for logreg, rf and the "
                          "CNN, whose fits use every core; on a GPU give 1)")
    run.add_argument("--from-study", metavar="NAME",
                     help="the parameters were chosen by this sweep's study on the same folds: "
                          "label the run \"selected on CV\" (sweeps print this command)")
    run.set_defaults(func=cmd_run)

    sw = sub.add_parser("sweep", help="Optuna search of a model family under the fold protocol")
    _add_evaluation_args(sw, "hold a hyper-parameter fixed in every trial")
    sw.add_argument("--trials", required=True, type=int, metavar="N",
                    help="finished trials the study should hold; a re-run adds the difference")
    sw.add_argument("--timeout", type=float, metavar="S", help="stop starting trials after S s")
    sw.add_argument("--study", metavar="NAME",
                    help="study name (default: <dataset>-<model>-<features>)")
    sw.add_argument("--storage", metavar="URI",
                    help="Optuna storage (default: sqlite:///results/optuna.db; also "
                         "postgresql+psycopg2://... or journal:///file.log)")
    sw.add_argument("--workers", type=int, default=1, metavar="N",
                    help="processes on this machine sharing the study (default 1)")
    sw.add_argument("--nested", action="store_true",
                    help="select on inner folds for each outer test fold (unbiased estimate)")
    sw.add_argument("--pruner", choices=["median", "none"], default="median")
    sw.add_argument("--seed", type=int, default=0)
    sw.set_defaults(func=cmd_sweep)

    lb = sub.add_parser("leaderboard", help="write leaderboard.md and .html from MLflow runs")
    lb.add_argument("--experiment", action="append", metavar="NAME",
                    help="experiment(s) to read (repeatable; default: all)")
    lb.add_argument("--out", default="results", metavar="DIR", help="output folder (results/)")
    lb.add_argument("--include-partial", action="store_true",
                    help="also show runs on incomplete datasets")
    lb.add_argument("--tracking-uri", metavar="URI",
                    help="MLflow tracking URI (default: sqlite:///results/mlflow.db)")
    lb.set_defaults(func=cmd_leaderboard)

    au = sub.add_parser("audit", help="leakage audit: the fold protocol versus a random split")
    _add_evaluation_args(au, "override a hyper-parameter (repeatable)")
    au.add_argument("--seed", type=int, default=0)
    au.set_defaults(func=cmd_audit)

    pred = sub.add_parser("predict", help="classify clips with a model saved by a run")
    pred.add_argument("clips", nargs="+", metavar="CLIP.wav")
    which = pred.add_mutually_exclusive_group(required=True)
    which.add_argument("--run", metavar="RUN_ID",
                       help="MLflow run id of a `usbench run ... --save-model`")
    which.add_argument("--model", metavar="URI",
                       help="an MLflow model URI: models:/NAME/VERSION, runs:/RUN_ID/model")
    pred.add_argument("--tracking-uri", metavar="URI",
                      help="MLflow tracking URI (default: sqlite:///results/mlflow.db)")
    pred.set_defaults(func=cmd_predict)

    srv = sub.add_parser("serve", help="serve a saved model over REST (mlflow models serve)")
    which = srv.add_mutually_exclusive_group(required=True)
    which.add_argument("--run", metavar="RUN_ID",
                       help="MLflow run id of a `usbench run ... --save-model`")
    which.add_argument("--model", metavar="URI",
                       help="an MLflow model URI: models:/NAME/VERSION, runs:/RUN_ID/model")
    srv.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    srv.add_argument("--port", type=_positive_int, default=5001, metavar="N",
                     help="port to listen on (default 5001)")
    srv.add_argument("--tracking-uri", metavar="URI",
                     help="MLflow tracking URI (default: sqlite:///results/mlflow.db)")
    srv.set_defaults(func=cmd_serve)

    ls = sub.add_parser("ls", help="list registered names")
    ls.add_argument("what", choices=["models", "features", "datasets"])
    ls.set_defaults(func=cmd_ls)
    return parser


def cmd_data_synth(args: argparse.Namespace) -> int:
    from usbench.datasets.synthetic import SynthConfig, generate

    cfg = SynthConfig(seed=args.seed, clips_per_class_per_fold=args.clips_per_class_per_fold,
                      mixed_formats=not args.uniform_format)
    root = generate(args.out, cfg)
    n = 100 * cfg.clips_per_class_per_fold
    print(f"Wrote {n:,} clips (10 classes x 10 folds, seed {cfg.seed}) to {root}")
    return 0


def cmd_data_check(args: argparse.Namespace) -> int:
    from usbench.datasets import open_dataset
    from usbench.datasets.check import check

    ds = open_dataset(_data_config(args, allow_missing=True))
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
    for rel, reason in report.unreadable[:10]:
        print(f"  unreadable: {rel}: {reason}")
    if len(report.unreadable) > 10:
        print(f"  ... and {len(report.unreadable) - 10} more")
    if not report.ok:
        print("Incomplete or broken: commands that read audio refuse it unless given "
              "--allow-missing (missing clips) or --skip-bad (unreadable clips).")
    return 0 if report.ok else 1


def cmd_features_ls(args: argparse.Namespace) -> int:
    from usbench.errors import UsbenchError
    from usbench.features import FEATURES, get_feature_set

    cards = []
    for name in FEATURES:
        try:
            fs = get_feature_set(name)
        except UsbenchError as exc:  # an encoder whose package is not installed
            print(f"{name:<11} unavailable: {exc}")
            continue
        shape = "x".join(map(str, fs.shape))
        print(f"{name:<11} v{fs.version}  {fs.kind:<6} ({shape}) @ {fs.sr} Hz  {fs.summary}")
        if getattr(fs, "pretrained", False):
            cards.append((name, fs))
    for name, fs in cards:
        c = fs.card
        print(f"\n{name}: pretrained encoder ({c.format}, {c.window_s:g} s windows every "
              f"{c.hop_s:g} s at {c.sample_rate:,} Hz, pooling {c.pooling})")
        for key in ("source", "pretraining", "licence", "citation", "overlap", "cost"):
            if c.about.get(key):
                print(f"  {key + ':':<13}{c.about[key]}")
        print(f"  {'card:':<13}{c.path}")
    print("\nAlso: encoder:CARD.toml (a model file), hear:MODULE (a HEAR-API module), and "
          "vector sets joined with + (birdnet+mfcc-stats).")
    return 0


def cmd_features_build(args: argparse.Namespace) -> int:
    from usbench.config import BuildConfig
    from usbench.features import check_name, get_feature_set
    from usbench.runner import build_features

    check_name(args.features)
    get_feature_set(args.features)  # an encoder's card and model are checked before any clip
    cfg = BuildConfig(data=_data_config(args), features=args.features, jobs=args.jobs,
                      skip_bad=args.skip_bad, chunk_size=args.chunk_size)
    built = build_features(cfg)
    m, ds = built.matrix, built.dataset
    source = "loaded from cache" if m.computed == 0 else f"extracted {m.computed:,} clips"
    shape = "x".join(map(str, m.X.shape[1:]))
    print(f"{ds.name}: {m.X.shape[0]:,} clips -> {args.features} ({shape}, float32), "
          f"{source} in {built.seconds:.2f} s")
    _print_fold_plan(ds.fold_plan)
    if ds.partial:
        print(f"partial dataset: {ds.n_missing:,} of {ds.n_listed:,} listed clips missing")
    if m.bad:
        print(f"left out {len(m.bad)} undecodable clip(s), listed in {m.path / 'manifest.json'}")
    silent = sum(n["note"] == "silent" for n in m.notes)
    short = sum(n["note"] == "short" for n in m.notes)
    if silent or short:
        print(f"kept {silent:,} silent clip(s) (peak below -140 dBFS) and {short:,} shorter "
              f"than one analysis window (2,048 samples), listed in {m.path / 'manifest.json'}")
    print(f"features key {m.key}: {m.path}")
    return 0


def _set_pairs(pairs: list[tuple[str, str]]) -> dict[str, str]:
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


def _augmentation(on: bool, overrides: dict[str, str]):
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


def _run_config(args: argparse.Namespace):
    """Defaults < --config file < explicit flags < --set."""
    from usbench.config import RunConfig, load_config_file

    file = load_config_file(args.config) if args.config else {}
    data = _data_config(args, file)
    overrides = {**{k: str(v) for k, v in file.get("params", {}).items()},
                 **_set_pairs(args.overrides)}
    overrides, augment = _augmentation(args.augment or bool(file.get("augment", False)),
                                       overrides)
    folds = args.folds or (tuple(file["folds"]) if "folds" in file else None)
    seed = args.seed if args.seed is not None else int(file.get("seed", 0))
    return RunConfig(data=data, features=args.features, model=args.model,
                     overrides=tuple(sorted(overrides.items())), folds=folds, seed=seed,
                     experiment=args.experiment or file.get("experiment"),
                     tracking_uri=args.tracking_uri or file.get("tracking_uri"),
                     save_model=args.save_model or bool(file.get("save_model", False)),
                     register=args.register,
                     jobs=args.jobs, augment=augment, from_study=args.from_study,
                     fold_jobs=args.fold_jobs)


def cmd_run(args: argparse.Namespace) -> int:
    from usbench.runner import prepare_model, run_experiment

    cfg = _run_config(args)
    if cfg.register and not cfg.save_model:
        from usbench.errors import ConfigError

        raise ConfigError(f"--register {cfg.register} registers the saved model: add "
                          "--save-model.")
    if cfg.save_model and "+" in cfg.features:
        from usbench.errors import ConfigError

        raise ConfigError(f"--save-model saves a model on one feature set, and '{cfg.features}' "
                          "joins several. Evaluate the combination without --save-model, or "
                          "save a model on one of its sets.")
    prepare_model(cfg)  # refuse bad names, parameters and model/feature pairs before any work
    out = run_experiment(cfg)
    print()
    print(f"{'fold':>4}  {'clips':>5}  {'accuracy':>8}  {'fit s':>7}")
    for r in out.folds:
        print(f"{r.fold:>4}  {len(r.test_index):>5}  {r.accuracy:>8.3f}  {r.fit_seconds:>7.1f}")
    s = out.scores
    print(f"accuracy {s.accuracy:.3f} ± {s.accuracy_std:.3f} (mean ± std over "
          f"{len(out.folds)} fold(s)), macro-F1 {s.macro_f1:.3f}"
          + ("  [partial dataset]" if out.partial else ""))
    _print_fold_plan(out.fold_plan, out.folder)
    print(f"local record: {out.folder}")
    if out.run_id:
        from usbench.tracking import ui_command

        print(f"MLflow run {out.run_id}; open the UI with: {ui_command(out.tracking_uri)}")
    return 0


def _print_fold_plan(plan, folder=None) -> None:
    """Say where the folds came from, unless they are the dataset's official ones."""
    if plan is None or plan.origin == "official":
        return
    where = f"; assignment in {folder / 'folds.csv'}" if folder is not None else ""
    print(f"folds: {plan.describe()}{where}")
    if plan.generated:
        print("generated folds are not an official protocol: compare only with runs on the "
              "same folds")


def cmd_sweep(args: argparse.Namespace) -> int:
    from usbench.config import SweepConfig
    from usbench.runner import check_model
    from usbench.sweep import sweep

    overrides, augment = _augmentation(args.augment, _set_pairs(args.overrides))
    cfg = SweepConfig(data=_data_config(args),
                      model=args.model, features=args.features, trials=args.trials,
                      timeout=args.timeout, study=args.study, storage=args.storage,
                      workers=args.workers, nested=args.nested, pruner=args.pruner,
                      seed=args.seed, experiment=args.experiment,
                      tracking_uri=args.tracking_uri, jobs=args.jobs,
                      overrides=tuple(sorted(overrides.items())), augment=augment)
    check_model(cfg.model, cfg.features, dict(cfg.overrides))
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
        _print_fold_plan(out.nested_run.fold_plan, out.nested_run.folder)
        print(f"local record: {out.nested_run.folder}")
    else:
        print(f"study '{out.study_name}' in {out.storage}: {out.n_trials} finished trials")
        print(f"best trial {out.best_trial}: accuracy {out.best_value:.3f} (selected on CV: "
              "the same folds chose and scored it; use --nested for an unbiased estimate)")
        print(f"best parameters: {out.best_params}")
        print(f"per-fold accuracy: {folds}")
        _print_fold_plan(out.fold_plan)
        print(f"reproduce with: {out.reproduce}")
    if out.parent_run_id:
        print(f"MLflow sweep run {out.parent_run_id} (trials are its nested runs)")
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from pathlib import Path

    from usbench.leaderboard import leaderboard
    from usbench.paths import results_dir
    from usbench.tracking import default_tracking_uri

    uri = args.tracking_uri or default_tracking_uri(results_dir())
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


def cmd_audit(args: argparse.Namespace) -> int:
    from usbench.audit import audit
    from usbench.runner import check_model

    overrides, augment = _augmentation(args.augment, _set_pairs(args.overrides))
    check_model(args.model, args.features, overrides)
    out = audit(args.model, args.features, overrides=overrides, seed=args.seed,
                augment=augment,
                data=_data_config(args),
                experiment=args.experiment, tracking_uri=args.tracking_uri, jobs=args.jobs)
    f, r = out.folds, out.random
    print()
    print(f"fold protocol (leave-one-fold-out): accuracy {f.accuracy:.3f} ± {f.accuracy_std:.3f}")
    print(f"random stratified split:            accuracy {r.accuracy:.3f} ± {r.accuracy_std:.3f}")
    print(f"inflation of the random split: {100 * out.inflation:+.1f} points")
    plan = out.run.fold_plan
    _print_fold_plan(plan, out.run.folder)
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


def cmd_predict(args: argparse.Namespace) -> int:
    from usbench.paths import results_dir
    from usbench.predict import load_model, top_classes
    from usbench.tracking import default_tracking_uri

    uri = args.tracking_uri or default_tracking_uri(results_dir())
    model = load_model(uri, run_id=args.run, model_uri=args.model)
    import pandas as pd

    table = model.predict(pd.DataFrame({"path": args.clips}))
    failed = 0
    for row in table.to_dict("records"):
        if row["error"]:
            failed += 1
            print(f"usbench: error: {row['error'].rstrip('.')}. Pass audio that libsndfile "
                  "decodes (WAV, FLAC, OGG, AIFF) with finite samples; the other clips "
                  "are classified.", file=sys.stderr)
            continue
        top = "  ".join(f"{name} {prob:.2f}" for name, prob in top_classes(row))
        print(f"{row['path']}: {top}")
    return 2 if failed else 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Check the model and the port, then hand over to ``mlflow models serve``."""
    import os
    import socket

    from usbench.errors import ConfigError
    from usbench.paths import results_dir
    from usbench.predict import load_model
    from usbench.tracking import default_tracking_uri

    uri = args.tracking_uri or default_tracking_uri(results_dir())
    load_model(uri, run_id=args.run, model_uri=args.model)  # refuse a bad model before serving
    with socket.socket() as probe:
        try:
            probe.bind((args.host, args.port))
        except OSError as exc:
            raise ConfigError(
                f"Cannot serve on {args.host}:{args.port} ({exc.strerror or exc}): the port is "
                "taken, probably by another server. Pass --port N with a free port, or stop "
                "the other server.") from None
    model_uri = args.model or f"runs:/{args.run}/model"
    print(f"serving {model_uri} at http://{args.host}:{args.port}/invocations (POST "
          '{"dataframe_records": [{"path": "clip.wav"}]}); Ctrl-C stops it', flush=True)
    # mlflow runs `uvicorn` from PATH: the one installed beside this Python.
    os.environ["PATH"] = os.pathsep.join([os.path.dirname(sys.executable),
                                          os.environ.get("PATH", "")])
    os.environ["MLFLOW_TRACKING_URI"] = uri
    os.environ["MLFLOW_REGISTRY_URI"] = uri
    argv = [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri,
            "--env-manager", "local", "--host", args.host, "--port", str(args.port)]
    os.execv(sys.executable, argv)
    return 0  # not reached


def cmd_ls(args: argparse.Namespace) -> int:
    if args.what == "features":
        return cmd_features_ls(args)
    if args.what == "models":
        from usbench.models import MODELS, get_model

        for name in MODELS:
            spec = get_model(name)
            print(f"{name:<7} {spec.input_kind:<6} {spec.summary}")
        return 0
    from usbench.datasets import DATASETS

    for name in DATASETS:
        spec = DATASETS.get(name)
        print(f"{name}: {spec.summary}")
        print("\n".join(f"    {line}".rstrip() for line in spec.card().splitlines()))
        print()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        if getattr(args, "weights", None) is not None:
            from usbench.features import with_weights

            args.features = with_weights(args.features, args.weights)
        return args.func(args)
    except UsbenchError as exc:
        if args.debug:
            raise
        print(f"usbench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
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
