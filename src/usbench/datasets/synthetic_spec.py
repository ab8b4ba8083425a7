"""Registry spec of the ``synthetic`` dataset (its card is in ``usbench.datasets.synthetic``)."""

from usbench.datasets import DatasetSpec

SPEC = DatasetSpec(
    name="synthetic",
    summary="UrbanSound8K-shaped generated audio (default when no --data is given)",
    card_module="usbench.datasets.synthetic",
)
