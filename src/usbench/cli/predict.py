"""``usbench predict`` and ``usbench serve``: a saved model at work."""

from __future__ import annotations

import argparse
import os
import sys

from usbench.cli.common import positive_float, positive_int
from usbench.saved_model.inputs import InputPolicy


def add(sub) -> None:
    """Register the subcommand(s) and their arguments."""
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
    srv.add_argument("--port", type=positive_int, default=5001, metavar="N",
                     help="port to listen on (default 5001)")
    srv.add_argument("--allow-dir", action="append", metavar="DIR", default=[],
                     help="a folder whose audio files requests may name by path "
                          "(repeatable; default: none, requests send the audio itself)")
    srv.add_argument("--max-seconds", type=positive_float, metavar="S",
                     help="the longest clip decoded, read from its header first "
                          f"(default {InputPolicy.max_seconds:g})")
    srv.add_argument("--max-rows", type=positive_int, metavar="N",
                     help=f"the most clips in one request (default {InputPolicy.max_rows})")
    srv.add_argument("--tracking-uri", metavar="URI",
                     help="MLflow tracking URI (default: sqlite:///results/mlflow.db)")
    srv.set_defaults(func=cmd_serve)


def cmd_predict(args: argparse.Namespace) -> int:
    from usbench.predict import load_model, top_classes
    from usbench.saved_model.inputs import owner_policy
    from usbench.tracking import tracking_uri

    uri = tracking_uri(args.tracking_uri)
    # The user's own files, as given: the serving limits are not theirs.
    model = load_model(uri, run_id=args.run, model_uri=args.model,
                       model_config=owner_policy(args.clips).to_model_config())
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


def serve_policy(args: argparse.Namespace):
    """The InputPolicy of the serve flags (flags not given: the policy's defaults)."""
    from usbench.saved_model.inputs import allowed_dir

    given = {"max_seconds": args.max_seconds, "max_rows": args.max_rows}
    return InputPolicy(allow_dirs=tuple(dict.fromkeys(allowed_dir(d) for d in args.allow_dir)),
                       **{k: v for k, v in given.items() if v is not None})


def cmd_serve(args: argparse.Namespace) -> int:
    """Check the model, the folders and the port, then hand over to ``mlflow models serve``,
    which gives the model its policy (``SERVING_MODEL_CONFIG``)."""
    import json
    import socket

    from mlflow.pyfunc.scoring_server import SERVING_MODEL_CONFIG

    from usbench.errors import ConfigError
    from usbench.predict import load_model
    from usbench.tracking import tracking_uri

    config = serve_policy(args).to_model_config()
    uri = tracking_uri(args.tracking_uri)
    # Refuses a bad model, or one that would not take this policy, before serving.
    load_model(uri, run_id=args.run, model_uri=args.model, model_config=config)
    with socket.socket() as probe:
        try:
            probe.bind((args.host, args.port))
        except OSError as exc:
            raise ConfigError(
                f"Cannot serve on {args.host}:{args.port} ({exc.strerror or exc}): the port is "
                "taken, probably by another server. Pass --port N with a free port, or stop "
                "the other server.") from None
    model_uri = args.model or f"runs:/{args.run}/model"
    paths = (f"paths under {', '.join(config['allow_dirs'])}" if config["allow_dirs"]
             else "no paths")
    print(f"serving {model_uri} at http://{args.host}:{args.port}/invocations (POST "
          '{"dataframe_records": [{"audio": "<base64 of clip.wav>"}]}); reads '
          f"{paths}; clips up to {config['max_seconds']:g} s, {config['max_rows']} per "
          "request; Ctrl-C stops it", flush=True)
    # mlflow runs `uvicorn` from PATH: the one installed beside this Python.
    os.environ["PATH"] = os.pathsep.join([os.path.dirname(sys.executable),
                                          os.environ.get("PATH", "")])
    os.environ["MLFLOW_TRACKING_URI"] = uri
    os.environ["MLFLOW_REGISTRY_URI"] = uri
    # MLflow's scoring server loads the model with this model_config.
    os.environ[SERVING_MODEL_CONFIG] = json.dumps(config)
    argv = [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri,
            "--env-manager", "local", "--host", args.host, "--port", str(args.port)]
    os.execv(sys.executable, argv)
    return 0  # not reached
