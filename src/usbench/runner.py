"""The wiring: names -> dataset -> cached features -> leave-one-fold-out -> the run's record.

No model- or feature-specific code lives here.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from usbench.build import Inputs, build_features
from usbench.config import BuildConfig
from usbench.datasets.base import Dataset
from usbench.record import RecordSpec, RunOutcome, Tag, record

log = logging.getLogger("usbench")


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


def start(cfg, *, progress: bool = True, protocol=None, ready=None):
    """What run, sweep and audit do first, in this order, each failing before any work that
    follows: check the model, its parameters and the feature set; make sure the results folder
    can be written; ``ready()`` (a sweep opens its storage); open the dataset; check the
    protocol on its folds (``protocol(spec, params, folds)``); load the features, or build
    them.

    Args:
        cfg: a RunConfig, SweepConfig or AuditConfig (model, features, overrides, data, jobs,
            augment).

    Returns:
        (spec, params, inputs).
    """
    from usbench.datasets import open_dataset
    from usbench.paths import writable_results

    spec, params = check_model(cfg.model, cfg.features, dict(cfg.overrides))
    writable_results()  # the record goes there: fail before any fold, not after the last
    if ready is not None:
        ready()
    ds = open_dataset(cfg.data)
    if protocol is not None:
        protocol(spec, params, ds.clips["fold"].to_numpy())
    inp = load_inputs(cfg.data, cfg.features, jobs=cfg.jobs, progress=progress,
                      augment=cfg.augment, dataset=ds)
    return spec, params, inp


def load_inputs(data, features: str, *, jobs: int | None = None,
                progress: bool = True, augment=None, dataset: Dataset | None = None) -> Inputs:
    """Open the dataset, load (or build) its features, and check them.

    Args:
        augment: an ``AudioAugment``: also load (or build) the features of every clip's
            audio variants, aligned with the rows of X.
        dataset: the dataset `data` names, when the caller has opened it already.
    """
    import numpy as np

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
             n_jobs: int = 1, kept=None):
    """Leave-one-fold-out of one configuration on `inp`: a list of FoldResult (folds in
    `n_jobs` worker processes when above 1; the folds in `kept`, {fold: FoldResult}, are not
    trained again)."""
    from usbench import cv
    from usbench.models.base import BuildContext

    ctx = BuildContext(n_classes=len(inp.dataset.classes), input_shape=inp.X.shape[1:],
                       seed=seed)
    return cv.leave_one_fold_out(lambda fold: spec.build(params, replace(ctx, test_fold=fold)),
                                 inp.X, inp.y, inp.folds, inp.recordings,
                                 len(inp.dataset.classes), test_folds=test_folds,
                                 on_fold=on_fold, variants=inp.variants, n_jobs=n_jobs,
                                 kept=kept)


def log_fold(r) -> None:
    log.info(f"fold {r.fold:>2}: {len(r.test_index):>5} test clips, {r.n_train:>5} train  "
             f"accuracy {r.accuracy:.3f}  (fit {r.fit_seconds:.1f} s)")


def fit_final(spec, params: dict, inp: Inputs, *, seed: int):
    """One model fitted on every present fold (for ``usbench predict``; never scored)."""
    from usbench.models.base import BuildContext

    log.info(f"--save-model: fitting {spec.name} on all {len(inp.y):,} clips of the present "
             "folds")
    ctx = BuildContext(n_classes=len(inp.dataset.classes), input_shape=inp.X.shape[1:],
                       seed=seed)
    return spec.build(params, ctx).fit(inp.X, inp.y, groups=inp.recordings, folds=inp.folds,
                                       variants=inp.variants)


def run_experiment(cfg, *, progress: bool = True, fresh: bool = False) -> RunOutcome:
    """``usbench run``: evaluate one configuration under leave-one-fold-out, record, log.

    Each finished fold is kept (``usbench.foldstore``) until the run is recorded: the same
    command after a kill trains only the folds not finished. `fresh` discards kept folds first.
    """
    import numpy as np

    from usbench import cv
    from usbench.device import training_device
    from usbench.foldstore import FoldStore
    from usbench.procs import check_terminated
    from usbench.progress import FoldProgress
    from usbench.record import config_id_of

    spec, params, inp = start(cfg, progress=progress, protocol=lambda spec, params, folds:
                              check_protocol(spec, params, folds, cfg.folds, cfg.save_model))
    test_folds = cv.check_folds(inp.folds, cfg.folds)
    store = FoldStore.for_config(config_id_of(model=cfg.model, params=params, seed=cfg.seed,
                                              inp=inp, folds=test_folds))
    if fresh and (dropped := store.discard()):
        log.info(f"--fresh: discarded kept fold(s) {_listed(dropped)} ({store.folder})")
    n_classes = len(inp.dataset.classes)
    kept = store.load({f: np.flatnonzero(inp.folds == f) for f in test_folds}, n_classes)
    todo = [f for f in test_folds if f not in kept]
    device = training_device(spec)
    cfg = replace(cfg, fold_jobs=spec.fold_jobs(cfg.fold_jobs, len(test_folds), device.gpu))
    side = f" ({cfg.fold_jobs} at a time)" if cfg.fold_jobs > 1 else ""
    log.info(f"{cfg.model} on {cfg.features}, {inp.dataset.name}: leave-one-fold-out over "
             f"folds {_listed(test_folds)}{side} on {device.label}")
    if kept:
        log.info(f"resuming: fold(s) {_listed(sorted(kept))} already done ({store.folder}); "
                 + (f"training {_listed(todo)}" if todo else "nothing left to train"))

    shown = FoldProgress(todo, params.get("epochs"), bar=progress,
                         in_workers=min(cfg.fold_jobs, len(todo)) > 1)

    def on_fold(r) -> None:
        store.save(r)
        log_fold(r)
        shown.fold_done()
        check_terminated()

    with shown:
        results = evaluate(spec, params, inp, seed=cfg.seed, test_folds=test_folds,
                           on_fold=on_fold, n_jobs=cfg.fold_jobs, kept=kept)
    final = fit_final(spec, params, inp, seed=cfg.seed) if cfg.save_model else None
    outcome = record(model=cfg.model, features=cfg.features, params=params, seed=cfg.seed,
                     inp=inp, results=results, config=cfg.to_dict(), final_estimator=final,
                     how=RecordSpec(tracking_uri=cfg.tracking_uri, experiment=cfg.experiment,
                                    register=cfg.register,
                                    selection="single run" if cfg.from_study is None
                                    else "selected on CV",
                                    extra_tags={} if cfg.from_study is None
                                    else {Tag.STUDY: cfg.from_study}))
    store.discard()  # the record holds every fold now
    return outcome


def _listed(folds) -> str:
    return ", ".join(map(str, folds))
