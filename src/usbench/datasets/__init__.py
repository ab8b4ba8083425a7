"""Dataset registry, layout detection and data-root resolution.

Resolution order: ``--data DIR``, else ``$USBENCH_DATA``, else the embedded synthetic dataset
(generated once into the cache directory, announced in one log line). Without ``--dataset``
the layout is detected from the root's metadata files (``DETECTED``, in order); a root with
none of them is an error that lists the layouts.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from usbench.config import DataConfig
from usbench.datasets.base import Dataset
from usbench.datasets.spec import DatasetSpec
from usbench.errors import ConfigError, DatasetError
from usbench.registry import Registry

log = logging.getLogger("usbench")


DATASETS: Registry[DatasetSpec] = Registry(
    "dataset",
    {
        "urbansound8k": "usbench.datasets.urbansound8k:SPEC",
        "synthetic": "usbench.datasets.synthetic_spec:SPEC",
        "esc50": "usbench.datasets.esc50:SPEC",
        "esc10": "usbench.datasets.esc10:SPEC",
        "folders": "usbench.datasets.folders:SPEC",
        "csv": "usbench.datasets.csvlist:SPEC",
    },
)

# Layouts recognised by a metadata file, in this order (synthetic roots also hold
# UrbanSound8K's table; ESC-10 shares ESC-50's and is only chosen by name).
DETECTED = ("synthetic", "urbansound8k", "esc50")


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
            "(`usbench ls datasets` shows the layouts) or set USBENCH_DATA."
        )
    from usbench.datasets.synthetic import default_root
    from usbench.paths import cache_dir, writable_dir

    root, created = default_root(writable_dir(cache_dir()))
    verb = "generated" if created else "using"
    log.info(f"No --data given: {verb} the embedded synthetic dataset at {root}")
    return root, "embedded"


def detect(root: Path) -> str:
    """The registered name of `root`'s layout, from its metadata files.

    Raises:
        DatasetError: the root holds none of them (the message lists every layout).
    """
    from usbench.datasets.base import check_root

    check_root(root)
    for name in DETECTED:
        marker = DATASETS.get(name).marker
        if marker and (root / marker).is_file():
            return name
    markers = ", ".join(f"{DATASETS.get(n).marker} ({n})" for n in DETECTED[1:])
    raise DatasetError(
        f"Cannot tell the layout of {root}: it holds none of {markers}. Pass --dataset with "
        "one of: urbansound8k, esc50, esc10, folders (<root>/<class>/*.wav), csv (a table of "
        "file,label); `usbench ls datasets` describes each.")


def _check_layout_options(name: str, cfg: DataConfig) -> None:
    given = cfg.layout_options()
    if given and not DATASETS.get(name).own_folds:
        flag = next(iter(given))
        raise ConfigError(
            f"{flag} applies to the folders and csv layouts only; {name} has its own folds "
            "and metadata. Drop it, or pass --dataset folders / csv.")


def open_dataset(cfg: DataConfig) -> Dataset:
    """Open the dataset `cfg` points at (see module docstring for the order)."""
    from usbench.datasets.folds import warn_ungrouped

    if cfg.dataset is not None:
        DATASETS.check(cfg.dataset)
    root, origin = resolve_root(cfg)
    if origin == "USBENCH_DATA" and not root.is_dir():
        raise DatasetError(
            f"USBENCH_DATA points at {root}, which is not a folder. Set it to a dataset root "
            "(`usbench ls datasets` shows the layouts), unset it, or pass --data."
        )
    try:
        name = cfg.dataset or detect(root)
        _check_layout_options(name, cfg)
        ds = DATASETS.get(name).open(root, cfg)
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
    warn_ungrouped(ds.fold_plan)
    return ds
