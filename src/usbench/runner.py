"""The wiring: names -> dataset -> cached features -> leave-one-fold-out -> the run's record.

No model- or feature-specific code lives here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial

from usbench.cache import FeatureMatrix, FeatureStore, features_key, key_inputs
from usbench.config import BuildConfig
from usbench.datasets.base import Dataset
from usbench.errors import DatasetError
from usbench.features.base import FeatureSet
from usbench.features.combined import Combined

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


def store_for(ds: Dataset, fs: FeatureSet, augment=None) -> tuple[FeatureStore, dict]:
    """The cache entry of (dataset, feature set[, augmentation]) and the inputs of its key.

    With `augment` (an ``AudioAugment``) the entry holds the features of the clips' variants,
    under ``<feature name>-variants`` and a key that also covers the augmentation spec and
    the libraries that compute it.
    """
    from usbench.paths import cache_dir, writable_dir

    inputs = key_inputs(ds.content_fingerprint(), ds.files_stamp(), fs.spec(),
                        decoder_spec(fs))
    name = fs.name
    if augment is not None:
        from importlib.metadata import version

        inputs["augment"] = augment.spec()
        inputs["libraries"] = {**inputs["libraries"], "pedalboard": version("pedalboard")}
        name = f"{fs.name}-variants"
    return FeatureStore(writable_dir(cache_dir()), name, features_key(inputs)), inputs


def _bad_clips_error(bad: list[dict], n_clips: int, root) -> DatasetError:
    from pathlib import Path

    first = bad[0]
    rel = Path(first["path"]).relative_to(root) if root else first["path"]
    return DatasetError(
        f"{len(bad):,} of {n_clips:,} clips could not be decoded or embedded (first: {rel}: "
        f"{first['reason']}). Fix or remove them, or pass --skip-bad to leave them out "
        "(finished clips stay cached)."
    )


def build_features(cfg: BuildConfig, *, progress: bool = True,
                   on_chunk: Callable[[int, int], None] | None = None,
                   dataset: Dataset | None = None) -> BuiltFeatures:
    """Open the dataset, and extract (or load from the cache) the feature matrix.

    Args:
        cfg: the build configuration.
        progress: show a progress bar on a terminal.
        on_chunk: called with (chunk index, clips) after each chunk is stored.
        dataset: the dataset ``cfg.data`` names, when the caller has opened it already.

    Raises:
        DatasetError: the dataset is incomplete or broken, or clips fail to decode and
            ``cfg.skip_bad`` is False (the chunks already extracted stay cached).
    """
    from usbench.datasets import open_dataset
    from usbench.extract import default_jobs, run_chunks
    from usbench.features import get_feature_set

    fs = get_feature_set(cfg.features)
    ds = dataset if dataset is not None else open_dataset(cfg.data)
    if isinstance(fs, Combined):
        return _build_combined(cfg, fs, progress=progress, on_chunk=on_chunk, dataset=ds)
    start = time.perf_counter()
    store, inputs = store_for(ds, fs, cfg.augment)
    shape = fs.shape if cfg.augment is None else (cfg.augment.variants, *fs.shape)
    if store.is_complete():
        matrix = store.load()
    else:
        manifest = store.begin({
            "key": store.key, "key_inputs": inputs, "dataset": ds.name,
            "root": str(ds.root), "n_clips": ds.n_clips, "chunk_size": cfg.chunk_size,
            "shape": list(shape), "dtype": "float32",
        })
        size = manifest["chunk_size"]
        ids, paths = ds.column("clip_id"), ds.column("path")
        chunks = [(ids[a : a + size], paths[a : a + size]) for a in range(0, len(ids), size)]
        for path, reason in store.drop_damaged_shards():
            log.warning(f"warning: cache chunk {path} was damaged ({reason}); it is "
                        "recomputed.")
        todo = sorted(set(range(len(chunks))) - store.done_shards())
        n_todo = sum(len(chunks[i][0]) for i in todo)
        if n_todo < len(ids):
            log.info(f"Resuming: {len(ids) - n_todo:,} clips already cached, {n_todo:,} to go")
        from tqdm import tqdm

        desc = fs.name if cfg.augment is None else f"{fs.name} variants"
        with tqdm(total=n_todo, desc=desc, unit="clip",
                  disable=None if progress else True) as bar:
            def step(i: int, n: int) -> None:
                bar.update(n)
                if on_chunk:
                    on_chunk(i, n)

            # Without --jobs: threads in this process (no spawning, no second import of
            # librosa; measured faster at 300 and 1,745 clips); audio augmentation is mostly
            # Python, so it keeps worker processes.
            threads = cfg.jobs is None and cfg.augment is None
            run_chunks(store, fs, chunks, todo, cfg.jobs or default_jobs(), on_chunk=step,
                       augment=cfg.augment, threads=threads)
        bad = store.bad_so_far()
        if bad and not cfg.skip_bad:
            raise _bad_clips_error(bad, len(ids), ds.root)
        store.finalize(len(chunks), shape)
        matrix = store.load(computed=n_todo)
    if matrix.bad and not cfg.skip_bad:
        raise _bad_clips_error(matrix.bad, ds.n_clips, ds.root)
    return BuiltFeatures(dataset=ds, feature_set=fs, matrix=matrix,
                         seconds=time.perf_counter() - start)


def _build_combined(cfg: BuildConfig, fs: Combined, *, progress: bool, on_chunk,
                    dataset: Dataset) -> BuiltFeatures:
    """Build (or load) each part, then put their columns side by side for the clips every
    part has (a clip bad in one part is bad for the whole)."""
    import numpy as np

    from usbench.config import fingerprint
    from usbench.features import parts_of

    start = time.perf_counter()
    built = [build_features(replace(cfg, features=name), progress=progress,
                            on_chunk=on_chunk, dataset=dataset)
             for name in parts_of(fs.label)]
    matrices = [b.matrix for b in built]
    common = set(matrices[0].clip_ids).intersection(*(m.clip_ids for m in matrices[1:]))
    ids = [c for c in dataset.column("clip_id") if c in common]

    def rows(m: FeatureMatrix) -> np.ndarray:
        if list(m.clip_ids) == ids:
            return np.asarray(m.X)
        where = {c: i for i, c in enumerate(m.clip_ids)}
        return np.asarray(m.X)[[where[c] for c in ids]]

    X = np.concatenate([rows(m) for m in matrices], axis=1)
    bad, seen = [], set()
    for m in matrices:
        for b in m.bad:
            if b["clip_id"] not in seen:
                seen.add(b["clip_id"])
                bad.append(b)
    matrix = FeatureMatrix(X=X, clip_ids=ids, key=fingerprint([m.key for m in matrices]),
                           bad=bad, computed=sum(m.computed for m in matrices),
                           reused=sum(m.reused for m in matrices), path=matrices[0].path,
                           notes=list(matrices[0].notes))
    return BuiltFeatures(dataset=dataset, feature_set=fs, matrix=matrix,
                         seconds=time.perf_counter() - start)



@dataclass(frozen=True)
class Inputs:
    """What every evaluation of one (dataset, feature set) shares: loaded once.

    Attributes:
        X: float32, shape (n_clips, *feature shape); y, folds, recordings: shape (n_clips,).
    """

    built: BuiltFeatures
    X: object = field(repr=False)
    y: object = field(repr=False)
    folds: object = field(repr=False)
    recordings: object = field(repr=False)
    clip_ids: list = field(repr=False, default_factory=list)
    variants: object = field(repr=False, default=None)
    augment: object = None

    @property
    def dataset(self) -> Dataset:
        return self.built.dataset

    @property
    def partial(self) -> bool:
        return self.built.dataset.partial or bool(self.built.matrix.bad)

    def subset(self, mask) -> Inputs:
        """The rows where `mask` is True (e.g. every fold but a nested outer test fold)."""
        import numpy as np

        keep = np.flatnonzero(mask)
        return replace(self, X=self.X[keep], y=self.y[keep], folds=self.folds[keep],
                       recordings=self.recordings[keep],
                       clip_ids=[self.clip_ids[i] for i in keep],
                       variants=None if self.variants is None else self.variants[keep])


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


# How an error names what a feature set gives, by input kind.
KIND_WORDS = {"vector": "one vector per clip", "matrix": "one matrix per clip"}


def check_model(model: str, features: str, overrides: dict | None = None):
    """Resolve a model family and its typed parameters; check it fits the feature set.

    Everything here is checked before any audio is read or any model is fitted.

    Returns:
        (spec, params).
    """
    from usbench.errors import ConfigError
    from usbench.features import FEATURES, check_name, get_feature_set
    from usbench.models import MODELS, get_model

    MODELS.check(model)
    check_name(features)
    spec = get_model(model)
    fs = get_feature_set(features)
    if spec.input_kind != fs.kind:
        # Built-in hand-made sets only: naming them opens no model.
        matching = [n for n in FEATURES if n != "birdnet"
                    and FEATURES.get(n).kind == spec.input_kind]
        raise ConfigError(
            f"Model '{model}' needs {spec.input_kind} features but '{features}' gives "
            f"{KIND_WORDS[fs.kind]}. Use --features "
            f"{', '.join(matching[:-1]) + ' or ' if len(matching) > 1 else ''}{matching[-1]}."
        )
    overrides = {k.removeprefix("model.params."): v for k, v in (overrides or {}).items()}
    params = spec.params(overrides)
    spec.check_input(params, fs.shape)
    return spec, params


def check_protocol(spec, params: dict, folds, test_folds=None, final_fit: bool = False):
    """Refuse test folds, and parameters the folds cannot serve, before any features are
    built: returns the sorted test folds.

    Args:
        folds: fold of every usable clip (from the dataset table).
        final_fit: a model will also be fitted on every fold (``--save-model``).
    """
    from usbench import cv

    tested = cv.check_folds(folds, test_folds)
    present = sorted(set(int(f) for f in folds))
    spec.check_protocol(params, present, tested)
    if final_fit:
        spec.check_protocol(params, present, None)
    return tested


def prepare_model(cfg):
    """``check_model`` for a RunConfig."""
    return check_model(cfg.model, cfg.features, dict(cfg.overrides))


def load_inputs(data, features: str, *, jobs: int | None = None,
                progress: bool = True, augment=None, dataset: Dataset | None = None) -> Inputs:
    """Open the dataset, load (or build) its features, and check them.

    Args:
        augment: an ``AudioAugment``: also load (or build) the features of every clip's
            audio variants, aligned with the rows of X.
        dataset: the dataset `data` names, when the caller has opened it already.
    """
    import numpy as np

    from usbench.config import BuildConfig
    from usbench.errors import CacheError

    built = build_features(BuildConfig(data=data, features=features, jobs=jobs,
                                       skip_bad=data.skip_bad),
                           progress=progress, dataset=dataset)
    m = built.matrix
    check_finite(m.X, m.clip_ids)
    variants = None
    if augment is not None:
        log.info(f"--augment: {augment.variants} audio variant(s) per clip "
                 f"({', '.join(augment.families)})")
        v = build_features(BuildConfig(data=data, features=features, jobs=jobs,
                                       skip_bad=data.skip_bad, augment=augment),
                           progress=progress,
                           dataset=built.dataset).matrix
        if list(v.clip_ids) != list(m.clip_ids):
            raise CacheError(
                f"The cached variants in {v.path} list other clips than the features in "
                f"{m.path}. Delete {v.path} to rebuild them."
            )
        check_finite(v.X, v.clip_ids)
        variants = v.X
    clips = built.dataset.clips.set_index("clip_id").loc[m.clip_ids]
    return Inputs(built=built, X=np.asarray(m.X, dtype=np.float32),
                  y=clips["class_id"].to_numpy(), folds=clips["fold"].to_numpy(),
                  recordings=clips["recording"].to_numpy(), clip_ids=list(m.clip_ids),
                  variants=variants, augment=augment)


def evaluate(spec, params: dict, inp: Inputs, *, seed: int, test_folds=None, on_fold=None,
             n_jobs: int = 1):
    """Leave-one-fold-out of one configuration on `inp`: a list of FoldResult (folds in
    `n_jobs` worker processes when above 1)."""
    from usbench import cv
    from usbench.models.base import BuildContext

    ctx = BuildContext(n_classes=len(inp.dataset.classes), input_shape=inp.X.shape[1:],
                       seed=seed)
    return cv.leave_one_fold_out(lambda fold: spec.build(params, replace(ctx, test_fold=fold)),
                                 inp.X, inp.y, inp.folds, inp.recordings,
                                 len(inp.dataset.classes), test_folds=test_folds,
                                 on_fold=on_fold, variants=inp.variants, n_jobs=n_jobs)


def log_fold(r) -> None:
    log.info(f"fold {r.fold:>2}: {len(r.test_index):>5} test clips, {r.n_train:>5} train  "
             f"accuracy {r.accuracy:.3f}  (fit {r.fit_seconds:.1f} s)")


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
    """``usbench.pretrained`` ("true" when any part is a pretrained encoder, whose identity,
    weights digest, pretraining data, licence and overlap follow as ``usbench.encoder*``)."""
    pretrained = bool(getattr(fs, "pretrained", False))
    tags = fs.record_tags() if pretrained else {}
    return {"usbench.pretrained": str(pretrained).lower(), **tags}


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


def record(*, model: str, features: str, params: dict, seed: int, inp: Inputs, results: list,
           how: RecordSpec, config: dict, final_estimator=None) -> RunOutcome:
    """Write the local record of an evaluation, then log it to MLflow.

    Args:
        final_estimator: a model fitted on all present folds, saved for ``usbench predict``.
    """
    import json

    from usbench import metrics, outputs, tracking
    from usbench.config import fingerprint
    from usbench.paths import results_dir

    ds, m = inp.dataset, inp.built.matrix
    test_folds = [r.fold for r in results]
    scores = metrics.score(results, ds.classes)
    config_id = make_config_id(dataset=ds.fingerprint(), features_key=m.key, model=model,
                               params=params, folds=test_folds, seed=seed,
                               augment=None if inp.augment is None else inp.augment.spec(),
                               extra=how.identity)
    results_root = results_dir()
    uri = how.tracking_uri or tracking.default_tracking_uri(results_root)
    experiment = how.experiment or ds.name
    stamp = time.strftime("%Y%m%d-%H%M%S")
    from usbench.features import slug

    run_name = f"{model}-{slug(features)}-{config_id[:6]}-{stamp}"
    if how.kind == "trial" and "usbench.trial" in how.extra_tags:
        run_name = f"trial-{how.extra_tags['usbench.trial']}-{run_name}"
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
                   **{f"recall.{c}": v for c, v in scores.class_recall.items() if v == v},
                   **how.extra_metrics}
    tags = {"usbench.config_id": config_id, "usbench.features_key": m.key,
            "usbench.dataset_fingerprint": ds.fingerprint(), "usbench.dataset": ds.name,
            "usbench.dataset_clips": str(len(ds.clips)),
            "usbench.folds": ds.fold_plan.origin, "usbench.fold_plan": ds.fold_plan.describe(),
            "usbench.partial": str(inp.partial).lower(), "usbench.kind": how.kind,
            "usbench.selection": how.selection, "usbench.git_commit": _git_commit(),
            "usbench.augment": "off" if inp.augment is None else fingerprint(inp.augment.spec()),
            **encoder_tags(inp.built.feature_set),
            **{f"usbench.version.{k}": v for k, v in _versions().items()},
            **{k: str(v) for k, v in how.extra_tags.items()}}
    result = {
        "config_id": config_id, "run_name": run_name, "params": run_params,
        "metrics": run_metrics, "tags": tags, "classes": list(ds.classes),
        "folds": [{"fold": r.fold, "clips": len(r.test_index), "train_clips": r.n_train,
                   "accuracy": r.accuracy, "fit_seconds": r.fit_seconds,
                   "predict_seconds": r.predict_seconds, "history": r.history}
                  for r in results],
        "tracking_uri": uri, "experiment": experiment, "mlflow_run_id": None,
    }
    folder = outputs.write_run(results_root / "runs" / run_name, result, config, results,
                               scores, ds.classes, inp.clip_ids)
    if ds.fold_plan.origin != "official":
        # Folds usbench made (or the user's): the assignment travels with the result.
        ds.clips[["clip_id", "label", "fold", "recording"]].to_csv(folder / "folds.csv",
                                                                  index=False)
    model = None
    if final_estimator is not None:
        from usbench.saved_model import bundle, store

        # The native estimator, logged with the run's artifacts as ``estimator/``; the MLflow
        # model ``model`` wraps the same folder.
        model = store.ModelLog(bundle=folder / "estimator", classes=tuple(ds.classes),
                               example=str(ds.clips["path"].iloc[0]), register=how.register)
        bundle.save(folder / "estimator", final_estimator, {
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
    run_id = tracking.log_run(uri, results_root / "mlartifacts", tracking.RunLog(
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
        result["mlflow_run_id"] = run_id
        (folder / "result.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    return RunOutcome(config_id=config_id, scores=scores, folds=results, folder=folder,
                      run_id=run_id, tracking_uri=uri, partial=inp.partial,
                      fold_plan=ds.fold_plan)


def fit_final(spec, params: dict, inp: Inputs, *, seed: int):
    """One model fitted on every present fold (for ``usbench predict``; never scored)."""
    from usbench.models.base import BuildContext

    log.info(f"--save-model: fitting {spec.name} on all {len(inp.y):,} clips of the present "
             "folds")
    ctx = BuildContext(n_classes=len(inp.dataset.classes), input_shape=inp.X.shape[1:],
                       seed=seed)
    return spec.build(params, ctx).fit(inp.X, inp.y, groups=inp.recordings, folds=inp.folds,
                                       variants=inp.variants)


def run_experiment(cfg, *, progress: bool = True) -> RunOutcome:
    """``usbench run``: evaluate one configuration under leave-one-fold-out, record, log."""
    from usbench import cv
    from usbench.datasets import open_dataset
    from usbench.paths import writable_results

    spec, params = prepare_model(cfg)
    writable_results()  # the record goes there: fail before any fold, not after the last
    ds = open_dataset(cfg.data)
    check_protocol(spec, params, ds.clips["fold"].to_numpy(), cfg.folds, cfg.save_model)
    inp = load_inputs(cfg.data, cfg.features, jobs=cfg.jobs, progress=progress,
                      augment=cfg.augment, dataset=ds)
    test_folds = cv.check_folds(inp.folds, cfg.folds)
    cfg = replace(cfg, fold_jobs=spec.fold_jobs(cfg.fold_jobs, len(test_folds)))
    side = f" ({cfg.fold_jobs} at a time)" if cfg.fold_jobs > 1 else ""
    log.info(f"{cfg.model} on {cfg.features}, {inp.dataset.name}: leave-one-fold-out over "
             f"folds {', '.join(map(str, test_folds))}{side}")
    results = evaluate(spec, params, inp, seed=cfg.seed, test_folds=test_folds,
                       on_fold=log_fold, n_jobs=cfg.fold_jobs)
    final = fit_final(spec, params, inp, seed=cfg.seed) if cfg.save_model else None
    return record(model=cfg.model, features=cfg.features, params=params, seed=cfg.seed,
                  inp=inp, results=results, config=cfg.to_dict(), final_estimator=final,
                  how=RecordSpec(tracking_uri=cfg.tracking_uri, experiment=cfg.experiment,
                                 register=cfg.register,
                                 selection="single run" if cfg.from_study is None
                                 else "selected on CV",
                                 extra_tags={} if cfg.from_study is None
                                 else {"usbench.study": cfg.from_study}))
