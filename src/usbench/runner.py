"""The wiring: names -> dataset -> cached features (-> CV -> tracking, in later stages).

No model- or feature-specific code lives here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from usbench.cache import FeatureMatrix, FeatureStore, features_key, key_inputs
from usbench.config import BuildConfig
from usbench.datasets.base import Dataset
from usbench.errors import DatasetError
from usbench.features.base import FeatureSet

log = logging.getLogger("usbench")


@dataclass(frozen=True)
class BuiltFeatures:
    """A dataset with its feature matrix. `seconds`: wall time of extraction or cache load."""

    dataset: Dataset
    feature_set: FeatureSet
    matrix: FeatureMatrix
    seconds: float


def decoder_spec(fs: FeatureSet) -> dict:
    """How waveforms are made for `fs` (part of the features key)."""
    from usbench import audio

    return {"sr": fs.sr, "mono": "mean", "resampler": audio.RESAMPLER,
            "version": audio.DECODER_VERSION}


def store_for(ds: Dataset, fs: FeatureSet) -> tuple[FeatureStore, dict]:
    """The cache entry of (dataset, feature set) and the inputs of its key."""
    from usbench.paths import cache_dir, writable_dir

    inputs = key_inputs(ds.fingerprint(), ds.files_stamp(), fs.spec(), decoder_spec(fs))
    return FeatureStore(writable_dir(cache_dir()), fs.name, features_key(inputs)), inputs


def _bad_clips_error(bad: list[dict], n_clips: int, root) -> DatasetError:
    from pathlib import Path

    first = bad[0]
    rel = Path(first["path"]).relative_to(root) if root else first["path"]
    return DatasetError(
        f"{len(bad):,} of {n_clips:,} clips could not be decoded (first: {rel}: "
        f"{first['reason']}). Fix or remove them, or pass --skip-bad to leave them out "
        "(finished clips stay cached)."
    )


def build_features(cfg: BuildConfig, *, progress: bool = True,
                   on_chunk: Callable[[int, int], None] | None = None) -> BuiltFeatures:
    """Open the dataset, and extract (or load from the cache) the feature matrix.

    Args:
        cfg: the build configuration.
        progress: show a progress bar on a terminal.
        on_chunk: called with (chunk index, clips) after each chunk is stored.

    Raises:
        DatasetError: the dataset is incomplete or broken, or clips fail to decode and
            ``cfg.skip_bad`` is False (the chunks already extracted stay cached).
    """
    from usbench.datasets import open_dataset
    from usbench.extract import default_jobs, run_chunks
    from usbench.features import get_feature_set

    fs = get_feature_set(cfg.features)
    ds = open_dataset(cfg.data)
    start = time.perf_counter()
    store, inputs = store_for(ds, fs)
    if store.is_complete():
        matrix = store.load()
    else:
        manifest = store.begin({
            "key": store.key, "key_inputs": inputs, "dataset": ds.name,
            "root": str(ds.root), "n_clips": len(ds.clips), "chunk_size": cfg.chunk_size,
            "shape": list(fs.shape), "dtype": "float32",
        })
        size = manifest["chunk_size"]
        ids, paths = ds.clips["clip_id"].tolist(), ds.clips["path"].tolist()
        chunks = [(ids[a : a + size], paths[a : a + size]) for a in range(0, len(ids), size)]
        todo = sorted(set(range(len(chunks))) - store.done_shards())
        n_todo = sum(len(chunks[i][0]) for i in todo)
        if n_todo < len(ids):
            log.info(f"Resuming: {len(ids) - n_todo:,} clips already cached, {n_todo:,} to go")
        from tqdm import tqdm

        with tqdm(total=n_todo, desc=f"{fs.name}", unit="clip",
                  disable=None if progress else True) as bar:
            def step(i: int, n: int) -> None:
                bar.update(n)
                if on_chunk:
                    on_chunk(i, n)

            jobs = cfg.jobs or default_jobs()
            run_chunks(store, fs, chunks, todo, jobs, on_chunk=step)
        bad = store.bad_so_far()
        if bad and not cfg.skip_bad:
            raise _bad_clips_error(bad, len(ids), ds.root)
        store.finalize(len(chunks), fs.shape)
        matrix = store.load(computed=n_todo)
    if matrix.bad and not cfg.skip_bad:
        raise _bad_clips_error(matrix.bad, len(ds.clips), ds.root)
    return BuiltFeatures(dataset=ds, feature_set=fs, matrix=matrix,
                         seconds=time.perf_counter() - start)



@dataclass(frozen=True)
class RunOutcome:
    """A finished run: its scores, the local record folder and the MLflow run id (or None)."""

    config_id: str
    scores: object
    folds: list
    folder: object
    run_id: str | None
    tracking_uri: str
    partial: bool


def _versions(keras: bool) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    names = ["usbench", "numpy", "scikit-learn", "librosa", "soundfile"]
    if keras:
        names += ["tensorflow-cpu", "tensorflow", "keras"]
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


def check_finite(X, clip_ids: list[str]) -> None:
    """Raise FeatureError naming the clips whose features hold NaN or infinite values."""
    import numpy as np

    from usbench.errors import FeatureError

    finite = np.isfinite(np.asarray(X).reshape(len(X), -1)).all(axis=1)
    if not finite.all():
        bad = [clip_ids[i] for i in np.flatnonzero(~finite)]
        raise FeatureError(
            f"{len(bad)} clip(s) have NaN or infinite feature values (first: "
            f"{', '.join(bad[:3])}). Check those files, or rebuild the cache entry."
        )


def prepare_model(cfg):
    """Resolve the model family, its typed parameters, and check it fits the feature set.

    Everything here is checked before any audio is read or any model is fitted.
    """
    from usbench.errors import ConfigError
    from usbench.features import FEATURES, get_feature_set
    from usbench.models import MODELS, get_model

    MODELS.check(cfg.model)
    FEATURES.check(cfg.features)
    spec = get_model(cfg.model)
    fs = get_feature_set(cfg.features)
    if spec.input_kind != fs.kind:
        matching = [n for n in FEATURES if get_feature_set(n).kind == spec.input_kind]
        raise ConfigError(
            f"Model '{cfg.model}' needs {spec.input_kind} features but '{cfg.features}' gives "
            f"{fs.kind}s. Use --features {' or '.join(matching)}."
        )
    overrides = {k.removeprefix("model.params."): v for k, v in cfg.overrides}
    return spec, spec.params(overrides)


def run_experiment(cfg, *, progress: bool = True) -> RunOutcome:
    """Evaluate one configuration under leave-one-fold-out, record it locally, log it.

    Args:
        cfg: a RunConfig.
    """
    import numpy as np

    from usbench import cv, metrics, outputs, tracking
    from usbench.config import BuildConfig, fingerprint
    from usbench.models.base import BuildContext
    from usbench.paths import results_dir

    spec, params = prepare_model(cfg)
    built = build_features(BuildConfig(data=cfg.data, features=cfg.features, jobs=cfg.jobs),
                           progress=progress)
    ds, m = built.dataset, built.matrix
    check_finite(m.X, m.clip_ids)
    clips = ds.clips.set_index("clip_id").loc[m.clip_ids]
    X = np.asarray(m.X, dtype=np.float32)
    y = clips["class_id"].to_numpy()
    folds = clips["fold"].to_numpy()
    recordings = clips["recording"].to_numpy()
    test_folds = cv.check_folds(folds, cfg.folds)
    partial = ds.partial or bool(m.bad)
    config_id = fingerprint({"dataset": ds.fingerprint(), "features_key": m.key,
                             "model": cfg.model, "params": params, "folds": test_folds,
                             "seed": cfg.seed})

    def make(fold: int):
        ctx = BuildContext(n_classes=len(ds.classes), input_shape=X.shape[1:], seed=cfg.seed)
        return spec.build(params, ctx)

    def report(r) -> None:
        log.info(f"fold {r.fold:>2}: {len(r.test_index):>5} test clips, {r.n_train:>5} train  "
                 f"accuracy {r.accuracy:.3f}  (fit {r.fit_seconds:.1f} s)")

    log.info(f"{cfg.model} on {cfg.features}, {ds.name}: leave-one-fold-out over folds "
             f"{', '.join(map(str, test_folds))}")
    results = cv.leave_one_fold_out(make, X, y, folds, recordings, len(ds.classes),
                                    test_folds=test_folds, on_fold=report)
    scores = metrics.score(results, ds.classes)

    results_root = results_dir()
    uri = cfg.tracking_uri or tracking.default_tracking_uri(results_root)
    experiment = cfg.experiment or ds.name
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_name = f"{cfg.model}-{cfg.features}-{config_id[:6]}-{stamp}"
    keras = spec.name in ("mlp", "cnn")
    run_params = {"model": cfg.model, "features": cfg.features, "dataset": ds.name,
                  "folds": ",".join(map(str, test_folds)), "seed": cfg.seed,
                  **{f"model.params.{k}": v for k, v in params.items()},
                  **{f"features.{k}": v for k, v in built.feature_set.spec().items()}}
    fit_s = sum(r.fit_seconds for r in results)
    pred_s = sum(r.predict_seconds for r in results)
    run_metrics = {"accuracy": scores.accuracy, "accuracy_std": scores.accuracy_std,
                   "macro_f1": scores.macro_f1, "fit_seconds": fit_s, "predict_seconds": pred_s,
                   **{f"recall.{c}": v for c, v in scores.class_recall.items()
                      if v == v}}
    tags = {"usbench.config_id": config_id, "usbench.features_key": m.key,
            "usbench.dataset_fingerprint": ds.fingerprint(), "usbench.dataset": ds.name,
            "usbench.partial": str(partial).lower(), "usbench.kind": "run",
            "usbench.selection": "single run", "usbench.git_commit": _git_commit(),
            **{f"usbench.version.{k}": v for k, v in _versions(keras).items()}}
    result = {
        "config_id": config_id, "run_name": run_name, "params": run_params,
        "metrics": run_metrics, "tags": tags, "classes": list(ds.classes),
        "folds": [{"fold": r.fold, "clips": len(r.test_index), "train_clips": r.n_train,
                   "accuracy": r.accuracy, "fit_seconds": r.fit_seconds,
                   "predict_seconds": r.predict_seconds, "history": r.history}
                  for r in results],
        "tracking_uri": uri, "experiment": experiment, "mlflow_run_id": None,
    }
    folder = outputs.write_run(results_root / "runs" / run_name, result, cfg.to_dict(),
                               results, scores, ds.classes, m.clip_ids)
    if cfg.save_model:
        from usbench import bundle

        log.info(f"--save-model: fitting {cfg.model} on all {len(y):,} clips of the present folds")
        final = make(0)
        final.fit(X, y, groups=recordings)
        bundle.save(folder / "model", final, {
            "model": cfg.model, "params": params, "classes": list(ds.classes),
            "feature_spec": built.feature_set.spec(), "config_id": config_id,
            "features_key": m.key, "trained_on_folds": sorted(set(folds.tolist())),
        })
    run_id = tracking.log_run(uri, results_root / "mlartifacts", tracking.RunLog(
        experiment=experiment, run_name=run_name, params=run_params, metrics=run_metrics,
        step_metrics={"fold_accuracy": [(r.fold, r.accuracy) for r in results]},
        tags=tags, artifacts=folder))
    if run_id:
        import json

        result["mlflow_run_id"] = run_id
        (folder / "result.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    return RunOutcome(config_id=config_id, scores=scores, folds=results, folder=folder,
                      run_id=run_id, tracking_uri=uri, partial=partial)
