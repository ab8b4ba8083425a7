"""Registry spec of the ``synthetic`` dataset (its card is in ``usbench.datasets.synthetic``)."""

from pathlib import Path

from usbench.datasets.base import Dataset, open_root
from usbench.datasets.spec import DatasetSpec
from usbench.datasets.synthetic import MARKER

SPEC = DatasetSpec(
    name="synthetic",
    summary="UrbanSound8K-shaped generated audio (default when no --data is given)",
    card_module="usbench.datasets.synthetic",
    opener=f"{__name__}:open_synthetic",
    marker=MARKER,
)


def open_synthetic(root: Path, cfg) -> Dataset:
    return open_root("synthetic", root, allow_missing=cfg.allow_missing)
