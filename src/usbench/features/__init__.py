"""Feature-set registry. Each entry is a frozen spec class with a version and declared shape."""

from __future__ import annotations

from usbench.features.base import FeatureSet
from usbench.registry import Registry

FEATURES: Registry[type[FeatureSet]] = Registry(
    "feature set",
    {
        "mfcc-mean": "usbench.features.mfcc:MfccMean",
        "mfcc-stats": "usbench.features.mfcc:MfccStats",
        "logmel": "usbench.features.logmel:LogMel",
        "stft": "usbench.features.stft:Stft",
        "stft-mag": "usbench.features.stft:StftMagnitude",
    },
)


def get_feature_set(name: str) -> FeatureSet:
    """The registered feature set `name` with its default parameters."""
    return FEATURES.get(name)()
