"""``usbench features ls`` and ``usbench features build``."""

from __future__ import annotations

import argparse

from usbench.cli.common import (
    add_data_args,
    add_weights_arg,
    data_config,
    positive_int,
    print_fold_plan,
)


def add(sub) -> None:
    """Register the subcommand(s) and their arguments."""
    feats = sub.add_parser("features", help="list or build cached feature sets")
    feats_sub = feats.add_subparsers(dest="action", metavar="ACTION", required=True)
    feats_sub.add_parser("ls", help="list feature sets").set_defaults(func=cmd_features_ls)
    build = feats_sub.add_parser("build", help="extract a feature set into the cache")
    build.add_argument("--features", required=True, metavar="NAME")
    add_weights_arg(build)
    add_data_args(build)
    build.add_argument("--jobs", type=positive_int, metavar="N",
                       help="worker processes (default: one thread per core in this process; "
                            "processes with --augment)")
    build.add_argument("--skip-bad", action="store_true",
                       help="leave out clips that fail to decode (listed in the manifest)")
    build.add_argument("--chunk-size", type=positive_int, metavar="N",
                       help="clips per cache shard, the unit of resumption (default 64)")
    build.set_defaults(func=cmd_features_build)


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
    from usbench.build import build_features
    from usbench.config import BuildConfig
    from usbench.features import check_name, get_feature_set

    check_name(args.features)
    get_feature_set(args.features)  # an encoder's card and model are checked before any clip
    cfg = BuildConfig(data=data_config(args), features=args.features, jobs=args.jobs,
                      skip_bad=args.skip_bad,
                      **({} if args.chunk_size is None else {"chunk_size": args.chunk_size}))
    built = build_features(cfg)
    m, ds = built.matrix, built.dataset
    source = "loaded from cache" if m.computed == 0 else f"extracted {m.computed:,} clips"
    shape = "x".join(map(str, m.X.shape[1:]))
    print(f"{ds.name}: {m.X.shape[0]:,} clips -> {args.features} ({shape}, float32), "
          f"{source} in {built.seconds:.2f} s")
    print_fold_plan(ds.fold_plan)
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
