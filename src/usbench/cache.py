"""Content-addressed feature store with atomic writes and resumable builds.

Layout under ``<cache>/features/<feature name>/<features_key>/``:

- ``manifest.json``: what the key was made of, chunking, status, clip order, bad clips.
- ``features.partial.npy``: while a build is in progress, the matrix being filled: one row per
  listed clip, chunk ``i`` written at rows ``i * chunk_size`` onwards.
- ``shards/<index>.rows.npz``: one finished chunk (its clip ids, bad clips, notes and the
  CRC-32 of its rows), written after its rows: the unit of resume.
- ``features.npy``: the finished matrix, float32 (n_clips, *shape), rows in manifest order.
  With no bad clip it is the partial file renamed: the features are written once.
- ``.build.lock``: held by the one process that builds the entry; another that needs it
  waits, then loads what the first built.

The key covers the dataset fingerprint and file stamps, the feature spec and version, the
decoder, and the versions of librosa, numpy, scipy (MFCCs use ``scipy.fft.dct``, the
statistics ``scipy.stats``), soundfile and soxr, so an entry can never be
reused for other inputs. Model parameters never enter it.
"""

from __future__ import annotations

import io
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


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write via a temporary file in the same folder, then rename over `path`."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_npy(path: Path, array: np.ndarray) -> None:
    """``np.save`` to exactly `path` (given a name, np.save would append ".npy")."""
    with open(path, "wb") as fh:
        np.save(fh, array)


def _zero_matrix(path: Path, shape: tuple[int, ...]) -> None:
    """A float32 ``.npy`` file of zeros of `shape` (sparse on disk until written)."""
    rows = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape)
    rows.flush()
    del rows


@dataclass(frozen=True)
class FeatureMatrix:
    """A loaded feature matrix.

    Attributes:
        X: float32, shape (n_clips, *feature shape); read-only memory map when from disk.
        clip_ids: clip ids of the rows of X, in order.
        key: the features key.
        bad: clips left out because they could not be decoded or embedded
            ({clip_id, path, reason}).
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
        self.partial_path = self.path / "features.partial.npy"
        self._out: tuple[io.BufferedRandom, int, tuple[int, ...]] | None = None  # partial file,
        # data offset and row shape, open while writing
        self._shape: tuple[int, ...] = ()  # of the partial file, set by begin()
        self._chunk_size = 0

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

    def building(self, on_wait: Callable[[], None] | None = None):
        """The entry's build lock (``.build.lock`` in it), as a context manager: one process
        at a time builds an entry; `on_wait` is called once when another one holds it.
        The OS releases it when its holder ends, killed or not."""
        from usbench.locks import exclusive
        from usbench.paths import writable_dir

        return exclusive(writable_dir(self.path) / ".build.lock", on_wait)

    def begin(self, manifest: dict) -> dict:
        """Create the entry, or return the manifest of an interrupted build to resume.

        `manifest` holds at least ``n_clips``, ``shape`` (of one clip's features) and
        ``chunk_size``; a resumed build keeps the ones it started with.
        """
        from usbench.paths import writable_dir

        writable_dir(self.path)
        self.shards.mkdir(exist_ok=True)
        existing = self.manifest()
        if existing is None or existing.get("status") != "building":
            self._write_manifest({**manifest, "status": "building"})
            existing = self.manifest()
        self._shape = (existing["n_clips"], *existing["shape"])
        self._chunk_size = existing["chunk_size"]
        if not self.partial_path.is_file():
            self._new_partial()
        return existing

    def _new_partial(self) -> None:
        """A zero partial matrix; the chunk records of any earlier one go with it."""
        for stale in self.shards.glob("*.npz"):
            stale.unlink()
        atomic_write(self.partial_path, lambda p: _zero_matrix(p, self._shape))

    def _write_manifest(self, manifest: dict) -> None:
        text = json.dumps(manifest, indent=1) + "\n"
        atomic_write(self.manifest_path, lambda p: p.write_text(text))

    def _shard_path(self, index: int) -> Path:
        return self.shards / f"{index:06d}.rows.npz"

    def done_shards(self) -> set[int]:
        if not self.shards.is_dir():
            return set()
        names = (p.name.removesuffix(".rows.npz") for p in self.shards.glob("*.rows.npz"))
        return {int(n) for n in names if n.isdigit()}

    def write_shard(self, index: int, clip_ids: list[str], X: np.ndarray,
                    bad: list[dict], notes: list[dict] = ()) -> None:
        """Store one finished chunk: its good clips' rows into the partial matrix, then,
        atomically, its record (clip ids, bad clips, notes on valid ones, CRC of the rows)."""
        import zlib

        if self._out is None:
            header = np.load(self.partial_path, mmap_mode="r")
            self._out = (open(self.partial_path, "r+b"), header.offset,
                         header.shape[1:])
            del header
        fh, offset, row_shape = self._out
        start = index * self._chunk_size
        rows = np.ascontiguousarray(X, dtype=np.float32).reshape(len(clip_ids), *row_shape)
        # Written, not memory-mapped: a mapped sparse file faults in and zeroes every page
        # before the copy (0.1 s of a 154 MB logmel build).
        if len(rows):  # a chunk of bad clips only has none
            fh.seek(offset + start * rows[:1].nbytes)
            fh.write(memoryview(rows).cast("B"))
            fh.flush()  # in the file before the record that vouches for them

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                np.savez(fh, clip_ids=np.asarray(clip_ids, dtype=str), start=start,
                         crc=zlib.crc32(rows), bad=np.asarray(json.dumps(bad)),
                         notes=np.asarray(json.dumps(list(notes))))

        atomic_write(self._shard_path(index), write)

    def read_shard(self, index: int) -> tuple[list[str], int, int, list[dict], list[dict]]:
        """(clip ids, first row, CRC-32 of the rows, bad clips, notes) of a stored chunk."""
        with np.load(self._shard_path(index)) as z:
            return (z["clip_ids"].tolist(), int(z["start"]), int(z["crc"]),
                    json.loads(str(z["bad"])), json.loads(str(z["notes"])))

    def drop_damaged_shards(self) -> list[tuple[Path, str]]:
        """Delete the stored chunks that cannot be read back, or whose rows no longer match
        their checksum, so they are recomputed (all of them, with a fresh partial matrix, when
        that file is unreadable).

        A chunk is written atomically, but a disk error or a hand edit can still damage it.

        Returns:
            (shard path, reason) of each chunk dropped.
        """
        import zipfile
        import zlib

        done = sorted(self.done_shards())
        if not done:
            return []
        try:
            rows = np.load(self.partial_path, mmap_mode="r")
            if rows.shape != self._shape:
                raise ValueError(f"shape {rows.shape}, not {self._shape}")
        except (OSError, ValueError, EOFError) as exc:
            reason = f"{self.partial_path.name} is unreadable: {str(exc).splitlines()[0][:100]}"
            self._new_partial()
            return [(self._shard_path(i), reason) for i in done]
        dropped = []
        for i in done:
            path = self._shard_path(i)
            try:
                ids, start, crc, _, _ = self.read_shard(i)
                if zlib.crc32(np.ascontiguousarray(rows[start:start + len(ids)])) != crc:
                    raise ValueError("its rows do not match their checksum")
            except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
                path.unlink(missing_ok=True)
                dropped.append((path, str(exc).splitlines()[0][:120] or type(exc).__name__))
        return dropped

    def bad_so_far(self) -> list[dict]:
        bad = []
        for i in sorted(self.done_shards()):
            bad += self.read_shard(i)[3]
        return bad

    def finalize(self, n_shards: int, shape: tuple[int, ...]) -> None:
        """Turn the partial matrix into ``features.npy`` (renamed when every clip decoded,
        else its good rows copied), mark the entry complete, drop the chunk records."""
        ids, spans, bad, notes = [], [], [], []
        for i in range(n_shards):
            shard_ids, start, _, shard_bad, shard_notes = self.read_shard(i)
            ids += shard_ids
            spans.append((start, start + len(shard_ids)))
            bad += shard_bad
            notes += shard_notes
        if self._out is not None:
            self._out[0].close()
            self._out = None
        rows = np.load(self.partial_path, mmap_mode="r")
        if rows.shape[1:] != tuple(shape):
            raise CacheError(f"Cached rows in {self.partial_path} have shape {rows.shape[1:]}, "
                             f"not {tuple(shape)}. Delete {self.path} to rebuild them.")
        gapless = all(a == b for (_, a), (b, _) in zip(spans, spans[1:], strict=False))
        if len(ids) == len(rows) and gapless:
            del rows
            os.replace(self.partial_path, self.matrix_path)
        else:  # bad clips left gaps: keep the good rows only
            matrix = np.concatenate([rows[a:b] for a, b in spans])
            del rows
            atomic_write(self.matrix_path, lambda tmp: save_npy(tmp, matrix))
            self.partial_path.unlink()
        manifest = self.manifest()
        self._write_manifest({**manifest, "status": "complete", "clip_ids": ids, "bad": bad,
                              "notes": notes, "shape": [len(ids), *shape]})
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
