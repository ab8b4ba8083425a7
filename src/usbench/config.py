"""Frozen run configuration and fingerprints.

Every run is described by one immutable tree of dataclasses; defaults live only here.
``fingerprint`` turns any JSON-able object into a short, stable key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace; dataclasses become dicts."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = dataclasses.asdict(obj)
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def fingerprint(obj: Any) -> str:
    """First 12 hex digits of the sha256 of `obj`'s canonical JSON."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:12]


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    """Which dataset to read and how strictly.

    Attributes:
        dataset: a registered dataset name; None: ``synthetic`` if the root carries the
            generator's marker, else ``urbansound8k``.
        root: dataset root folder; None means ``$USBENCH_DATA`` or the embedded synthetic set.
        allow_missing: use only the clips present when some listed clips are missing.
    """

    dataset: str | None = None
    root: str | None = None
    allow_missing: bool = False


@dataclass(frozen=True, kw_only=True)
class BuildConfig:
    """One feature-cache build.

    Attributes:
        data: the dataset.
        features: a registered feature-set name (``usbench features ls``).
        jobs: worker processes (None: one per available core). Not part of any key.
        skip_bad: list undecodable clips in the manifest instead of stopping.
        chunk_size: clips per cache shard (the unit of resumption).
    """

    data: DataConfig = DataConfig()
    features: str = "mfcc-stats"
    jobs: int | None = None
    skip_bad: bool = False
    chunk_size: int = 64
