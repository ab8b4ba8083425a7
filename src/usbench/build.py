"""Feature building: a dataset's clips through a feature set into the cache, resumably, and
combined sets put side by side."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

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

    Clips whose float samples pass full scale are used as they are, with one warning line.

    Raises:
        DatasetError: the dataset is incomplete or broken, or clips fail to decode and
            ``cfg.skip_bad`` is False (the chunks already extracted stay cached).
    """
    built = _build(cfg, progress=progress, on_chunk=on_chunk, dataset=dataset)
    if cfg.augment is None:  # the variants' clips are the same files
        warn_loud(built.matrix.notes, built.dataset)
    return built


def warn_loud(notes: list[dict], ds: Dataset) -> None:
    """One warning line for the clips whose float samples pass full scale (used as they are)."""
    import os

    loud = [n for n in notes if n["note"] == "loud"]
    if not loud:
        return
    top = max(loud, key=lambda n: n["peak"])
    where = dict(zip(ds.column("clip_id"), ds.column("path"), strict=True)).get(top["clip_id"])
    name = os.path.relpath(where, ds.root) if where else top["clip_id"]
    log.warning(f"warning: {len(loud):,} clip(s) have float samples outside [-1, 1] (largest "
                f"|x| {top['peak']:g}, in {name}); they are used as they are. Rescale them to "
                "[-1, 1] if they were exported at the wrong scale.")


def _build(cfg: BuildConfig, *, progress: bool, on_chunk, dataset: Dataset | None
           ) -> BuiltFeatures:
    from usbench.datasets import open_dataset
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
        with store.building(lambda: log.info(
                f"waiting for another process that builds the same features ({store.path})")):
            matrix = (store.load() if store.is_complete()  # the other process built them
                      else _extract(cfg, fs, ds, store, inputs, shape, progress, on_chunk))
    if matrix.bad and not cfg.skip_bad:
        raise _bad_clips_error(matrix.bad, ds.n_clips, ds.root)
    return BuiltFeatures(dataset=ds, feature_set=fs, matrix=matrix,
                         seconds=time.perf_counter() - start)


def _extract(cfg: BuildConfig, fs: FeatureSet, ds: Dataset, store: FeatureStore, inputs: dict,
             shape: tuple, progress: bool, on_chunk) -> FeatureMatrix:
    """Extract the clips `store` lacks, resuming an interrupted build (the caller holds the
    entry's build lock)."""
    from usbench.extract import default_jobs, run_chunks

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
    return store.load(computed=n_todo)


def _build_combined(cfg: BuildConfig, fs: Combined, *, progress: bool, on_chunk,
                    dataset: Dataset) -> BuiltFeatures:
    """Build (or load) each part, then put their columns side by side for the clips every
    part has (a clip bad in one part is bad for the whole)."""
    import numpy as np

    from usbench.config import fingerprint
    from usbench.features import parts_of

    start = time.perf_counter()
    built = [_build(replace(cfg, features=name), progress=progress, on_chunk=on_chunk,
                    dataset=dataset)
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
