"""A run's record: its config id, its params, metrics, tags and artifacts, written locally and
then logged to MLflow."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from functools import partial

from usbench.build import Inputs
from usbench.features.base import FeatureSet
from usbench.features.combined import Combined

log = logging.getLogger("usbench")


class Tag:
    """The names of a run's MLflow tags (and a study's user attributes) that usbench writes
    and reads back: each is spelt here only."""

    KIND = "usbench.kind"
    SELECTION = "usbench.selection"
    PARTIAL = "usbench.partial"
    STUDY = "usbench.study"
    TRIAL = "usbench.trial"
    TRIAL_STATE = "usbench.trial_state"
    ERROR = "usbench.error"
    NESTED_OUTER = "usbench.nested_outer"
    WORKER = "usbench.worker"
    DATASET = "usbench.dataset"
    DATASET_FINGERPRINT = "usbench.dataset_fingerprint"
    DATASET_CLIPS = "usbench.dataset_clips"
    CONFIG_ID = "usbench.config_id"
    FEATURES_KEY = "usbench.features_key"
    FOLDS = "usbench.folds"
    FOLD_PLAN = "usbench.fold_plan"
    GIT_COMMIT = "usbench.git_commit"
    AUGMENT = "usbench.augment"
    PRETRAINED = "usbench.pretrained"
    ENCODER = "usbench.encoder"
    ENCODER_WEIGHTS = "usbench.encoder.weights_sha256"
    ENCODER_PRETRAINING = "usbench.encoder.pretraining"
    ENCODER_LICENCE = "usbench.encoder.licence"
    ENCODER_OVERLAP = "usbench.encoder.overlap"
    BEST_TRIAL = "usbench.best_trial"
    BEST_PARAMS = "usbench.best_params"
    REPRODUCE = "usbench.reproduce"
    NESTED_RUN = "usbench.nested_run"
    LEAKY_RECORDINGS = "usbench.leaky_recordings"
    DATASETS = "usbench.datasets"
    MLFLOW_PARENT_RUN_ID = "usbench.mlflow_parent_run_id"
    TRACKING_URI = "usbench.tracking_uri"
    DEVICE = "usbench.device"
    VERSION_PREFIX = "usbench.version."
    PROCESS = "usbench.process"
    LOCAL_RECORD = "usbench.local_record"


@dataclass(frozen=True)
class RunOutcome:
    """A recorded evaluation: scores, the local record folder and the MLflow run id (or None)."""

    config_id: str
    scores: object
    folds: list
    folder: object
    run_id: str | None
    tracking_uri: str
    partial: bool
    fold_plan: object = None


ALL_LIBRARIES = ("usbench", "numpy", "scipy", "scikit-learn", "librosa", "soundfile",
                 "tensorflow-cpu", "tensorflow", "keras", "optuna")


def _versions(names: tuple[str, ...] = ALL_LIBRARIES) -> dict[str, str]:
    """{distribution: version} of the installed ones among `names`."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def _git_commit() -> str:
    import subprocess

    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=5, check=True)
        return done.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@dataclass(frozen=True, kw_only=True)
class RecordSpec:
    """How to file one evaluation in MLflow and under ``results/runs/``.

    Attributes:
        kind: ``run``, ``sweep`` or ``trial`` (tag ``usbench.kind``).
        selection: how the configuration was chosen (tag ``usbench.selection``): ``single
            run``, ``selected on CV`` or ``nested``.
        parent_run_id: MLflow parent (sweep) run of a trial.
        extra_tags: more tags (e.g. the Optuna study and trial number).
        extra_metrics: more metrics (e.g. the audit's random-split accuracy).
        identity: more of what makes the configuration (a nested sweep's chosen parameters
            and settings); enters the ``config_id``.
    """

    tracking_uri: str | None = None
    experiment: str | None = None
    kind: str = "run"
    selection: str = "single run"
    parent_run_id: str | None = None
    extra_tags: dict = field(default_factory=dict)
    extra_metrics: dict = field(default_factory=dict)
    identity: dict = field(default_factory=dict)
    register: str | None = None


def feature_params(fs: FeatureSet) -> dict:
    """The feature spec as run params: ``features.<field>``, and ``features.<i>.<field>`` for
    the i-th part of a combined set."""
    if isinstance(fs, Combined):
        return {f"features.{i}.{k}": v for i, part in enumerate(fs.parts)
                for k, v in part.spec().items()}
    return {f"features.{k}": v for k, v in fs.spec().items()}


def encoder_tags(fs: FeatureSet) -> dict[str, str]:
    """``usbench.pretrained`` ("true" when any part is a pretrained encoder, whose name,
    weights digest, pretraining data, licence and overlap follow as ``usbench.encoder*``)."""
    pretrained = bool(getattr(fs, "pretrained", False))
    tags = {Tag.PRETRAINED: str(pretrained).lower()}
    if pretrained:
        info = fs.encoder_info()
        tags |= {Tag.ENCODER: info["name"], Tag.ENCODER_WEIGHTS: info["weights_sha256"],
                 Tag.ENCODER_PRETRAINING: info["pretraining"],
                 Tag.ENCODER_LICENCE: info["licence"], Tag.ENCODER_OVERLAP: info["overlap"]}
    return tags


def make_config_id(*, dataset: str, features_key: str, model: str, params: dict, folds: list,
                   seed: int, augment: dict | None = None, extra: dict | None = None) -> str:
    """The id of one configuration (the leaderboard keeps one row per id): 12 hex digits.

    It covers the dataset fingerprint, the features key (which covers the feature spec and the
    extraction libraries), the model family and every parameter, the tested folds, the seed,
    the augmentation spec, the versions of the family's libraries and `extra`.
    """
    from usbench.config import fingerprint
    from usbench.models import get_model

    identity = {"dataset": dataset, "features_key": features_key, "model": model,
                "params": params, "folds": list(folds), "seed": seed,
                "libraries": _versions(get_model(model).libraries), **(extra or {})}
    if augment is not None:
        identity["augment"] = augment
    return fingerprint(identity)


def config_id_of(*, model: str, params: dict, seed: int, inp: Inputs, folds: list,
                 extra: dict | None = None) -> str:
    """`make_config_id` of evaluating `model` on `inp` over test `folds`: known before any
    fold is trained (``usbench run`` keeps its finished folds under it)."""
    return make_config_id(dataset=inp.dataset.fingerprint(), features_key=inp.built.matrix.key,
                          model=model, params=params, folds=folds, seed=seed,
                          augment=None if inp.augment is None else inp.augment.spec(),
                          extra=extra)


def record(*, model: str, features: str, params: dict, seed: int, inp: Inputs, results: list,
           how: RecordSpec, config: dict, final_estimator=None) -> RunOutcome:
    """Write the local record of an evaluation, then log it to MLflow.

    Args:
        final_estimator: a model fitted on all present folds, saved for ``usbench predict``.
    """
    from usbench import metrics, outputs, tracking
    from usbench.config import fingerprint
    from usbench.device import training_device
    from usbench.metric_keys import metric_keys
    from usbench.models import get_model
    from usbench.paths import results_dir

    ds, m = inp.dataset, inp.built.matrix
    test_folds = [r.fold for r in results]
    scores = metrics.score(results, ds.classes)
    config_id = config_id_of(model=model, params=params, seed=seed, inp=inp, folds=test_folds,
                             extra=how.identity)
    results_root = results_dir()
    uri = tracking.tracking_uri(how.tracking_uri)
    experiment = how.experiment or ds.name
    stamp = time.strftime("%Y%m%d-%H%M%S")
    from usbench.features import slug

    run_name = f"{model}-{slug(features)}-{config_id[:6]}-{stamp}"
    if how.kind == "trial" and Tag.TRIAL in how.extra_tags:
        run_name = f"trial-{how.extra_tags['usbench.trial']}-{run_name}"
    folder = outputs.new_folder(results_root / "runs", run_name)
    run_name = folder.name  # unique: -2, -3, ... for runs started in the same second
    # MLflow refuses some characters in a metric key: the real class names go with the result.
    recall_keys = metric_keys("recall.", [c for c, v in scores.class_recall.items() if v == v])
    run_params = {"model": model, "features": features, "dataset": ds.name,
                  "folds": ",".join(map(str, test_folds)), "seed": seed,
                  **{f"model.params.{k}": v for k, v in params.items()},
                  **feature_params(inp.built.feature_set),
                  "augment": inp.augment is not None,
                  **({f"augment.{k}": v for k, v in inp.augment.spec().items()}
                     if inp.augment is not None else {})}
    run_metrics = {"accuracy": scores.accuracy, "accuracy_std": scores.accuracy_std,
                   "macro_f1": scores.macro_f1,
                   "fit_seconds": sum(r.fit_seconds for r in results),
                   "predict_seconds": sum(r.predict_seconds for r in results),
                   **{k: scores.class_recall[c] for k, c in recall_keys.items()},
                   **how.extra_metrics}
    tags = {Tag.CONFIG_ID: config_id, Tag.FEATURES_KEY: m.key,
            Tag.DATASET_FINGERPRINT: ds.fingerprint(), Tag.DATASET: ds.name,
            Tag.DATASET_CLIPS: str(len(ds.clips)),
            Tag.FOLDS: ds.fold_plan.origin, Tag.FOLD_PLAN: ds.fold_plan.describe(),
            Tag.PARTIAL: str(inp.partial).lower(), Tag.KIND: how.kind,
            Tag.SELECTION: how.selection, Tag.GIT_COMMIT: _git_commit(),
            Tag.DEVICE: training_device(get_model(model)).label,
            Tag.AUGMENT: "off" if inp.augment is None else fingerprint(inp.augment.spec()),
            **encoder_tags(inp.built.feature_set),
            **{f"{Tag.VERSION_PREFIX}{k}": v for k, v in _versions().items()},
            **{k: str(v) for k, v in how.extra_tags.items()}}
    result = {
        "config_id": config_id, "run_name": run_name, "params": run_params,
        "metrics": run_metrics, "tags": tags, "classes": list(ds.classes),
        "folds": [{"fold": r.fold, "clips": len(r.test_index), "train_clips": r.n_train,
                   "accuracy": r.accuracy, "fit_seconds": r.fit_seconds,
                   "predict_seconds": r.predict_seconds, "history": r.history}
                  for r in results],
        "tracking_uri": uri, "experiment": experiment, "mlflow_run_id": None,
        "metric_names": recall_keys,  # MLflow metric key -> class name
    }
    model = None
    with outputs.staged(folder) as tmp:
        outputs.write_run(tmp, result, config, results, scores, ds.classes, inp.clip_ids)
        if ds.fold_plan.origin != "official":
            # Folds usbench made (or the user's): the assignment travels with the result.
            ds.clips[["clip_id", "label", "fold", "recording"]].to_csv(tmp / "folds.csv",
                                                                      index=False)
        if final_estimator is not None:
            from usbench.saved_model import bundle, store

            # The native estimator, logged with the run's artifacts as ``estimator/``; the
            # MLflow model ``model`` wraps the same folder.
            model = store.ModelLog(bundle=folder / "estimator", classes=tuple(ds.classes),
                                   example=str(ds.clips["path"].iloc[0]),
                                   register=how.register)
            bundle.save(tmp / "estimator", final_estimator, {
                "model": model, "params": params, "classes": list(ds.classes),
                "feature_spec": inp.built.feature_set.spec(), "feature_name": features,
                "config_id": config_id,
                "features_key": m.key, "trained_on_folds": sorted(set(inp.folds.tolist())),
            })
    timed = all(r.started for r in results)  # the run spans the evaluation, not the logging
    inputs = (
        tracking.DatasetInfo(
            name=ds.name, digest=ds.fingerprint(), source=str(ds.root), context="evaluation",
            profile={"clips": len(ds.clips), "folds": sorted(set(ds.clips["fold"].tolist())),
                     "tested_folds": test_folds, "classes": list(ds.classes),
                     "fold_plan": ds.fold_plan.describe(), "partial": bool(inp.partial)}),
        tracking.DatasetInfo(
            name=f"{ds.name} {features}", digest=m.key, source=str(m.path), context="features",
            profile={"shape": list(m.X.shape), "dtype": str(m.X.dtype),
                     "feature_set": inp.built.feature_set.spec()}),
    )
    # A trial's result is also in the sweep's Optuna storage: a failure to log it is a warning.
    send = tracking.log_run_or_warn if how.kind in ("trial", "inner_trial") else tracking.log_run
    run_id = send(uri, results_root / "mlartifacts", tracking.RunLog(
        experiment=experiment, run_name=run_name, params=run_params, metrics=run_metrics,
        start_ms=int(1000 * min(r.started for r in results)) if timed else None,
        end_ms=int(1000 * max(r.ended for r in results)) if timed else None, inputs=inputs,
        before_finish=None if model is None else partial(store.log_model, uri, model=model),
        step_metrics={"fold_accuracy": [(r.fold, r.accuracy) for r in results],
                      # n_test / n_train per fold: the leaderboard's variance correction.
                      "fold_test_clips": [(r.fold, len(r.test_index)) for r in results],
                      "fold_train_clips": [(r.fold, r.n_train) for r in results]},
        tags=tags, artifacts=folder, parent_run_id=how.parent_run_id))
    if run_id:
        from usbench.cache import atomic_write

        result["mlflow_run_id"] = run_id
        atomic_write(folder / "result.json", lambda p: outputs.write_json(p, result))
    return RunOutcome(config_id=config_id, scores=scores, folds=results, folder=folder,
                      run_id=run_id, tracking_uri=uri, partial=inp.partial,
                      fold_plan=ds.fold_plan)


def record_failure(*, name: str, model: str, features: str, params: dict, error: str,
                   tags: dict, experiment: str, tracking_uri: str | None,
                   parent_run_id: str | None = None) -> str | None:
    """The record of an evaluation that failed before any fold (a sweep's trial): its error in
    ``results/runs/<name>/error.txt``, logged to MLflow with its params and tags.

    Returns:
        The MLflow run id, or None when tracking failed (a warning says why; the run is marked
        FAILED).
    """
    from usbench import tracking
    from usbench.paths import results_dir
    from usbench.redact import redact

    results = results_dir()
    folder = results / "runs" / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "error.txt").write_text(redact(error) + "\n")
    return tracking.log_run_or_warn(
        tracking.tracking_uri(tracking_uri), results / "mlartifacts",
        tracking.RunLog(experiment=experiment, run_name=name,
                        params={"model": model, "features": features,
                                **{f"model.params.{k}": v for k, v in params.items()}},
                        metrics={}, step_metrics={},
                        tags={k: str(v) for k, v in tags.items()},
                        artifacts=folder, parent_run_id=parent_run_id))

