"""Content-addressed feature store with atomic writes and resumable builds.

Layout under ``<cache>/features/<feature name>/<features_key>/``:

- ``manifest.json``: what the key was made of, chunking, status, clip order, bad clips.
- ``shards/<index>.npz``: one chunk of clips while a build is in progress (the unit of resume).
- ``features.npy``: the finished matrix, float32 (n_clips, *shape), rows in manifest order.

The key covers the dataset fingerprint and file stamps, the feature spec and version, the
decoder, and the versions of librosa, numpy, scipy (MFCCs use ``scipy.fft.dct``, the
statistics ``scipy.stats``), soundfile and soxr, so an entry can never be
reused for other inputs. Model parameters never enter it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import numpy as np

from usbench.config import fingerprint
from usbench.errors import CacheError

KEY_LIBRARIES = ("librosa", "numpy", "scipy", "soundfile", "soxr")


def library_versions() -> dict[str, str]:
    """Versions of the libraries whose output the features depend on."""
    return {lib: version(lib) for lib in KEY_LIBRARIES}


def key_inputs(dataset_fingerprint: str, files_stamp: str, feature_spec: dict,
               decoder: dict, libraries: dict[str, str] | None = None) -> dict:
    """Everything a cached feature matrix depends on (and nothing else)."""
    return {
        "dataset": dataset_fingerprint,
        "files": files_stamp,
        "features": feature_spec,
        "decoder": decoder,
        "libraries": library_versions() if libraries is None else libraries,
    }


def features_key(inputs: dict) -> str:
    """The cache key of `inputs` (see ``key_inputs``): 12 hex digits."""
    return fingerprint(inputs)


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write via a temporary file in the same folder, then rename over `path`."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class FeatureMatrix:
    """A loaded feature matrix.

    Attributes:
        X: float32, shape (n_clips, *feature shape); read-only memory map when from disk.
        clip_ids: clip ids of the rows of X, in order.
        key: the features key.
        bad: clips left out because they could not be decoded ({clip_id, path, reason}).
        notes: valid clips worth a look ({clip_id, note}: "silent" or "short").
        computed: clips decoded by the call that returned this matrix (bad ones included).
        reused: clips whose result that call took from the cache.
        path: the cache entry folder.
    """

    X: np.ndarray = field(repr=False)
    clip_ids: list[str] = field(repr=False)
    key: str
    bad: list[dict]
    computed: int
    reused: int
    path: Path
    notes: list[dict] = field(default_factory=list)


class FeatureStore:
    """One cache entry: ``<root>/features/<name>/<key>``."""

    def __init__(self, root: Path, name: str, key: str):
        self.key = key
        self.path = root / "features" / name / key
        self.shards = self.path / "shards"
        self.manifest_path = self.path / "manifest.json"
        self.matrix_path = self.path / "features.npy"

    def manifest(self) -> dict | None:
        try:
            return json.loads(self.manifest_path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, json.JSONDecodeError) as exc:
            raise CacheError(
                f"Cache manifest {self.manifest_path} is unreadable ({exc}). "
                f"Delete {self.path} to rebuild it."
            ) from None

    def is_complete(self) -> bool:
        m = self.manifest()
        return bool(m and m.get("status") == "complete" and self.matrix_path.is_file())

    def begin(self, manifest: dict) -> dict:
        """Create the entry, or return the manifest of an interrupted build to resume."""
        from usbench.paths import writable_dir

        writable_dir(self.path)
        self.shards.mkdir(exist_ok=True)
        existing = self.manifest()
        if existing is not None:
            return existing
        self._write_manifest({**manifest, "status": "building"})
        return self.manifest()

    def _write_manifest(self, manifest: dict) -> None:
        text = json.dumps(manifest, indent=1) + "\n"
        _atomic_write(self.manifest_path, lambda p: p.write_text(text))

    def done_shards(self) -> set[int]:
        if not self.shards.is_dir():
            return set()
        return {int(p.stem) for p in self.shards.glob("*.npz") if p.stem.isdigit()}

    def write_shard(self, index: int, clip_ids: list[str], X: np.ndarray,
                    bad: list[dict], notes: list[dict] = ()) -> None:
        """Atomically store one finished chunk (good clips' rows, the chunk's bad clips and
        notes on valid ones)."""
        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                np.savez(fh, clip_ids=np.asarray(clip_ids, dtype=str), X=X,
                         bad=np.asarray(json.dumps(bad)),
                         notes=np.asarray(json.dumps(list(notes))))

        _atomic_write(self.shards / f"{index:06d}.npz", write)

    def read_shard(self, index: int) -> tuple[list[str], np.ndarray, list[dict], list[dict]]:
        with np.load(self.shards / f"{index:06d}.npz") as z:
            notes = json.loads(str(z["notes"])) if "notes" in z.files else []
            return z["clip_ids"].tolist(), z["X"], json.loads(str(z["bad"])), notes

    def drop_damaged_shards(self) -> list[tuple[Path, str]]:
        """Delete the stored chunks that cannot be read back, so they are recomputed.

        A chunk is written atomically, but a disk error or a hand edit can still damage it.

        Returns:
            (shard path, reason) of each chunk dropped.
        """
        import zipfile

        dropped = []
        for i in sorted(self.done_shards()):
            path = self.shards / f"{i:06d}.npz"
            try:
                ids, X, _, _ = self.read_shard(i)
                if len(X) != len(ids):
                    raise ValueError(f"{len(X)} rows for {len(ids)} clips")
            except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
                path.unlink(missing_ok=True)
                dropped.append((path, str(exc).splitlines()[0][:120] or type(exc).__name__))
        return dropped

    def bad_so_far(self) -> list[dict]:
        bad = []
        for i in sorted(self.done_shards()):
            bad += self.read_shard(i)[2]
        return bad

    def finalize(self, n_shards: int, shape: tuple[int, ...]) -> None:
        """Join the shards into ``features.npy``, mark the entry complete, drop the shards."""
        ids, parts, bad, notes = [], [], [], []
        for i in range(n_shards):
            shard_ids, X, shard_bad, shard_notes = self.read_shard(i)
            ids += shard_ids
            parts.append(X.reshape(len(shard_ids), *shape))
            bad += shard_bad
            notes += shard_notes
        matrix = np.concatenate(parts).astype(np.float32, copy=False)
        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:  # a file object: np.save would append ".npy" to a name
                np.save(fh, matrix)

        _atomic_write(self.matrix_path, write)
        manifest = self.manifest()
        self._write_manifest({**manifest, "status": "complete", "clip_ids": ids, "bad": bad,
                              "notes": notes, "shape": list(matrix.shape)})
        shutil.rmtree(self.shards, ignore_errors=True)

    def load(self, computed: int = 0) -> FeatureMatrix:
        """The finished matrix, memory-mapped (a warm load reads only the manifest)."""
        m = self.manifest()
        try:
            X = np.load(self.matrix_path, mmap_mode="r")
        except (OSError, ValueError, EOFError) as exc:
            raise CacheError(
                f"Cached features {self.matrix_path} are unreadable ({exc}). "
                f"Delete {self.path} to rebuild them."
            ) from None
        return FeatureMatrix(X=X, clip_ids=m["clip_ids"], key=self.key, bad=m["bad"],
                             notes=m.get("notes", []), computed=computed,
                             reused=len(m["clip_ids"]) + len(m["bad"]) - computed,
                             path=self.path)
