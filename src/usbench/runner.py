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
    """A dataset with its feature matrix. `seconds` is the wall time of the build call."""

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

    start = time.perf_counter()
    fs = get_feature_set(cfg.features)
    ds = open_dataset(cfg.data)
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

