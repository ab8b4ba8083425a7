"""Dataset registry and data-root resolution.

Resolution order: ``--data DIR``, else ``$USBENCH_DATA``, else the embedded synthetic dataset
(generated once into the cache directory, announced in one log line).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from usbench.config import DataConfig
from usbench.datasets.base import Dataset
from usbench.errors import DatasetError
from usbench.registry import Registry

log = logging.getLogger("usbench")


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset: its name, a one-line description and its card's module."""

    name: str
    summary: str
    card_module: str


DATASETS: Registry[DatasetSpec] = Registry(
    "dataset",
    {
        "urbansound8k": "usbench.datasets.urbansound8k:SPEC",
        "synthetic": "usbench.datasets.synthetic_spec:SPEC",
    },
)


def resolve_root(cfg: DataConfig) -> tuple[Path, str]:
    """Decide which root to read.

    Returns:
        (root, origin): origin is "--data", "USBENCH_DATA" or "embedded".
    """
    if cfg.root:
        return Path(cfg.root).expanduser(), "--data"
    env = os.environ.get("USBENCH_DATA")
    if env:
        return Path(env).expanduser(), "USBENCH_DATA"
    if cfg.dataset not in (None, "synthetic"):
        raise DatasetError(
            f"Dataset '{cfg.dataset}' has no embedded copy. Pass --data with its root "
            "(metadata/UrbanSound8K.csv + audio/fold<N>/) or set USBENCH_DATA."
        )
    from usbench.datasets.synthetic import default_root
    from usbench.paths import cache_dir, writable_dir

    root, created = default_root(writable_dir(cache_dir()))
    verb = "generated" if created else "using"
    log.info(f"No --data given: {verb} the embedded synthetic dataset at {root}")
    return root, "embedded"


def open_dataset(cfg: DataConfig) -> Dataset:
    """Open the dataset `cfg` points at (see module docstring for the order)."""
    from usbench.datasets.base import open_root
    from usbench.datasets.synthetic import is_synthetic

    if cfg.dataset is not None:
        DATASETS.check(cfg.dataset)
    root, origin = resolve_root(cfg)
    if origin == "USBENCH_DATA" and not root.is_dir():
        raise DatasetError(
            f"USBENCH_DATA points at {root}, which is not a folder. Set it to a dataset root "
            "(metadata/UrbanSound8K.csv + audio/fold<N>/), unset it, or pass --data."
        )
    name = cfg.dataset or ("synthetic" if is_synthetic(root) else "urbansound8k")
    try:
        ds = open_root(name, root, allow_missing=cfg.allow_missing)
    except DatasetError as exc:
        if origin != "USBENCH_DATA":
            raise
        raise DatasetError(f"{exc} (The root came from USBENCH_DATA.)") from None
    if cfg.dataset == "urbansound8k":
        from usbench.datasets.urbansound8k import CLASSES

        if ds.classes != CLASSES:
            other = next(c for c in ds.classes + ("",) if c not in CLASSES) or "fewer classes"
            raise DatasetError(
                f"{ds.root / 'metadata' / 'UrbanSound8K.csv'} does not hold UrbanSound8K's "
                f"classes (it has {len(ds.classes)}, e.g. '{other}'; UrbanSound8K has "
                f"{', '.join(CLASSES)} as classIDs 0-9). Check that --data is the UrbanSound8K "
                "root, or fix its class and classID columns."
            )
    return ds
