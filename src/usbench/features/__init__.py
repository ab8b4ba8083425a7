"""Feature-set registry and the feature names a command accepts.

A name is a registered set (``mfcc-stats``, ``logmel``, ``birdnet``...), ``encoder:CARD.toml``
(a pretrained model file described by an encoder card), ``hear:MODULE`` (a HEAR-API module),
or several vector sets joined by ``+`` (``birdnet+mfcc-stats``: their columns side by side).
"""

from __future__ import annotations

from usbench.errors import ConfigError
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
        "birdnet": "usbench.features.encoder:birdnet",
    },
)


def parts_of(name: str) -> list[str]:
    """The single feature names of `name` (one unless it joins several with ``+``; so a card's
    path cannot hold a ``+``)."""
    parts = [p.strip() for p in name.split("+")]
    if any(not p for p in parts):
        raise ConfigError(f"Feature name '{name}' has an empty part. Join names with '+', "
                          "e.g. birdnet+mfcc-stats.")
    if len(set(parts)) != len(parts):
        raise ConfigError(f"Feature name '{name}' names a set twice. Name each once.")
    return parts


def short_label(name: str) -> str:
    """`name` for plots and file names: an encoder card by its file's stem, a HEAR module
    without its weights path (``encoder:cards/yamnet.toml+mfcc-stats`` ->
    ``encoder:yamnet+mfcc-stats``)."""
    from pathlib import PurePath

    out = []
    for part in name.split("+"):
        if part.startswith("encoder:"):
            part = f"encoder:{PurePath(part.removeprefix('encoder:')).stem}"
        elif part.startswith("hear:"):
            part = part.partition("@")[0]
        out.append(part)
    return "+".join(out)


def slug(name: str) -> str:
    """`name` as it may appear in a file or study name: itself when it holds only letters,
    digits and ``._+-``; otherwise its short label in those characters and a digest of the
    whole name (``encoder:cards/yamnet.toml`` -> ``encoder-yamnet-3f2a1c``)."""
    import hashlib
    import re

    if re.fullmatch(r"[A-Za-z0-9._+-]+", name):
        return name
    readable = re.sub(r"[^A-Za-z0-9._+-]+", "-", short_label(name)).strip("-")[:48]
    return f"{readable}-{hashlib.sha256(name.encode()).hexdigest()[:6]}"


def with_weights(name: str, weights: str | None) -> str:
    """`name` with ``--weights PATH`` given to its HEAR part: ``hear:M`` -> ``hear:M@PATH``."""
    if weights is None:
        return name
    parts = parts_of(name)
    bare = [i for i, p in enumerate(parts) if p.startswith("hear:") and "@" not in p]
    if len(bare) != 1:
        raise ConfigError(f"--weights is for one HEAR module, but '{name}' has "
                          f"{len(bare) or 'no'} hear: part(s) without weights. Name each "
                          "module's file as hear:MODULE@PATH instead.")
    parts[bare[0]] += f"@{weights}"
    return "+".join(parts)


def get_feature_set(name: str) -> FeatureSet:
    """The feature set `name` with its default parameters.

    Args:
        name: see the module docstring.

    Raises:
        ConfigError: an unknown name, or a combination of sets that are not all vectors.
        FeatureError: an encoder card or HEAR module that cannot be used.
    """
    parts = parts_of(check_name(name))
    if len(parts) > 1:
        from usbench.features.combined import Combined

        return Combined.of([get_feature_set(p) for p in parts], name)
    if name.startswith("encoder:"):
        from usbench.features.encoder import EncoderFeatures

        path = name.removeprefix("encoder:")
        if not path:
            raise ConfigError("'encoder:' needs a card: --features encoder:PATH/TO/card.toml.")
        return EncoderFeatures.from_card(path)
    if name.startswith("hear:"):
        from usbench.features.hear import HearFeatures

        return HearFeatures.from_module(name.removeprefix("hear:"))
    return FEATURES.get(name)()


def check_name(name: str) -> str:
    """`name` if it is a well-formed feature name (registered parts exist), without opening any
    model: a did-you-mean error otherwise."""
    for part in parts_of(name):
        if not part.startswith(("encoder:", "hear:")):
            try:
                FEATURES.check(part)
            except ConfigError as exc:
                raise ConfigError(f"{exc} Or encoder:CARD.toml, hear:MODULE, or vector sets "
                                  "joined with + (birdnet+mfcc-stats).") from None
    return name
